"""Evaluation metrics beyond routing accuracy: calibration, hard queries, overlap, task-prior share.

The routing rule, routing accuracy, best single, random, oracle and the task prior are defined
once, in ``routertrain.evaluation.decision`` (conventions there: ``labels`` N x M in [0, 1] with
NaN = missing, ``scores`` higher = route there, ``weights`` a decision whose rows sum to 1).

- calibration, per model, over the queries where that model has a label:
  AUROC of the scores against ``label >= threshold`` (default 0.5: graded labels are thresholded;
  NaN when only one class is present); log-loss ``-[y log p + (1 - y) log(1 - p)]`` with graded labels as soft targets
  and p clipped to [1e-7, 1 - 1e-7]; expected calibration error with 10 equal-width bins on p:
  ``sum_b n_b / n * |mean(y in b) - mean(p in b)|`` (graded y = the expected label). The headline
  numbers are the plain means over models (models where the metric is NaN left out).
- hard queries: those solved (``label >= threshold``, default 0.5; missing = not solved) by at
  most ``k`` models, and, when ``solvable_only`` (default), by at least one: queries nobody solves
  score the same for every router and only dilute the comparison.
- solved set of a router: queries whose (expected) chosen label is >= threshold; the overlap of two
  routers is the Jaccard index |A & B| / |A | B| of their solved sets (NaN when both are empty).
- task-prior share: (acc_taskprior - acc_random) / (acc_router - acc_random), the share of a
  router's gain over random that the task prior alone already gets; NaN when the router does not
  beat random (by more than 1e-9, so that random itself is NaN, not rounding noise).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from routertrain.evaluation.decision import nanmean, per_query_accuracy

N_BINS = 10
EPS = 1e-7


# --- calibration -----------------------------------------------------------------------------


def auroc(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> float:
    """Area under the ROC curve of one model's scores vs ``label >= threshold`` (ties count half)."""
    p, y = _observed(probs, labels)
    positive = y >= threshold
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(p)  # average ranks: tied scores count half
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy of one model's probabilities with (possibly graded) labels as targets."""
    p, y = _observed(probs, labels)
    if len(y) == 0:
        return float("nan")
    p = np.clip(p, EPS, 1 - EPS)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def ece(probs: np.ndarray, labels: np.ndarray, n_bins: int = N_BINS) -> float:
    """Expected calibration error of one model with ``n_bins`` equal-width bins on [0, 1]."""
    p, y = _observed(probs, labels)
    if len(y) == 0:
        return float("nan")
    bins = np.minimum((np.clip(p, 0, 1) * n_bins).astype(int), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, y, n_bins) - np.bincount(bins, p, n_bins))  # n_b * |mean y - mean p|
    return float(gap.sum() / count.sum())


def calibration(probs: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> dict:
    """Per-model AUROC (positives: label >= threshold), log-loss and ECE, and their means over models."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    out = {}
    for name, fn in (("auroc", lambda p, y: auroc(p, y, threshold)), ("log_loss", log_loss), ("ece", ece)):
        per_model = [fn(probs[:, j], labels[:, j]) for j in range(labels.shape[1])]
        out[name] = nanmean(np.array(per_model))
        out[f"{name}_per_model"] = per_model
    return out


def _observed(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, y = np.asarray(probs, dtype=np.float64), np.asarray(labels, dtype=np.float64)
    keep = np.isfinite(y)
    return p[keep], y[keep]


# --- hard queries and overlap ----------------------------------------------------------------


def n_solvers(labels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """How many models solve each query (label >= threshold; a missing label is not solved)."""
    y = np.asarray(labels, dtype=np.float64)
    return (np.where(np.isfinite(y), y, -np.inf) >= threshold).sum(axis=1)


def hard_mask(labels: np.ndarray, k: int = 1, threshold: float = 0.5, solvable_only: bool = True) -> np.ndarray:
    """Queries solved by at most ``k`` models (and by at least one when ``solvable_only``)."""
    solvers = n_solvers(labels, threshold)
    return (solvers <= k) & ((solvers >= 1) if solvable_only else True)


def hard_accuracy(weights: np.ndarray, labels: np.ndarray, k: int = 1, threshold: float = 0.5, solvable_only: bool = True) -> float:
    """Routing accuracy restricted to the hard queries (NaN when there are none)."""
    mask = hard_mask(labels, k, threshold, solvable_only)
    return nanmean(per_query_accuracy(weights, labels)[mask]) if mask.any() else float("nan")


def solved_set(weights: np.ndarray, labels: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Boolean per query: the router's (expected) chosen label is >= threshold."""
    value = per_query_accuracy(weights, labels)
    return np.where(np.isfinite(value), value, -np.inf) >= threshold


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")


def overlap_matrix(solved: dict[str, np.ndarray]) -> dict:
    """Pairwise Jaccard index of the routers' solved sets: ``{'routers': [...], 'jaccard': [[...]]}``."""
    names = list(solved)
    return {"routers": names, "jaccard": [[jaccard(solved[a], solved[b]) for b in names] for a in names]}


def task_prior_share(acc_task_prior: float, acc_random: float, acc_router: float) -> float:
    """Share of the router's gain over random explained by the task prior (NaN if no gain)."""
    gain = acc_router - acc_random
    return float((acc_task_prior - acc_random) / gain) if gain > 1e-9 else float("nan")  # not rounding noise
