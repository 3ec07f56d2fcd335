"""The report's figures (matplotlib, Agg backend), each written atomically as a PNG.

- ``main_plot``: test accuracy of every router against its normalised cost (the paper's Figure 1),
  each with its cost-quality frontier (the non-decreasing hull of its cost-weight sweep), the plateau band (min-max of the frozen baselines) and the oracle, best-single and random
  lines; without costs, accuracy per router as points (the x axis names the routers).
- ``fraction_plot``: accuracy against the training fraction, mean and min-max over subsample seeds
  per router; the fine-tuned router as its own, heavier line.
- ``encoder_plot``: accuracy against the encoder (TF-IDF, MiniLM-L3, MiniLM-L6, MPNet, ...): every
  baseline as a faint marker, the best per encoder as a line with its 95% interval.
- ``headline_plot``: the report's first figure: per dataset, every router's test accuracy with its
  interval, the oracle and the task prior.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from routertrain.provenance import atomic_write_bytes


def save_png(fig, path: str | Path) -> Path:
    """Write ``fig`` to ``path`` atomically, then close it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def _reference_lines(ax, reference: dict) -> None:
    ax.axhline(reference["oracle_acc"], color="black", lw=1.5, label=f"oracle {reference['oracle_acc']:.3f}")
    ax.axhline(reference["best_single_acc"], color="grey", ls="--", lw=1, label=f"best single {reference['best_single_acc']:.3f}")
    ax.axhline(reference["random_acc"], color="grey", ls=":", lw=1, label=f"random {reference['random_acc']:.3f}")


def main_plot(result: dict, band_routers, path: str | Path, title: str | None = None) -> Path:
    """Accuracy vs normalised cost (or per router when the data has no costs) with the plateau band.

    With costs, each router also gets its cost-quality frontier: the non-decreasing hull of its
    cost-weight sweep, the line whose area is its AIQ (the oracle's frontier in black)."""
    routers = {n: r for n, r in result["routers"].items() if n not in ("oracle", "random", "random-draw")}
    with_cost = all(r.get("cost_norm") is not None for r in routers.values()) and routers
    fig, ax = plt.subplots(figsize=(8, 5) if with_cost else (7.5, 4.5))
    band = [r["accuracy"]["value"] for n, r in routers.items() if n in band_routers]
    if len(band) >= 2:
        ax.axhspan(min(band), max(band), color="tab:orange", alpha=0.2, label="plateau band (frozen baselines)")
    _reference_lines(ax, result["reference"])
    oracle_curve = result["routers"].get("oracle", {}).get("cost_curve") if with_cost else None
    if oracle_curve and len(oracle_curve["cost"]) > 1:
        ax.plot(oracle_curve["cost"], oracle_curve["accuracy"], color="black", lw=1, alpha=0.7, ls="-.", label="oracle frontier")
    palette = plt.get_cmap("tab10")
    for i, (name, r) in enumerate(routers.items()):
        acc = r["accuracy"]
        x = r["cost_norm"] if with_cost else i
        if with_cost:
            color = palette(i % 10)
            curve = r.get("cost_curve") or {"cost": [], "accuracy": []}
            label = f"{name} (AIQ {r['aiq']:.3f})" if r.get("aiq") is not None else name
            if len(curve["cost"]) > 1:
                ax.plot(curve["cost"], curve["accuracy"], color=color, lw=1.2, alpha=0.8)
        else:
            color, label = ("tab:orange" if name in band_routers else "tab:red" if name == "finetuned" else "tab:blue"), None
        ax.errorbar([x], [acc["value"]], yerr=[[acc["value"] - acc["low"]], [acc["high"] - acc["value"]]], fmt="o", color=color, capsize=3, label=label)
    if with_cost:
        ax.set_xlabel("normalised cost (0 = cheapest model, 1 = dearest); points: accuracy-only routing, lines: cost-quality frontiers")
    else:
        ax.set_xticks(range(len(routers)), list(routers), rotation=45, ha="right")
        ax.set_xlabel("router (cost unknown for this dataset)")
    ax.set_ylabel(f"test routing accuracy ({result['data']['n_queries']} queries)")
    ax.set_title(f"{title or result['data']['name']}: routers, plateau band and oracle")
    ax.legend(fontsize=7, loc="lower right" if with_cost else "best")
    return save_png(fig, path)


def fraction_plot(dataset: str, series: dict, oracle: float | None, path: str | Path) -> Path:
    """``series``: router -> {fraction: [accuracy per seed]}."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, by_fraction in series.items():
        xs = sorted(by_fraction)
        means = [sum(by_fraction[x]) / len(by_fraction[x]) for x in xs]
        tuned = name == "finetuned"
        line = ax.plot(xs, means, marker="s" if tuned else "o", lw=2.5 if tuned else 1.2, label=name + (" (fine-tuned)" if tuned else ""))[0]
        ax.fill_between(xs, [min(by_fraction[x]) for x in xs], [max(by_fraction[x]) for x in xs], color=line.get_color(), alpha=0.15)
    if oracle is not None:
        ax.axhline(oracle, color="black", lw=1, label=f"oracle {oracle:.3f}")
    ax.set_xscale("log")
    fractions = sorted({x for s in series.values() for x in s})
    ax.set_xticks(fractions, [f"{x:g}" for x in fractions])
    ax.minorticks_off()
    ax.set_xlabel("training fraction (nested subsets; band: min-max over subsample seeds)")
    ax.set_ylabel("test routing accuracy")
    ax.set_title(f"{dataset}: accuracy vs training data")
    ax.legend(fontsize=8, loc="best")
    return save_png(fig, path)


def encoder_plot(dataset: str, rungs: list, path: str | Path) -> Path:
    """``rungs``: (label, {router: accuracy}, (best router, {'value', 'low', 'high'})) in ladder order."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = range(len(rungs))
    for i, (_, accs, _) in enumerate(rungs):
        ax.scatter([i] * len(accs), list(accs.values()), color="tab:blue", alpha=0.35, s=18)
    best = [b[1] for _, _, b in rungs]
    ax.errorbar(list(xs), [b["value"] for b in best], yerr=[[b["value"] - b["low"] for b in best], [b["high"] - b["value"] for b in best]],
                color="tab:red", marker="o", capsize=3, label="baseline best on validation (95% CI)")
    for i, (_, _, (name, b)) in enumerate(rungs):
        ax.annotate(name, (i, b["value"]), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xticks(list(xs), [label for label, _, _ in rungs])
    ax.set_xlabel("encoder (faint: every baseline)")
    ax.set_ylabel("test routing accuracy")
    ax.set_title(f"{dataset}: accuracy vs encoder")
    ax.legend(fontsize=8, loc="best")
    return save_png(fig, path)


def headline_plot(panels: dict, path: str | Path) -> Path:
    """The report's headline: per dataset (one panel each), every router's test accuracy with its 95%
    interval, sorted, with the oracle and the task prior as vertical lines. ``panels``: dataset -> an
    evaluate result (``evaluate_routers``' JSON)."""
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 0.32 * max(len(r["routers"]) for r in panels.values()) + 1.4), squeeze=False)
    for ax, (dataset, result) in zip(axes[0], panels.items()):
        routers = sorted(((n, r["accuracy"]) for n, r in result["routers"].items() if n != "oracle"), key=lambda item: item[1]["value"])
        ys = range(len(routers))
        colors = ["tab:red" if n == "finetuned" else "tab:green" if n == "task-prior" else "tab:blue" for n, _ in routers]
        for y, (_, acc), color in zip(ys, routers, colors):
            ax.errorbar([acc["value"]], [y], xerr=[[acc["value"] - acc["low"]], [acc["high"] - acc["value"]]], fmt="o", color=color, capsize=2, ms=4)
        ax.axvline(result["reference"]["oracle_acc"], color="black", lw=1.2, label=f"oracle {result['reference']['oracle_acc']:.3f}")
        prior = result["routers"].get("task-prior")
        if prior:
            ax.axvline(prior["accuracy"]["value"], color="tab:green", ls="--", lw=1, label=f"task prior {prior['accuracy']['value']:.3f}")
        ax.set_yticks(list(ys), [n for n, _ in routers], fontsize=8)
        ax.set_xlabel(f"test routing accuracy, 95% CI ({result['data']['n_queries']} queries)", fontsize=8)
        ax.set_title(dataset, fontsize=10)
        ax.legend(fontsize=7, loc="lower right")
    return save_png(fig, path)
