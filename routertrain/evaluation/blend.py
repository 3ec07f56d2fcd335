"""Fitting a blend of a fine-tuned router with kNN and the task prior: the weights chosen on validation.

The components and how they combine are ``routertrain.routing.blend`` (what a shipped blend runs).
``fit`` chooses k first, as the kNN router's own (best on validation), then the weights over a grid of
the simplex, best on validation with the dataset's headline average (``decision.score_accuracy``).
Nothing here reads test. ``fit_router_blend`` fits one for a trained router; ``routertrain.hub.blend``
ships it and ``routertrain.hub.router.BlendRouter`` applies it.
"""

from __future__ import annotations

import numpy as np

from routertrain.evaluation.baselines import K_GRID
from routertrain.evaluation.decision import model_means, score_accuracy, task_prior_scores
from routertrain.routing.blend import COMPONENTS, TrainMemory, combine, components, components_of, unit  # noqa: F401 (re-exported)
from routertrain.routing.neighbours import neighbours

STEP = 0.1  # the weight grid's step on the simplex (66 weightings)


def memory(embeddings: np.ndarray, labels: np.ndarray, tasks=None, how: str = "micro") -> TrainMemory:
    """The training split as the blend keeps it. Task means follow ``task_prior_scores`` (a model
    without a label in a task gets its overall mean, averaged ``how``)."""
    labels = np.asarray(labels, dtype=np.float64)
    if tasks is None:
        names, ids, means = ["all"], np.zeros(len(labels), dtype=np.int64), model_means(labels)[None, :]
    else:
        tasks = np.asarray(tasks)
        names = sorted(set(tasks.tolist()))
        ids = np.searchsorted(np.asarray(names), tasks).astype(np.int64)
        means = task_prior_scores(tasks, labels, np.asarray(names), how)
    return TrainMemory(unit(embeddings), labels, ids, np.asarray(means, dtype=np.float64), list(names))


def weight_grid(step: float = STEP) -> list[dict[str, float]]:
    """Every weighting on the simplex in steps of ``step``, the most fine-tuned first (so that ties keep it)."""
    n = int(round(1 / step))
    grid = [(a, b, n - a - b) for a in range(n, -1, -1) for b in range(n - a, -1, -1)]
    return [{name: round(w * step, 10) for name, w in zip(COMPONENTS, ws)} for ws in grid]


def key(weights: dict[str, float]) -> str:
    return "/".join(f"{weights[name]:g}" for name in COMPONENTS)


def fit(mem: TrainMemory, embeddings: np.ndarray, finetuned: np.ndarray, labels: np.ndarray, tasks=None,
        how: str = "micro", k_grid: tuple[int, ...] = K_GRID, step: float = STEP, costs=None, prior=None, missing: str = "complete") -> dict:
    """The blend best on the validation queries given (their pooled ``embeddings``, P(correct)
    ``finetuned``, ``labels`` and ``tasks``): k as the kNN router's own, then the weights. Accuracies
    score the routing rule's decisions with the router's tie-break keys (``costs``, ``prior``)."""
    labels = np.asarray(labels, dtype=np.float64)
    grid = tuple(k for k in k_grid if k <= len(mem.keys)) or (len(mem.keys),)
    acc = lambda scores: score_accuracy(scores, labels, tasks, how, costs, prior, missing)  # noqa: E731
    idx = neighbours(unit(embeddings), mem.keys, max(grid))  # most similar first: the k nearest are its first k columns
    k_acc = {k: acc(components_of(mem, idx[:, :k], finetuned)["knn"]) for k in grid}
    k = max(grid, key=lambda k: np.nan_to_num(k_acc[k], nan=-1.0))  # first of the best on ties
    parts = components_of(mem, idx[:, :k], finetuned)
    weight_acc = {key(w): acc(combine(parts, w)) for w in weight_grid(step)}
    best = max(weight_grid(step), key=lambda w: np.nan_to_num(weight_acc[key(w)], nan=-1.0))
    return {
        "k": int(k),
        "weights": best,
        "average": how,
        "chosen_on": "validation",
        "validation_acc": {"blend": weight_acc[key(best)], **{name: acc(parts[name]) for name in COMPONENTS}},
        "k_validation_acc": {str(k): v for k, v in k_acc.items()},
        "weights_validation_acc": weight_acc,
    }


def fit_router_blend(router, data, average: str, batch_size: int = 64, missing: str = "complete") -> tuple[TrainMemory, dict]:
    """The blend of ``router`` (a ``routertrain.hub.router.Router``) on ``data`` (a ``RoutingData`` of
    its pool): the training split's memory, and the k and weights best on the validation split."""
    if list(data.models) != list(router.models):
        raise ValueError(f"the data's models {list(data.models)[:3]}... are not the router's pool {router.models[:3]}...; blend a router with the data it was trained on")
    _, train_vectors = router.encode(data.queries("train"), batch_size)
    mem = memory(train_vectors, data.labels("train"), data.tasks("train"), average)
    probs, vectors = router.encode(data.queries("validation"), batch_size)
    spec = fit(mem, vectors, probs, data.labels("validation"), data.tasks("validation"), average,
               costs=router.costs, prior=router.train_means, missing=missing)
    return mem, spec
