"""Collect sweep folders into a markdown report on the paper's claims that leads with its answers.

The first screen: a summary (one line per claim, at most five), the verdict table (an inconclusive
verdict says what the data could detect) and the headline figure (every router's test accuracy with
its interval, the oracle and the task prior, per dataset); then sweep status as counts, each dataset's
tables and plots, and appendices: the unfinished points, the sweeps' descriptions, the verdict rules.

    python -m routertrain.experiments.report checkpoints/sweeps/routerdc-main [more sweep folders] [--output REPORT.md] [--figures docs/figures]

A sweep folder (``checkpoints/sweeps/<name>/``) holds ``sweep.yaml`` (else ``recipes/sweeps/<name>.yaml``
is read); ``routertrain.experiments.sweep.expand`` maps each evaluate point's JSON (``evaluate_routers``' format)
to its grid values (``data.fraction``, ``data.subsample_seed``, ``encoder``; an evaluate point with
``run=@<train point>`` inherits that train point's values). Missing folders and unfinished points are
listed; a claim with no data is "inconclusive (not run)". Every number comes from the files. A folder
with neither ``sweep.yaml`` nor a recipe of its name (a typo) is an error, and nothing is written.

The verdict rules are in ``routertrain.experiments.claims``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from routertrain.experiments.claims import BAND, CLAIMS, NOT_RUN, RECIPES, RULES, Result, Sweep, Verdict, _kv, ci_text, finetuned_against_references, fmt, judge
from routertrain.config import did_you_mean
from routertrain.provenance import atomic_write_text
from routertrain.experiments.sweep import SweepError, expand, load_sweep


class ReportError(ValueError):
    """A sweep folder or file the report cannot read, in one line."""


def read_sweep(folder: Path) -> tuple[Sweep, list[Result]]:
    """A sweep folder's status and its finished evaluate points."""
    recipe = RECIPES / f"{folder.name}.yaml"
    spec_path = folder / "sweep.yaml" if (folder / "sweep.yaml").is_file() else recipe
    sweep = Sweep(folder.name, folder)
    if not spec_path.is_file():
        beside = sorted(p.parent.name for p in folder.parent.glob("*/sweep.yaml")) if folder.parent.is_dir() else []
        hint = did_you_mean(folder.name, beside + sorted(p.stem for p in RECIPES.glob("*.yaml")))
        raise ReportError(f"{folder} is not a sweep folder (no sweep.yaml in it, no recipes/sweeps/{folder.name}.yaml); "
                          f"sweep folders in {folder.parent}: {', '.join(beside) or 'none'}{hint}")
    spec = load_sweep(spec_path)
    sweep.claims = tuple(spec["claim"] if isinstance(spec["claim"], list) else [spec["claim"]])
    if not folder.is_dir():
        sweep.note = f"{folder} does not exist: the sweep has not run"
    points = expand(spec, folder.parent)
    trained = {p.name: _kv(p.args) for p in points if p.kind == "train"}
    results, datasets = [], []
    for p in points:
        values = _kv(p.args)
        if p.kind == "evaluate" and Path(values.get("run", "")).name in trained:
            values = {**trained[Path(values["run"]).name], **values}
        if values.get("data") and values["data"] not in datasets:
            datasets.append(values["data"])
        output = folder / p.output.name
        complete = dataclasses.replace(p, output=output).done()  # as the sweep runner judges it (blend and ensemble folders included)
        (sweep.done if complete else sweep.missing).append(p.name)
        if complete and p.kind == "evaluate":
            try:
                results.append(Result(sweep.name, sweep.claims, p.name, output, values, json.loads(output.read_text())))
            except (OSError, json.JSONDecodeError) as err:
                raise ReportError(f"cannot read {output} ({err}); delete it and rerun its sweep to rewrite it") from None
    sweep.datasets = tuple(dict.fromkeys([r.dataset for r in results] or datasets))  # data recipes name datasets only until results exist
    return sweep, results


# --- markdown ------------------------------------------------------------------------------


SUMMARY = (("plateau",), ("predictability",), ("more-data",), ("encoder",), ("finetune", "remedies"))  # at most 5 lines: the paper's five claims


def render(sweeps: list[Sweep], results: list[Result], figures: Path, out_dir: Path, command: str) -> str:
    """The whole report as markdown, answers first: the summary, the verdict table and the headline figure,
    then sweep status as counts, the datasets' numbers, and appendices (unfinished points, the sweeps,
    the verdict rules, how to reproduce). Draws the figures into ``figures`` on the way."""
    from routertrain.experiments import plots

    datasets = list(dict.fromkeys([r.dataset for r in results] + [d for s in sweeps for d in s.datasets]))
    judged = {ds: judge(results, sweeps, ds) for ds in datasets}
    done, total = sum(len(s.done) for s in sweeps), sum(len(s.done) + len(s.missing) for s in sweeps)
    unfinished = [s for s in sweeps if s.missing or s.note]
    lines = ["# The Routing Plateau: claims report", "",
             f"Written by `python -m routertrain.experiments.report` from {len(sweeps)} sweep folders: {done} of {total} points finished"
             + (f"; {len(unfinished)} sweeps unfinished (Appendix A names their points)." if unfinished else "."), "", "## Summary", ""]
    if not datasets:  # e.g. sweeps on the synthetic demo data only
        lines += [f"No sweep names a dataset (data=...) or has a finished evaluation: every claim is {NOT_RUN}.", ""]
    else:
        lines += [summary_line(group, [v for ds in datasets for v in judged[ds][0]]) for group in SUMMARY] + [""]
        lines += ["## Verdicts", "", "| claim | " + " | ".join(datasets) + " |", "|---" * (len(datasets) + 1) + "|"]
        lines += [f"| {claim} | " + " | ".join(cell(next(v for v in judged[ds][0] if v.claim == claim)) for ds in datasets) + " |" for claim in CLAIMS]
        lines += ["", "An inconclusive cell says what the data could have detected (95% intervals). The numbers behind each verdict are under its dataset; the rules are in Appendix C.", ""]
        panels = {ds: main_result([r for r in results if r.dataset == ds]) for ds in datasets}
        panels = {ds: r.data for ds, r in panels.items() if r is not None}
        if panels:
            figure = plots.headline_plot(panels, figures / "headline.png")
            lines += ["## Headline: every router's test accuracy", "",
                      f"![test accuracy per router with its 95% interval, the oracle and the task prior, per dataset]({os.path.relpath(figure, out_dir)})", ""]
    lines += ["## Sweep status", "", "| sweep | claims | points finished |", "|---|---|---|"]
    lines += [f"| {s.name} | {', '.join(s.claims) or '-'} | {len(s.done)} of {len(s.done) + len(s.missing)}{' (not run)' if s.note else ''} |" for s in sweeps]
    lines += [""]
    for ds in datasets:
        lines += dataset_section(ds, [r for r in results if r.dataset == ds], *judged[ds], figures, out_dir)
    lines += ["## Appendix A: unfinished points", ""]
    lines += [f"- **{s.name}** ({len(s.missing)} of {len(s.done) + len(s.missing)}): {s.note or ', '.join(s.missing)}" for s in unfinished] or ["None: every point of every sweep finished."]
    lines += ["", "## Appendix B: the sweeps", ""]
    for s in sweeps:  # each sweep file's leading comment says what it runs and with which limits
        recipe = RECIPES / f"{s.name}.yaml"
        about = [line.lstrip("# ").rstrip() for line in recipe.read_text().splitlines() if line.startswith("#")] if recipe.is_file() else []
        lines += [f"- **{s.name}**: " + (" ".join(about) or "(a sweep file without a description)"), ""]
    lines += ["## Appendix C: the verdict rules", "", RULES, "", "## Appendix D: reproduce", "", "```bash"]
    for s in sweeps:
        recipe = f"recipes/sweeps/{s.name}.yaml" if (RECIPES / f"{s.name}.yaml").is_file() else str(s.folder / "sweep.yaml")
        out = "" if s.folder.parent == Path("checkpoints/sweeps") else f" --out {shlex.quote(str(s.folder.parent))}"
        lines.append(f"python -m routertrain.experiments.sweep {recipe}{out}")
    return "\n".join([*lines, command, "```", ""])


def cell(v: Verdict) -> str:
    """A verdict table cell: the status, and for an inconclusive one what the data could detect."""
    return v.status if not v.bound or v.status == NOT_RUN else f"{v.status}: {v.bound}"


def summary_line(claims: tuple, verdicts: list[Verdict]) -> str:
    """One summary line: per claim, the datasets where it holds, does not hold, or stays inconclusive (with its bound)."""
    parts = []
    for claim in claims:
        mine = [v for v in verdicts if v.claim == claim]
        said = []
        for status in ("holds", "does not hold"):
            where = [v.dataset for v in mine if v.status == status]
            if where:
                said.append(f"{status} on {', '.join(where)}")
        open_ = [v for v in mine if v.status == "inconclusive"]
        if open_:
            said.append("inconclusive on " + ", ".join(f"{v.dataset} ({v.bound})" for v in open_))
        not_run = [v.dataset for v in mine if v.status == NOT_RUN]
        if not_run:
            said.append(f"not run on {', '.join(not_run)}")
        parts.append(f"**{claim}** {'; '.join(said)}")
    return "- " + ". ".join(parts) + "."


def main_result(mine: list[Result]) -> Result | None:
    """A dataset's main evaluation: the plateau one, else the largest that is not an ablation run (those have their own table)."""
    return max([r for r in mine if "plateau" in r.claims] or [r for r in mine if "remedies" not in r.claims], key=lambda r: len(r.data["routers"]), default=None)


def dataset_section(ds: str, mine: list[Result], verdicts: list[Verdict], tables: dict, figures: Path, out_dir: Path) -> list[str]:
    from routertrain.experiments import plots

    def image(alt: str, path: Path) -> str:
        return f"![{alt}]({os.path.relpath(path, out_dir)})"

    out, stem = [f"## {ds}", ""], figures / "".join(c if c.isalnum() or c in "-_." else "-" for c in ds)
    main = main_result(mine)
    if main is None:
        out += ["No finished evaluation for this dataset yet.", ""]
    else:
        out += main_table(main) + [image(f"{ds}: accuracy vs cost", plots.main_plot(main.data, BAND, f"{stem}-main.png", ds)), ""]
    for other in mine:  # further evaluations with model costs: the cost-aware view (e.g. a full, priced pool)
        if other is not main and other.data["data"].get("costs"):
            name = f"{stem}-{other.sweep}-{other.point}.png"
            out += ["### Cost-aware routing", ""] + main_table(other)[2:] + [image(f"{ds}: accuracy vs cost", plots.main_plot(other.data, BAND, name, ds)), ""]
    out += ["### Claims", ""] + [f"- **{v.claim}**: {v.status}. {v.detail}" for v in verdicts] + [""]
    against = [(r, rows) for r in mine if "finetuned" in r.data["routers"] for rows in [finetuned_against_references(r)] if rows]
    if against:
        out += ["### The fine-tuned router against the references", "",
                "Paired bootstrap differences on the test queries; a reference that wins is reported as such.", ""]
        for r, rows in against:
            out += [f"- {what}: {ci_text(d, sign=True)} ({status}) [{r.path}]" for what, d, status in rows]
        out += [""]
    if "remedies" in tables:
        out += ["### Remedies: the ablation", "",
                "One fine-tuned run, or one seed ensemble (the mean of its runs' P(correct)), per row. The configuration is chosen on validation (the mean over its seeds; an ensemble is one configuration); every row was scored on test once, "
                "so this lists every configuration scored on test. Training minutes: training's wall time on the shared 2-core CPU, one job at a time.", "",
                "| remedies | seed | validation acc | test acc [95% CI] | training minutes | run |", "|---|---|---|---|---|---|"]
        out += [f"| {label} | {seed} | {fmt(val)} | {ci_text(acc)} | {fmt(minutes, 1) if minutes else '-'} | {r.data.get('run', '-')} |"
                for label, seed, val, acc, minutes, r in tables["remedies"]]
        out += [""]
    if "more-data" in tables:
        fractions = sorted({f for _, accs, _, _ in tables["more-data"] for f in accs})
        out += ["### Accuracy vs training fraction", "", "mean over seeds [min, max]: subsample seeds for the frozen baselines, training seeds for fine-tuned routers (one subsample per fraction)", "",
                "| router | " + " | ".join(f"{f:g}" for f in fractions) + " | largest - smallest [95% CI] | slope per doubling [95% CI] | verdict |",
                "|---" * (len(fractions) + 4) + "|"]
        for name, accs, d, status in tables["more-data"]:
            cells = [f"{fmt(float(np.mean(accs[f])))} [{fmt(min(accs[f]))}, {fmt(max(accs[f]))}]" if f in accs else "-" for f in fractions]
            slope = ci_text(d["slope"], sign=True) if d else "-"
            out.append(f"| {name} | " + " | ".join(cells) + f" | {ci_text(d, sign=True)} | {slope} | {status} |")
        out += ["", "Slope: least-squares accuracy change per doubling of the training set (log2 of the fraction), over every fraction and seed; "
                "its interval is a paired bootstrap over the same resampled test queries, the runs resampled within each fraction."]
        oracle = next((r.data["reference"]["oracle_acc"] for r in mine if "more-data" in r.claims), None)
        series = {name: accs for name, accs, _, _ in tables["more-data"] if name != "best-single"}
        out += ["", image(f"{ds}: accuracy vs fraction", plots.fraction_plot(ds, series, oracle, f"{stem}-fraction.png")), ""]
    if "encoder" in tables:
        out += ["### Accuracy vs encoder", "", "| rung | encoder | baseline (best on validation) | test accuracy [95% CI] | step from previous rung [95% CI] |", "|---|---|---|---|---|"]
        out += [f"| {rung} | {enc} | {name} | {ci_text(acc)} | {ci_text(d, sign=True)} |" for rung, enc, name, acc, d, _ in tables["encoder"]]
        rungs = [(rung, accs, (name, acc)) for rung, _, name, acc, _, accs in tables["encoder"] if name != "finetuned"]  # the frozen ladder
        out += ["", image(f"{ds}: accuracy vs encoder", plots.encoder_plot(ds, rungs, f"{stem}-encoder.png")), ""]
    return out


def scored_text(d: dict, settings: dict) -> str:
    """Which queries were scored when labels are missing (nothing when every query was)."""
    total = d.get("n_total", d["n_queries"])
    if settings.get("missing", "complete") == "wrong":
        return " (a chosen model without a label counts as wrong)"
    return f" of {total} (those with every model labelled)" if total != d["n_queries"] else ""


def cost_text(d: dict) -> str:
    """Whether costs are known, and which the cost figures spend."""
    if not d.get("costs"):
        return "costs unknown"
    return {"per-query": "costs: per query (the data's own)", "model mean": "costs: each model's mean cost"}.get(d.get("cost_source"), "costs known")


def main_table(r: Result) -> list[str]:
    d, ref, settings = r.data["data"], r.data["reference"], r.data["settings"]
    routers = r.data["routers"]
    cost = any(x.get("cost_norm") is not None for x in routers.values())
    out = [f"### Main comparison ({r.sweep}/{r.path.name}, encoder {r.data.get('encoder') or '-'})", "",
           (f"{d['n_queries']} {d['split']} queries{scored_text(d, settings)} ({d['n_train']} train), {len(d['models'])} models ({', '.join(d['models'])}); "
            f"oracle {fmt(ref['oracle_acc'])}, best single {ref['best_single_model']} {fmt(ref['best_single_acc'])} (chosen on train), "
            f"random {fmt(ref['random_acc'])}; {cost_text(d)}. "
            f"{AVERAGE_TEXT[settings.get('average', 'micro')]}"), "",
           f"| router | accuracy [95% CI] | vs {settings['reference']} [95% CI] | gap closed [95% CI] | task-prior share | AUROC | ECE | hard@{settings['hard_k']} accuracy |"
           + (" norm. cost | AIQ |" if cost else ""), "|---" * (8 + 2 * cost) + "|"]
    for name, x in routers.items():
        cal = x.get("calibration") or {}
        row = [name, ci_text(x["accuracy"]), ci_text(x.get(f"vs_{settings['reference']}"), sign=True), ci_text(x.get("gap_closed")),
               fmt(x.get("task_prior_share")), fmt(cal.get("auroc")), fmt(cal.get("ece")), fmt(x.get("hard_accuracy"))]
        out.append("| " + " | ".join(row + ([fmt(x.get("cost_norm")), fmt(x.get("aiq"))] if cost else [])) + " |")
    paired = [f"- {k} (paired bootstrap): {ci_text(v, sign=True)}" for k, v in r.data.get("paired", {}).items()]
    notes = [f"skipped {k}: {v}" for k, v in r.data.get("skipped", {}).items()] + [f"warning: {w}" for w in r.data.get("warnings", [])]
    return out + [""] + (paired + [""] if paired else []) + per_task_rows(r) + [f"- {n}" for n in notes] + ([""] if notes else [])


AVERAGE_TEXT = {
    "micro": "Accuracies are micro averages (over queries).",
    "macro": "Accuracies are macro averages (the plain mean of per-task accuracies, each task weighing the same); intervals resample within each task.",
}


def per_task_rows(r: Result) -> list[str]:
    """Each router's accuracy on each task, as a markdown table ([] when the data has no tasks)."""
    refs = r.data["reference"].get("per_task")
    if not refs:
        return []
    tasks = list(refs["oracle"])
    out = ["Accuracy per task:", "", "| router | " + " | ".join(tasks) + " |", "|---" * (len(tasks) + 1) + "|"]
    rows = {"oracle": refs["oracle"], "best-single": refs["best-single"]}
    rows.update({name: x.get("per_task", {}) for name, x in r.data["routers"].items() if name not in rows})
    out += [f"| {name} | " + " | ".join(fmt(v.get(t)) for t in tasks) + " |" for name, v in rows.items()]
    return out + [""]


def included(path: Path, out_dir: Path) -> str:
    """A markdown file of another measurement, its headings moved two levels down, with its source named."""
    lines = [("##" + line) if line.startswith("#") else line for line in path.read_text().splitlines()]
    return f"\n<!-- included from {os.path.relpath(path, out_dir)} -->\n" + "\n".join(lines).strip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="routertrain report", description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", type=Path, help="sweep output folders (checkpoints/sweeps/<name>)")
    parser.add_argument("--output", type=Path, default=Path("REPORT.md"), help="markdown file to write (default: REPORT.md)")
    parser.add_argument("--figures", type=Path, default=Path("docs/figures"), help="folder for the PNG plots (default: docs/figures)")
    parser.add_argument("--include", type=Path, nargs="*", default=[], help="markdown files of other measurements, included at the end (e.g. docs/add-model.md)")
    args = parser.parse_args(argv)
    try:
        read = [read_sweep(folder) for folder in args.sweeps]
    except (ReportError, SweepError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    sweeps, results = [s for s, _ in read], [r for _, rs in read for r in rs]
    for s in sweeps:
        if s.note:
            print(f"[report] {s.note}", file=sys.stderr)
    command = shlex.join(["python", "-m", "routertrain.experiments.report", *map(str, args.sweeps), "--output", str(args.output), "--figures", str(args.figures)])
    missing = [str(p) for p in args.include if not p.is_file()]
    if missing:
        print(f"error: --include names {', '.join(missing)}, which do not exist", file=sys.stderr)
        return 2
    text = render(sweeps, results, args.figures, args.output.parent, command + "".join(f" --include {shlex.quote(str(p))}" for p in args.include))
    if args.include:
        text += "\n## Other measurements\n" + "".join(included(p, args.output.parent) for p in args.include)
    atomic_write_text(args.output, text)
    print(f"report: {args.output} (figures in {args.figures})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
