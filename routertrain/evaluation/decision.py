"""The one decision core: the routing rule, and the metrics every layer reports (training's
``metrics.json``, the evaluator, the claims, the ``routing_accuracy`` evaluate module).

Conventions (N queries x M models):

- ``labels``: float matrix in [0, 1], NaN = missing. Binary labels are 0/1; graded labels (e.g. the
  share of passing samples) are used as they are wherever a metric is an average of labels.
- ``scores``: what a router predicts per (query, model); higher = route there.
- ``tasks``: optional task name per query; with ``how="macro"`` every average is the plain mean of
  per-task averages (each task weighs the same, as multi-benchmark routing papers report), with
  ``how="micro"`` (default) the mean over queries.

The routing rule (``decide``): each query goes to the argmax of its scores over the models that
have a label for it (a model without one is treated as absent from the pool for that query). Exact
ties are split evenly among the tied models: the expected value of breaking ties at random, so no
model is favoured by its position in the pool. A decision is an N x M weight matrix whose rows sum
to 1; ``per_query_accuracy`` is the expected label of the routed model. Because decisions only pick
labelled models, every router, the oracle and random are scored on the same queries (those with at
least one label), and no router can beat the oracle.

Reference routers:

- best single: the models ranked by their mean label on train (macro: the mean of per-task means;
  equal means: the lower model index first); each query goes to the first of them that has a
  label (with complete labels: the one model best on train).
- task prior: per task, the models ranked by their mean label on that task's train queries; a
  model with no train label in that task gets its overall train mean; tasks unseen in train use
  the overall means.
- random: the mean over queries of the mean label across the models that have one.
- oracle: the best label per query.
- gap closed: (routing - best single) / (oracle - best single).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

AVERAGES = ("micro", "macro")


def nanmean_rows(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Mean over ``axis`` ignoring NaN; NaN (without a warning) where every value is NaN."""
    x = np.asarray(x, dtype=np.float64)
    count = np.isfinite(x).sum(axis=axis)
    total = np.nansum(x, axis=axis)
    return np.divide(total, count, out=np.full(np.shape(total), np.nan), where=count > 0)


def nanmean(x: np.ndarray) -> float:
    return float(nanmean_rows(np.ravel(x), axis=0))


def check_average(how: str) -> str:
    if how not in AVERAGES:
        raise ValueError(f"average must be micro or macro, got {how!r}")
    return how


def average(values: np.ndarray, tasks=None, how: str = "micro") -> float:
    """The headline average of per-query ``values`` (NaN = not counted): over queries (micro), or
    the plain mean of per-task means (macro; tasks without a counted query are left out)."""
    values = np.asarray(values, dtype=np.float64)
    if check_average(how) == "micro" or tasks is None:
        return nanmean(values)
    tasks = np.asarray(tasks)
    per_task = [nanmean(values[tasks == t]) for t in np.unique(tasks)]
    return nanmean(np.array(per_task))


def per_task(values: np.ndarray, tasks) -> dict[str, float]:
    """The mean of per-query ``values`` within each task (NaN = not counted)."""
    values, tasks = np.asarray(values, dtype=np.float64), np.asarray(tasks)
    return {str(t): nanmean(values[tasks == t]) for t in np.unique(tasks)}


def model_means(labels: np.ndarray, tasks=None, how: str = "micro") -> np.ndarray:
    """Each model's mean label over the queries where it has one (macro: the mean of its per-task means)."""
    labels = np.asarray(labels, dtype=np.float64)
    if check_average(how) == "macro" and tasks is not None:
        tasks = np.asarray(tasks)
        return nanmean_rows(np.stack([model_means(labels[tasks == t]) for t in np.unique(tasks)]), axis=0)
    return nanmean_rows(labels, axis=0)


def strict_preference(preference: np.ndarray) -> np.ndarray:
    """Scores that rank models as ``preference`` does with no ties left: equal preferences go to the
    lower model index first (as ``best_single_index`` names the best single model), NaN last."""
    pref = np.nan_to_num(np.asarray(preference, dtype=np.float64), nan=-np.inf, posinf=np.finfo(np.float64).max)
    order = np.lexsort((np.arange(len(pref)), -pref))  # most preferred first
    strict = np.empty(len(pref))
    strict[order] = np.arange(len(pref), 0, -1)
    return strict


def best_single_index(labels: np.ndarray, tasks=None, how: str = "micro") -> int:
    """The best single model: highest mean label (``how``), the lower index on exact ties."""
    return int(np.argmax(strict_preference(model_means(labels, tasks, how))))


# --- the routing rule -------------------------------------------------------------------------


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


def chosen_accuracy(choice: np.ndarray, labels: np.ndarray, tasks=None, how: str = "micro") -> float:
    """Routing accuracy of explicit choices (one model index per query, e.g. a cost-aware rule's);
    a chosen model without a label leaves its query out."""
    labels = np.asarray(labels, dtype=np.float64)
    return average(labels[np.arange(len(labels)), np.asarray(choice, dtype=np.int64)], tasks, how)


def accuracy(weights: np.ndarray, labels: np.ndarray, tasks=None, how: str = "micro") -> float:
    """Routing accuracy of a decision, averaged ``how`` over ``tasks``."""
    return average(per_query_accuracy(weights, labels), tasks, how)


def score_accuracy(scores: np.ndarray, labels: np.ndarray, tasks=None, how: str = "micro") -> float:
    """Routing accuracy of ``decide(scores, labels)``: the one definition of routing accuracy."""
    return accuracy(decide(scores, labels), labels, tasks, how)


# --- the rule at inference: one model per query, costs considered ---


def check_cost_options(cost_weight, max_cost) -> None:
    """``cost_weight`` and ``max_cost``, each None (the saved setting decides) or a finite number >= 0."""
    if cost_weight is not None:
        check_number("cost_weight", cost_weight)
    if max_cost is not None:
        check_number("max_cost", max_cost)


def check_number(name: str, value) -> None:
    """A one-line error unless ``value`` is a finite number >= 0 (cost weights and budgets)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def choose(probs: np.ndarray, costs: Sequence[float] | None, cost_weight: float = 0.0, max_cost: float | None = None) -> np.ndarray:
    """Index of the chosen model per row of ``probs`` under a cost weight or a cost budget: the argmax
    of P(correct) - cost_weight * cost (``max_cost``: over the models that cost at most that). At
    inference a tie goes to the lower model index; ``decide`` scores exact ties as their average,
    the expected value of breaking them at random (real-valued probabilities almost never tie)."""
    check_cost_options(cost_weight, max_cost)
    if (cost_weight or max_cost is not None) and costs is None:
        raise ValueError("this router has no model costs: cost_weight and max_cost need costs (set them when building the dataset)")
    utility = np.asarray(probs, dtype=np.float64).copy()
    if costs is not None:
        cost = np.asarray(costs, dtype=np.float64)
        utility -= cost_weight * cost
        if max_cost is not None:
            allowed = cost <= max_cost
            if not allowed.any():
                raise ValueError(f"no model costs at most max_cost={max_cost} (cheapest: {cost.min()}); raise the budget")
            utility[:, ~allowed] = -np.inf
    return utility.argmax(axis=1)


# --- reference routers ------------------------------------------------------------------------


def best_single_per_query(labels: np.ndarray, preference: np.ndarray) -> np.ndarray:
    """Per query, the label of the most preferred model that has one (``preference``: e.g. train
    means; ties: the lower model index, the model ``best_single_index`` names)."""
    order = strict_preference(preference)
    return per_query_accuracy(decide(np.broadcast_to(order, np.shape(labels)), labels), labels)


def random_per_query(labels: np.ndarray) -> np.ndarray:
    return nanmean_rows(labels, axis=1)


def oracle_per_query(labels: np.ndarray) -> np.ndarray:
    """The best label per query (NaN where a query has none)."""
    best = np.where(np.isfinite(labels), labels, -np.inf).max(axis=1).astype(np.float64)
    return np.where(np.isfinite(best), best, np.nan)


def random_accuracy(labels: np.ndarray, tasks=None, how: str = "micro") -> float:
    """Expected accuracy of a uniformly random router."""
    return average(random_per_query(labels), tasks, how)


def oracle_accuracy(labels: np.ndarray, tasks=None, how: str = "micro") -> float:
    return average(oracle_per_query(labels), tasks, how)


def gap_closed(acc: float, best_single: float, oracle: float) -> float:
    span = oracle - best_single
    return float((acc - best_single) / span) if span > 0 else float("nan")


def task_prior_scores(train_tasks, train_labels: np.ndarray, tasks, how: str = "micro") -> np.ndarray:
    """The task-prior router's scores: each query gets its task's per-model mean label on train; a
    model without a train label in that task gets its overall train mean (averaged ``how``, as the
    best single model is chosen); unseen tasks get the overall means, i.e. the best single model.
    Routing by ``decide`` then picks the model best on the query's task."""
    train_tasks, train_labels = np.asarray(train_tasks), np.asarray(train_labels, dtype=np.float64)
    overall = model_means(train_labels, train_tasks, how)
    by_task = {}
    for t in np.unique(train_tasks):
        means = model_means(train_labels[train_tasks == t])
        by_task[t] = np.where(np.isfinite(means), means, overall)
    return np.stack([by_task.get(t, overall) for t in np.asarray(tasks)]) if len(tasks) else np.empty((0, len(overall)))


def routing_report(scores: np.ndarray, labels: np.ndarray, train_labels: np.ndarray, tasks=None, train_tasks=None, how: str = "micro") -> dict:
    """The headline numbers of one split, averaged ``how``: routing accuracy, best single (chosen on
    train with the same average), task prior (when tasks are known), oracle, random, gap closed,
    and, with tasks, each task's routing accuracy."""
    how_used = check_average(how) if tasks is not None else "micro"
    labels = np.asarray(labels, dtype=np.float64)
    routed = per_query_accuracy(decide(scores, labels), labels)
    single = best_single_per_query(labels, model_means(train_labels, train_tasks, how_used))
    report = {
        "routing_acc": average(routed, tasks, how_used),
        "best_single_acc": average(single, tasks, how_used),
        "oracle_acc": oracle_accuracy(labels, tasks, how_used),
        "random_acc": random_accuracy(labels, tasks, how_used),
        "average": how_used,
        "n_queries": int(len(labels)),
    }
    report["gap_closed"] = gap_closed(report["routing_acc"], report["best_single_acc"], report["oracle_acc"])
    if tasks is not None and train_tasks is not None:
        prior = task_prior_scores(train_tasks, train_labels, tasks, how_used)
        report["task_prior_acc"] = score_accuracy(prior, labels, tasks, how_used)
    if tasks is not None:
        report["per_task"] = per_task(routed, tasks)
    return report


REFERENCES = (("best_single_acc", "the best single model"), ("task_prior_acc", "the task-prior router"))


def shortfalls(report: dict, split: str = "validation") -> list[str]:
    """One sentence per reference router (best single, task prior; both chosen on train) that the
    router's routing accuracy in ``report`` does not beat, with the numbers; empty when it beats all."""
    acc = report.get("routing_acc")
    if acc is None:
        return []
    return [
        f"on {split}, this router ({acc:.4f}) does not beat {label} ({report[key]:.4f}): {acc - report[key]:+.4f}"
        for key, label in REFERENCES
        if key in report and not acc > report[key]
    ]
