"""Routing metrics against hand computations, including ties and missing labels."""

import numpy as np
import pytest

from routertrain.evaluation import decision as M

NAN = float("nan")


def test_routing_accuracy_by_hand():
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=float)
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.1, 0.7], [0.0, 0.0, 0.5], [0.3, 0.3, 0.1]])
    # choices: 0 (1), 2 (0), 2 (1), tie -> first = 0 (1)  => 3/4
    assert M.routing_accuracy(scores, labels) == pytest.approx(0.75)
    assert M.oracle_accuracy(labels) == 1.0
    assert M.model_means(labels).tolist() == [0.5, 0.5, 0.25]
    assert M.best_single_index(labels) == 0  # tie between 0 and 1: first
    assert M.best_single_accuracy(labels) == 0.5
    assert M.best_single_accuracy(labels, np.array([0.1, 0.2, 0.3])) == 0.25
    assert M.gap_closed(0.75, 0.5, 1.0) == pytest.approx(0.5)


def test_missing_labels_are_left_out():
    labels = np.array([[1.0, NAN], [NAN, 0.0], [0.0, 1.0]])
    assert M.model_means(labels).tolist() == [0.5, 0.5]
    assert M.oracle_accuracy(labels) == pytest.approx((1 + 0 + 1) / 3)
    # route all to model 1: labels NAN, 0, 1 -> mean over observed = 0.5
    assert M.chosen_accuracy(np.array([1, 1, 1]), labels) == pytest.approx(0.5)


def test_graded_labels():
    labels = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert M.oracle_accuracy(labels) == pytest.approx(0.7)
    assert M.routing_accuracy(labels, labels) == pytest.approx(0.7)


def test_task_prior_router_by_hand():
    train_tasks = ["m", "m", "c", "c"]
    train_labels = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    scores = M.task_prior_scores(train_tasks, train_labels, ["c", "m", "unseen"])
    assert scores.argmax(axis=1).tolist() == [1, 0, 0]
    # a query whose preferred model has no label goes to the next best
    labels = np.array([[NAN, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert M.routing_accuracy(scores, labels) == pytest.approx((0.0 + 0.0 + 1.0) / 3)


def test_best_single_falls_back_where_its_label_is_missing():
    labels = np.array([[NAN, 1.0], [1.0, 0.0], [1.0, 0.0]])
    # preferred model 0 (train means): query 0 falls back to model 1 -> (1 + 1 + 1) / 3
    assert M.best_single_accuracy(labels, np.array([0.9, 0.2])) == pytest.approx(1.0)
    assert M.best_single_accuracy(labels, np.array([0.1, 0.2])) == pytest.approx(1 / 3)


def test_oracle_bounds_every_router_on_random_inputs():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = (rng.random((50, 5)) < rng.random(5)).astype(float)
        scores = rng.random((50, 5))
        acc = M.routing_accuracy(scores, labels)
        assert acc <= M.oracle_accuracy(labels) + 1e-12
        assert M.best_single_accuracy(labels) <= M.oracle_accuracy(labels) + 1e-12
