"""The blend of a fine-tuned router with kNN and the soft task prior: the math by hand, the choice on
validation, and a shipped folder that loads and routes like one router."""

import json

import numpy as np
import pytest

from routertrain.cli.blend import main
from routertrain.data import load_routing_data
from routertrain.evaluation import blend
from routertrain.hub.router import BlendRouter, Router
from routertrain.model.modeling import RouterModel

QUERIES = ["Explain the binary search briefly.", "Explain the mens rea of theft.", "What is 17 times 3?"]


def hand_memory():
    keys = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    labels = np.array([[1.0, 0.0], [1.0, np.nan], [0.0, 1.0], [1.0, 1.0]])
    return blend.memory(keys, labels, np.array(["math", "math", "law", "law"]))


def test_components_equal_a_hand_computation():
    mem = hand_memory()
    assert mem.task_names == ["law", "math"]
    np.testing.assert_allclose(mem.task_means, [[0.5, 1.0], [1.0, 0.0]])  # math's model 1: its one label, 0
    query = np.array([[2.0, 0.2]])  # nearest: rows 0 then 1 (both math); third: row 3 (law)
    parts = blend.components(mem, query, np.array([[0.3, 0.6]]), k=3)
    np.testing.assert_allclose(parts["knn"], [[(1 + 1 + 1) / 3, (0 + 1) / 2]])  # NaN skipped
    np.testing.assert_allclose(parts["prior"], [[2 / 3 * 1.0 + 1 / 3 * 0.5, 2 / 3 * 0.0 + 1 / 3 * 1.0]])
    np.testing.assert_allclose(parts["finetuned"], [[0.3, 0.6]])
    weights = {"finetuned": 0.5, "knn": 0.3, "prior": 0.2}
    np.testing.assert_allclose(blend.combine(parts, weights), 0.5 * parts["finetuned"] + 0.3 * parts["knn"] + 0.2 * parts["prior"])


def test_without_tasks_the_prior_is_the_overall_means():
    mem = blend.memory(np.eye(3), np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]]))
    parts = blend.components(mem, np.array([[1.0, 0.0, 0.0]]), np.zeros((1, 2)), k=2)
    np.testing.assert_allclose(parts["prior"], [[2 / 3, 1 / 3]])


def test_the_weight_grid_covers_the_simplex_with_the_fine_tuned_router_first():
    grid = blend.weight_grid(0.1)
    assert len(grid) == 66 and grid[0] == {"finetuned": 1.0, "knn": 0.0, "prior": 0.0}
    assert all(abs(sum(w.values()) - 1) < 1e-9 and min(w.values()) >= 0 for w in grid)
    assert {"finetuned": 0.0, "knn": 0.0, "prior": 1.0} in grid and {"finetuned": 0.0, "knn": 1.0, "prior": 0.0} in grid


def test_fit_picks_the_weights_best_on_validation():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8))  # four clusters; in cluster c, model c % 2 is the right one
    def split(n):
        c = rng.integers(0, 4, n)
        x = centres[c] + 0.05 * rng.normal(size=(n, 8))
        y = np.stack([(c % 2 == 0), (c % 2 == 1)], axis=1).astype(float)
        return x, y, np.where(c < 2, "a", "b")
    (xt, yt, tt), (xv, yv, tv) = split(200), split(60)
    mem = blend.memory(xt, yt, tt)
    useless = np.tile([0.6, 0.4], (len(yv), 1))  # a "fine-tuned" router that always picks model 0
    spec = blend.fit(mem, xv, useless, yv, tv)
    acc = spec["validation_acc"]
    assert acc["knn"] == pytest.approx(1.0) and acc["finetuned"] == pytest.approx(np.mean(yv[:, 0]))
    assert spec["weights"]["knn"] > 0 and acc["blend"] == pytest.approx(1.0)
    best = [w for w in blend.weight_grid() if spec["weights_validation_acc"][blend.key(w)] == acc["blend"]]
    assert spec["weights"] == best[0]  # of equally good weightings, the one that keeps most of the fine-tuned router
    assert acc["blend"] == max(spec["weights_validation_acc"].values()) >= max(acc["finetuned"], acc["knn"], acc["prior"])
    assert spec["k"] in (1, 3, 5, 10, 20, 50, 100, 200, 500, 1000) and spec["chosen_on"] == "validation"


def test_a_blend_folder_loads_and_routes_like_a_router(tiny_run, tmp_path, capsys):
    out = tmp_path / "blend"
    assert main([str(out), str(tiny_run), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "blend (chosen on validation):" in printed and f"blend router: {out}" in printed
    router = Router.from_pretrained(out, device="cpu")
    assert isinstance(router, BlendRouter)
    spec = json.loads((out / "blend.json").read_text())
    # by hand: the plain router's P(correct) and pooled vectors, kNN and the soft prior over its training split
    plain = Router.from_pretrained(tiny_run / "router", device="cpu")
    probs, vectors = plain.encode(QUERIES)
    _, train_vectors = plain.encode(list(router_training_queries(tiny_run)))
    np.testing.assert_allclose(router.memory.keys, blend.unit(train_vectors), atol=1e-5)
    parts = blend.components(router.memory, vectors, probs, spec["k"])
    np.testing.assert_allclose(router.predict(QUERIES), blend.combine(parts, spec["weights"]), atol=1e-6)
    assert router.route(QUERIES) == [router.models[i] for i in router.decide(router.predict(QUERIES))]
    # the fine-tuned router alone still loads through transformers, with the plain router's weights
    alone = RouterModel.from_pretrained(out)
    np.testing.assert_allclose(alone.head.weight.detach().numpy(), plain.model.head.weight.detach().numpy())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["validation"]["n_queries"] == 13 and metrics["test"]["n_queries"] == 11
    assert (out / "router_metrics.json").is_file()
    card = (out / "README.md").read_text()
    assert "## Blend" in card and f"k = {spec['k']}" in card


def router_training_queries(run):
    from omegaconf import OmegaConf

    from routertrain.config import Config

    cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(run / "config.yaml")))
    return load_routing_data(cfg.data).splits["train"]["query"]


def test_blending_a_blend_is_refused_in_one_line(tiny_run, tmp_path, capsys):
    out = tmp_path / "blend"
    assert main([str(out), str(tiny_run), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert main([str(tmp_path / "again"), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already a blend" in err and not (tmp_path / "again").exists()


def test_convert_refuses_a_blend_folder_in_one_line(tiny_run, tmp_path, capsys):
    from routertrain.cli.convert import main as convert

    out = tmp_path / "blend"
    assert main([str(out), str(tiny_run), "--device", "cpu"]) == 0
    capsys.readouterr()
    assert convert([str(out), str(tmp_path / "converted")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is a blend folder, already in the current format" in err and not (tmp_path / "converted").exists()
