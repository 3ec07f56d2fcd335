"""The router as a transformers model: Auto classes and pipeline agree with ``Router.predict``; Hub
loading arguments; registration after ``import routertrain`` alone; folders of the earlier format."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from routertrain.hub.router import Router, RouterFolderError
from routertrain.model.modeling import RouterConfig, RouterModel

QUERIES = ["Explain the binary search briefly.", "Why does the Cold War matter? Reply in detail.", "x"]


def by_label(results: list[list[dict]], models: list[str]) -> np.ndarray:
    return np.array([[{r["label"]: r["score"] for r in row}[m] for m in models] for row in results])


def test_auto_classes_and_pipeline_give_router_predict(tiny_run):
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, pipeline

    folder = tiny_run / "router"
    router = Router.from_pretrained(folder, device="cpu")
    expected = router.predict(QUERIES)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    assert isinstance(model, RouterModel) and isinstance(model.config, RouterConfig)
    assert model.config.problem_type == "multi_label_classification" and model.config.models == router.models
    assert model.config.label2id == {m: i for i, m in enumerate(router.models)}
    batch = AutoTokenizer.from_pretrained(folder)(QUERIES, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**batch)
    np.testing.assert_allclose(torch.sigmoid(out.logits).numpy(), expected, atol=1e-5)
    assert type(AutoModel.from_pretrained(folder)) is RouterModel
    classify = pipeline("text-classification", model=str(folder), function_to_apply="sigmoid", top_k=None, device="cpu")
    np.testing.assert_allclose(by_label(classify(QUERIES), router.models), expected, atol=1e-5)


def test_router_model_loads_with_hub_arguments_and_saves_again(tiny_run, tmp_path):
    folder = tiny_run / "router"
    model = RouterModel.from_pretrained(folder, local_files_only=True, revision="main", dtype=torch.bfloat16)
    assert next(model.parameters()).dtype == torch.bfloat16
    model.to(torch.float32).save_pretrained(tmp_path / "again")
    again = RouterModel.from_pretrained(tmp_path / "again")
    assert again.config.costs == model.config.costs and again.config.max_length == model.config.max_length
    ids = torch.tensor([[2, 7, 8, 3]])
    out = again(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([[1.0] + [float("nan")] * (len(again.config.models) - 1)]))
    assert out.loss is not None and torch.isfinite(out.loss) and out.logits.shape == (1, len(again.config.models))


def fake_hub_cache(cache, repo_id: str, folder) -> None:
    """The layout huggingface_hub reads offline: refs/main naming a snapshot folder."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    shutil.copytree(folder, repo / "snapshots" / ("0" * 40))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)


def test_router_from_a_hub_cache_and_the_hubs_own_error(tiny_run, tmp_path):
    from huggingface_hub.errors import LocalEntryNotFoundError

    fake_hub_cache(tmp_path / "cache", "org/router", tiny_run / "router")
    router = Router.from_pretrained("org/router", cache_dir=tmp_path / "cache", local_files_only=True, dtype="float64", device="cpu")
    np.testing.assert_allclose(router.predict(QUERIES), Router.from_pretrained(tiny_run / "router", device="cpu").predict(QUERIES), atol=1e-5)
    assert next(router.model.parameters()).dtype == torch.float64
    assert next(Router.from_pretrained(tiny_run / "router", device="cpu", torch_dtype=torch.bfloat16).model.parameters()).dtype == torch.bfloat16
    with pytest.raises(LocalEntryNotFoundError):  # not wrapped: the Hub says what is missing
        Router.from_pretrained("org/absent", cache_dir=tmp_path / "cache", local_files_only=True)


def test_auto_classes_work_after_import_routertrain_which_loads_no_torch(tiny_run):
    code = f"""
import sys
import routertrain
assert "torch" not in sys.modules
from transformers import BertModel  # transformers half-way through importing when its auto modules load
from transformers import AutoModelForSequenceClassification
print(AutoModelForSequenceClassification.from_pretrained({str(tiny_run / 'router')!r}).config.models)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().replace("'", '"')) == Router.from_pretrained(tiny_run / "router", device="cpu").models


def legacy_copy(folder, dest):
    """The folder as routertrain wrote it before format 2: router_config.json plus the encoder's config.json."""
    shutil.copytree(folder, dest)
    config = json.loads((dest / "config.json").read_text())
    models = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
    (dest / "router_config.json").write_text(json.dumps({"format_version": 1, "models": models, "costs": config["costs"], "pooling": config["pooling"], "max_length": config["max_length"], "base_model": config["base_model"]}))
    (dest / "config.json").write_text(json.dumps(config["encoder"]))
    return dest


def test_a_folder_of_the_earlier_format_still_loads_and_converts(tiny_run, tmp_path, capsys):
    from transformers import AutoModelForSequenceClassification

    from routertrain.cli.main import main

    new = Router.from_pretrained(tiny_run / "router", device="cpu")
    old = legacy_copy(tiny_run / "router", tmp_path / "old")
    loaded = Router.from_pretrained(old, device="cpu")
    assert loaded.models == new.models and loaded.costs == new.costs
    np.testing.assert_allclose(loaded.predict(QUERIES), new.predict(QUERIES), atol=1e-6)
    assert main(["convert", str(old), str(tmp_path / "converted")]) == 0
    converted = AutoModelForSequenceClassification.from_pretrained(tmp_path / "converted")
    assert converted.config.models == new.models and (tmp_path / "converted" / "metrics.json").is_file()
    assert main(["convert", str(old), str(tmp_path / "converted")]) == 2 and "exists" in capsys.readouterr().err
    (old / "router_config.json").write_text('{"models": []}')
    with pytest.raises(RouterFolderError, match="router_config.json has no 'models' list"):
        Router.from_pretrained(old, device="cpu")


def test_router_model_push_to_hub_uploads_a_loadable_model(tiny_run, monkeypatch, tmp_path):
    """push_to_hub (transformers' own) with the Hub replaced by a recorder: the commit holds the router
    config and weights, which load back as the same model."""
    import transformers.utils.hub as hub
    from huggingface_hub import ModelCard

    uploaded = {}

    class FakeApi:
        def create_repo(self, repo_id, **kw):
            return type("Repo", (), {"repo_id": repo_id})()

        def create_commit(self, repo_id, operations, **kw):
            for op in operations:
                target = tmp_path / "hub" / op.path_in_repo
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(open(op.path_or_fileobj, "rb").read())
                uploaded[op.path_in_repo] = repo_id
            return "https://hub.example/commit"

    monkeypatch.setattr(hub, "hf_api", lambda: FakeApi())
    monkeypatch.setattr(hub, "create_and_tag_model_card", lambda *a, **k: ModelCard("---\nlibrary_name: routertrain\n---\n"))
    model = RouterModel.from_pretrained(tiny_run / "router")
    model.push_to_hub("org/router")
    assert {"config.json", "model.safetensors"} <= set(uploaded) and set(uploaded.values()) == {"org/router"}
    again = RouterModel.from_pretrained(tmp_path / "hub")
    assert again.config.models == model.config.models
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
