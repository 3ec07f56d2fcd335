"""The ONNX Runtime path (routertrain.hub.onnx): the same decisions as eager torch on a small
router, the exported graph cached and rebuilt when the weights change, ensembles too."""

import shutil

import numpy as np
import pytest
import torch

from routertrain import Router


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERTRAIN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "onnx"


@pytest.fixture(scope="module")
def queries():
    from routertrain.config import load_config
    from routertrain.data import build_synthetic

    texts = list(dict.fromkeys(build_synthetic(load_config(["data.synthetic.n_train=300"]).data).splits["train"]["query"]))
    return texts[:150] + ["x", "what " * 200]  # a one-word query and one cut at max_length: batches of very different lengths


def test_onnx_routes_as_eager(tiny_run, queries, cache):
    folder = tiny_run / "router"
    eager = Router.from_pretrained(folder, device="cpu")
    fast = Router.from_pretrained(folder, device="cpu", backend="onnx")
    assert fast.onnx is not None and fast.onnx.path.parent == cache
    assert not any(m.training for m in fast.model.modules())  # the export left dropout off
    (p_eager, v_eager), (p_fast, v_fast) = eager.encode(queries, batch_size=16), fast.encode(queries, batch_size=16)
    np.testing.assert_allclose(p_fast, p_eager, atol=1e-5)
    np.testing.assert_allclose(v_fast, v_eager, atol=1e-4)
    assert (fast.decide(p_fast) == eager.decide(p_eager)).all()
    np.testing.assert_allclose(fast.predict(queries[3]), eager.predict(queries[3]), atol=1e-5)  # batch of one
    with pytest.raises(ValueError, match="unknown backend 'tensorrt'; use torch or onnx"):
        Router.from_pretrained(folder, backend="tensorrt")


def test_graph_is_cached_and_rebuilt_when_the_weights_change(tiny_run, queries, cache, tmp_path):
    from routertrain.hub.router import save_router

    folder = tiny_run / "router"
    first = Router.from_pretrained(folder, backend="onnx").onnx.path
    stamp = first.stat().st_mtime_ns
    assert Router.from_pretrained(folder, backend="onnx").onnx.path == first and first.stat().st_mtime_ns == stamp  # not exported again
    changed = Router.from_pretrained(folder, device="cpu")
    with torch.no_grad():
        changed.model.head.bias += 1.0
    config = changed.config
    copy = save_router(changed.model, changed.tokenizer, tmp_path / "changed", config.models, config.costs, config.max_length, config.base_model or "")
    fast = Router.from_pretrained(copy, backend="onnx")
    assert fast.onnx.path != first and sorted(p.name for p in cache.iterdir()) == sorted([first.name, fast.onnx.path.name])
    np.testing.assert_allclose(fast.predict(queries), Router.from_pretrained(copy, device="cpu").predict(queries), atol=1e-5)
    assert not (folder / "onnx").exists()  # the router folder is left as it was


def test_an_ensemble_runs_each_member_with_onnx(tiny_run, queries, cache, tmp_path):
    from routertrain.hub.ensemble import save_ensemble

    shutil.copytree(tiny_run / "router", tmp_path / "second")
    folder = save_ensemble([tiny_run / "router", tmp_path / "second"], tmp_path / "ensemble")
    eager, fast = Router.from_pretrained(folder, device="cpu"), Router.from_pretrained(folder, device="cpu", backend="onnx")
    assert all(member.onnx is not None for member in fast.members)
    np.testing.assert_allclose(fast.predict(queries), eager.predict(queries), atol=1e-5)
