"""Every routing metric, computed on the decisions the routing rule makes: the headline numbers of
training's ``metrics.json``, the evaluator, the claims and the ``routing_accuracy`` evaluate module.

Conventions (N queries x M models):

- ``labels``: float matrix in [0, 1], NaN = missing. Binary labels are 0/1; graded labels (e.g. the
  share of passing samples) are used as they are wherever a metric is an average of labels.
- ``scores``: what a router predicts per (query, model); higher = route there.
- ``tasks``: optional task name per query; with ``how="macro"`` every average is the plain mean of
  per-task averages (each task weighs the same, as multi-benchmark routing papers report), with
  ``how="micro"`` (default) the mean over queries.

**Decisions.** Each query goes to ``routertrain.routing.rule.choose`` over the whole pool, as in
deployment: exact ties go to the lower cost, then the higher mean train label (``prior``), then pool
order; a NaN score is never chosen. Metrics score exactly these decisions (``decide`` gives them as
one-hot weights), so an accuracy reported here is the accuracy of what ``route()`` and ``serve``
return for the same scores.

**Missing labels** (``missing``): decisions never look at the test split's labels. Then
``complete`` (default) scores only the queries on which every model has a label (``scored`` says which;
reports give their count), and ``wrong`` scores every query, a chosen model without a label counting
as a failure (label 0). Either way every router is scored on the same queries, and no router beats
the oracle. ``coverage`` is the share of queries whose chosen model has a label.

Reference routers:

- best single: the rule applied to the models' mean labels on train (macro: the mean of per-task
  means), i.e. the model best on train, ties broken by the rule.
- task prior: per task, the models' mean labels on that task's train queries as scores; a model
  with no train label in that task gets its overall train mean; tasks unseen in train use the
  overall means.
- random: the mean over queries of the mean label across the models (the expected value).
- oracle: the best label per query.
- gap closed: (routing - best single) / (oracle - best single).
"""

from __future__ import annotations

import numpy as np

from routertrain.routing.outcome import MISSING, check_missing, chosen_labels, scored  # noqa: F401 (re-exported)
from routertrain.routing.rule import check_cost_options, check_number, choose, nanmean_rows, one_hot  # noqa: F401 (re-exported)

AVERAGES = ("micro", "macro")


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


def best_single_index(labels: np.ndarray, tasks=None, how: str = "micro", costs=None) -> int:
    """The best single model: the rule applied to the mean labels (``how``) on ``labels`` (train)."""
    means = model_means(labels, tasks, how)
    return int(choose(means[None, :], costs, prior=means)[0])


# --- decisions and their accuracy -------------------------------------------------------------


def decide(scores: np.ndarray, costs=None, prior=None, cost_weight: float = 0.0) -> np.ndarray:
    """The rule's decisions as one-hot routing weights (N x M), over the whole pool."""
    scores = np.asarray(scores, dtype=np.float64)
    return one_hot(choose(scores, costs, cost_weight, prior=prior), scores.shape[1])


def per_query_accuracy(weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Expected label of the routed model per query (NaN where a chosen model has no label)."""
    y = np.asarray(labels, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    value = (w * np.where(np.isfinite(y), y, 0.0)).sum(axis=1)
    unlabelled = ((w > 0) & ~np.isfinite(y)).any(axis=1)
    return np.where(unlabelled, np.nan, value)


def coverage(choice: np.ndarray, labels: np.ndarray) -> float:
    """The share of queries whose chosen model has a label (1.0 on complete labels)."""
    y = np.asarray(labels, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    return float(np.isfinite(y[np.arange(len(y)), np.asarray(choice, dtype=np.int64)]).mean())


def chosen_accuracy(choice: np.ndarray, labels: np.ndarray, tasks=None, how: str = "micro", missing: str = "complete") -> float:
    """Routing accuracy of explicit choices (one model index per query), scored as ``missing`` says."""
    values, keep = chosen_labels(choice, labels, missing)
    return average(values, None if tasks is None else np.asarray(tasks)[keep], how)


def accuracy(weights: np.ndarray, labels: np.ndarray, tasks=None, how: str = "micro") -> float:
    """Routing accuracy of a decision, averaged ``how`` over ``tasks``."""
    return average(per_query_accuracy(weights, labels), tasks, how)


def score_accuracy(scores: np.ndarray, labels: np.ndarray, tasks=None, how: str = "micro", costs=None, prior=None, missing: str = "complete") -> float:
    """Routing accuracy of the rule's decisions on ``scores``: the one definition of routing accuracy."""
    return chosen_accuracy(choose(scores, costs, prior=prior), labels, tasks, how, missing)


# --- reference routers ------------------------------------------------------------------------


def best_single_per_query(labels: np.ndarray, preference: np.ndarray, costs=None) -> np.ndarray:
    """Per query, the label of the model the rule picks on ``preference`` (e.g. train means)."""
    labels = np.asarray(labels, dtype=np.float64)
    pref = np.asarray(preference, dtype=np.float64)
    return labels[:, int(choose(pref[None, :], costs, prior=pref)[0])]


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


def routing_report(scores: np.ndarray, labels: np.ndarray, train_labels: np.ndarray, tasks=None, train_tasks=None, how: str = "micro",
                   costs=None, missing: str = "complete", choice: np.ndarray | None = None) -> dict:
    """The headline numbers of one split, averaged ``how``, on the rule's decisions (ties: ``costs``,
    then the train means): routing accuracy, best single (chosen on train with the same average), task
    prior (when tasks are known), oracle, random, gap closed, and, with tasks, each task's routing
    accuracy. Queries are scored as ``missing`` says (``n_queries`` of ``n_total``). ``choice``: the
    decisions to score when the router makes its own (a saved setting), else the rule's on ``scores``."""
    how_used = check_average(how) if tasks is not None else "micro"
    y, keep = scored(labels, missing)
    prior = model_means(train_labels, train_tasks, how_used)
    choice = choose(scores, costs, prior=prior) if choice is None else np.asarray(choice, dtype=np.int64)
    sub = None if tasks is None else np.asarray(tasks)[keep]
    routed = y[np.arange(len(y)), choice[keep]]
    single = best_single_per_query(y, prior, costs)
    report = {
        "routing_acc": average(routed, sub, how_used),
        "best_single_acc": average(single, sub, how_used),
        "oracle_acc": oracle_accuracy(y, sub, how_used),
        "random_acc": random_accuracy(y, sub, how_used),
        "average": how_used,
        "missing": missing,
        "n_queries": int(keep.sum()),
        "n_total": int(len(keep)),
        "coverage": coverage(choice, labels),
    }
    report["gap_closed"] = gap_closed(report["routing_acc"], report["best_single_acc"], report["oracle_acc"])
    if tasks is not None and train_tasks is not None:
        prior_scores = task_prior_scores(train_tasks, train_labels, tasks, how_used)
        report["task_prior_acc"] = score_accuracy(prior_scores, labels, tasks, how_used, costs, prior, missing)
    if tasks is not None:
        report["per_task"] = per_task(routed, sub)
    return report
