"""Routing metrics on a label matrix ``labels`` (N queries x M models, values in [0, 1], NaN = missing).

- routing accuracy: the mean label of the model each query is routed to, choosing among the
  models that have a label for that query (queries with no label at all are left out).
- oracle: the mean over queries of the best label any model gets (the per-query upper bound).
- best single: one fixed model for every query, the best on the training split when its means are
  given (else on the split itself, optimistic); where it has no label, the next best is used.
- gap closed: (routing - best single) / (oracle - best single).
"""

from __future__ import annotations

import numpy as np


def routing_accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Route each query to argmax of ``scores`` among the models that have a label for it (ties:
    the first model) and average the chosen labels. (``routertrain.evaluation`` splits exact ties
    evenly instead; with real-valued router scores the two agree.)"""
    labels = np.asarray(labels, dtype=np.float64)
    choice = np.where(np.isfinite(labels), np.asarray(scores, dtype=np.float64), -np.inf).argmax(axis=1)
    return chosen_accuracy(choice, labels)


def chosen_accuracy(choice: np.ndarray, labels: np.ndarray) -> float:
    picked = np.asarray(labels, dtype=np.float64)[np.arange(len(choice)), choice]
    return float(np.nanmean(picked)) if np.isfinite(picked).any() else float("nan")


def oracle_accuracy(labels: np.ndarray) -> float:
    labels = np.asarray(labels, dtype=np.float64)
    observed = np.isfinite(labels).any(axis=1)
    return float(np.nanmax(labels[observed], axis=1).mean()) if observed.any() else float("nan")


def model_means(labels: np.ndarray) -> np.ndarray:
    """Each model's mean label over the queries where it has one."""
    labels = np.asarray(labels, dtype=np.float64)
    counts = np.isfinite(labels).sum(axis=0)
    sums = np.nansum(labels, axis=0)
    return np.divide(sums, counts, out=np.full(labels.shape[1], np.nan), where=counts > 0)


def best_single_index(labels: np.ndarray) -> int:
    return int(np.nanargmax(model_means(labels)))


def best_single_accuracy(labels: np.ndarray, preference: np.ndarray | None = None) -> float:
    """One fixed model for every query: the first of ``preference`` (a model score, e.g. the train
    means; default this split's means) that has a label for the query."""
    labels = np.asarray(labels, dtype=np.float64)
    preference = model_means(labels) if preference is None else np.asarray(preference, dtype=np.float64)
    return routing_accuracy(np.broadcast_to(np.nan_to_num(preference, nan=-np.inf), labels.shape), labels)


def gap_closed(acc: float, best_single: float, oracle: float) -> float:
    span = oracle - best_single
    return float((acc - best_single) / span) if span > 0 else float("nan")


def routing_report(scores: np.ndarray, labels: np.ndarray, train_means: np.ndarray | None = None) -> dict:
    """The headline numbers of one split: routing accuracy, best single, oracle, gap closed."""
    acc = routing_accuracy(scores, labels)
    single = best_single_accuracy(labels, train_means)
    oracle = oracle_accuracy(labels)
    return {
        "routing_acc": acc,
        "best_single_acc": single,
        "oracle_acc": oracle,
        "gap_closed": gap_closed(acc, single, oracle),
        "n_queries": int(len(labels)),
    }


def task_prior_scores(train_tasks, train_labels: np.ndarray, tasks) -> np.ndarray:
    """The task-prior router's scores: each query gets its task's per-model mean label on train, so
    it goes to the model best on that task (the next best where that one has no label). Tasks
    unseen in train get the overall train means."""
    train_tasks = np.asarray(train_tasks)
    fallback = np.nan_to_num(model_means(train_labels), nan=-np.inf)
    means = {t: np.nan_to_num(model_means(train_labels[train_tasks == t]), nan=-np.inf) for t in np.unique(train_tasks)}
    return np.stack([means.get(t, fallback) for t in tasks])


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
