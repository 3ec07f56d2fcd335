"""Add a model to a trained router's pool without retraining: one new head row, the encoder frozen.

The router's logit for model m is ``head.weight[m] . pool(encoder(query)) + head.bias[m]``. A new
model gets a row fitted by logistic regression (``model.heads.fit_logistic``: BCE, scores in
[0, 1] as soft targets, L2 penalty, L-BFGS from zeros) on the router's own pooled features of the
queries it has scores for. The L2 strength is chosen from ``L2_GRID`` by the log loss on a held-out
fifth of those labels, then the row is refitted on all of them. Every existing weight (encoder and
head rows) is copied unchanged, so the old models' probabilities do not move.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from routertrain.model.heads import fit_logistic, predict
from routertrain.hub.router import Router, save_router, tokenize
from routertrain.model.modeling import RouterModel, masked_bce

L2_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1)
HELD_OUT = 0.2


def read_labels(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """(queries, scores) from a JSONL file of ``{"query": ..., "score": ...}`` or a CSV/TSV with
    ``query`` and ``score`` columns; scores in [0, 1] (1 = the new model answers correctly)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"--labels {path} does not exist; give a JSONL file of {{\"query\": ..., \"score\": ...}} or a CSV with query,score columns")
    records = []  # (line number in the file, row)
    try:
        if path.suffix in (".csv", ".tsv"):
            with path.open(newline="") as f:
                reader = csv.DictReader(f, delimiter="\t" if path.suffix == ".tsv" else ",")
                records = [(reader.line_num, row) for row in reader]
        else:
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if line.strip():
                    records.append((number, parse_line(line, path, number)))
    except (csv.Error, UnicodeDecodeError) as err:
        raise ValueError(f"--labels {path} cannot be read ({str(err).splitlines()[0][:120]}); write one JSON object per line, or a CSV with a header") from None
    queries, scores = [], []
    for number, row in records:
        try:
            query, score = row["query"], float(row["score"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"--labels {path}, line {number}: needs a 'query' and a numeric 'score'") from None
        if not isinstance(query, str) or not query.strip() or not 0.0 <= score <= 1.0:
            raise ValueError(f"--labels {path}, line {number}: the query must be text and the score in [0, 1] (got {score})")
        queries.append(query)
        scores.append(score)
    if len(queries) < 10:
        raise ValueError(f"--labels {path} has {len(queries)} labelled queries; give at least 10 (hundreds are better)")
    return queries, np.asarray(scores, dtype=np.float32)


def parse_line(line: str, path: Path, number: int):
    """One JSONL line; a one-line error naming the file's line ``number`` when it is not JSON."""
    try:
        return json.loads(line)
    except ValueError as err:
        raise ValueError(f"--labels {path}, line {number}: not valid JSON ({str(err).splitlines()[0][:120]}); write one JSON object per line") from None


@torch.inference_mode()
def router_features(router, queries: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """What the router's head reads: the pooled encoder output per query, shape (len(queries), hidden)."""
    model = router.model
    out = np.zeros((len(queries), model.head.in_features), dtype=np.float32)
    for start in range(0, len(queries), batch_size):
        batch = tokenize(router.tokenizer, queries[start : start + batch_size], router.config.max_length)
        batch = {k: v.to(router.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = model.encoder(**batch).last_hidden_state
        out[start : start + batch_size] = model.pool(hidden, batch["attention_mask"]).float().cpu().numpy()
    return out


def fit_row(features: np.ndarray, scores: np.ndarray, seed: int = 0) -> tuple[np.ndarray, float, dict]:
    """(weight, bias, info) of the new model's head row, the L2 strength chosen on held-out labels."""
    features, scores = np.asarray(features, dtype=np.float32), np.asarray(scores, dtype=np.float32).reshape(-1, 1)
    order = np.random.default_rng(seed).permutation(len(scores))
    cut = max(1, int(round(HELD_OUT * len(scores))))
    held, kept = order[:cut], order[cut:]
    losses = {}
    for l2 in L2_GRID:
        head = fit_logistic(features[kept], scores[kept], l2, seed)
        p = torch.from_numpy(predict(head, features[held])).clamp(1e-7, 1 - 1e-7)
        losses[l2] = float(masked_bce(torch.logit(p), torch.from_numpy(scores[held])))
    best = min(losses, key=losses.get)
    head = fit_logistic(features, scores, best, seed)
    weight = head.weight.detach().numpy()[:, 0].copy()
    return weight, float(head.bias.detach()[0]), {"l2": best, "held_out_log_loss": {str(k): round(v, 5) for k, v in losses.items()}, "n_labels": len(scores)}


def with_row(model: RouterModel, weight: np.ndarray, bias: float) -> RouterModel:
    """A router sharing ``model``'s encoder, its head rows copied bit for bit plus one more row."""
    old = model.head
    grown = RouterModel.from_encoder(model.encoder, old.out_features + 1, model.pooling, dropout=0.0, base_model=model.config.base_model).to(old.weight.device)
    with torch.no_grad():
        grown.head.weight[:-1] = old.weight
        grown.head.bias[:-1] = old.bias
        grown.head.weight[-1] = torch.as_tensor(weight, dtype=old.weight.dtype)
        grown.head.bias[-1] = bias
    return grown.eval()


def add_model(router, name: str, queries: Sequence[str], scores: np.ndarray, output: str | os.PathLike,
              cost: float | None = None, seed: int = 0, batch_size: int = 64) -> Path:
    """Write a new router folder at ``output``: ``router``'s pool plus ``name``, fitted on (queries, scores)."""
    if type(router) is not Router:  # an ensemble or a blend: its other parts would not learn the new model
        raise ValueError(f"{router.folder} is {'a blend' if hasattr(router, 'blend') else 'an ensemble'}; add the model to each fine-tuned run's router, then ensemble or blend those again")
    if name in router.models:
        raise ValueError(f"model {name!r} is already in this router's pool; give the new model another name")
    if router.costs is not None and cost is None:
        raise ValueError(f"this router's models have costs; give --cost for {name} (the others: {', '.join(f'{m}={c:g}' for m, c in zip(router.models, router.costs))})")
    if Path(output).resolve() == Path(router.folder).resolve():
        raise ValueError("--output is the router's own folder; write the new router to a new folder")
    weight, bias, info = fit_row(router_features(router, list(queries), batch_size), scores, seed)
    model = with_row(router.model, weight, bias)
    costs = None if router.costs is None else [*router.costs, float(cost)]
    record = {"added_model": name, "cost": cost, "from_router": str(router.folder), "encoder": "frozen (unchanged)", **info}
    extra = {"add_model.json": json.dumps(record, indent=2) + "\n"}
    for carried in ("training_config.yaml", "provenance.json"):  # how the encoder and the other rows were made
        if (Path(router.folder) / carried).is_file():
            extra[carried] = (Path(router.folder) / carried).read_text()
    means = router.config.train_means  # the tie-break keys; the new model's mean label is its mean score here
    means = None if means is None else [*means, float(np.mean(scores))]
    return save_router(model, router.tokenizer, output, [*router.models, name], costs, router.config.max_length, (router.config.base_model or ""), extra, train_means=means)
