"""A blend at inference: a fine-tuned router's P(correct), kNN on its own pooled embeddings and the
soft task prior, weighed as a blend folder says. Fitting the weights on validation is
``routertrain.evaluation.blend``; shipping them is ``routertrain.hub.blend``.

Three per-model score matrices in [0, 1], all from one forward pass of the fine-tuned router:

    finetuned   its own P(correct);
    knn         the mean train label of the k training queries nearest to the query in the router's
                own pooled embedding (cosine); a model with no label among them gets its train mean;
    prior       the task prior made soft: the share of each task among those k neighbours times that
                task's per-model mean train label. No task label is needed at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from routertrain.routing.neighbours import neighbour_means, neighbours
from routertrain.routing.rule import nanmean_rows

COMPONENTS = ("finetuned", "knn", "prior")


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
        return nanmean_rows(self.labels, axis=0)


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (cosine similarity as a dot product); zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


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
