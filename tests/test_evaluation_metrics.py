"""Evaluation metrics against hand-computed values (ties, missing labels), invariants, and the evaluate module."""

import math
from pathlib import Path

import numpy as np
import pytest

from routertrain.evaluation import decision as d
from routertrain.evaluation import metrics as m

NAN = float("nan")
REPO = Path(__file__).resolve().parents[1]

SCORES = np.array([[0.9, 0.9, 0.1], [0.2, 0.8, 0.5], [0.3, 0.1, 0.2]])
LABELS = np.array([[1, 0, 1], [0, NAN, 1], [NAN, NAN, NAN]])


def test_accuracy_splits_ties_and_skips_unlabelled_models():
    # row 0: models 0 and 1 tie -> (1 + 0) / 2; row 1: model 1 has no label -> model 2 (label 1); row 2: no labels
    assert np.allclose(d.per_query_accuracy(d.decide(SCORES, LABELS), LABELS), [0.5, 1.0, NAN], equal_nan=True)
    assert d.score_accuracy(SCORES, LABELS) == pytest.approx(0.75)


def test_best_single_breaks_exact_train_ties_toward_the_model_it_names():
    """A and B tie on train; the reference names A (the first), so its accuracy must be A's, not the
    average of A and B."""
    y_train = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert d.nanmean(d.best_single_per_query(y, d.model_means(y_train))) == 1.0
    assert d.best_single_index(y_train) == 0
    assert list(d.strict_preference([0.5, NAN, 0.5, 0.7])) == [3.0, 1.0, 2.0, 4.0]


def test_one_hot_decisions_match_the_chosen_labels():
    rng = np.random.default_rng(0)
    scores, labels = rng.random((50, 4)), rng.integers(0, 2, (50, 4)).astype(float)
    assert d.score_accuracy(scores, labels) == pytest.approx(labels[np.arange(50), scores.argmax(axis=1)].mean())


def test_reference_accuracies_by_hand():
    assert d.random_accuracy(LABELS) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert np.allclose(d.oracle_per_query(LABELS), [1, 1, NAN], equal_nan=True)
    assert d.nanmean(d.oracle_per_query(LABELS)) == pytest.approx(d.oracle_accuracy(LABELS))
    # constant scores = the random router's expected value
    assert d.score_accuracy(np.zeros_like(LABELS), LABELS) == pytest.approx(d.random_accuracy(LABELS))
    # best single: model 2 preferred; where it has no label, the next preferred
    labels = np.array([[0, 1, 1], [1, 0, NAN]])
    assert np.allclose(d.best_single_per_query(labels, [0.5, 0.1, 0.9]), [1, 1])


@pytest.mark.parametrize("seed", range(10))
def test_oracle_bounds_every_router_and_random(seed):
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random((40, 5)) < 0.2, NAN, rng.random((40, 5)).round(1))
    oracle = d.nanmean(d.oracle_per_query(labels))
    for scores in (rng.random((40, 5)), rng.integers(0, 3, (40, 5)), np.zeros((40, 5)), np.nan_to_num(labels)):
        assert d.score_accuracy(scores, labels) <= oracle + 1e-12
    assert d.random_accuracy(labels) <= oracle
    assert d.nanmean(d.best_single_per_query(labels, d.model_means(labels))) <= oracle + 1e-12


def test_auroc_by_hand_with_ties_and_graded_labels():
    assert m.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
    assert m.auroc([0.5, 0.5, 0.2, 0.9], [1, 0, 0, 1]) == pytest.approx(3.5 / 4)  # a tied pair counts half
    assert m.auroc([0.5, 0.5, 0.2, 0.9, 0.0], [0.7, 0.2, 0.0, 1.0, NAN]) == pytest.approx(3.5 / 4)  # graded: >= 0.5
    assert m.auroc([0.5, 0.5, 0.2, 0.9], [0.7, 0.2, 0.0, 1.0], threshold=0.1) == pytest.approx(1.0)
    assert math.isnan(m.auroc([0.1, 0.2], [1, 1]))


def test_log_loss_and_ece_by_hand():
    assert m.log_loss([0.5, 0.8], [1, 0]) == pytest.approx((math.log(2) + math.log(5)) / 2)
    assert m.log_loss([0.5], [0.25]) == pytest.approx(math.log(2))  # graded label = soft target
    assert m.log_loss([1.0], [0.0]) == pytest.approx(-math.log(1e-7))  # clipped
    # bins: [0.05] -> |0 - .05|; [0.15, 0.12] -> 2 * |0.5 - 0.135|; [0.95] -> |1 - .95|
    assert m.ece([0.05, 0.15, 0.12, 0.95, 0.5], [0, 1, 0, 1, NAN]) == pytest.approx((0.05 + 0.73 + 0.05) / 4)
    assert m.ece([1.0], [1.0]) == pytest.approx(0.0)  # p = 1 falls in the last bin


def test_calibration_means_over_models_skip_undefined():
    probs = np.array([[0.1, 0.9], [0.4, 0.8], [0.35, 0.7], [0.8, 0.6]])
    labels = np.array([[0, 1], [0, 1], [1, 1], [1, 1]])
    out = m.calibration(probs, labels)
    assert math.isnan(out["auroc_per_model"][1]) and out["auroc"] == pytest.approx(0.75)
    assert out["ece"] == pytest.approx(np.mean(out["ece_per_model"]))


def test_hard_queries_solved_sets_and_overlap():
    labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0.6, NAN, 0.4]])
    weights = np.eye(3)[[0, 1, 0, 2]]
    assert list(m.n_solvers(labels)) == [1, 2, 0, 1]
    assert list(m.hard_mask(labels, k=1)) == [True, False, False, True]
    assert m.hard_accuracy(weights, labels, k=1) == pytest.approx((1 + 0.4) / 2)
    assert m.hard_accuracy(weights, labels, k=1, solvable_only=False) == pytest.approx((1 + 0 + 0.4) / 3)
    assert list(m.solved_set(weights, labels)) == [True, True, False, False]
    a, b = np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)
    assert m.jaccard(a, b) == pytest.approx(1 / 3)
    assert math.isnan(m.jaccard(np.zeros(3, bool), np.zeros(3, bool)))
    assert m.overlap_matrix({"a": a, "b": b})["jaccard"] == [[1.0, pytest.approx(1 / 3)], [pytest.approx(1 / 3), 1.0]]


def test_task_prior_share():
    assert m.task_prior_share(0.6, 0.4, 0.8) == pytest.approx(0.5)
    assert math.isnan(m.task_prior_share(0.6, 0.4, 0.4))
    assert math.isnan(m.task_prior_share(0.6, 0.4, 0.4 + 1e-16))  # random vs itself: rounding noise, not a gain


def test_evaluate_module_loads_offline_and_matches(monkeypatch, tmp_path):
    import evaluate

    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    metric = evaluate.load(str(REPO / "metrics" / "routing_accuracy"), cache_dir=str(tmp_path))
    scores = [[0.9, 0.9, 0.1], [0.2, 0.8, 0.5], [0.3, 0.1, 0.6]]
    labels = [[1, 0, 1], [0, NAN, 1], [0, 1, NAN]]
    out = metric.compute(predictions=scores, references=labels, best_single_index=0)
    assert out["routing_accuracy"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert out["oracle_accuracy"] == pytest.approx(1.0)
    assert out["best_single_index"] == 0 and out["best_single_accuracy"] == pytest.approx(1 / 3)
    assert out["gap_closed"] == pytest.approx((0.5 - 1 / 3) / (1 - 1 / 3))
    assert out["random_accuracy"] == pytest.approx((2 / 3 + 1 / 2 + 1 / 2) / 3)
    assert out["n_queries"] == 3
