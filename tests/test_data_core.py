"""The canonical dataset: validation errors, the synthetic benchmark, nested subsets, save/load."""

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from routertrain.config import load_config
from routertrain.data import DataError, RoutingData, load_routing_data, synthetic, validate
from routertrain.data.dataset import nested_subset


def make(rows: dict | None = None, models=("a", "b"), **split_rows) -> RoutingData:
    base = rows or {"query": ["q1", "q2"], "labels": [[1.0, 0.0], [0.5, 1.0]]}
    splits = {s: Dataset.from_dict(split_rows.get(s, base)) for s in ("train", "validation", "test")}
    return RoutingData(DatasetDict(splits), list(models))


def test_valid_dataset_passes():
    validate(make())


@pytest.mark.parametrize(
    "rows, models, fragment",
    [
        ({"text": ["q"], "labels": [[1.0, 0.0]]}, ("a", "b"), "no 'query' column"),
        ({"query": ["q"], "scores": [[1.0, 0.0]]}, ("a", "b"), "no 'labels' column"),
        ({"query": ["q"], "labels": [[1.0, 0.0]]}, ("a", "b", "c"), "2 labels for 3 models"),
        ({"query": ["q"], "labels": [[float("nan"), 0.0]]}, ("a", "b"), "NaN label; mark missing labels with a label_mask"),
        ({"query": ["q"], "labels": [[1.5, 0.0]]}, ("a", "b"), "outside [0, 1]"),
        ({"query": ["  "], "labels": [[1.0, 0.0]]}, ("a", "b"), "empty query"),
        ({"query": ["q"], "labels": [[1.0, 0.0]]}, ("a", "a"), "model names repeat"),
        ({"query": ["q"], "labels": [[1.0, 0.0]]}, (), "names no models"),
        ({"query": ["q"], "labels": [[1.0, 0.0]], "costs": [[float("inf"), 1.0]]}, ("a", "b"), "per-query costs must give one finite cost >= 0"),
        ({"query": ["q"], "labels": [[1.0, 0.0]], "costs": [[-1.0, 1.0]]}, ("a", "b"), "per-query costs must give one finite cost >= 0"),
    ],
)
def test_bad_datasets_give_one_line_errors(rows, models, fragment):
    with pytest.raises(DataError) as info:
        validate(make(rows, models))
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_empty_split_is_refused():
    data = make(test={"query": [], "labels": []})
    with pytest.raises(DataError, match="split 'test' is empty"):
        validate(data)


def test_missing_split_is_refused():
    data = make()
    del data.splits["validation"]
    with pytest.raises(DataError, match="no validation split"):
        validate(data)


def test_per_query_costs_fill_unknown_cells_with_the_model_mean():
    rows = {"query": ["q1", "q2"], "labels": [[1.0, 0.0], [0.5, 1.0]], "costs": [[2.0, float("nan")], [4.0, 1.0]]}
    data = make(rows)
    data.costs = [3.0, 0.5]
    validate(data)
    assert data.cost_source == "per-query"
    assert data.query_costs("test").tolist() == [[2.0, 0.5], [4.0, 1.0]]
    data.splits = DatasetDict({s: ds.remove_columns("costs") for s, ds in data.splits.items()})
    assert data.cost_source == "model mean" and data.query_costs("test").tolist() == [[3.0, 0.5], [3.0, 0.5]]


def test_queries_and_tasks_read_through_arrow_equal_the_row_by_row_values():
    rows = {"query": [f"q{i}" for i in range(10)], "labels": [[1.0, 0.0]] * 10, "task": ["math", "code", None, "math", "law"] * 2}
    data = make(rows)
    data.splits["test"] = data.splits["test"].select([7, 2, 5, 0])  # an index mapping, as subsets and shuffles make
    for split in ("train", "test"):
        ds = data.splits[split]
        assert data.queries(split) == list(ds["query"])
        expected = np.asarray(list(ds["task"]))
        assert data.tasks(split).dtype == expected.dtype and data.tasks(split).tolist() == expected.tolist()
    assert data.queries("test") == ["q7", "q2", "q5", "q0"]


def test_label_mask_turns_labels_into_nan():
    rows = {"query": ["q1", "q2"], "labels": [[1.0, 0.0], [0.5, 1.0]], "label_mask": [[1, 0], [1, 1]]}
    labels = make(rows).labels("train")
    assert np.isnan(labels[0, 1]) and labels[1, 1] == 1.0


def test_synthetic_benchmark_is_deterministic_and_consistent():
    a = synthetic.generate(3, 50, 10, 10, 4)
    b = synthetic.generate(3, 50, 10, 10, 4)
    c = synthetic.generate(4, 50, 10, 10, 4)
    assert a == b and a != c
    train = a["splits"]["train"]
    assert len(train["query"]) == 50 and len(a["models"]) == 4 == len(a["costs"])
    p, y = np.array(train["p_correct"]), np.array(train["labels"])
    assert p.shape == y.shape == (50, 4) and set(np.unique(y)) <= {0.0, 1.0}


def test_a_large_demo_streams_and_equals_the_in_memory_one(tmp_path, monkeypatch):
    from routertrain.data import build_synthetic

    monkeypatch.setattr(synthetic, "CHUNK", 64)  # train (300 rows) goes through Arrow files in 5 chunks
    cfg = load_config(["data.synthetic.n_train=300", "data.synthetic.n_validation=40", "data.synthetic.n_test=70",
                       f"data.cache_dir={tmp_path}"]).data
    built = build_synthetic(cfg)
    assert any((tmp_path / "generated").rglob("*.arrow"))  # streamed, not held in memory
    s = cfg.synthetic
    generated = synthetic.generate(s.seed, s.n_train, s.n_validation, s.n_test, s.n_models)
    for split, cols in generated["splits"].items():
        assert built.splits[split].to_dict() == {key: cols[key] for key in built.splits[split].column_names}
    assert built.models == generated["models"] and built.costs == generated["costs"]


def test_bayes_accuracy_is_the_best_routing_in_expectation():
    generated = synthetic.generate(0, 2000, 10, 10, 6)
    p = np.array(generated["splits"]["train"]["p_correct"])
    y = np.array(generated["splits"]["train"]["labels"])
    bayes = synthetic.bayes_accuracy(p, y)
    assert bayes["expected"] == pytest.approx(p.max(axis=1).mean())
    assert bayes["expected"] >= p.mean(axis=0).max()  # beats every single model in expectation
    assert abs(bayes["realized"] - bayes["expected"]) < 0.03  # 2000 Bernoulli draws


def test_nested_subsets_are_nested_and_deterministic():
    small, mid, big = (set(nested_subset(1000, f, seed=7)) for f in (0.1, 0.25, 0.5))
    assert small < mid < big and len(small) == 100 and len(big) == 500
    assert nested_subset(1000, 0.1, 7) == nested_subset(1000, 0.1, 7)
    assert nested_subset(1000, 0.1, 7) != nested_subset(1000, 0.1, 8)


def test_fraction_changes_train_only_and_the_fingerprint():
    full = load_routing_data(load_config(["data.synthetic.n_train=200", "data.synthetic.n_validation=20", "data.synthetic.n_test=20"]).data)
    part = load_routing_data(load_config(["data.synthetic.n_train=200", "data.synthetic.n_validation=20", "data.synthetic.n_test=20", "data.fraction=0.25"]).data)
    assert len(part.splits["train"]) == 50 and len(full.splits["train"]) == 200
    assert part.splits["validation"]["query"] == full.splits["validation"]["query"]
    assert part.splits["test"]["query"] == full.splits["test"]["query"]
    assert set(part.splits["train"]["query"]) <= set(full.splits["train"]["query"])
    assert part.fingerprint != full.fingerprint


def test_save_and_load_from_disk_round_trip(tmp_path):
    data = make()
    data.costs = [1.0, 2.0]
    data.save_to_disk(tmp_path / "ds")
    back = load_routing_data(load_config(["data.name=disk", f"data.path={tmp_path / 'ds'}"]).data)
    assert back.models == ["a", "b"] and back.costs == [1.0, 2.0]
    np.testing.assert_array_equal(back.labels("test"), data.labels("test"))
