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


def test_ties_go_to_lower_cost_then_train_mean_then_pool_order():
    """Row 0 ties models 0 and 1 exactly; the rule's keys decide, in order, and the metric scores that choice."""
    scores = np.array([[0.9, 0.9, 0.1]])
    labels = np.array([[0.0, 1.0, 1.0]])
    assert d.score_accuracy(scores, labels) == 0.0  # no keys: pool order, model 0
    assert d.score_accuracy(scores, labels, prior=[0.2, 0.6, 0.9]) == 1.0  # the higher train mean: model 1
    assert d.score_accuracy(scores, labels, costs=[2.0, 1.0, 0.5], prior=[0.9, 0.1, 0.0]) == 1.0  # cost first: model 1
    assert d.score_accuracy(scores, labels, costs=[1.0, 1.0, 0.5], prior=[0.9, 0.1, 0.0]) == 0.0  # equal cost, then the prior
    assert d.decide(scores, prior=[0.2, 0.6, 0.9]).tolist() == [[0.0, 1.0, 0.0]]  # one model, never an even split


def test_missing_labels_decide_over_the_whole_pool_and_score_by_policy():
    """Row 1's top model has no label: the deployed router still sends the query there."""
    # complete: rows 1 and 2 lack labels, so only row 0 is scored (tie: pool order -> model 0, label 1)
    assert d.score_accuracy(SCORES, LABELS) == 1.0
    y, keep = d.scored(LABELS, "complete")
    assert keep.tolist() == [True, False, False] and y.tolist() == [[1, 0, 1]]
    # wrong: row 1 goes to model 1 (no label) -> 0; row 2 to model 0 (no label) -> 0
    assert d.score_accuracy(SCORES, LABELS, missing="wrong") == pytest.approx(1 / 3)
    assert d.coverage(d.choose(SCORES), LABELS) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="eval.missing=wrong"):
        d.score_accuracy(SCORES[1:], LABELS[1:])  # no complete query at all: the error names the fix


def test_best_single_breaks_exact_train_ties_by_the_rule():
    """A and B tie on train; with no cost the rule names A (pool order), with B cheaper it names B."""
    y_train = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert d.nanmean(d.best_single_per_query(y, d.model_means(y_train))) == 1.0
    assert d.best_single_index(y_train) == 0
    assert d.best_single_index(y_train, costs=[2.0, 1.0]) == 1
    assert d.nanmean(d.best_single_per_query(y, d.model_means(y_train), costs=[2.0, 1.0])) == 0.0


def test_one_hot_decisions_match_the_chosen_labels():
    rng = np.random.default_rng(0)
    scores, labels = rng.random((50, 4)), rng.integers(0, 2, (50, 4)).astype(float)
    assert d.score_accuracy(scores, labels) == pytest.approx(labels[np.arange(50), scores.argmax(axis=1)].mean())


def test_reference_accuracies_by_hand():
    y, _ = d.scored(LABELS, "wrong")
    assert d.random_accuracy(y) == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)
    assert np.allclose(d.oracle_per_query(LABELS), [1, 1, NAN], equal_nan=True)
    assert d.nanmean(d.oracle_per_query(LABELS)) == pytest.approx(d.oracle_accuracy(LABELS))
    # best single: the rule on the preference picks model 2 for every query
    labels = np.array([[0, 1, 1], [1, 0, 0]])
    assert np.allclose(d.best_single_per_query(labels, [0.5, 0.1, 0.9]), [1, 0])


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("missing", ["complete", "wrong"])
def test_oracle_bounds_every_router_and_random(seed, missing):
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random((40, 5)) < 0.05, NAN, rng.random((40, 5)).round(1))
    y, _ = d.scored(labels, missing)
    oracle = d.nanmean(d.oracle_per_query(y))
    for scores in (rng.random((40, 5)), rng.integers(0, 3, (40, 5)), np.zeros((40, 5)), np.nan_to_num(labels)):
        assert d.score_accuracy(scores, labels, missing=missing) <= oracle + 1e-12
    assert d.random_accuracy(y) <= oracle
    assert d.nanmean(d.best_single_per_query(y, d.model_means(labels))) <= oracle + 1e-12


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
    out = metric.compute(predictions=scores, references=labels, best_single_index=0, missing="wrong")
    # row 0: models 0 and 1 tie; the higher mean label (model 1: 1/2 vs model 0: 0/3) wins -> 0; row 1: model 1 (unlabelled) -> 0;
    # row 2: model 2 (unlabelled) -> 0
    assert out["routing_accuracy"] == pytest.approx(0.0)
    assert out["oracle_accuracy"] == pytest.approx(1.0)
    assert out["best_single_index"] == 0 and out["best_single_accuracy"] == pytest.approx(1 / 3)
    assert out["gap_closed"] == pytest.approx((0 - 1 / 3) / (1 - 1 / 3))
    assert out["random_accuracy"] == pytest.approx((2 / 3 + 1 / 3 + 1 / 3) / 3)
    assert out["n_queries"] == 3
    complete = metric.compute(predictions=scores, references=labels)  # only row 0 has every label
    assert complete["n_queries"] == 1 and complete["routing_accuracy"] == pytest.approx(0.0)
