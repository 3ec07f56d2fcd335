"""Compare routers on one split: ``evaluate_routers(data, routers, ...) -> dict``, and its table.

Every router is fitted on train (hyperparameters on validation) and scored on ``split`` (test by
default), on the decisions of the one routing rule (``routertrain.routing.rule``: the whole pool, ties
to the lower cost, then the higher train mean, then pool order; a fine-tuned router with its own saved
setting, exactly as ``route()`` decides). ``missing`` picks the scored queries when labels are missing
(``complete``: every model labelled, the default; ``wrong``: an unlabelled choice fails); each router
reports its ``coverage`` (the share of all queries whose chosen model has a label). Cost metrics spend
the per-query ``costs`` column where the data has one (``data.cost_source`` says which). Per router: routing accuracy and gap closed with 95% bootstrap intervals, the paired
bootstrap difference to a reference router (best single by default), accuracy on hard queries,
calibration (probabilistic routers), the task-prior share, and, when the data has costs, the mean
routed cost, normalised cost and AIQ; for two-model pools APGR and CPT(50%) / CPT(80%). Then the
Jaccard overlap of the queries each router solves. Definitions: ``routertrain.evaluation.decision``
(the routing rule and accuracy), ``routertrain.evaluation.metrics`` and ``routertrain.evaluation.cost``.
The best single model is always the one best on train.

``average`` decides every headline number: ``micro`` (the mean over queries) or ``macro`` (the plain
mean of per-task accuracies, as multi-benchmark routing papers report; data recipes set their
paper's, e.g. RouterDC: macro). With macro, bootstrap intervals resample within each task (each
task keeps its count), the best single model is the one best on train by the same average, and
every choice made on validation (k, L2 weight, clusters, the frozen head) uses it too. Hard-query
accuracy, calibration and cost stay per-query quantities. With tasks, every router also gets its
accuracy on each task (``per_task``).

For the claims report (``routertrain.experiments.report``) the result also holds, per router, the paired bootstrap
difference to the task-prior router (``vs_task-prior``) and the accuracy on each bootstrap resample
(``accuracy_boot``, rounded to 6 digits: the resamples depend only on (n queries, n_boot, seed), so two
results on the same test queries with the same settings can be compared pairwise across files, matched
by ``data.split_hash``); and at the top level ``paired``: A - B for the pairs in ``PAIRS``. Each
router also records its ``validation_acc``, so a choice among routers (the claims' best head per
encoder) can be made on validation rather than on the split it is then reported on. Scoring on
validation or train adds a warning: every router was tuned or fitted there.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from pathlib import Path

import numpy as np

from routertrain.evaluation import bootstrap as bs
from routertrain.evaluation import cost as cq
from routertrain.evaluation import decision as d
from routertrain.evaluation import metrics as m
from routertrain.evaluation.routers import Context, RouterUnavailable, names as registered
from routertrain.hub.router import router_settings
from routertrain.hub.router import router_folder

PAIRS = (("finetuned", "frozen"),)  # paired differences A - B stored at the top level (fine-tuning claim)


def default_routers(run: str | Path | None = None) -> tuple[str, ...]:
    """The routers compared when none are named: the registry's default set, plus the run's own with a run."""
    return (*registered(default=True), *(registered("run") if run else ()))


def router_options(name: str, run: str | Path | None, ctx: Context) -> dict:
    if name == "finetuned":
        if run is None:
            raise RouterUnavailable("finetuned needs run=<run folder>")
        return {"router_dir": router_folder(run)}
    if name == "frozen":
        if run is None:
            if not ctx.encoder:
                raise RouterUnavailable("frozen needs run=<run folder> or encoder=<encoder>")
            return {"encoder": ctx.encoder, "pooling": ctx.pooling}
        config = router_settings(router_folder(run))
        return {"encoder": config["base_model"], "pooling": config.get("pooling", "mean"), "max_length": config.get("max_length")}
    return {}


TUNED_ON = {
    "validation": "routers chose their settings on validation (k, L2 weight, early stopping, clusters, the frozen head), "
    "so their validation accuracy is optimistic; compare routers on --split test",
    "train": "routers were fitted on train, so train accuracy measures fit, not routing; compare routers on --split test",
}


def evaluate_routers(
    data,
    routers=None,
    run: str | Path | None = None,
    encoder: str | None = None,
    split: str = "test",
    n_boot: int = bs.N_BOOT,
    seed: int = 0,
    max_length: int = 128,
    batch_size: int = 64,
    device: str | None = None,
    cache_root: str | None = None,
    hard_k: int = 1,
    solved_at: float = 0.5,
    reference: str = "best-single",
    average: str = "micro",
    missing: str = "complete",
) -> dict:
    """Fit, score and measure ``routers`` on ``data`` (a ``RoutingData``; ``None``: every registered router
    in the default set, ``default_routers()``); a JSON-ready dict."""
    routers = default_routers() if routers is None else routers
    d.check_average(average)
    d.check_missing(missing)
    unknown = [r for r in routers if r not in registered()]
    if unknown:
        raise ValueError(f"unknown router(s) {unknown}: choose from {', '.join(registered())}")
    warnings = []
    if run is not None:
        encoder = encoder or router_settings(router_folder(run)).get("base_model")
        warnings += fingerprint_warnings(run, data.fingerprint)
    if split in TUNED_ON:
        warnings.append(TUNED_ON[split])
    tasks = data.tasks(split)
    if average == "macro" and tasks is None:
        warnings.append(f"average=macro needs a task column, which split '{split}' lacks: reporting micro averages")
        average = "micro"
    ctx = Context(data, encoder=encoder, max_length=max_length, batch_size=batch_size, device=device, cache_root=cache_root, seed=seed,
                  average=average, missing=missing)
    warnings += task_coverage_warnings(ctx, split)
    y_all, y_train = ctx.labels(split), ctx.labels("train")
    y, keep = d.scored(y_all, missing)  # every router is scored on these queries, as ``missing`` says
    if tasks is not None:
        tasks = tasks[keep]
    query_costs = None if data.costs is None else data.query_costs(split)[keep]
    groups = tasks if average == "macro" else None  # bootstrap strata and per-task grouping of the headline mean
    best = d.best_single_index(y_train, ctx.tasks("train"), average, data.costs)
    single_q = y[:, best]
    oracle_q, random_q = d.oracle_per_query(y), d.random_per_query(y)
    boot = {"n_boot": n_boot, "seed": seed, "strata": groups}
    results, solved, skipped, per_query = {}, {}, {}, {}
    names = list(dict.fromkeys([*routers, reference, "task-prior"] if reference else [*routers, "task-prior"]))
    for name in names:
        start = time.perf_counter()
        try:
            router = ctx.fit(name, **router_options(name, run, ctx))
            scores = router.scores(ctx, split)
        except RouterUnavailable as err:
            if name in routers or name == reference:
                skipped[name] = str(err)
            continue
        all_weights = router.weights(ctx, split, scores)  # the rule's decisions (one-hot) over the whole pool
        weights = all_weights[keep]
        decided = bool(np.all(all_weights.max(axis=1, initial=0) == 1))  # one model per query (the random reference's weights are its expected value)
        per_query[name] = d.per_query_accuracy(weights, y)
        solved[name] = m.solved_set(weights, y, solved_at)
        results[name] = measure(scores[keep], weights, y, y_train, data.costs, query_costs, router.probabilistic, hard_k, solved_at, ctx.prior, decided)
        results[name]["coverage"] = d.coverage(all_weights.argmax(axis=1), y_all) if decided else None
        results[name]["gap_closed"] = bs.ci(bs.gap_closed_of(per_query[name], single_q, oracle_q, groups), len(y), **boot)
        results[name]["accuracy"] = bs.ci(bs.mean_of(per_query[name], groups), len(y), **boot)
        results[name]["accuracy_boot"] = np.round(bs.distribution(bs.mean_of(per_query[name], groups), len(y), **boot), 6)
        if tasks is not None:
            results[name]["per_task"] = d.per_task(per_query[name], tasks)
        results[name]["info"] = router.info
        # for choosing among routers without looking at the evaluated split (claims pick heads on it)
        val_scores = scores if split == "validation" else router.scores(ctx, "validation")
        results[name]["validation_acc"] = split_accuracy(router, ctx, "validation", val_scores)
        results[name]["seconds"] = round(time.perf_counter() - start, 2)
    prior = results.get("task-prior", {}).get("accuracy", {}).get("value")

    def paired(a: str, b: str) -> dict:
        return bs.paired_difference(bs.mean_of(per_query[a], groups), bs.mean_of(per_query[b], groups), len(y), **boot)

    random_acc = d.average(random_q, tasks, average)
    for name, res in results.items():
        if reference in per_query:
            res[f"vs_{reference}"] = paired(name, reference)
        if "task-prior" in per_query:
            res["vs_task-prior"] = paired(name, "task-prior")
        res["task_prior_share"] = m.task_prior_share(prior, random_acc, res["accuracy"]["value"]) if prior is not None else None
    reference_q = {"oracle": oracle_q, "best-single": single_q, "random": random_q}
    return {
        "data": {"name": data.name, "fingerprint": data.fingerprint, "models": list(data.models), "costs": data.costs, "split": split,
                 "n_queries": len(y), "n_total": len(y_all), "n_train": len(y_train), "cost_source": data.cost_source,
                 "split_hash": split_hash([q for q, k in zip(ctx.queries(split), keep) if k])},
        "encoder": encoder,
        "run": str(run) if run is not None else None,
        "settings": {"n_boot": n_boot, "seed": seed, "hard_k": hard_k, "solved_at": solved_at, "reference": reference, "max_length": max_length,
                     "average": average, "missing": missing},
        "reference": {"oracle_acc": d.average(oracle_q, tasks, average), "best_single_model": data.models[best],
                      "best_single_acc": d.average(single_q, tasks, average), "random_acc": random_acc,
                      **({"per_task": {k: d.per_task(v, tasks) for k, v in reference_q.items()}} if tasks is not None else {})},
        "routers": {name: results[name] for name in routers if name in results},
        "overlap": m.overlap_matrix({name: solved[name] for name in routers if name in solved}),
        "paired": {f"{a} - {b}": paired(a, b) for a, b in PAIRS if a in per_query and b in per_query},
        "skipped": skipped,
        "warnings": warnings,
    }


def task_coverage_warnings(ctx: Context, split: str) -> list[str]:
    """A warning when the evaluated split covers fewer tasks than train (its average then omits them)."""
    train, here = ctx.tasks("train"), ctx.tasks(split)
    if train is None or here is None:
        return []
    absent = sorted(set(train) - set(here))
    return [f"split '{split}' has no queries of {len(absent)} of the {len(set(train))} training tasks ({', '.join(absent[:5])}"
            f"{', ...' if len(absent) > 5 else ''}): its averages cover only the tasks it has"] if absent else []


def split_hash(queries) -> str:
    """A short hash of a split's queries in order: equal hashes = the same test queries."""
    return hashlib.sha256("\n".join(queries).encode()).hexdigest()[:16]


def split_accuracy(router, ctx: Context, split: str, scores: np.ndarray) -> float:
    """Routing accuracy of ``router``'s decisions on ``split`` (its ``scores`` there), as ``ctx`` scores and averages."""
    y, keep = d.scored(ctx.labels(split), ctx.missing)
    tasks = ctx.tasks(split)
    return d.accuracy(router.weights(ctx, split, scores)[keep], y, None if tasks is None else tasks[keep], ctx.average)


def measure(scores, weights, y, y_train, costs, query_costs, probabilistic: bool, hard_k: int, solved_at: float, prior=None, decided: bool = True) -> dict:
    """Hard-query accuracy, calibration, and with costs the mean cost (spent per query: ``query_costs``),
    AIQ and its cost curve (decisions by the rule on the models' ``costs``; ``decided=False``: the curve
    starts at the router's own expected ``weights``), and two-model metrics."""
    out = {"hard_accuracy": m.hard_accuracy(weights, y, hard_k, solved_at), "n_hard": int(m.hard_mask(y, hard_k, solved_at).sum())}
    out["calibration"] = m.calibration(scores, y, solved_at) if probabilistic else None
    if costs is not None:
        cost = np.asarray(costs, dtype=np.float64)
        out["cost"] = cq.mean_cost(weights, query_costs)
        if cost.max() > cost.min():
            curve = cq.cost_quality_curve(scores, y, cost, query_costs, prior=prior, weights_at_zero=None if decided else weights)
            out["cost_norm"] = cq.normalised_cost(weights, query_costs)
            out["aiq"] = cq.aiq(curve["cost"], curve["accuracy"])
            hx, hy = cq.nondecreasing_hull(curve["cost"], curve["accuracy"])  # the frontier AIQ integrates, for plots
            out["cost_curve"] = {"cost": [round(float(x), 6) for x in hx], "accuracy": [round(float(y), 6) for y in hy]}
    if y.shape[1] == 2:
        strong, weak = cq.strong_and_weak(costs, y_train)
        out.update(cq.two_model_report(scores, y, strong, weak))
    return out


def fingerprint_warnings(run: str | Path, fingerprint: str) -> list[str]:
    for folder in (Path(run), router_folder(run)):
        path = folder / "provenance.json"
        if path.is_file():
            trained_on = json.loads(path.read_text()).get("data_fingerprint")
            if trained_on and trained_on != fingerprint:
                return [f"the run was trained on data {trained_on}, evaluated on {fingerprint}: make sure its training data excludes these test queries"]
            return []
    return []


def _fmt(x, digits: int = 3) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _interval(c: dict | None) -> str:
    return "-" if not c else f"{_fmt(c['value'])} [{_fmt(c['low'])}, {_fmt(c['high'])}]"


def format_table(result: dict) -> str:
    """The comparison as a plain-text table, one row per router."""
    ref = result["settings"]["reference"]
    routers = result["routers"]
    cols = ["router", "accuracy [95% CI]", f"vs {ref} [95% CI]", "gap closed [95% CI]", f"hard@{result['settings']['hard_k']}", "AUROC", "ECE"]
    partial = any((r.get("coverage") or 1.0) < 1.0 for r in routers.values())  # some chosen model lacks a label
    cols += ["coverage"] if partial else []
    has_cost = any("cost" in r for r in routers.values())
    has_aiq = any("aiq" in r for r in routers.values())
    two = any("apgr" in r for r in routers.values())
    cols += (["cost"] if has_cost else []) + (["AIQ"] if has_aiq else []) + (["APGR", "CPT50", "CPT80"] if two else [])
    rows = []
    for name, r in routers.items():
        cal = r.get("calibration") or {}
        row = [name, _interval(r["accuracy"]), _interval(r.get(f"vs_{ref}")), _interval(r["gap_closed"]), _fmt(r["hard_accuracy"]),
               _fmt(cal.get("auroc")), _fmt(cal.get("ece"))] + ([_fmt(r.get("coverage"))] if partial else [])
        row += ([_fmt(r.get("cost"), 4)] if has_cost else []) + ([_fmt(r.get("aiq"))] if has_aiq else [])
        row += [_fmt(r.get(k)) for k in ("apgr", "cpt50", "cpt80")] if two else []
        rows.append(row)
    lines = _columns(cols, rows)
    data, refs = result["data"], result["reference"]
    how = result["settings"].get("average", "micro")
    scored_note = (f" of {data['n_total']} (those with every model labelled; eval.missing=complete)" if result["settings"].get("missing", "complete") == "complete"
                   else " (an unlabelled choice counts as wrong; eval.missing=wrong)") if data.get("n_total", data["n_queries"]) != data["n_queries"] or result["settings"].get("missing") == "wrong" else ""
    cost_note = f"; costs: {data['cost_source']}" if data.get("cost_source") else ""
    head = (f"{data['name']} {data['split']}: {data['n_queries']} queries{scored_note}, {len(data['models'])} models{cost_note}, {how} average"
            f"{' (the plain mean of per-task accuracies)' if how == 'macro' else ' (over queries)'}; oracle {_fmt(refs['oracle_acc'])}, "
            f"best single {refs['best_single_model']} {_fmt(refs['best_single_acc'])}, random {_fmt(refs['random_acc'])}")
    paired = [f"{k} (paired bootstrap): {_signed(v)}, p = {_fmt(v.get('p_value'))}" for k, v in result.get("paired", {}).items()]
    tail = [f"skipped {k}: {v}" for k, v in result["skipped"].items()] + [f"warning: {w}" for w in result["warnings"]]
    return "\n".join([head, *lines, *paired, *per_task_table(result), *tail])


def per_task_table(result: dict) -> list[str]:
    """Each router's accuracy on each task (oracle and best single first), as text lines; [] without tasks."""
    refs = result["reference"].get("per_task")
    if not refs:
        return []
    tasks = list(refs["oracle"])
    rows = [[name, *(_fmt(refs[name].get(t)) for t in tasks)] for name in ("oracle", "best-single")]
    rows += [[name, *(_fmt(r.get("per_task", {}).get(t)) for t in tasks)] for name, r in result["routers"].items() if name not in ("oracle", "best-single")]
    return ["", "accuracy per task:", *_columns(["router", *tasks], rows)]


def _columns(cols: list, rows: list[list]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(cols, *rows)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths)).rstrip() for line in [cols, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _signed(c: dict) -> str:
    return f"{c['value']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]"


def to_json(obj):
    """``obj`` with NaN and infinities as None and numpy scalars as Python numbers (strict JSON)."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.ndarray):
        return to_json(obj.tolist())
    return obj
