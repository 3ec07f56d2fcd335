"""Nearest neighbours by cosine on unit-norm vectors, and the mean train label over them: what the kNN
baseline and a blend's kNN component read (``routertrain.evaluation.baselines``, ``routing.blend``)."""

from __future__ import annotations

import numpy as np

from routertrain.routing.rule import nanmean_rows

BLOCK = 1024  # query rows per similarity block (bounds memory: BLOCK x n_train floats)


def neighbours(queries: np.ndarray, keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` most similar rows of ``keys`` per query row, most similar first."""
    out = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), BLOCK):
        sims = queries[start : start + BLOCK] @ keys.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < keys.shape[0] else np.tile(np.arange(keys.shape[0]), (len(sims), 1))
        order = np.argsort(-np.take_along_axis(sims, top, axis=1), axis=1, kind="stable")
        out[start : start + BLOCK] = np.take_along_axis(top, order, axis=1)
    return out


def fill(scores: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``scores`` with each non-finite entry replaced by its model's ``fallback`` (NaN fallback: 0)."""
    return np.where(np.isfinite(scores), scores, np.nan_to_num(fallback, nan=0.0)[None, :])


def neighbour_means(labels: np.ndarray, idx: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Mean train label per model over each query's neighbour indices ``idx`` (n, k), missing labels
    skipped; ``fallback`` (per model) where none of the neighbours has a label."""
    blocks = [nanmean_rows(labels[idx[i : i + BLOCK]], axis=1) for i in range(0, len(idx), BLOCK)]
    return fill(np.concatenate(blocks) if blocks else np.zeros((0, labels.shape[1])), fallback)
