"""The blend of a fine-tuned router with kNN and the task prior, its weights chosen on validation.

Three per-model score matrices in [0, 1], all from one forward pass of the fine-tuned router:

    finetuned   its own P(correct);
    knn         the mean train label of the k training queries nearest to the query in the router's
                own pooled embedding (cosine); a model with no label among them gets its train mean;
    prior       the task prior made soft: the share of each task among those k neighbours times that
                task's per-model mean train label. No task label is needed at inference; a dataset
                without tasks gets the overall means (the best-single router's scores).

The blend is ``w_finetuned * finetuned + w_knn * knn + w_prior * prior``. ``fit`` chooses k first, as
the kNN router's own (best on validation), then the weights over a grid of the simplex, best on
validation with the dataset's headline average (``decision.score_accuracy``). Nothing here reads test.
``routertrain.hub.router.BlendRouter`` applies a fitted blend; ``routertrain blend`` ships one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from routertrain.evaluation.baselines import K_GRID, neighbour_means, neighbours
from routertrain.evaluation.decision import model_means, score_accuracy, task_prior_scores

COMPONENTS = ("finetuned", "knn", "prior")
STEP = 0.1  # the weight grid's step on the simplex (66 weightings)


@dataclass
class TrainMemory:
    """What the blend keeps of the training split: everything kNN and the soft prior read."""

    keys: np.ndarray  # (N, d) unit-norm pooled embeddings of the training queries
    labels: np.ndarray  # (N, M) training labels, NaN = missing
    task_ids: np.ndarray  # (N,) row of task_means each training query belongs to
    task_means: np.ndarray  # (T, M) per task, each model's mean train label (T = 1 without tasks)
    task_names: list  # the T task names ("all" without tasks)

    @property
    def means(self) -> np.ndarray:
        return model_means(self.labels)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity as a dot product); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


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


def components(mem: TrainMemory, embeddings: np.ndarray, finetuned: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The three score matrices of the queries whose pooled ``embeddings`` and P(correct) ``finetuned`` are given."""
    return components_of(mem, neighbours(unit(embeddings), mem.keys, min(k, len(mem.keys))), finetuned)


def components_of(mem: TrainMemory, idx: np.ndarray, finetuned: np.ndarray) -> dict[str, np.ndarray]:
    """The three score matrices, given each query's neighbour indices ``idx`` (n, k) into the training split."""
    share = np.zeros((len(idx), len(mem.task_names)))
    np.add.at(share, (np.repeat(np.arange(len(idx)), idx.shape[1]), mem.task_ids[idx].ravel()), 1.0 / max(idx.shape[1], 1))
    knn = neighbour_means(mem.labels, idx, mem.means)
    return {"finetuned": np.asarray(finetuned, dtype=np.float64), "knn": knn, "prior": share @ mem.task_means}


def combine(parts: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """The blended scores: the weighted sum of the components."""
    return sum(float(weights[name]) * parts[name] for name in COMPONENTS)


def weight_grid(step: float = STEP) -> list[dict[str, float]]:
    """Every weighting on the simplex in steps of ``step``, the most fine-tuned first (so that ties keep it)."""
    n = int(round(1 / step))
    grid = [(a, b, n - a - b) for a in range(n, -1, -1) for b in range(n - a, -1, -1)]
    return [{name: round(w * step, 10) for name, w in zip(COMPONENTS, ws)} for ws in grid]


def key(weights: dict[str, float]) -> str:
    return "/".join(f"{weights[name]:g}" for name in COMPONENTS)


def fit(mem: TrainMemory, embeddings: np.ndarray, finetuned: np.ndarray, labels: np.ndarray, tasks=None,
        how: str = "micro", k_grid: tuple[int, ...] = K_GRID, step: float = STEP) -> dict:
    """The blend best on the validation queries given (their pooled ``embeddings``, P(correct)
    ``finetuned``, ``labels`` and ``tasks``): k as the kNN router's own, then the weights."""
    labels = np.asarray(labels, dtype=np.float64)
    grid = tuple(k for k in k_grid if k <= len(mem.keys)) or (len(mem.keys),)
    acc = lambda scores: score_accuracy(scores, labels, tasks, how)  # noqa: E731
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
