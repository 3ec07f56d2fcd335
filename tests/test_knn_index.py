"""kNN neighbour search: FAISS (exact by default, HNSW as an option) agrees with the numpy search it replaced."""

import numpy as np
import pytest

from routertrain.evaluation import baselines


def unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return unit(rng.normal(size=(300, 24))), unit(rng.normal(size=(2000, 24))), (rng.random((2000, 5)) < 0.5).astype(np.float64)


def test_faiss_exact_finds_the_same_neighbours_in_the_same_order(data):
    queries, keys, _ = data
    for k in (1, 10, 200):
        np.testing.assert_array_equal(baselines.neighbours(queries, keys, k), baselines.numpy_neighbours(queries, keys, k))


def test_knn_scores_agree_with_the_numpy_search_on_ties_too(data):
    """Duplicate keys (repeated queries) tie: either order gives the same neighbour similarities."""
    queries, keys, labels = data
    keys = np.concatenate([keys, keys[:500]])
    labels = np.concatenate([labels, labels[:500]])
    ours, theirs = baselines.neighbours(queries, keys, 50), baselines.numpy_neighbours(queries, keys, 50)
    sims = lambda idx: np.take_along_axis(queries @ keys.T, idx, axis=1)  # noqa: E731
    np.testing.assert_allclose(sims(ours), sims(theirs), atol=1e-6)
    same = (labels[ours] == labels[theirs]).all(axis=(1, 2))  # rows without ties give equal means
    means = labels.mean(axis=0)
    np.testing.assert_allclose(baselines.neighbour_means(labels, ours, means)[same], baselines.neighbour_means(labels, theirs, means)[same])


def test_hnsw_is_an_approximate_option_with_high_recall(data, monkeypatch):
    queries, keys, _ = data
    exact = baselines.neighbours(queries, keys, 10)
    approx = baselines.neighbours(queries, keys, 10, index="hnsw")
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact)])
    assert recall > 0.95
    monkeypatch.setenv("ROUTERTRAIN_KNN_INDEX", "hnsw")
    np.testing.assert_array_equal(baselines.neighbours(queries, keys, 10), approx)
    with pytest.raises(ValueError, match="use one of exact, hnsw"):
        baselines.neighbours(queries, keys, 10, index="ivf")
