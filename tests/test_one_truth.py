"""What we report is what we ship: the evaluator's accuracy and mean cost equal those of the decisions
that ``route()`` and ``/v1/route`` return, for every router kind, on a split with exact ties,
per-query costs and missing labels; and each router kind survives a save and reload unchanged."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
import yaml
from datasets import Dataset, DatasetDict
from transformers import AutoModel, AutoTokenizer

from routertrain.data import RoutingData, synthetic
from routertrain.evaluation.compare import evaluate_routers
from routertrain.evaluation.decision import model_means
from routertrain.hub.router import Router, RouterFolderError, save_router
from routertrain.model.modeling import RouterModel
from routertrain.routing.rule import choose, tie_order
from tests.conftest import REPO

MODELS = ["m0", "m1", "m2", "m3"]
SIZES = {"train": 60, "validation": 30, "test": 40}
TOL = 1e-9


def make_data(seed: int = 0) -> RoutingData:
    """Four models on synthetic queries: about 12% of labels missing, per-query costs (m2 and m3 share
    theirs, so their mean costs tie and the train means break their ties), model costs = train means."""
    rng = np.random.default_rng(seed)
    queries = synthetic.generate(seed, SIZES["train"], SIZES["validation"], SIZES["test"], 2)["splits"]
    base = np.array([1.0, 0.5, 0.2, 0.2])
    splits, train_costs = {}, None
    for split, n in SIZES.items():
        labels = (rng.random((n, 4)) < [0.6, 0.5, 0.4, 0.55]).astype(np.float32)
        mask = (rng.random((n, 4)) > 0.12).astype(np.float32)
        mask[0] = 1.0  # at least one query with every label
        costs = base * rng.uniform(0.5, 1.5, (n, 1)) * rng.uniform(0.8, 1.2, (n, 4))
        costs[:, 3] = costs[:, 2]
        if split == "train":
            train_costs = costs
        splits[split] = Dataset.from_dict({"query": queries[split]["query"], "labels": labels.tolist(), "label_mask": mask.tolist(),
                                           "costs": costs.astype(np.float32).tolist()})
    means = np.asarray(splits["train"]["costs"], dtype=np.float64).mean(axis=0)
    assert train_costs is not None and means[2] == means[3]
    return RoutingData(DatasetDict(splits), MODELS, [float(c) for c in means], name="ties", fingerprint="ties")


def tied_router(encoder: Path, folder: Path, data: RoutingData, seed: int) -> Path:
    """A router whose head rows m0 = m1 and m2 = m3: every query ties exactly in both pairs."""
    torch.manual_seed(seed)
    model = RouterModel.from_encoder(AutoModel.from_pretrained(encoder), len(MODELS), "mean", dropout=0.0, base_model=str(encoder))
    with torch.no_grad():
        model.head.weight[1] = model.head.weight[0]
        model.head.bias[1] = model.head.bias[0]
        model.head.weight[3] = model.head.weight[2]
        model.head.bias[3] = model.head.bias[2]
        model.head.weight.mul_(4.0)  # spread the probabilities
        tokenizer = AutoTokenizer.from_pretrained(encoder)
        batch = tokenizer(list(data.splits["validation"]["query"]) + list(data.splits["test"]["query"]), padding=True, return_tensors="pt")
        logits = model.head(model.embed(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]))
        shift = float((logits[:, 2] - logits[:, 0]).median())  # so that the two pairs each win about half of the queries
        model.head.bias[0] += shift
        model.head.bias[1] += shift
    means = model_means(data.labels("train"))
    return save_router(model.eval(), tokenizer, folder, MODELS, data.costs, 32, str(encoder), train_means=means)


def shipped(router: Router, data: RoutingData, missing: str, names: list[str] | None = None) -> tuple[float, float]:
    """Accuracy and mean per-query cost of the decisions ``route()`` (or a server: ``names``) made on test."""
    queries = list(data.splits["test"]["query"])
    names = router.route(queries) if names is None else names
    choice = np.array([MODELS.index(n) for n in names])
    labels, costs = data.labels("test").astype(np.float64), data.query_costs("test")
    keep = np.isfinite(labels).all(axis=1) if missing == "complete" else np.ones(len(labels), dtype=bool)
    got = np.nan_to_num(labels[np.arange(len(labels)), choice], nan=0.0)
    return float(got[keep].mean()), float(costs[np.arange(len(costs)), choice][keep].mean())


def reported(folder: Path, data: RoutingData, missing: str) -> tuple[float, float]:
    result = evaluate_routers(data, ["finetuned"], run=folder, n_boot=10, average="micro", missing=missing, reference="best-single")
    row = result["routers"]["finetuned"]
    return row["accuracy"]["value"], row["cost"]


@pytest.fixture(scope="module")
def kinds(tiny_encoder, tmp_path_factory):
    """A single router, an ensemble, a blend, a calibrated router with a cost setting, a calibrated
    ensemble and a calibrated blend, all of one pool, written as folders."""
    from routertrain.evaluation.blend import fit_router_blend
    from routertrain.hub.blend import save_blend
    from routertrain.hub.ensemble import save_ensemble

    tmp = tmp_path_factory.mktemp("one-truth")
    data = make_data()
    single = tied_router(tiny_encoder, tmp / "single", data, seed=1)
    other = tied_router(tiny_encoder, tmp / "other", data, seed=2)
    ensemble = save_ensemble([single, other], tmp / "ensemble")
    router = Router.from_pretrained(single, device="cpu")
    mem, spec = fit_router_blend(router, data, "micro")
    blend = save_blend(single, tmp / "blend", mem, spec)
    folders = {"single": single, "ensemble": ensemble, "blend": blend}
    validation = list(data.splits["validation"]["query"])
    for name in ("single", "ensemble", "blend"):
        target = shutil.copytree(folders[name], tmp / f"calibrated-{name}")
        loaded = Router.from_pretrained(target, device="cpu")
        spend = np.asarray(loaded.costs)[loaded.decide(loaded.predict(validation), cost_weight=0.0)].mean()
        loaded.calibrate(validation, mean_cost=0.8 * spend)  # a cost setting that moves some queries to cheaper models
        folders[f"calibrated-{name}"] = target
    return data, folders


def test_the_test_split_has_exact_ties_per_query_costs_and_missing_labels(kinds):
    data, folders = kinds
    probs = Router.from_pretrained(folders["single"], device="cpu").predict(list(data.splits["test"]["query"]))
    assert np.array_equal(probs[:, 0], probs[:, 1]) and np.array_equal(probs[:, 2], probs[:, 3])
    top = probs.max(axis=1, keepdims=True) == probs
    assert (top.sum(axis=1) == 2).all()  # every decision is a tie
    assert np.isnan(data.labels("test")).any() and not np.isnan(data.labels("test")).all(axis=1).any()
    costs = data.query_costs("test")
    assert data.cost_source == "per-query" and not np.allclose(costs, np.asarray(data.costs)[None, :])


@pytest.mark.parametrize("missing", ["complete", "wrong"])
@pytest.mark.parametrize("kind", ["single", "ensemble", "blend", "calibrated-single", "calibrated-ensemble", "calibrated-blend"])
def test_reported_accuracy_and_cost_are_those_of_route(kinds, kind, missing):
    data, folders = kinds
    router = Router.from_pretrained(folders[kind], device="cpu")
    accuracy, cost = shipped(router, data, missing)
    got_accuracy, got_cost = reported(folders[kind], data, missing)
    assert abs(got_accuracy - accuracy) < TOL and abs(got_cost - cost) < TOL


def test_calibration_moves_decisions_and_the_report_follows(kinds):
    """The calibrated routers really differ from their uncalibrated sources (else the check above is weak)."""
    data, folders = kinds
    queries = list(data.splits["test"]["query"])
    for name in ("single", "ensemble", "blend"):
        plain, calibrated = (Router.from_pretrained(folders[k], device="cpu") for k in (name, f"calibrated-{name}"))
        assert calibrated.calibration is not None and calibrated.calibration["cost_weight"] > 0
        assert plain.route(queries) != calibrated.route(queries)


def test_served_decisions_equal_the_report(kinds, tmp_path):
    """The calibrated router behind a real ``serve`` on 127.0.0.1: /v1/route's decisions score as reported."""
    data, folders = kinds
    folder = folders["calibrated-single"]
    backends = tmp_path / "backends.yaml"
    backends.write_text(yaml.safe_dump({"backends": {m: {"base_url": "http://127.0.0.1:9/v1", "model": m} for m in MODELS}}))
    log = tmp_path / "serve.log"
    env = {"PYTHONPATH": str(REPO), "NO_PROXY": "127.0.0.1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen([sys.executable, "-m", "routertrain.cli.serve", str(folder), "--backends", str(backends), "--port", "0"],
                            stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, cwd=REPO)
    try:
        url = wait_for_url(log, proc)
        queries = list(data.splits["test"]["query"])
        response = httpx.post(f"{url}/v1/route", json={"queries": queries}, timeout=120)
        assert response.status_code == 200, response.text
        names = [d["model"] for d in response.json()["decisions"]]
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert f"{folder} (none) on http://" in log.read_text()  # eager torch: serve's default
    router = Router.from_pretrained(folder, device="cpu")
    assert names == router.route(queries)
    for missing in ("complete", "wrong"):
        accuracy, cost = shipped(router, data, missing, names)
        got_accuracy, got_cost = reported(folder, data, missing)
        assert abs(got_accuracy - accuracy) < TOL and abs(got_cost - cost) < TOL


def wait_for_url(log: Path, proc: subprocess.Popen, timeout: float = 120.0) -> str:
    import re
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"on (http://127\.0\.0\.1:\d+)/v1", log.read_text() if log.exists() else "")
        if found:
            return found.group(1)
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    raise AssertionError(f"serve never listened: {log.read_text()[-2000:]}")


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["single", "ensemble", "blend", "calibrated-single", "calibrated-ensemble", "calibrated-blend"])
def test_every_router_kind_reloads_with_identical_decisions(kinds, kind, tmp_path):
    data, folders = kinds
    queries = list(data.splits["test"]["query"])
    before = Router.from_pretrained(folders[kind], device="cpu")
    copy = shutil.copytree(folders[kind], tmp_path / kind)
    after = Router.from_pretrained(copy, device="cpu")
    assert after.route(queries) == before.route(queries)
    assert after.calibration == before.calibration and after.train_means == before.train_means


def test_a_single_router_saved_again_keeps_its_setting_and_tie_keys(kinds, tmp_path):
    data, folders = kinds
    queries = list(data.splits["test"]["query"])
    router = Router.from_pretrained(folders["calibrated-single"], device="cpu")
    config = router.config
    again = save_router(router.model, router.tokenizer, tmp_path / "again", config.models, config.costs, config.max_length, config.base_model)
    reloaded = Router.from_pretrained(again, device="cpu")
    assert reloaded.calibration == router.calibration and reloaded.train_means == router.train_means
    assert reloaded.route(queries) == router.route(queries)


def test_an_added_model_keeps_the_tie_keys_and_reloads_identically(kinds, tmp_path):
    from routertrain.hub.add_model import add_model

    data, folders = kinds
    queries = list(data.splits["test"]["query"])
    router = Router.from_pretrained(folders["single"], device="cpu")
    train = list(data.splits["train"]["query"])
    scores = (np.arange(len(train)) % 3 == 0).astype(np.float32)
    out = add_model(router, "m4", train, scores, tmp_path / "plus", cost=0.3)
    plus = Router.from_pretrained(out, device="cpu")
    assert plus.train_means[:4] == router.train_means and plus.train_means[4] == pytest.approx(float(scores.mean()))
    again = Router.from_pretrained(shutil.copytree(out, tmp_path / "plus-copy"), device="cpu")
    assert again.route(queries) == plus.route(queries)


# --- the five defects, each on its own ------------------------------------------------------------


def test_ties_route_to_the_cheaper_model_then_the_higher_train_mean(kinds):
    """A tie used to go to the lowest index at inference and be split evenly in evaluation."""
    data, folders = kinds
    router = Router.from_pretrained(folders["single"], device="cpu")
    probs = router.predict(list(data.splits["test"]["query"]))
    chosen = router.decide(probs)
    pair_top = np.where(probs[:, 0] > probs[:, 2], 0, 2)
    cheaper = {0: 1, 2: 2 if router.train_means[2] >= router.train_means[3] else 3}  # m1 costs less than m0; m2 and m3 cost the same
    assert router.costs[1] < router.costs[0] and router.costs[2] == router.costs[3]
    assert chosen.tolist() == [cheaper[p] for p in pair_top]
    assert tie_order(3, [1.0, 1.0, 0.5], [0.9, 0.2, 0.1]).tolist() == [2, 1, 3]
    assert choose(np.array([[0.7, 0.7, 0.1]]), [1.0, 1.0, 0.5], prior=[0.2, 0.9, 0.1]).tolist() == [1]


def test_nan_is_never_chosen_and_a_nan_cost_is_refused(kinds, tmp_path):
    """np.argmax used to return the NaN's index: a NaN cost won every query, even at cost weight 0."""
    assert choose(np.array([[np.nan, 0.2, 0.1]])).tolist() == [1]
    with pytest.raises(ValueError, match="finite number >= 0"):
        choose(np.array([[0.5, 0.4]]), costs=[np.nan, 1.0])
    with pytest.raises(ValueError, match="no choosable model"):
        choose(np.array([[np.nan, np.nan]]))
    data, folders = kinds
    bad = shutil.copytree(folders["single"], tmp_path / "nan-cost")
    config = json.loads((bad / "config.json").read_text())
    config["costs"][0] = float("nan")  # json writes NaN, as a nanmean over missing costs would give
    (bad / "config.json").write_text(json.dumps(config))
    with pytest.raises(RouterFolderError, match="finite number >= 0"):
        Router.from_pretrained(bad, device="cpu")


def test_a_model_without_any_train_cost_is_refused_when_the_data_is_built(tmp_path):
    from routertrain.data import DataError
    from routertrain.data.sources.assemble import dataset_costs

    class Cfg:
        costs = None

    row_costs = np.array([[1.0, np.nan], [2.0, np.nan]])
    with pytest.raises(DataError, match=r"no train query has a cost for \['b'\]"):
        dataset_costs(Cfg(), ["a", "b"], row_costs, [0, 1])


def test_missing_labels_are_never_routed_around():
    """A pool model without labels used to be invisible to the metrics; a deployed router still picks it."""
    labels = np.array([[1.0, np.nan], [0.0, np.nan], [1.0, 1.0]])
    scores = np.array([[0.2, 0.9], [0.3, 0.8], [0.1, 0.7]])  # model 1 always on top
    from routertrain.evaluation import decision as d

    assert d.score_accuracy(scores, labels, missing="wrong") == pytest.approx(1 / 3)  # was (1 + 0 + 1) / 3 over labelled models
    assert d.score_accuracy(scores, labels) == pytest.approx(1.0)  # complete: only the last query, where model 1 is labelled
    assert d.coverage(d.choose(scores), labels) == pytest.approx(1 / 3)


def test_an_ensemble_keeps_its_own_calibration(kinds):
    """``EnsembleRouter.from_folder`` used to read member 0's config and drop the ensemble's setting."""
    data, folders = kinds
    ensemble = Router.from_pretrained(folders["calibrated-ensemble"], device="cpu")
    assert ensemble.calibration is not None and ensemble.calibration["cost_weight"] > 0
    assert all(member.calibration is None for member in ensemble.members)
    probs = ensemble.predict(list(data.splits["test"]["query"]))
    assert ensemble.decide(probs).tolist() != ensemble.decide(probs, cost_weight=0.0).tolist()


def test_training_refuses_complete_scoring_of_a_split_without_a_complete_query(tiny_encoder, tmp_path):
    """eval.missing=complete on a validation split where every query lacks a label: one line naming the fix, before any work."""
    from routertrain.config import load_config
    from routertrain.data import DataError
    from routertrain.training.loop import train
    from tests.conftest import tiny_args

    data = make_data()
    masks = np.ones((SIZES["validation"], len(MODELS)), dtype=np.float32)
    masks[np.arange(SIZES["validation"]), np.arange(SIZES["validation"]) % len(MODELS)] = 0.0
    data.splits["validation"] = data.splits["validation"].remove_columns("label_mask").add_column("label_mask", masks.tolist())
    data.save_to_disk(tmp_path / "data")
    args = tiny_args(tiny_encoder, tmp_path / "runs", "data.name=disk", f"data.path={tmp_path / 'data'}", "train.max_steps=2")
    with pytest.raises(DataError, match="eval.missing=wrong") as info:
        train(load_config(args))
    assert "\n" not in str(info.value)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("done.json"))
    results = train(load_config([*args, "eval.missing=wrong"]))  # the fix it names works
    assert results["validation"]["missing"] == "wrong" and results["validation"]["n_queries"] == SIZES["validation"]
