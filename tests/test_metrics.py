"""The one decision core (``routertrain.evaluation.decision``) against hand computations: the routing
rule with ties and missing labels, best single, task prior, and macro vs micro averages."""

import numpy as np
import pytest

from routertrain.evaluation import bootstrap as bs
from routertrain.evaluation import decision as M

NAN = float("nan")


def test_routing_accuracy_by_hand():
    labels = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], dtype=float)
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.1, 0.7], [0.0, 0.0, 0.5], [0.3, 0.3, 0.1]])
    # choices: 0 (1), 2 (0), 2 (1), exact tie of 0 and 1 -> split evenly (1 + 1) / 2 = 1  => 3/4
    assert M.score_accuracy(scores, labels) == pytest.approx(0.75)
    assert M.oracle_accuracy(labels) == 1.0
    assert M.model_means(labels).tolist() == [0.5, 0.5, 0.25]
    assert M.best_single_index(labels) == 0  # tie between 0 and 1: the lower index
    assert M.gap_closed(0.75, 0.5, 1.0) == pytest.approx(0.5)


def test_a_tie_goes_to_one_model_as_route_sends_it():
    labels = np.array([[0.0, 1.0]])
    assert M.score_accuracy(np.array([[0.5, 0.5]]), labels) == 0.0  # pool order: model 0, as route() answers
    assert M.score_accuracy(np.array([[0.5, 0.5]]), labels, prior=[0.1, 0.3]) == 1.0  # the higher train mean wins


def test_missing_labels_never_steer_the_decision():
    labels = np.array([[1.0, NAN], [NAN, 0.0], [0.0, 1.0]])
    assert M.model_means(labels).tolist() == [0.5, 0.5]
    assert M.oracle_accuracy(labels) == pytest.approx((1 + 0 + 1) / 3)
    # scores prefer model 1 everywhere, and every query goes there, labelled or not
    scores = np.tile([0.1, 0.9], (3, 1))
    assert M.score_accuracy(scores, labels) == pytest.approx(1.0)  # complete: only query 2 is scored
    assert M.score_accuracy(scores, labels, missing="wrong") == pytest.approx((0 + 0 + 1) / 3)  # query 0's choice has no label


def test_graded_labels():
    labels = np.array([[0.2, 0.8], [0.6, 0.4]])
    assert M.oracle_accuracy(labels) == pytest.approx(0.7)
    assert M.score_accuracy(labels, labels) == pytest.approx(0.7)


def test_task_prior_router_by_hand():
    train_tasks = ["m", "m", "c", "c"]
    train_labels = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)
    scores = M.task_prior_scores(train_tasks, train_labels, ["c", "m", "unseen"])
    assert scores[:2].argmax(axis=1).tolist() == [1, 0] and scores[2].tolist() == [0.5, 0.5]  # unseen: the overall means
    labels = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # query 0 (task c): model 1 (label 0); query 1 (m): model 0 (0); query 2 (unseen, tie 0.5/0.5): pool order, model 0 (1)
    assert M.score_accuracy(scores, labels) == pytest.approx((0.0 + 0.0 + 1.0) / 3)


def test_task_prior_fills_a_model_missing_in_a_task_with_its_overall_mean():
    train_tasks = ["a", "a", "b"]
    train_labels = np.array([[1.0, NAN], [1.0, NAN], [0.0, 0.5]])
    scores = M.task_prior_scores(train_tasks, train_labels, ["a"])
    assert scores[0].tolist() == pytest.approx([1.0, 0.5])  # model 1: no label in a, overall mean 0.5


def test_best_single_is_one_model_for_every_query():
    labels = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    assert M.nanmean(M.best_single_per_query(labels, np.array([0.9, 0.2]))) == pytest.approx(2 / 3)
    assert M.nanmean(M.best_single_per_query(labels, np.array([0.1, 0.2]))) == pytest.approx(1 / 3)


# a tiny two-task matrix: task a has 3 queries, task b has 1
TASKS = np.array(["a", "a", "a", "b"])
LABELS = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=float)


def test_macro_and_micro_by_hand():
    per_query = np.array([1.0, 1.0, 0.0, 0.0])  # routing everything to model 0
    assert M.average(per_query, TASKS, "micro") == pytest.approx(2 / 4)
    assert M.average(per_query, TASKS, "macro") == pytest.approx((2 / 3 + 0) / 2)
    assert M.per_task(per_query, TASKS) == pytest.approx({"a": 2 / 3, "b": 0.0})
    # model means: micro [0.5, 0.5]; macro model 0 = (2/3 + 0) / 2 = 1/3, model 1 = (1/3 + 1) / 2 = 2/3
    assert M.model_means(LABELS, TASKS, "macro") == pytest.approx([1 / 3, 2 / 3])
    assert M.best_single_index(LABELS, TASKS, "micro") == 0 and M.best_single_index(LABELS, TASKS, "macro") == 1


def test_routing_report_uses_one_average_for_every_number():
    scores = np.array([[0.9, 0.1], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])  # always model 0
    macro = M.routing_report(scores, LABELS, LABELS, TASKS, TASKS, "macro")
    assert macro["routing_acc"] == pytest.approx(1 / 3)
    assert macro["best_single_acc"] == pytest.approx(2 / 3)  # model 1, best by the macro average on train
    assert macro["task_prior_acc"] == pytest.approx((2 / 3 + 1) / 2)  # a -> model 0 (2 of 3 right), b -> model 1
    assert macro["oracle_acc"] == 1.0 and macro["per_task"] == pytest.approx({"a": 2 / 3, "b": 0.0})
    micro = M.routing_report(scores, LABELS, LABELS, TASKS, TASKS, "micro")
    assert micro["routing_acc"] == pytest.approx(0.5) and micro["best_single_acc"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="micro or macro"):
        M.routing_report(scores, LABELS, LABELS, TASKS, TASKS, "weighted")


def test_stratified_bootstrap_keeps_each_task_count():
    tasks = np.array(["a"] * 7 + ["b"] * 3 + ["c"] * 2)
    for idx in bs.resamples(len(tasks), n_boot=50, seed=3, strata=tasks):
        assert (tasks[idx] == tasks[None, :]).all()  # every column stays in its task
    values = np.arange(12, dtype=float)
    macro = bs.mean_of(values, tasks)(np.arange(12)[None, :])[0]
    assert macro == pytest.approx((np.mean(values[:7]) + np.mean(values[7:10]) + np.mean(values[10:])) / 3)
    interval = bs.ci(bs.mean_of(values, tasks), 12, n_boot=200, seed=0, strata=tasks)
    assert interval["low"] <= macro <= interval["high"]


def test_oracle_bounds_every_router_on_random_inputs():
    rng = np.random.default_rng(0)
    for _ in range(20):
        labels = (rng.random((50, 5)) < rng.random(5)).astype(float)
        tasks = rng.integers(0, 3, 50)
        scores = rng.random((50, 5))
        for how in ("micro", "macro"):
            oracle = M.oracle_accuracy(labels, tasks, how)
            assert M.score_accuracy(scores, labels, tasks, how) <= oracle + 1e-12
            assert M.average(M.best_single_per_query(labels, M.model_means(labels, tasks, how)), tasks, how) <= oracle + 1e-12
