"""Ensembles: two tiny runs of different seeds shipped as one folder that loads and routes like one router."""

import json

import numpy as np

from routertrain.cli.ensemble import main
from routertrain.config import load_config
from routertrain.hub.ensemble import EnsembleRouter
from routertrain.hub.router import Router
from routertrain.training.loop import train
from tests.conftest import tiny_args

QUERIES = ["Explain the binary search briefly.", "Explain the mens rea of theft."]


def test_an_ensemble_folder_is_the_mean_of_its_members_and_loads_like_a_router(tiny_run, tiny_encoder, tmp_path, capsys):
    other = train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=seed7", "run.seed=7", "train.max_steps=4")))["run_dir"]
    out = tmp_path / "ens"
    assert main([str(out), str(tiny_run), other, "--device", "cpu"]) == 0
    assert f"ensemble of 2 routers: {out}" in capsys.readouterr().out
    router = Router.from_pretrained(out, device="cpu")
    assert isinstance(router, EnsembleRouter) and len(router.members) == 2
    members = [Router.from_pretrained(p, device="cpu") for p in (tiny_run / "router", tmp_path / "seed7" / "router")]
    expected = np.mean([m.predict(QUERIES) for m in members], axis=0)
    assert not np.allclose(members[0].predict(QUERIES), members[1].predict(QUERIES))  # two different routers
    np.testing.assert_allclose(router.predict(QUERIES), expected, atol=1e-6)
    assert router.route(QUERIES) == [router.models[i] for i in expected.argmax(axis=1)]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"]["n_queries"] == 13 and metrics["test"]["n_queries"] == 11
    card = (out / "README.md").read_text()
    assert "## Ensemble" in card and "`members/1`" in card and other in card
    assert f'Router.from_pretrained("{out}")' in card
    from routertrain.cli.evaluate import main as evaluate  # as a sweep's evaluate point scores it: run=<the ensemble folder>

    assert evaluate([f"run={out}", "routers=[finetuned]", "--device", "cpu", "--json", str(tmp_path / "ens.json")]) == 0
    scored = json.loads((tmp_path / "ens.json").read_text())["routers"]["finetuned"]
    assert scored["validation_acc"] == metrics["validation"]["routing_acc"] and scored["accuracy"]["value"] == metrics["test"]["routing_acc"]


def test_routers_of_different_pools_are_refused_in_one_line(tiny_run, tiny_encoder, tmp_path, capsys):
    fewer = train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=five", "data.synthetic.n_models=5", "train.max_steps=2")))["run_dir"]
    capsys.readouterr()  # training's progress bars
    assert main([str(tmp_path / "ens"), str(tiny_run), fewer]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "routes to another pool" in err
    assert not (tmp_path / "ens").exists()


def test_an_ensemble_blends_with_knn_on_its_members_vectors_side_by_side(tiny_run, tiny_encoder, tmp_path, capsys):
    from routertrain.cli.add_model import main as add_model
    from routertrain.cli.blend import main as blend_main
    from routertrain.evaluation import blend
    from routertrain.hub.router import BlendRouter

    other = train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=seed7", "run.seed=7", "train.max_steps=4")))["run_dir"]
    assert main([str(tmp_path / "ens"), str(tiny_run), other, "--device", "cpu"]) == 0
    assert blend_main([str(tmp_path / "blend"), str(tmp_path / "ens"), "--device", "cpu"]) == 0
    capsys.readouterr()
    router = Router.from_pretrained(tmp_path / "blend", device="cpu")
    assert isinstance(router, BlendRouter) and isinstance(router.inner, EnsembleRouter) and len(router.networks()) == 2
    members = [Router.from_pretrained(p, device="cpu") for p in (tiny_run / "router", tmp_path / "seed7" / "router")]
    # by hand: the members' mean P(correct); kNN on the members' unit vectors side by side (the mean of their cosines)
    encoded = [m.encode(QUERIES) for m in members]
    probs = np.mean([p for p, _ in encoded], axis=0)
    vectors = np.hstack([blend.unit(v) for _, v in encoded])
    assert router.memory.keys.shape[1] == sum(m.embedding_dim for m in members) == router.embedding_dim
    spec = json.loads((tmp_path / "blend" / "blend.json").read_text())
    expected = blend.combine(blend.components(router.memory, vectors, probs, spec["k"]), spec["weights"])
    np.testing.assert_allclose(router.predict(QUERIES), expected, atol=1e-5)
    card = (tmp_path / "blend" / "README.md").read_text()
    assert "## Ensemble" in card and "## Blend" in card and "the members' pooled embeddings of the training queries side by side" in card
    # adding a model to an ensemble or a blend is refused in one line (the other parts would not know it)
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"query": f"question {i}", "score": i % 2}) + "\n" for i in range(12)))
    for folder in ("ens", "blend"):
        assert add_model([str(tmp_path / folder), "--name", "new", "--labels", str(labels), "--output", str(tmp_path / f"{folder}-plus")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "add the model to each fine-tuned run's router" in err and not (tmp_path / f"{folder}-plus").exists()
