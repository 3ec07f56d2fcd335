"""Add-model on MMLU-Pro-27: hold one model out, add it back from 100, 500 or all of its training labels.

    python benchmarks/add_model_mmlu_pro.py --data ../shared/data/mmlu-pro-outputs --output checkpoints/add-model-table.md

The router here has a frozen pretrained encoder (paraphrase-MiniLM-L3-v2, mean pooling, 128 tokens)
and a logistic-regression head: a full fine-tuning of the encoder on 8.7k questions does not fit in
the ~10 CPU minutes this measurement may take on a 2-core machine, so "retrain from the start" is a
frozen-encoder retrain of the full 27-row head (L2 chosen on validation routing accuracy), and the
held-out router is the same recipe on the other 26 models. The added row is fitted by
``routertrain.hub.add_model.fit_row`` (the code ``add_model`` runs) on the same pooled features
(``router_features``). Label subsets of 100 and 500 are drawn with 5 seeds (mean and sd reported).
Writes the markdown table to ``--output`` and prints it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

ENCODER = "sentence-transformers/paraphrase-MiniLM-L3-v2"
SEEDS = (0, 1, 2, 3, 4)


def features(data, cache: Path) -> dict:
    """Pooled MiniLM-L3 features per split, through a Router built around the frozen encoder (cached as .npy)."""
    from transformers import AutoTokenizer

    from routertrain.hub.router import Router
    from routertrain.hub.add_model import router_features
    from routertrain.model.modeling import RouterModel, load_encoder

    cache.mkdir(parents=True, exist_ok=True)
    out, router = {}, None
    for split in ("train", "validation", "test"):
        path = cache / f"{split}.npy"
        if not path.is_file():
            if router is None:
                model = RouterModel(load_encoder(ENCODER), len(data.models), "mean", dropout=0.0)
                router = Router(model, AutoTokenizer.from_pretrained(ENCODER), {"models": data.models, "max_length": 128}, cache, "cpu")
            np.save(path, router_features(router, list(data.splits[split]["query"])))
        out[split] = np.load(path)
    return out


def fit_head(x: dict, y: dict, columns: list[int]):
    """The logistic head on ``columns``, L2 chosen on validation routing accuracy (as the logreg baseline)."""
    from routertrain.model.heads import fit_logistic, predict
    from routertrain.evaluation.metrics import score_accuracy
    from routertrain.hub.add_model import L2_GRID

    heads = {l2: fit_logistic(x["train"], y["train"][:, columns], l2) for l2 in L2_GRID}
    best = max(heads, key=lambda l2: score_accuracy(predict(heads[l2], x["validation"]), y["validation"][:, columns]))
    return lambda split: predict(heads[best], x[split]), best, heads[best]


def save_full_router(data, head, folder: Path) -> None:
    """The 27-model frozen-encoder router as a router folder (for benchmarks/routing_speed.py)."""
    import torch
    from transformers import AutoTokenizer

    from routertrain.hub.router import save_router
    from routertrain.model.modeling import RouterModel, load_encoder

    model = RouterModel(load_encoder(ENCODER), len(data.models), "mean", dropout=0.0)
    with torch.no_grad():
        model.head.weight.copy_(head.weight.T)
        model.head.bias.copy_(head.bias)
    save_router(model, AutoTokenizer.from_pretrained(ENCODER), folder, data.models, data.costs, 128, ENCODER)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/mmlu-pro-outputs")
    parser.add_argument("--output", type=Path, default=Path("checkpoints/add-model-table.md"))
    parser.add_argument("--cache", type=Path, default=Path("checkpoints/add-model-features"))
    parser.add_argument("--save-router", type=Path, help="only save the 27-model frozen-encoder router (full head) to this folder, and stop")
    args = parser.parse_args()
    started = time.time()

    from routertrain.config import load_config
    from routertrain.data import load_routing_data
    from routertrain.evaluation.decision import best_single_index, oracle_accuracy
    from routertrain.evaluation.metrics import auroc, score_accuracy
    from routertrain.hub.add_model import fit_row
    from routertrain.provenance import atomic_write_text

    data = load_routing_data(load_config(["data=mmlu-pro", f"data.path={args.data}", "data.pool=open-weight"]).data)
    y = {s: data.labels(s) for s in ("train", "validation", "test")}
    x = features(data, args.cache)
    print(f"features ready after {time.time() - started:.0f}s", flush=True)
    m = len(data.models)
    full, full_l2, full_head = fit_head(x, y, list(range(m)))
    if args.save_router:
        save_full_router(data, full_head, args.save_router)
        print(f"router: {args.save_router} (test routing accuracy {score_accuracy(full('test'), y['test']):.4f})")
        return
    full_test = full("test")
    full_acc = score_accuracy(full_test, y["test"])
    best = best_single_index(y["train"])
    means = np.nanmean(y["train"], axis=0)
    median = int(np.argsort(means)[len(means) // 2])
    rows = []
    for held in (best, median):
        others = [j for j in range(m) if j != held]
        without = fit_head(x, y, others)[0]
        base_test = without("test")
        labelled = np.flatnonzero(np.isfinite(y["train"][:, held]))
        results = {}
        for n in (100, 500, len(labelled)):
            accs, aucs, shares = [], [], []
            for seed in SEEDS if n < len(labelled) else (0,):
                pick = np.random.default_rng(seed).choice(labelled, size=n, replace=False)
                weight, bias, _ = fit_row(x["train"][pick], y["train"][pick, held], seed)
                new = 1 / (1 + np.exp(-(x["test"] @ weight + bias)))
                scores = np.insert(base_test, held, new, axis=1)  # back in its own column, so labels line up
                accs.append(score_accuracy(scores, y["test"]))
                aucs.append(auroc(new[:, None], y["test"][:, [held]]))
                shares.append(float((scores.argmax(axis=1) == held).mean()))
            results[n] = (np.mean(accs), np.std(accs), np.mean(aucs), np.mean(shares))
        retrain_auc = auroc(full_test[:, [held]], y["test"][:, [held]])
        retrain_share = float((full_test.argmax(axis=1) == held).mean())
        rows.append((data.models[held], means[held], score_accuracy(base_test, y["test"][:, others]), results, retrain_auc, retrain_share, len(labelled)))

    lines = [
        "| held-out model (train accuracy) | router without it (26) | + 100 labels | + 500 labels | + all labels | retrain with it (27, frozen encoder) |",
        "|---|---|---|---|---|---|",
    ]
    for name, mean, base, results, retrain_auc, retrain_share, n_all in rows:
        cells = []
        for n, (acc, sd, auc, share) in results.items():
            spread = f" ± {sd:.4f}" if n != n_all else ""
            cells.append(f"{acc:.4f}{spread} (AUROC {auc:.3f}, routed {share:.1%})")
        lines.append(f"| {name} ({mean:.3f}) | {base:.4f} | " + " | ".join(cells) + f" | {full_acc:.4f} (AUROC {retrain_auc:.3f}, routed {retrain_share:.1%}) |")
    context = (
        f"Test split: {len(y['test'])} questions; oracle {oracle_accuracy(y['test']):.4f}; best single model on train "
        f"({data.models[best]}) {np.nanmean(y['test'][:, best]):.4f} on test. Head L2 of the full retrain: {full_l2:g}. "
        f"'all labels' = every training question labelled for that model ({', '.join(f'{r[0]} {r[-1]}' for r in rows)}). Cells: test routing accuracy over the 27 models "
        f"(mean ± sd over {len(SEEDS)} label draws), the new row's AUROC for its own model, and the share of test questions routed to it. "
        f"Run time {time.time() - started:.0f}s on this machine."
    )
    table = "\n".join(lines) + "\n\n" + context + "\n"
    atomic_write_text(args.output, table)
    print(table)


if __name__ == "__main__":
    main()
