"""Query-hash splits: grouping of equal queries, exact per-task shares, determinism, source splits,
and the same properties on real datasets (plus nested ``data.fraction`` subsets)."""

import random
from pathlib import Path

import pytest

from routertrain.config import load_config
from routertrain.data import load_routing_data
from routertrain.data.dataset import SPLITS
from routertrain.data.splits import assign_splits, held_out, normalize_query

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ROUTELLM = SHARED / "routellm-evals"
ROUTERBENCH = SHARED / "routerbench-routerdc-subset"


def test_normalize_query_lowercases_and_collapses_whitespace():
    assert normalize_query("  What IS\n\t2 +  2?  ") == "what is 2 + 2?"
    assert normalize_query("A") == normalize_query(" a\n")


def test_equal_and_whitespace_variant_queries_share_a_split():
    queries = [f"question {i}" for i in range(200)] + [f"  QUESTION   {i} " for i in range(0, 200, 7)]
    split, _ = assign_splits(queries, None, None, validation_size=0.1, test_size=0.2, seed=0)
    fate = {}
    for q, s in zip(queries, split):
        assert fate.setdefault(normalize_query(q), s) == s


def test_held_out_is_exact_per_task_and_independent_of_row_order():
    keys = [f"q{i}" for i in range(1000)]
    tasks = ["big"] * 900 + ["small"] * 100
    out = held_out(keys, tasks, 0.2, "test:0")
    assert sum(out[:900]) == 180 and sum(out[900:]) == 20
    order = list(range(1000))
    random.Random(1).shuffle(order)
    shuffled = held_out([keys[i] for i in order], [tasks[i] for i in order], 0.2, "test:0")
    assert {keys[i] for i, o in zip(order, shuffled) if o} == {k for k, o in zip(keys, out) if o}
    other_seed = held_out(keys, tasks, 0.2, "test:1")
    assert other_seed != out and sum(other_seed) == 200
    assert held_out(keys, tasks, 0.0, "test:0") == [False] * 1000


def test_source_splits_are_kept_and_validation_comes_from_train():
    queries = [f"q{i}" for i in range(100)]
    source = ["train"] * 70 + ["test"] * 30
    split, how = assign_splits(queries, None, source, validation_size=0.1, test_size=0.2, seed=0)
    assert split[70:] == ["test"] * 30
    assert split[:70].count("validation") == 7 and "source split" in how
    given = ["train"] * 60 + ["validation"] * 10 + ["test"] * 30
    assert assign_splits(queries, None, given, 0.1, 0.2, 0)[0] == given
    only_train, how = assign_splits(queries, None, ["train"] * 100, 0.1, 0.2, 0)
    assert only_train.count("test") == 20 and only_train.count("validation") == 8 and "test carved from train" in how
    no_train, how = assign_splits(queries, None, ["test"] * 100, 0.1, 0.2, 0)
    assert no_train == assign_splits(queries, None, None, 0.1, 0.2, 0)[0] and how.startswith("the source names no train rows")
    with pytest.raises(ValueError, match="unknown source split"):
        assign_splits(queries, None, ["holdout"] * 100, 0.1, 0.2, 0)


def build(cache, *args):
    cfg = load_config(list(args))
    cfg.data.cache_dir = str(cache)
    return load_routing_data(cfg.data)


@pytest.fixture(scope="module")
def mmlu(tmp_path_factory):
    return tmp_path_factory.mktemp("cache"), ["data=routellm-mmlu", f"data.path={ROUTELLM}"]


def test_real_split_is_disjoint_stratified_and_deterministic(tmp_path_factory, mmlu):
    cache, args = mmlu
    data = build(cache, *args)
    queries = {s: {normalize_query(q) for q in data.splits[s]["query"]} for s in SPLITS}
    assert not queries["train"] & queries["test"] and not queries["train"] & queries["validation"]
    assert not queries["validation"] & queries["test"]
    for task in ("mmlu_anatomy", "mmlu_professional_law", "mmlu_high_school_mathematics"):
        n = {s: data.splits[s]["task"].count(task) for s in SPLITS}
        total = sum(n.values())
        assert abs(n["test"] - 0.2 * total) <= 2, (task, n)
        assert abs(n["validation"] - 0.1 * (n["train"] + n["validation"])) <= 2, (task, n)
    again = build(tmp_path_factory.mktemp("other-cache"), *args)
    for s in SPLITS:
        assert again.splits[s]["query"] == data.splits[s]["query"]
    reseeded = build(cache, *args, "data.split_seed=1")
    assert set(reseeded.splits["test"]["query"]) != set(data.splits["test"]["query"])
    assert len(reseeded.splits["test"]) == pytest.approx(len(data.splits["test"]), abs=60)


def test_fraction_subsets_are_nested_and_leave_evaluation_splits_alone(mmlu):
    cache, args = mmlu
    full = build(cache, *args)
    subsets = {f: build(cache, *args, f"data.fraction={f}") for f in (0.1, 0.25, 0.5)}
    train = {f: set(d.splits["train"]["query"]) for f, d in subsets.items()} | {1.0: set(full.splits["train"]["query"])}
    assert train[0.1] <= train[0.25] <= train[0.5] <= train[1.0]
    assert len(subsets[0.25].splits["train"]) == pytest.approx(0.25 * len(full.splits["train"]), abs=1)
    for d in subsets.values():
        assert d.splits["test"]["query"] == full.splits["test"]["query"]
        assert d.splits["validation"]["query"] == full.splits["validation"]["query"]
    assert build(cache, *args, "data.fraction=0.25").splits["train"]["query"] == subsets[0.25].splits["train"]["query"]
    assert subsets[0.5].fingerprint != full.fingerprint


def test_source_split_queries_never_straddle_after_cleaning(tmp_path_factory):
    data = build(tmp_path_factory.mktemp("cache"), "data=routerbench", f"data.path={ROUTERBENCH}")
    queries = {s: [normalize_query(q) for q in data.splits[s]["query"]] for s in SPLITS}
    assert not set(queries["train"]) & set(queries["test"]) and not set(queries["validation"]) & set(queries["test"])
    # RouterBench puts a few questions in both its train and test files: the train copy is dropped and counted
    assert data.info["build"]["dropped"]["duplicate_of_test_query"] == 2
