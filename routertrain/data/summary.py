"""What a routing dataset holds: per split, the queries, each model's mean label, the oracle and the
best single model (chosen on train), with a per-task breakdown.

``average`` (the dataset's ``data.average`` unless ``eval.average`` says otherwise) decides the
split-level numbers: micro = over queries, macro = the plain mean of per-task numbers (each task
weighs the same), and so which model is the best single one.

``summarize(data)`` returns a JSON-ready dict (NaN becomes null); ``format_summary`` renders it as
plain-text tables. Labels missing for a model (``label_mask`` 0) are left out of that model's mean;
the oracle is the mean over queries of the best observed label.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from routertrain.evaluation import decision as M
from routertrain.data.dataset import SPLITS, RoutingData


def _num(x) -> Optional[float]:
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def split_stats(labels: np.ndarray, models: list[str], best: int, tasks=None, average: str = "micro") -> dict:
    means = M.model_means(labels, tasks, average) if len(labels) else np.full(len(models), np.nan)
    observed = np.isfinite(means)
    top = int(np.nanargmax(means)) if observed.any() else None
    return {
        "n_queries": int(len(labels)),
        "n_missing_labels": int(np.isnan(labels).sum()),
        "model_means": {m: _num(v) for m, v in zip(models, means)},
        "oracle": _num(M.oracle_accuracy(labels, tasks, average)) if len(labels) else None,
        "best_single": {"model": models[best], "mean": _num(means[best])},
        "best_on_split": {"model": models[top], "mean": _num(means[top])} if top is not None else None,
    }


def summarize(data: RoutingData, average: str = "micro") -> dict:
    train = data.labels("train")
    best = M.best_single_index(train, data.tasks("train"), average)
    out = {
        "name": data.name,
        "average": average if data.tasks("train") is not None else "micro",
        "fingerprint": data.fingerprint,
        "models": list(data.models),
        "costs": data.costs,
        "best_single_model": data.models[best],
        "splits": {},
    }
    for split in SPLITS:
        labels = data.labels(split)
        tasks = data.tasks(split)
        stats = split_stats(labels, data.models, best, tasks, average)
        if tasks is not None:
            stats["tasks"] = {
                str(t): {k: v for k, v in split_stats(labels[tasks == t], data.models, best).items() if k != "model_means"}
                for t in sorted(set(tasks.tolist()))
            }
        out["splits"][split] = stats
    if "build" in data.info:
        out["build"] = data.info["build"]
    return out


def _fmt(x: Optional[float]) -> str:
    return "   -  " if x is None else f"{x:.4f}"


def format_summary(s: dict) -> str:
    lines = [f"{s['name']}  fingerprint {s['fingerprint']}  {len(s['models'])} models  "
             f"best single (chosen on train): {s['best_single_model']}",
             f"averages: {s.get('average', 'micro')} ({'plain mean of per-task numbers' if s.get('average') == 'macro' else 'over queries'})", ""]
    lines.append(f"{'split':<12}{'queries':>8}  {'oracle':>7}  {'best single':>11}  best on the split")
    for split, st in s["splits"].items():
        top = st["best_on_split"] or {"model": "-", "mean": None}
        lines.append(f"{split:<12}{st['n_queries']:>8}  {_fmt(st['oracle']):>7}  {_fmt(st['best_single']['mean']):>11}  "
                     f"{top['model']} {_fmt(top['mean'])}")
    width = max(len(m) for m in s["models"]) + 2
    lines += ["", f"{'model':<{width}}{'cost':>10}" + "".join(f"{sp:>12}" for sp in s["splits"])]
    costs = s["costs"] or [None] * len(s["models"])
    for m, c in zip(s["models"], costs):
        cost = "-" if c is None else f"{c:.4g}"
        lines.append(f"{m:<{width}}{cost:>10}" + "".join(f"{_fmt(st['model_means'][m]):>12}" for st in s["splits"].values()))
    for split, st in s["splits"].items():
        if "tasks" not in st:
            continue
        tw = max(len(t) for t in st["tasks"]) + 2
        lines += ["", f"{split} by task:", f"{'task':<{tw}}{'queries':>8}  {'oracle':>7}  {'best single':>11}  best on the task"]
        for t, ts in st["tasks"].items():
            top = ts["best_on_split"] or {"model": "-", "mean": None}
            lines.append(f"{t:<{tw}}{ts['n_queries']:>8}  {_fmt(ts['oracle']):>7}  {_fmt(ts['best_single']['mean']):>11}  "
                         f"{top['model']} {_fmt(top['mean'])}")
    return "\n".join(lines)
