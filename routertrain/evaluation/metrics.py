"""Evaluation metrics for routers, on top of ``routertrain.evaluation.decision``.

Conventions (N queries x M models):

- ``labels``: float matrix in [0, 1], NaN = missing. Binary labels are 0/1; graded labels (e.g. the
  share of passing samples) are used as they are wherever a metric is an average of labels.
- ``scores``: what a router predicts per (query, model); higher = route there. For calibration
  metrics the scores must be probabilities P(correct).
- ``weights``: a routing decision as an N x M matrix whose rows sum to 1. ``decide`` turns scores
  into decisions: argmax over the models that have a label for the query (a model without one is
  treated as absent from the pool for that query), splitting a query evenly among models whose
  scores tie exactly (the expected value of breaking ties at random). With one-hot weights,
  ``per_query_accuracy`` is the chosen model's label, as in ``routertrain.evaluation.decision.chosen_accuracy``.
- Missing labels: because decisions only pick labelled models, every router, the oracle and random
  are scored on the same queries (those with at least one label), and no router can beat the
  oracle. ``routertrain.evaluation.decision.routing_accuracy`` instead leaves a query out when the argmax model
  has no label; the two agree whenever labels are complete.

Definitions:

- best single (reference): the models ranked by mean label on train (equal means: the lower model
  index first); each query goes to the first of them that has a label (with complete labels: the
  one model best on train).
- random accuracy: mean over queries of the mean label across the models that have one (the
  expected accuracy of a uniformly random choice). Constant scores give exactly this.
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

from routertrain.evaluation.decision import best_single_index, gap_closed, model_means, oracle_accuracy  # noqa: F401 (re-exported)

N_BINS = 10
EPS = 1e-7


def nanmean_rows(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN (without a warning) where every value is NaN."""
    x = np.asarray(x, dtype=np.float64)
    count = np.isfinite(x).sum(axis=axis)
    total = np.nansum(x, axis=axis)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


def nanmean(x: np.ndarray) -> float:
    return float(nanmean_rows(np.ravel(x), axis=0))


def argmax_weights(utility: np.ndarray) -> np.ndarray:
    """Routing weights of argmax: 1 on the top model, 1/t on each of t exactly tied top models."""
    u = np.asarray(utility, dtype=np.float64)
    u = np.where(np.isnan(u), -np.inf, u)
    top = u == u.max(axis=1, keepdims=True)
    return top / top.sum(axis=1, keepdims=True)


def decide(scores: np.ndarray, labels: np.ndarray | None = None) -> np.ndarray:
    """Routing weights of argmax(scores) over the models with a label (all models without ``labels``)."""
    s = np.asarray(scores, dtype=np.float64)
    return argmax_weights(s if labels is None else np.where(np.isfinite(labels), s, np.nan))


def per_query_accuracy(weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Expected label of the routed model per query (NaN where no chosen model has a label)."""
    y = np.asarray(labels, dtype=np.float64)
    observed = np.isfinite(y)
    w = np.where(observed, np.asarray(weights, dtype=np.float64), 0.0)
    mass = w.sum(axis=1)
    value = (w * np.where(observed, y, 0.0)).sum(axis=1)
    return np.divide(value, mass, out=np.full(len(y), np.nan), where=mass > 0)


def accuracy(weights: np.ndarray, labels: np.ndarray) -> float:
    """Routing accuracy of a decision (see the module docstring for ties and missing labels)."""
    return nanmean(per_query_accuracy(weights, labels))


def score_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Routing accuracy of ``decide(scores, labels)``: argmax over labelled models, ties split evenly."""
    return accuracy(decide(scores, labels), labels)


def strict_preference(preference: np.ndarray) -> np.ndarray:
    """Scores that rank models as ``preference`` does with no ties left: equal preferences go to the
    lower model index first (as ``nanargmax`` names the best single model), NaN last."""
    pref = np.nan_to_num(np.asarray(preference, dtype=np.float64), nan=-np.inf, posinf=np.finfo(np.float64).max)
    order = np.lexsort((np.arange(len(pref)), -pref))  # most preferred first
    strict = np.empty(len(pref))
    strict[order] = np.arange(len(pref), 0, -1)
    return strict


def best_single_per_query(labels: np.ndarray, preference: np.ndarray) -> np.ndarray:
    """Per query, the label of the most preferred model that has one (``preference``: e.g. train means;
    ties: the lower model index, the model the reference names)."""
    order = strict_preference(preference)
    return per_query_accuracy(decide(np.broadcast_to(order, np.shape(labels)), labels), labels)


def random_per_query(labels: np.ndarray) -> np.ndarray:
    return nanmean_rows(labels, axis=1)


def random_accuracy(labels: np.ndarray) -> float:
    """Expected accuracy of a uniformly random router: mean over queries of the mean label."""
    return nanmean(random_per_query(labels))


def oracle_per_query(labels: np.ndarray) -> np.ndarray:
    """The best label per query (NaN where a query has none); its mean is ``oracle_accuracy``."""
    best = np.where(np.isfinite(labels), labels, -np.inf).max(axis=1).astype(np.float64)
    return np.where(np.isfinite(best), best, np.nan)


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
