"""Cost-quality curve, AIQ, APGR and CPT on hand examples; bootstrap intervals and paired differences."""

import math

import numpy as np
import pytest

from routertrain.evaluation import bootstrap as bs
from routertrain.evaluation import cost as cq
from routertrain.evaluation.decision import gap_closed

NAN = float("nan")


def test_nondecreasing_hull_and_aiq_by_hand():
    cost = np.array([0, 0.5, 0.25, 1, 0.75, 0.6, 0.25])
    acc = np.array([0.5, 0.6, 0.7, 0.65, 0.9, 0.4, 0.3])
    hx, hy = cq.nondecreasing_hull(cost, acc)
    assert list(hx) == [0, 0.25, 0.75] and list(hy) == [0.5, 0.7, 0.9]  # (0.5, 0.6) under the hull, cut after the top
    assert cq.aiq(cost, acc) == pytest.approx(0.25 * 0.6 + 0.5 * 0.8 + 0.25 * 0.9)


def test_per_query_costs_are_what_the_metrics_spend():
    """Decisions know only the models' mean costs [1, 3]; each chosen model is paid its cost on that query."""
    scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    labels = np.array([[1.0, 0.0], [0.0, 1.0]])
    per_query = np.array([[2.0, 3.0], [0.5, 4.0]])
    decided = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert cq.mean_cost(decided, per_query) == pytest.approx((2 + 4) / 2)
    assert cq.mean_cost(decided, [1.0, 3.0]) == pytest.approx((1 + 3) / 2)  # what average prices said
    # 0 = each query's cheapest (mean 1.25), 1 = each query's dearest (mean 3.5)
    assert cq.normalised_cost(decided, per_query) == pytest.approx((3 - 1.25) / (3.5 - 1.25))
    curve = cq.cost_quality_curve(scores, labels, [1.0, 3.0], per_query)
    assert curve["cost"].min() == pytest.approx(0.0) and curve["cost"].max() == pytest.approx(7 / 9)
    # two points: (7/9, 1) at lambda = 0 and (0, 0.5) once query 1 moves to model 0 (lambda > 0.3)
    assert cq.aiq(curve["cost"], curve["accuracy"]) == pytest.approx((7 / 9) * 0.75 + (2 / 9) * 1.0)


def test_cost_quality_curve_by_hand():
    scores = np.array([[0.4, 0.9], [0.7, 0.6]])
    labels = np.array([[0.0, 1.0], [1.0, 1.0]])
    curve = cq.cost_quality_curve(scores, labels, [1.0, 3.0])
    points = set(zip(curve["cost"].round(9), curve["accuracy"].round(9)))
    assert points == {(0.5, 1.0), (0.0, 0.5)}  # lambda = 0: query 0 to the dear model; large lambda: all cheap
    assert cq.aiq(curve["cost"], curve["accuracy"]) == pytest.approx(0.5 * 0.75 + 0.5 * 1.0)
    with pytest.raises(ValueError, match="same cost"):
        cq.cost_quality_curve(scores, labels, [2.0, 2.0])


def test_apgr_and_cpt_by_hand():
    labels = np.array([[1, 0], [1, 1], [0, 0], [1, 0], [NAN, 1]], dtype=float)  # the last query lacks a label: left out
    scores = np.array([[0.9, 0], [0.1, 0], [0.5, 0], [0.8, 0], [0.3, 0]])
    curve = cq.strong_call_curve(scores, labels, strong=0, weak=1)
    assert (curve["acc_weak"], curve["acc_strong"], curve["n"]) == (0.25, 0.75, 4)
    assert np.allclose(curve["x"], [0, 0.25, 0.5, 0.75, 1]) and np.allclose(cq.pgr(curve), [0, 0.5, 1, 1, 1])
    assert cq.apgr(curve) == pytest.approx(0.0625 + 0.1875 + 0.25 + 0.25)
    assert cq.cpt(curve, 0.5) == pytest.approx(0.25)
    assert cq.cpt(curve, 0.8) == pytest.approx(0.25 + 0.3 / 0.5 * 0.25)
    assert cq.two_model_report(scores, labels, 0, 1) == pytest.approx({"apgr": 0.75, "cpt50": 0.25, "cpt80": 0.4})


def test_apgr_ties_are_averaged_and_random_is_half():
    labels = np.array([[1, 0], [1, 1], [0, 0], [1, 0]], dtype=float)
    tied = np.array([[1, 0], [1, 0], [0, 0], [0, 0]], dtype=float)
    curve = cq.strong_call_curve(tied, labels, 0, 1)
    assert np.allclose(curve["x"], [0, 0.5, 1]) and np.allclose(cq.pgr(curve), [0, 0.5, 1])
    assert cq.apgr(cq.strong_call_curve(np.zeros((4, 2)), labels, 0, 1)) == pytest.approx(0.5)
    assert math.isnan(cq.apgr(cq.strong_call_curve(tied, labels[:, ::-1], 0, 1)))  # "strong" not better: undefined


def test_strong_model_is_the_dearer_else_the_better_on_train():
    train = np.array([[1, 0], [1, 0], [0, 1]], dtype=float)
    assert cq.strong_and_weak([1.0, 5.0], train) == (1, 0)
    assert cq.strong_and_weak(None, train) == (0, 1)


def test_bootstrap_covers_the_estimate_shrinks_and_is_seeded():
    rng = np.random.default_rng(0)
    small, large = rng.integers(0, 2, 100).astype(float), rng.integers(0, 2, 2000).astype(float)
    a = bs.ci(bs.mean_of(small), len(small), n_boot=500, seed=1)
    b = bs.ci(bs.mean_of(large), len(large), n_boot=500, seed=1)
    for c, v in ((a, small), (b, large)):
        assert c["low"] <= c["value"] <= c["high"] and c["value"] == pytest.approx(v.mean())
    assert b["high"] - b["low"] < (a["high"] - a["low"]) / 2
    assert bs.ci(bs.mean_of(small), 100, n_boot=500, seed=1) == a


def test_bootstrap_chunks_stay_bounded_and_do_not_change_the_resamples(monkeypatch):
    whole = np.concatenate(list(bs.resamples(500, n_boot=250, seed=3)))
    monkeypatch.setattr(bs, "CHUNK_INDICES", 500 * 7)  # 7 resamples per chunk, as n = 1.4M would get
    chunks = list(bs.resamples(500, n_boot=250, seed=3))
    assert max(len(c) for c in chunks) == 7 and len(chunks) == 36
    assert np.array_equal(np.concatenate(chunks), whole)
    monkeypatch.setattr(bs, "CHUNK_INDICES", 10)  # fewer indices than queries: still one resample at a time
    assert [len(c) for c in bs.resamples(500, n_boot=3, seed=3)] == [1, 1, 1]


def test_a_statistic_seen_in_slices_gives_the_same_distribution(monkeypatch):
    rng = np.random.default_rng(5)
    values, groups = (rng.random(300) < 0.6).astype(float), rng.integers(0, 4, 300)
    whole = bs.distribution(bs.mean_of(values, groups), 300, n_boot=120, seed=2, strata=groups)
    monkeypatch.setattr(bs, "EVAL_INDICES", 300 * 7)  # slices of 7 resamples, as 1M indices are at n = 143k
    assert np.array_equal(bs.distribution(bs.mean_of(values, groups), 300, n_boot=120, seed=2, strata=groups), whole)
    assert len(whole) == 120 and len(np.unique(whole)) > 10


def test_bootstrap_ignores_missing_values():
    values = np.array([1.0, 0.0, NAN, 1.0])
    c = bs.ci(bs.mean_of(values), 4, n_boot=200)
    assert c["value"] == pytest.approx(2 / 3) and 0 <= c["low"] <= c["high"] <= 1


def test_paired_difference():
    rng = np.random.default_rng(1)
    b = rng.integers(0, 2, 300).astype(float)
    a = np.maximum(b, rng.random(300) < 0.2)  # a solves everything b solves, and more
    same = bs.paired_difference(bs.mean_of(b), bs.mean_of(b), 300, n_boot=200)
    assert (same["value"], same["low"], same["high"]) == (0.0, 0.0, 0.0)
    diff = bs.paired_difference(bs.mean_of(a), bs.mean_of(b), 300, n_boot=200)
    assert diff["value"] == pytest.approx(a.mean() - b.mean()) and diff["low"] > 0 and diff["p_value"] < 0.01


def test_gap_closed_statistic_matches_the_point_formula():
    router, single, oracle = np.array([1.0, 0, 1, 1]), np.array([0.0, 0, 1, 1]), np.ones(4)
    c = bs.ci(bs.gap_closed_of(router, single, oracle), 4, n_boot=100)
    assert c["value"] == pytest.approx(gap_closed(0.75, 0.5, 1.0))
