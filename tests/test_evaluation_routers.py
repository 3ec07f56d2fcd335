"""Reference and baseline routers, the embedding cache, ``evaluate_routers`` and the command line."""

import json
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, DatasetDict

from routertrain.data import RoutingData, load_routing_data, synthetic
from routertrain.evaluation import embeddings
from routertrain.evaluation.baselines import Knn
from routertrain.evaluation.compare import evaluate_routers, format_table, to_json
from routertrain.evaluation.routers import Context, RouterUnavailable, make


def make_data(sizes=(40, 15, 20), n_models=3, seed=0, tasks=True, costs=None, p_correct=None) -> RoutingData:
    """Synthetic-benchmark queries (the tiny encoder's vocabulary) with random binary labels."""
    p_correct = np.full(n_models, 0.5) if p_correct is None else np.asarray(p_correct)
    rng = np.random.default_rng(seed)
    queries = synthetic.generate(seed, *sizes, 2)["splits"]
    splits = {}
    for split, n in zip(("train", "validation", "test"), sizes):
        cols = {
            "query": queries[split]["query"],
            "labels": (rng.random((n, n_models)) < p_correct).astype(np.float32).tolist(),
        }
        if tasks:
            cols["task"] = [str(t) for t in rng.integers(0, 3, n)]
        splits[split] = Dataset.from_dict(cols)
    return RoutingData(DatasetDict(splits), [f"m{j}" for j in range(n_models)], costs, name="hand", fingerprint=f"hand-{seed}")


class StubContext(Context):
    """Random unit vectors instead of an encoder."""

    def embeddings(self, split):
        rng = np.random.default_rng(("train", "validation", "test").index(split))
        x = rng.normal(size=(len(self.labels(split)), 8))
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_knn_with_k1_returns_a_train_querys_own_labels():
    ctx = StubContext(make_data())
    knn = Knn(k=1).fit(ctx)
    assert np.array_equal(knn.scores(ctx, "train"), ctx.labels("train"))
    chosen = Knn().fit(ctx)
    assert chosen.k in (1, 3, 5, 10, 20) and set(chosen.info["validation_acc"]) >= {"1", "3"}


def test_reference_routers():
    data = make_data()
    ctx = Context(data)
    train = ctx.labels("train")
    best = ctx.fit("best-single")
    assert best.info["model"] == data.models[int(np.argmax(train.mean(0)))]
    assert np.allclose(best.scores(ctx, "test"), train.mean(0))
    prior, tasks = ctx.fit("task-prior"), ctx.tasks("train")
    assert np.allclose(prior.scores(ctx, "train")[0], train[tasks == tasks[0]].mean(0))
    assert np.array_equal(ctx.fit("oracle").scores(ctx, "test"), ctx.labels("test"))
    assert not ctx.fit("random").scores(ctx, "test").any()
    draw = ctx.fit("random-draw").scores(ctx, "test")
    assert np.array_equal(draw, make("random-draw").scores(ctx, "test"))
    with pytest.raises(RouterUnavailable, match="task"):
        make("task-prior").fit(Context(make_data(tasks=False)))
    with pytest.raises(ValueError, match="unknown router"):
        make("nope")


def test_embedding_cache_hit_skips_the_encoder(tiny_encoder, tmp_path, monkeypatch):
    calls = []
    real = embeddings.embed_queries

    def counting(queries, *args, **kwargs):
        calls.append(len(queries))
        return real(queries, *args, **kwargs)

    monkeypatch.setattr(embeddings, "embed_queries", counting)
    data = make_data()
    first = embeddings.split_embeddings(data, "test", str(tiny_encoder), 32, root=tmp_path)
    again = embeddings.split_embeddings(data, "test", str(tiny_encoder), 32, root=tmp_path)
    assert calls == [20] and np.array_equal(first, again) and first.dtype == np.float32
    assert np.allclose(np.linalg.norm(first, axis=1), 1, atol=1e-5)
    embeddings.split_embeddings(data, "test", str(tiny_encoder), 16, root=tmp_path)  # another max length: another key
    assert calls == [20, 20]
    data.fingerprint = "rebuilt"  # same queries under another fingerprint: still a hit
    assert np.array_equal(embeddings.split_embeddings(data, "test", str(tiny_encoder), 32, root=tmp_path), first)
    embeddings.split_embeddings(data, "validation", str(tiny_encoder), 32, root=tmp_path)  # other queries: a miss
    assert calls == [20, 20, 15]
    assert len([p for p in tmp_path.glob("*.npy") if not p.name.endswith(".digests.npy")]) == 3 and not list(tmp_path.glob("*.tmp"))
    # a subset of cached queries (a data.fraction of train) is sliced from the superset: no encoder call
    data.splits["test"] = data.splits["test"].select([7, 2, 11])
    subset = embeddings.split_embeddings(data, "test", str(tiny_encoder), 32, root=tmp_path)
    assert calls == [20, 20, 15] and np.array_equal(subset, first[[7, 2, 11]])


def test_evaluate_routers_end_to_end(tiny_encoder, tmp_path):
    data = make_data(sizes=(60, 20, 30), n_models=3, costs=[1.0, 2.0, 5.0])
    routers = ["oracle", "best-single", "random", "random-draw", "task-prior", "knn", "logreg", "mlp", "mf", "kmeans", "tfidf", "frozen"]
    result = evaluate_routers(data, routers, encoder=str(tiny_encoder), n_boot=50, max_length=16, cache_root=str(tmp_path))
    res, ref = result["routers"], result["reference"]
    assert list(res) == routers and not result["skipped"]
    for name, r in res.items():
        acc = r["accuracy"]
        assert acc["low"] <= acc["value"] <= acc["high"] and acc["value"] <= ref["oracle_acc"] + 1e-12, name
        assert 0 <= r["aiq"] <= 1 and 0 <= r["cost_norm"] <= 1
        cx, cy = np.array(r["cost_curve"]["cost"]), np.array(r["cost_curve"]["accuracy"])  # the frontier AIQ integrates
        assert np.all(np.diff(cx) > 0) and np.all(np.diff(cy) >= 0), name
        area = np.sum(np.diff(cx) * (cy[1:] + cy[:-1]) / 2) + cx[0] * cy[0] + (1 - cx[-1]) * cy[-1]
        assert area == pytest.approx(r["aiq"], abs=1e-5), name
    assert res["oracle"]["accuracy"]["value"] == pytest.approx(ref["oracle_acc"])
    assert res["random"]["accuracy"]["value"] == pytest.approx(ref["random_acc"])
    assert res["best-single"]["vs_best-single"]["value"] == 0 and res["oracle"]["calibration"] is None
    assert res["random"]["task_prior_share"] is None or np.isnan(res["random"]["task_prior_share"])
    assert 0 <= res["logreg"]["calibration"]["auroc"] <= 1 and res["frozen"]["info"]["head"] in ("knn", "logreg", "mlp", "mf", "kmeans")
    assert len(result["overlap"]["jaccard"]) == len(routers)
    json.dumps(to_json(result), allow_nan=False)
    table = format_table(result)
    assert all(name in table for name in routers) and "AIQ" in table and "APGR" not in table


def test_every_router_records_validation_accuracy_and_tuned_splits_are_flagged():
    """Choices among routers use ``validation_acc`` (never the reported split); scoring the split the
    routers were tuned or fitted on gives a warning instead of silently optimistic numbers."""
    data = make_data(sizes=(60, 20, 30))
    routers = ["oracle", "best-single", "task-prior"]
    ctx = Context(data)
    result = evaluate_routers(data, routers, n_boot=20)
    from routertrain.evaluation.decision import score_accuracy

    y_val = ctx.labels("validation")
    assert result["routers"]["oracle"]["validation_acc"] == pytest.approx(score_accuracy(y_val, y_val, costs=data.costs, prior=ctx.prior))
    prior = ctx.fit("task-prior")  # its ties go, like every router's, to the lower cost and then the higher train mean
    assert result["routers"]["task-prior"]["validation_acc"] == pytest.approx(score_accuracy(prior.scores(ctx, "validation"), y_val, costs=data.costs, prior=ctx.prior))
    assert result["warnings"] == []
    for split, words in (("validation", "optimistic"), ("train", "measures fit")):
        flagged = evaluate_routers(data, ["best-single"], split=split, n_boot=20)
        assert len(flagged["warnings"]) == 1 and words in flagged["warnings"][0]
        assert f"warning: {flagged['warnings'][0]}" in format_table(flagged)


def test_best_single_router_routes_to_the_model_it_names_when_train_means_tie():
    def rows(labels):
        return Dataset.from_dict({"query": [f"q{i}" for i in range(len(labels))], "labels": labels})

    train, test = [[1, 0], [1, 0], [0, 1], [0, 1]], [[1, 0]] * 4  # A and B tie on train; only A is right on test
    data = RoutingData(DatasetDict(train=rows(train), validation=rows(test), test=rows(test)), ["A", "B"], name="tie")
    result = evaluate_routers(data, ["best-single"], n_boot=10)
    assert result["reference"]["best_single_model"] == "A" and result["routers"]["best-single"]["info"]["model"] == "A"
    assert result["reference"]["best_single_acc"] == 1.0 and result["routers"]["best-single"]["accuracy"]["value"] == 1.0


def test_two_model_pool_reports_apgr():
    data = make_data(n_models=2, p_correct=[0.3, 0.8])
    result = evaluate_routers(data, ["oracle", "best-single", "random", "task-prior"], n_boot=20)
    assert result["routers"]["random"]["apgr"] == pytest.approx(0.5)
    assert result["routers"]["oracle"]["apgr"] >= result["routers"]["task-prior"]["apgr"]
    assert "CPT50" in format_table(result)


def test_cli_help_and_errors(capsys):
    from routertrain.cli.evaluate import main

    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0 and "kmeans" in capsys.readouterr().out
    assert main(["routers=[oracle,knnn]"]) == 2
    assert "unknown router" in capsys.readouterr().err


def test_cli_on_a_trained_run(tiny_run, tmp_path, monkeypatch, capsys):
    from routertrain.cli.evaluate import main

    monkeypatch.setenv("ROUTERTRAIN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results.json"
    assert main([f"run={tiny_run}", "routers=[best-single,finetuned,frozen]", "--n-boot", "20", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "finetuned" in printed and "frozen" in printed
    result = json.loads(out.read_text())
    assert set(result["routers"]) == {"best-single", "finetuned", "frozen"} and result["warnings"] == []
    assert result["data"]["n_queries"] == 11 and result["routers"]["finetuned"]["calibration"]["log_loss"] > 0


def tied_sparse_data(folder):
    """The synthetic benchmark with tasks, about half of the rows keeping one label (missing labels),
    and model 1 a copy of model 0 (exact ties in every mean: best single, task prior)."""
    import numpy as np
    from datasets import DatasetDict

    from routertrain.data import RoutingData
    from tests.conftest import sparse_label_data

    sparse_label_data(folder)
    data = RoutingData.load_from_disk(folder)
    splits = {}
    for name, ds in data.splits.items():
        labels, mask = np.asarray(ds["labels"]), np.asarray(ds["label_mask"])
        labels[:, 1], mask[:, 1] = labels[:, 0], mask[:, 0]
        splits[name] = ds.remove_columns(["labels", "label_mask"]).add_column("labels", labels.tolist()).add_column("label_mask", mask.tolist())
    data.splits = DatasetDict(splits)
    out = folder.parent / (folder.name + "-tied")
    data.save_to_disk(out)
    return out


@pytest.mark.parametrize("average", ["micro", "macro"])
def test_metrics_json_and_the_evaluator_agree(tiny_encoder, tmp_path, average):
    """The same router on the same split: training's metrics.json and routertrain.evaluate give the
    same routing accuracy, best single, task prior and oracle (one decision core), with ties and
    missing labels, under either average."""
    import json

    from routertrain.config import load_config
    from routertrain.training.loop import train
    from tests.conftest import tiny_args

    data_dir = tied_sparse_data(tmp_path / "data")
    args = tiny_args(tiny_encoder, tmp_path / "runs", "data.name=disk", f"data.path={data_dir}", "train.max_steps=4", f"eval.average={average}")
    results = train(load_config(args))
    metrics = json.loads((Path(results["run_dir"]) / "metrics.json").read_text())["test"]
    data = load_routing_data(load_config(args).data)
    labels = data.labels("test")
    assert np.isnan(labels).any() and (labels[:, 0] == labels[:, 1])[~np.isnan(labels[:, 0])].all()
    evaluated = evaluate_routers(data, ["oracle", "best-single", "task-prior", "finetuned"], run=results["run_dir"], n_boot=10, average=average)
    routers, reference = evaluated["routers"], evaluated["reference"]
    assert metrics["average"] == evaluated["settings"]["average"] == average
    assert metrics["routing_acc"] == pytest.approx(routers["finetuned"]["accuracy"]["value"], abs=1e-6)
    assert metrics["best_single_acc"] == pytest.approx(reference["best_single_acc"], abs=1e-12)
    assert metrics["best_single_acc"] == pytest.approx(routers["best-single"]["accuracy"]["value"], abs=1e-12)
    assert metrics["task_prior_acc"] == pytest.approx(routers["task-prior"]["accuracy"]["value"], abs=1e-12)
    assert metrics["oracle_acc"] == pytest.approx(routers["oracle"]["accuracy"]["value"], abs=1e-12)
    assert metrics["per_task"] == pytest.approx(routers["finetuned"]["per_task"], abs=1e-6)


def test_the_registry_names_every_router_and_refuses_a_taken_name():
    from routertrain.evaluation.interface import REGISTRY, BaselineRouter, register_router
    from routertrain.evaluation.routers import names

    assert names() == ("oracle", "best-single", "random", "random-draw", "task-prior", "knn", "logreg", "mlp", "mf", "kmeans", "tfidf", "finetuned", "frozen")
    assert names("embedding") == ("knn", "logreg", "mlp", "mf", "kmeans") and names("run") == ("finetuned", "frozen")
    assert "random-draw" not in names(default=True) and not set(names("run")) & set(names(default=True))
    assert make("random-draw").draw and make("random-draw").name == "random-draw" and not make("random").draw
    with pytest.raises(ValueError, match="taken by Knn"):
        register_router("knn", "another knn")(type("OtherKnn", (BaselineRouter,), {}))
    with pytest.raises(ValueError, match="router kind 'nope'"):
        register_router("x", "x", kind="nope")
    assert "x" not in REGISTRY
