"""The paper's five claims as verdict rules over evaluation results (used by ``routertrain.experiments.report``).

Verdict rules, per claim and dataset. Intervals are 95%. A difference interval "holds" when its low end
is > 0, "does not hold" when its high end is < 0, and is "inconclusive" when it contains 0. Frozen
baselines: every registered embedding head (knn, logreg, mlp, mf, kmeans; ``register_router``) and frozen
(embedding heads on a frozen encoder; TF-IDF is lexical and is left out). Plateau, predictability and fine-tuning read the sweep of the dataset that
tests them (its largest evaluation).

1. plateau: band = [min, max] of the frozen baselines' test accuracies (at least 2), gap = oracle -
   best single. Holds when the band width is < 25% of the gap AND the oracle lies above the best
   baseline's upper CI bound by more than the band width; does not hold otherwise; inconclusive
   when the gap is not positive.
2. predictability: share = the task-prior router's gain over random / the baseline's gain over
   random (``task_prior_share``), median over the frozen baselines that beat random; overlap = the
   median Jaccard index of the queries each baseline solves with those the task prior solves
   (among the baselines when the task prior is not in the overlap matrix). Holds when the median
   share is >= 0.5 AND the median overlap is >= 0.7; does not hold when the median share is < 0.5;
   inconclusive otherwise (share >= 0.5 with a weaker or unknown overlap).
3. more data: per learned router (frozen baselines, tfidf, finetuned), D = mean accuracy at the
   largest fraction - mean at the smallest (means over subsample seeds). Its interval joins the
   test-query noise (paired bootstrap over the same resampled test queries when every file stores
   ``accuracy_boot`` for the same queries; else unpaired, from the 95% CIs by a normal approximation)
   and the seed spread (t quantile x the standard error of the seed means), as
   D -/+ sqrt(query half-width^2 + seed half-width^2). The dataset's verdict is the majority of the
   routers' verdicts (holds / does not hold when more than half agree; else inconclusive). Beside D,
   each router gets the slope of accuracy against log2 training size (percentage points per doubling),
   a least-squares fit over every fraction and seed, with a paired bootstrap interval (each resample
   takes the same resampled test queries for every point and resamples the runs within each
   fraction); it is reported, and the verdict stays D's.
4. stronger encoders: rungs TF-IDF < MiniLM-L3 < MiniLM-L6 < MPNet (those present); a rung's accuracy
   is the test accuracy of its frozen baseline best on validation (TF-IDF: the tfidf router; choosing
   on test would favour rungs with several heads). Each step (next rung - previous)
   gets a paired bootstrap interval (unpaired when the files lack ``accuracy_boot`` for the same
   queries). Holds when every step holds; does not hold when any step does not; else inconclusive.
5. fine-tuning: finetuned - frozen (the same encoder frozen, best head on validation), the paired
   bootstrap interval stored by ``evaluate_routers`` (``paired``), else from ``accuracy_boot``,
   else unpaired from the 95% CIs. Holds / does not hold / inconclusive by that interval. With
   several such evaluations on one dataset, the fine-tuned router best on validation decides (the
   claim is about fine-tuning tuned as the baselines are; blends with kNN and the task prior are
   left out of that choice); the others are listed beside it.
6. remedies: each evaluation of a remedies sweep scores one fine-tuned run; runs are grouped by
   their remedy settings (read from the run's config), and the group best on validation (mean over
   its seeds) is compared on test with plain BCE (no remedy), paired over the same test queries with
   the seed spread joined as in rule 3. Holds when that interval's low end is > 0; does not hold
   when its high end is < 0 or when plain BCE is itself the best on validation; else inconclusive.

Every inconclusive verdict says what the data could detect ("could detect: ..."): for a difference,
the ends of its 95% interval (no gain larger than its upper end, no loss larger than its lower end);
for a rule that could not be applied, what it lacked.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from scipy.stats import t as student_t

from routertrain.config.schema import SWEEPS_DIR
from routertrain.evaluation.routers import names as registered
from routertrain.experiments.sweep import CLAIMS, SweepError, _kv, expand, load_sweep  # noqa: F401 (_kv re-exported for the report)

BAND = (*registered("embedding"), "frozen")  # frozen-embedding baselines: every registered embedding head, and the frozen control
LEARNED = (*BAND, "tfidf", "finetuned")
PLATEAU_MAX_SHARE = 0.25  # band width / (oracle - best single) below this: a narrow band
PRIOR_SHARE = 0.5
STRONG_OVERLAP = 0.7
Z = 1.959964
LADDER = (("TF-IDF", "tfidf"), ("MiniLM-L3", "minilm-l3"), ("MiniLM-L6", "minilm-l6"), ("MPNet", "mpnet"))
NOT_RUN = "inconclusive (not run)"
DETECT = "could detect: "  # how an inconclusive verdict's detail opens: what the data could have detected
RULES = __doc__[__doc__.index("Verdict rules"):].strip()
RECIPES = SWEEPS_DIR


@dataclass
class Result:
    sweep: str
    claims: tuple
    point: str
    path: Path
    values: dict  # the point's key=value arguments
    data: dict  # the evaluate JSON

    @property
    def dataset(self) -> str:
        """The data recipe the point named (``data=``), else the data's own name. Two recipes over one
        source (mmlu-pro's 27 open-weight models, mmlu-pro-priced's 32) are different pools: judged apart."""
        return self.values.get("data") or self.data["data"]["name"]

    @property
    def fraction(self) -> float:
        return float(self.values.get("data.fraction", 1.0))

    def acc(self, router: str) -> dict:
        return self.data["routers"][router]["accuracy"]


@dataclass
class Sweep:
    name: str
    folder: Path
    claims: tuple = ()
    datasets: tuple = ()  # from the points' data= arguments
    done: list = field(default_factory=list)
    missing: list = field(default_factory=list)
    note: str = ""


@dataclass
class Verdict:
    claim: str
    dataset: str
    status: str
    detail: str

    @property
    def bound(self) -> str:
        """What the data could detect, for an inconclusive verdict ("" otherwise): the detail's opening clause."""
        if self.status == NOT_RUN:
            return "nothing (not run)"
        if self.status != "inconclusive":
            return ""
        return self.detail[len(DETECT):].split("; ", 1)[0] if self.detail.startswith(DETECT) else "not stated"


def pp(x: float, sign: bool = True) -> str:
    """A difference in accuracy as percentage points (``+1.1 pp``)."""
    return f"{x * 100:+.1f} pp" if sign else f"{x * 100:.1f} pp"


def detectable(d: dict, where: str = "") -> str:
    """What an inconclusive difference interval rules out, as a verdict's opening clause."""
    return f"{DETECT}no gain larger than {pp(d['high'])}{where} and no loss larger than {pp(-d['low'], sign=False)} (95%)"


def inconclusive(lacking: str) -> str:
    """The opening clause of a verdict whose rule could not be applied: the data could detect nothing."""
    return f"{DETECT}nothing, {lacking}"


# --- intervals -------------------------------------------------------------------------------


def status_of(low: float, high: float) -> str:
    return "holds" if low > 0 else "does not hold" if high < 0 else "inconclusive"


def _boot(r: Result, router: str):
    values = r.data["routers"][router].get("accuracy_boot")
    return None if values is None else np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _pairable(items) -> bool:
    """Every file stores resampled accuracies, of the same test queries, with the same resamples."""
    keys = {(r.data["data"].get("split_hash"), r.data["settings"].get("n_boot"), r.data["settings"].get("seed")) for r, _ in items}
    return len(keys) == 1 and next(iter(keys))[0] is not None and all(_boot(r, name) is not None for r, name in items)


def difference(high: list, low: list) -> dict:
    """mean accuracy of ``high`` - mean of ``low`` (lists of (Result, router), e.g. one per seed), with its interval."""
    acc_h, acc_l = ([r.acc(n)["value"] for r, n in side] for side in (high, low))
    value = float(np.mean(acc_h) - np.mean(acc_l))
    if _pairable(high + low):
        dist = np.mean([_boot(r, n) for r, n in high], axis=0) - np.mean([_boot(r, n) for r, n in low], axis=0)
        q_low, q_high = np.nanpercentile(dist, [2.5, 97.5])
        method = "paired bootstrap"
    else:
        se = [np.sqrt(sum(((r.acc(n)["high"] - r.acc(n)["low"]) / (2 * Z)) ** 2 for r, n in side)) / len(side) for side in (high, low)]
        half = Z * float(np.hypot(*se))
        q_low, q_high, method = value - half, value + half, "unpaired, from the 95% CIs (rewrite the files with the current evaluator for a paired interval)"
    seeds = max(len(acc_h), len(acc_l))
    spread = [statistics.stdev(a) ** 2 / len(a) if len(a) > 1 else 0.0 for a in (acc_h, acc_l)]
    seed_half = float(student_t.ppf(0.975, seeds - 1) * np.sqrt(sum(spread))) if seeds > 1 else 0.0
    if seed_half > 0:  # widen each side of the query interval by the seed half-width, in quadrature
        method += f" + spread over {seeds} seeds"
        q_low, q_high = value - np.hypot(value - q_low, seed_half), value + np.hypot(q_high - value, seed_half)
    return {"value": value, "low": float(q_low), "high": float(q_high), "method": method}


def fmt(x, digits: int = 3, sign: bool = False) -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x:+.{digits}f}" if sign else f"{x:.{digits}f}"


def ci_text(c: dict | None, sign: bool = False) -> str:
    return "-" if not c else f"{fmt(c['value'], sign=sign)} [{fmt(c['low'], sign=sign)}, {fmt(c['high'], sign=sign)}]"


# --- claims ----------------------------------------------------------------------------------


def plateau(r: Result) -> tuple[str, str]:
    accs = {n: r.acc(n) for n in BAND if n in r.data["routers"]}
    ref = r.data["reference"]
    gap = ref["oracle_acc"] - ref["best_single_acc"]
    if len(accs) < 2 or not gap > 0:
        return "inconclusive", inconclusive(f"{len(accs)} frozen baseline(s) and an oracle - best single gap of {fmt(gap)}: the rule needs 2 baselines and a positive gap")
    top = max(accs, key=lambda n: accs[n]["value"])
    low, high = min(a["value"] for a in accs.values()), accs[top]["value"]
    width, distance = high - low, ref["oracle_acc"] - accs[top]["high"]
    ok = width < PLATEAU_MAX_SHARE * gap and distance > width
    return ("holds" if ok else "does not hold"), (
        f"band [{fmt(low)}, {fmt(high)}] over {len(accs)} frozen baselines, width {fmt(width)} = {width / gap:.0%} of the gap {fmt(gap)} "
        f"(rule < {PLATEAU_MAX_SHARE:.0%}); oracle {fmt(ref['oracle_acc'])} is {fmt(distance)} above the best baseline's ({top}) "
        f"upper bound {fmt(accs[top]['high'])} (rule > width)")


def predictability(r: Result) -> tuple[str, str]:
    routers = r.data["routers"]
    shares = {n: routers[n]["task_prior_share"] for n in BAND if n in routers and routers[n].get("task_prior_share") is not None}
    if not shares:
        return "inconclusive", inconclusive("no task-prior share (no task-prior router, or no frozen baseline beats random)")
    median = statistics.median(shares.values())
    names, jac = r.data["overlap"]["routers"], r.data["overlap"]["jaccard"]
    base = [n for n in BAND if n in names]
    if "task-prior" in names:
        pairs, against = [jac[names.index(n)][names.index("task-prior")] for n in base], "the task prior"
    else:
        pairs, against = [jac[names.index(a)][names.index(b)] for i, a in enumerate(base) for b in base[i + 1:]], "each other"
    pairs = [p for p in pairs if p is not None]
    overlap = statistics.median(pairs) if pairs else None
    beat = [n for n in shares if (routers[n].get("vs_task-prior") or {}).get("low", 0) > 0]
    status = "does not hold" if median < PRIOR_SHARE else "holds" if overlap is not None and overlap >= STRONG_OVERLAP else "inconclusive"
    opening = (f"{DETECT}a task-prior share of {fmt(median)} (>= {PRIOR_SHARE}), but a solved-set overlap of {fmt(overlap)} "
               f"cannot tell the task prior's wins from the baselines' (rule >= {STRONG_OVERLAP}); ") if status == "inconclusive" else ""
    return status, opening + (
        f"task-prior share median {fmt(median)} (range {fmt(min(shares.values()))} to {fmt(max(shares.values()))}, {len(shares)} baselines; "
        f"rule >= {PRIOR_SHARE}); solved-set overlap with {against}: median Jaccard {fmt(overlap)} (rule >= {STRONG_OVERLAP})"
        + (f"; beat the task prior significantly: {', '.join(beat) or 'none'}" if any("vs_task-prior" in routers[n] for n in shares) else ""))


def finetune(r: Result) -> tuple[str, str]:
    stored = r.data.get("paired", {}).get("finetuned - frozen")
    d = {**stored, "method": "paired bootstrap"} if stored else difference([(r, "finetuned")], [(r, "frozen")])
    info = r.data["routers"]["frozen"].get("info", {})
    head = f" (frozen: {info.get('encoder', '?')} + {info.get('head', '?')})"
    status = status_of(d["low"], d["high"])
    return status, (detectable(d, " from fine-tuning") + "; " if status == "inconclusive" else "") + f"finetuned - frozen {ci_text(d, sign=True)}, {d['method']}{head}"


def finetuned_against_references(r: Result) -> list[tuple[str, dict, str]]:
    """The fine-tuned router against the task prior, the best single model and the best frozen
    baseline chosen on validation (any head, this evaluation's encoder): (what, paired difference, status)."""
    routers = r.data["routers"]
    if "finetuned" not in routers:
        return []
    n, study = len(ensemble_runs(r)), study_record(r)  # an ensemble's members (or a blend of one); a tune study's best trial
    tuned = f"best of {sum(study['trials'].values())} Optuna trials" if study else f"mean of {n} fine-tuned routers" if n else "fine-tuned"
    out, me = [], f"blend ({tuned} + kNN + soft task prior)" if is_blend(r) else ("finetuned" if tuned == "fine-tuned" else f"finetuned ({tuned})")
    for other in ("task-prior", "best-single"):
        if other in routers:
            d = difference([(r, "finetuned")], [(r, other)])
            out.append((f"{me} - {other}", d, status_of(d["low"], d["high"])))
    band = [n for n in BAND if n in routers and routers[n].get("validation_acc") is not None]
    if band:
        best = max(band, key=lambda n: routers[n]["validation_acc"])
        d = difference([(r, "finetuned")], [(r, best)])
        out.append((f"{me} - best frozen baseline on validation ({best})", d, status_of(d["low"], d["high"])))
    return out


def _slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` on ``x`` (NaN points left out; NaN when fewer than 2 distinct x remain)."""
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    if len(np.unique(x)) < 2:
        return float("nan")
    return float(np.sum((x - x.mean()) * (y - y.mean())) / np.sum((x - x.mean()) ** 2))


def log_slope(items: list, seed: int = 0) -> dict:
    """Slope of accuracy against log2 training size (per doubling) over ``items`` ((Result, router), every
    fraction and seed), with a 95% interval: a paired bootstrap when every file stores the same resamples
    (the runs resampled within each fraction as well), else the least-squares t interval over the points."""
    x = np.log2([r.fraction for r, _ in items])
    y = np.array([r.acc(n)["value"] for r, n in items], dtype=np.float64)
    value = _slope(x, y)
    if _pairable(items):
        boots = np.stack([_boot(r, n) for r, n in items])  # points x resamples
        rng = np.random.default_rng(seed)
        groups = [np.flatnonzero(x == f) for f in np.unique(x)]
        slopes = []
        for b in range(boots.shape[1]):
            pick = np.concatenate([rng.choice(g, len(g)) for g in groups])
            slopes.append(_slope(x[pick], boots[pick, b]))
        low, high = np.nanpercentile(slopes, [2.5, 97.5])
        method = "paired bootstrap, runs resampled within each fraction"
    elif len(y) > 2:
        residual = y - (y.mean() + value * (x - x.mean()))
        se = float(np.sqrt(np.sum(residual**2) / (len(y) - 2) / np.sum((x - x.mean()) ** 2)))
        half = float(student_t.ppf(0.975, len(y) - 2)) * se
        low, high, method = value - half, value + half, "least-squares t interval over the points (the files lack paired resamples)"
    else:
        low, high, method = float("-inf"), float("inf"), "two points: no interval"
    return {"value": value, "low": float(low), "high": float(high), "method": method}


def more_data(results: list[Result]) -> tuple[str, str, list]:
    """Verdict, detail, and rows (router, {fraction: [accuracies]}, difference or None, status); a
    difference also holds ``slope``, the router's ``log_slope`` over every fraction and seed."""
    rows, verdicts = [], []
    routers = list(dict.fromkeys(n for r in results for n in r.data["routers"] if n not in ("oracle", "random", "random-draw")))
    for name in routers:
        have = [r for r in results if name in r.data["routers"]]
        by_fraction: dict = {}
        for r in sorted(have, key=lambda r: r.fraction):
            by_fraction.setdefault(r.fraction, []).append(r)
        accs = {f: [r.acc(name)["value"] for r in rs] for f, rs in by_fraction.items()}
        if len(by_fraction) < 2:
            rows.append((name, accs, None, "inconclusive"))
            continue
        d = difference([(r, name) for r in by_fraction[max(by_fraction)]], [(r, name) for r in by_fraction[min(by_fraction)]])
        d["span"] = f"{max(by_fraction):g} - {min(by_fraction):g}"
        d["slope"] = log_slope([(r, name) for r in have])
        rows.append((name, accs, d, status_of(d["low"], d["high"])))
        if name in LEARNED:
            verdicts.append(rows[-1][3])
    if not verdicts:
        return "inconclusive", inconclusive("fewer than 2 training fractions for every learned router"), rows
    counts = {s: verdicts.count(s) for s in ("holds", "does not hold", "inconclusive")}
    status = next((s for s in ("holds", "does not hold") if counts[s] > len(verdicts) / 2), "inconclusive")
    learned = [(n, d) for n, _, d, _ in rows if d and n in LEARNED]
    lines = [f"{n} ({d['span']}) {ci_text(d, sign=True)}, slope {pp(d['slope']['value'])} per doubling [{pp(d['slope']['low'])}, {pp(d['slope']['high'])}]"
             for n, d in learned]
    opening = ""
    if status == "inconclusive":
        open_ones = [(n, d) for n, d in learned if d["low"] <= 0 <= d["high"]]
        if open_ones:
            name, d = max(open_ones, key=lambda item: item[1]["high"])
            opening = f"{DETECT}no gain larger than {pp(d['high'])} from the most data for {len(open_ones)} of {len(learned)} learned routers (95%, widest: {name}); "
        else:
            opening = f"{DETECT}every learned router's change, but they split ({counts['holds']} gain, {counts['does not hold']} lose); "
    return status, opening + (f"accuracy at the largest - the smallest training fraction per router, and the slope against log2 training size: {'; '.join(lines)}; "
                              f"{counts['holds']} of {len(verdicts)} hold, {counts['does not hold']} do not (rule: majority)"), rows


def rung_of(encoder: str | None) -> str:
    low = (encoder or "").lower()
    return next((label for label, key in LADDER[1:] if key in low), (encoder or "?").split("/")[-1])


def encoders(results: list[Result]) -> tuple[str, str, list]:
    """Verdict, detail, and rows (rung, encoder, best router, its accuracy, step difference or None, {router: accuracy}).

    Each rung is its best embedding router, chosen on validation accuracy: choosing on the test split
    the step is then reported on would favour the embedding rungs (several heads, the luckiest kept)
    over TF-IDF (one router). Files written before routers recorded ``validation_acc`` fall back to
    test accuracy, and the detail says so."""
    on_validation = all(r.data["routers"][n].get("validation_acc") is not None for r in results for n in BAND if n in r.data["routers"])
    choice = (lambda r, n: r.data["routers"][n]["validation_acc"]) if on_validation else (lambda r, n: r.acc(n)["value"])
    best: dict = {}
    for r in results:
        if "tfidf" in r.data["routers"]:
            best.setdefault("TF-IDF", (r, "tfidf", "lexical"))
        band = [n for n in BAND if n in r.data["routers"]]
        if band and r.data.get("encoder"):
            top = max(band, key=lambda n: choice(r, n))
            rung = rung_of(r.data["encoder"])
            if rung not in best or choice(r, top) > choice(*best[rung][:2]):
                best[rung] = (r, top, r.data["encoder"])
    order = [label for label, _ in LADDER if label in best] + [k for k in best if k not in dict(LADDER)]
    rows, steps = [], []
    for i, rung in enumerate(order):
        r, name, enc = best[rung]
        d = difference([(r, name)], [best[order[i - 1]][:2]]) if i and rung in dict(LADDER) else None
        kept = ("tfidf",) if rung == "TF-IDF" else BAND
        rows.append((rung, enc, name, r.acc(name), d, {n: r.acc(n)["value"] for n in kept if n in r.data["routers"]}))
        if d:
            steps.append((f"{order[i - 1]} -> {rung}", d))
    tuned_rows, tuned_steps = finetuned_ladder(results)
    rows += tuned_rows
    steps += tuned_steps
    if not steps:
        return "inconclusive", inconclusive(f"rungs present: {', '.join(order) or 'none'}; the rule needs two of {', '.join(k for k, _ in LADDER)}"), rows
    states = [status_of(d["low"], d["high"]) for _, d in steps]
    status = "holds" if all(s == "holds" for s in states) else "does not hold" if "does not hold" in states else "inconclusive"
    opening = ""
    if status == "inconclusive":  # the widest interval among the steps that include 0 bounds what was detectable
        step, d = max(((step, d) for step, d in steps if d["low"] <= 0 <= d["high"]), key=lambda item: item[1]["high"])
        opening = detectable(d, f" at {step}") + "; "
    chosen = ("each rung's router chosen on validation accuracy" if on_validation else
              "each rung's router chosen on TEST accuracy (these evaluations predate validation_acc: re-run them)")
    return status, opening + "; ".join(f"{step} {ci_text(d, sign=True)} ({d['method']})" for step, d in steps) + f"; {chosen}", rows


def finetuned_ladder(results: list[Result]) -> tuple[list, list]:
    """The same ladder for fine-tuned routers (rung = the router's base encoder; several runs on one
    rung: the one best on validation): rows as ``encoders`` gives them, and the steps between rungs."""
    best: dict = {}
    for r in results:
        x = r.data["routers"].get("finetuned")
        if x is None:
            continue
        rung = rung_of((x.get("info") or {}).get("base_model") or r.data.get("encoder"))
        score = x.get("validation_acc") if x.get("validation_acc") is not None else -1.0
        if rung not in best or score > best[rung][1]:
            best[rung] = (r, score)
    order = [label for label, _ in LADDER if label in best]
    rows, steps = [], []
    for i, rung in enumerate(order):
        r = best[rung][0]
        d = difference([(r, "finetuned")], [(best[order[i - 1]][0], "finetuned")]) if i else None
        rows.append((f"{rung} fine-tuned", (r.data["routers"]["finetuned"].get("info") or {}).get("base_model", "?"), "finetuned", r.acc("finetuned"), d,
                     {"finetuned": r.acc("finetuned")["value"]}))
        if d:
            steps.append((f"{order[i - 1]} -> {rung} (fine-tuned)", d))
    return rows, steps


def is_blend(r: Result) -> bool:
    """Whether the evaluation's fine-tuned router is a blend with kNN and the task prior (routertrain blend)."""
    return bool((r.data["routers"].get("finetuned", {}).get("info") or {}).get("blend"))


def finetuned_validation(r: Result) -> float:
    value = r.data["routers"].get("finetuned", {}).get("validation_acc")
    return float(value) if value is not None else float("-inf")


def run_config(r: Result, run: Path | None = None) -> dict:
    """The training config of the run behind an evaluation, or of ``run`` ({} when it is gone)."""
    try:
        return yaml.safe_load((Path(run or r.data["run"]) / "config.yaml").read_text()) or {}
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return {}


def ensemble_runs(r: Result) -> list[Path]:
    """The member runs of an evaluation's ensemble router (routertrain ensemble); [] when it is not one."""
    try:
        members = json.loads((Path(r.data["run"]) / "ensemble.json").read_text())["members"]
    except (OSError, KeyError, TypeError, ValueError):
        return []
    sources = [Path(m["source"]) for m in members]
    return [src.parent if src.name == "router" and (src.parent / "config.yaml").is_file() else src for src in sources]


def study_record(r: Result) -> dict:
    """The search record (``study.json``) of an evaluation's router when it is a tune study's best trial; {} otherwise."""
    try:
        return json.loads((Path(r.data["run"]) / "study.json").read_text())
    except (OSError, KeyError, TypeError, ValueError):
        return {}


def remedy_label(cfg: dict) -> str:
    """The issue-13 remedies a training config turns on, in words ("none (BCE)" for none)."""
    model, train, data = cfg.get("model") or {}, cfg.get("train") or {}, cfg.get("data") or {}
    parts = []
    if model.get("prior_bias"):
        parts.append("prior-anchored head")
    if (train.get("task_loss_weight") or 0) > 0:
        parts.append(f"task head {train['task_loss_weight']:g}")
    if train.get("rank_loss", "none") != "none":
        parts.append(f"{train['rank_loss']} loss {train.get('rank_loss_weight', 1.0):g}")
    if data.get("max_length", 128) != 128:
        parts.append(f"{data['max_length']} tokens")
    return " + ".join(parts) or NO_REMEDY


NO_REMEDY = "none (BCE)"


def remedies(results: list[Result]) -> tuple[str, str, list]:
    """Verdict, detail, and rows (remedies, seed, validation accuracy, test accuracy, training minutes, result)."""
    rows = []
    for r in results:
        if "finetuned" not in r.data["routers"]:
            continue
        runs = ensemble_runs(r) or [None]  # an ensemble: its members' runs; else the evaluation's own
        cfgs = [run_config(r, run) for run in runs]
        labels = list(dict.fromkeys(remedy_label(c) for c in cfgs))
        label = labels[0] if len(runs) == 1 else f"mean of {len(runs)} seeds: {' / '.join(labels)}"
        seeds = [(c.get("run") or {}).get("seed") for c in cfgs]
        seconds = [_train_seconds(r, run) for run in runs]
        minutes = sum(seconds) / 60 if all(seconds) else None
        rows.append((label, seeds[0] if len(seeds) == 1 else "+".join(map(str, seeds)), finetuned_validation(r), r.acc("finetuned"), minutes, r))
    groups: dict = {}
    for row in rows:
        groups.setdefault(row[0], []).append(row)
    val = {g: float(np.mean([x[2] for x in members])) for g, members in groups.items()}  # each configuration's mean over its seeds
    rows.sort(key=lambda row: (-val[row[0]], str(row[1])))
    if NO_REMEDY not in groups or len(groups) < 2:
        return "inconclusive", inconclusive(f"the rule needs plain BCE and at least one remedy; have: {', '.join(groups) or 'none'}"), rows
    best = max(groups, key=val.get)
    if best == NO_REMEDY:
        return "does not hold", f"plain BCE is best on validation ({fmt(val[best])}; the best remedy, {max((g for g in groups if g != best), key=val.get)}, {fmt(max(v for g, v in val.items() if g != best))})", rows
    d = difference([(x[5], "finetuned") for x in groups[best]], [(x[5], "finetuned") for x in groups[NO_REMEDY]])
    status = status_of(d["low"], d["high"])
    return (status, (detectable(d, f" from {best}") + "; " if status == "inconclusive" else "") + f"chosen on validation: {best} ({fmt(val[best])} vs {fmt(val[NO_REMEDY])} for plain BCE, "
            f"{len(groups[best])} and {len(groups[NO_REMEDY])} seeds); on test, {best} - plain BCE {ci_text(d, sign=True)} ({d['method']})", rows)


def _train_metric(r: Result, key: str, run: Path | None = None):
    """A training number (``metrics.json`` ``train.<key>``) of the run behind an evaluation (or of ``run``); None when it is gone."""
    try:
        return json.loads((Path(run or r.data["run"]) / "metrics.json").read_text())["train"][key]
    except (OSError, KeyError, TypeError, ValueError):
        return None


def _train_seconds(r: Result, run: Path | None = None) -> float | None:
    value = _train_metric(r, "runtime_s", run)
    return float(value) if value is not None else None


def samples_trained(r: Result) -> int:
    """Training samples seen by the fine-tuned run behind an evaluation, summed over an ensemble's
    members (0 when the metrics are gone)."""
    return int(sum(_train_metric(r, "samples_seen", run) or 0 for run in ensemble_runs(r) or [None]))


def judge(results: list[Result], sweeps: list[Sweep], dataset: str) -> tuple[list[Verdict], dict]:
    """One verdict per claim for ``dataset``, and the rows of the more-data and encoder tables."""
    verdicts, tables = [], {}
    for claim in CLAIMS:
        mine = [r for r in results if r.dataset == dataset and claim in r.claims]
        if claim == "finetune":
            mine = [r for r in mine if {"finetuned", "frozen"} <= set(r.data["routers"])]
        if not mine:
            verdicts.append(Verdict(claim, dataset, NOT_RUN, not_run_detail(claim, dataset, sweeps)))
            continue
        if claim == "more-data":
            status, detail, tables["more-data"] = more_data(mine)
        elif claim == "encoder":
            status, detail, tables["encoder"] = encoders(mine)
        elif claim == "finetune":  # several fine-tuning evaluations (remedies, epochs): the one best on validation decides
            ranked = sorted(mine, key=lambda r: (not is_blend(r), finetuned_validation(r)), reverse=True)
            status, detail = finetune(ranked[0])
            detail += f" [{ranked[0].path}, validation {fmt(finetuned_validation(ranked[0]))}, {samples_trained(ranked[0])} training samples]"
            for other in ranked[1:]:
                what = "blend" if is_blend(other) else "other run"
                detail += f"; {what}: {finetune(other)[1]} [{other.path}, validation {fmt(finetuned_validation(other))}]"
        elif claim == "remedies":
            status, detail, tables["remedies"] = remedies(mine)
        else:
            r = max(mine, key=lambda r: len(r.data["routers"]))
            status, detail = {"plateau": plateau, "predictability": predictability}[claim](r)
            detail += f" [{r.path}]"
        verdicts.append(Verdict(claim, dataset, status, detail))
    return verdicts, tables


def not_run_detail(claim: str, dataset: str, sweeps: list[Sweep]) -> str:
    given = [s for s in sweeps if claim in s.claims and dataset in s.datasets]
    need = " (needs an evaluation with both finetuned and frozen)" if claim == "finetune" else ""
    if given:
        return "; ".join(f"sweep {s.name}: {s.note or f'{len(s.missing)} of {len(s.done) + len(s.missing)} points unfinished'}{need}" for s in given)
    recipes = [p.stem for p in sorted(RECIPES.glob("*.yaml")) if _tests(p, claim, dataset)]
    return f"no sweep folder given for it; run {', '.join(f'recipes/sweeps/{n}.yaml' for n in recipes) or 'a sweep that tests it'}"


def _tests(path: Path, claim: str, dataset: str) -> bool:
    try:
        spec = load_sweep(path)
    except (SweepError, OSError):
        return False
    claims = spec["claim"] if isinstance(spec["claim"], list) else [spec["claim"]]
    return claim in claims and any(_kv(p.args).get("data") == dataset for p in expand(spec, "out"))
