"""What the rule's choices are worth on labelled queries: the missing-label policy, and the label and
the cost of each chosen model. The evaluator (``routertrain.evaluation.decision``) averages these;
calibration (``routertrain.hub.calibrate``) solves its targets on them.

Missing labels (``missing``): decisions are made over the whole pool and never read labels. Then
``complete`` keeps only the queries on which every model has a label; ``wrong`` keeps every query and
reads a missing label as 0, so a chosen model without one counts as a failure.

Costs: a per-model vector (each model's mean cost) or an (N, M) matrix of per-query costs; the cost
of a choice is the chosen model's cost on that query.
"""

from __future__ import annotations

import numpy as np

MISSING = ("complete", "wrong")


def check_missing(missing: str) -> str:
    if missing not in MISSING:
        raise ValueError(f"eval.missing must be complete or wrong, got {missing!r}")
    return missing


def scored(labels: np.ndarray, missing: str = "complete") -> tuple[np.ndarray, np.ndarray]:
    """The labels the metrics read and the mask of the queries they score (see the module docstring)."""
    y = np.asarray(labels, dtype=np.float64)
    if check_missing(missing) == "wrong":
        return np.where(np.isfinite(y), y, 0.0), np.ones(len(y), dtype=bool)
    keep = np.isfinite(y).all(axis=1)
    if len(y) and not keep.any():
        raise ValueError("no query here has a label for every model, so eval.missing=complete scores none: "
                         "set eval.missing=wrong (a chosen model without a label counts as a failure)")
    return y[keep], keep


def chosen_labels(choice: np.ndarray, labels: np.ndarray, missing: str = "complete") -> tuple[np.ndarray, np.ndarray]:
    """The label of the chosen model on each scored query, and the mask of the scored queries."""
    y, keep = scored(labels, missing)
    return y[np.arange(len(y)), np.asarray(choice, dtype=np.int64)[keep]], keep


def chosen_costs(choice: np.ndarray, costs) -> np.ndarray:
    """The cost of the chosen model on each query (``costs``: per model, or per query and model)."""
    cost = np.asarray(costs, dtype=np.float64)
    choice = np.asarray(choice, dtype=np.int64)
    return cost[choice] if cost.ndim == 1 else cost[np.arange(len(choice)), choice]


def weighted_costs(weights: np.ndarray, costs) -> np.ndarray:
    """The expected cost per query of routing weights (one-hot for the rule's decisions)."""
    w = np.asarray(weights, dtype=np.float64)
    cost = np.asarray(costs, dtype=np.float64)
    return (w * (cost[None, :] if cost.ndim == 1 else cost)).sum(axis=1)
