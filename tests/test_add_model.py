"""Adding a model to a trained router: a new head row fitted with the encoder frozen, the old rows untouched."""

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from routertrain import Router
from routertrain.cli.add_model import main as add_model_main
from routertrain.hub.add_model import fit_row, read_labels, router_features


def synthetic_queries(n: int) -> list[str]:
    from routertrain.config import load_config
    from routertrain.data import build_synthetic

    return list(build_synthetic(load_config([f"data.synthetic.n_train={n}"]).data).splits["train"]["query"])[:n]


def test_fit_row_learns_a_separable_model():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(400, 8)).astype(np.float32)
    scores = (features[:, 0] > 0).astype(np.float32)  # the new model is right exactly when feature 0 is positive
    weight, bias, info = fit_row(features, scores)
    predicted = (features @ weight + bias) > 0
    assert (predicted == scores.astype(bool)).mean() > 0.95
    assert abs(weight[0]) > 5 * np.abs(weight[1:]).max() and info["n_labels"] == 400


def test_add_model_appends_one_row_and_leaves_the_rest_unchanged(tiny_run, tmp_path, capsys):
    folder = tiny_run / "router"
    router = Router.from_pretrained(folder, device="cpu")
    queries = synthetic_queries(120)
    # the new model answers exactly the queries that mention code, so its row has something to learn
    scores = [1.0 if any(w in q.lower() for w in ("code", "python", "algorithm", "binary", "sql")) else 0.0 for q in queries]
    labels = tmp_path / "new.jsonl"
    labels.write_text("".join(json.dumps({"query": q, "score": s}) + "\n" for q, s in zip(queries, scores)))
    out = tmp_path / "grown"
    assert add_model_main([str(tiny_run), "--name", "new-model", "--labels", str(labels), "--output", str(out), "--cost", "0.7"]) == 0
    assert f"router with {len(router.models) + 1} models (new-model added from 120 labels)" in capsys.readouterr().out

    old, new = load_file(str(folder / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert old.keys() == new.keys()
    for key in old:
        if key.startswith("head."):
            assert new[key].shape[0] == old[key].shape[0] + 1
            assert np.array_equal(new[key][:-1].numpy(), old[key].numpy()), key  # existing rows bit for bit
        else:
            assert np.array_equal(new[key].numpy(), old[key].numpy()), key  # the encoder is frozen
    grown = Router.from_pretrained(out, device="cpu")
    assert grown.models == [*router.models, "new-model"] and grown.costs == [*router.costs, 0.7]
    probs_old, probs_new = router.predict(queries), grown.predict(queries)
    np.testing.assert_allclose(probs_new[:, :-1], probs_old, atol=1e-6)
    learnt = probs_new[:, -1]
    scores = np.asarray(scores)
    assert learnt[scores == 1].mean() > learnt[scores == 0].mean()  # the row learnt which queries the new model gets right
    record = json.loads((out / "add_model.json").read_text())
    assert record["added_model"] == "new-model" and record["n_labels"] == 120
    assert "new-model" in (out / "README.md").read_text()
    np.testing.assert_allclose(router_features(grown, queries[:3]), router_features(router, queries[:3]), atol=0)


def test_add_model_refuses_bad_input(tiny_run, tmp_path, capsys):
    labels = tmp_path / "l.jsonl"
    labels.write_text("".join(json.dumps({"query": f"q {i}", "score": i % 2}) + "\n" for i in range(20)))
    cases = [
        (["--name", "x", "--labels", str(labels), "--output", str(tmp_path / "o1")], "give --cost for x"),
        (["--name", Router.from_pretrained(tiny_run / "router", device="cpu").models[0], "--labels", str(labels), "--output", str(tmp_path / "o2"), "--cost", "1"], "already in this router's pool"),
        (["--name", "x", "--labels", str(tmp_path / "none.jsonl"), "--output", str(tmp_path / "o3"), "--cost", "1"], "does not exist"),
        (["--name", "x", "--labels", str(labels), "--output", str(tmp_path), "--cost", "1"], "already exists"),
    ]
    for args, message in cases:
        assert add_model_main([str(tiny_run), *args]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and "\n" not in err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "a", "score": 2}\n')
    with pytest.raises(ValueError, match=r"line 1: .*score in \[0, 1\]"):
        read_labels(bad)


def test_int8_path_keeps_the_head_and_stays_close(tiny_run):
    import torch

    from routertrain.model.quantize import quantize_int8

    eager = Router.from_pretrained(tiny_run / "router", device="cpu")
    fast = Router.from_pretrained(tiny_run / "router", device="cpu")
    quantize_int8(fast.model)
    assert not any(type(m) is torch.nn.Linear for m in fast.model.encoder.modules())  # every encoder Linear is quantised
    assert torch.equal(fast.model.head.weight, eager.model.head.weight)
    queries = synthetic_queries(40)
    np.testing.assert_allclose(fast.predict(queries), eager.predict(queries), atol=0.05)
