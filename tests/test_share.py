"""Using and sharing a trained router: the model card, the route command line, the Hub push."""

import json
import re

import numpy as np
import pytest
import yaml

from routertrain import Router
from routertrain.hub import push as push_module
from routertrain.hub.card import metadata, render
from routertrain.hub.router import router_settings
from routertrain.hub.push import PushError, push
from routertrain.cli.route import main as route_main


def front_matter(card: str) -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", card, re.S)
    assert match, "card has no YAML front matter"
    return yaml.safe_load(match.group(1))


def test_router_folder_has_a_complete_card(tiny_run):
    card = (tiny_run / "router" / "README.md").read_text()
    meta = front_matter(card)
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    config = router_settings(tiny_run / "router")
    assert meta["library_name"] == "routertrain" and "llm-router" in meta["tags"]
    assert "base_model" not in meta  # a local folder is not a Hub id
    assert meta["license"] == "apache-2.0" and meta["pipeline_tag"] == "text-classification"
    for i, (name, cost) in enumerate(zip(config["models"], config["costs"])):
        assert f"| {i} | {name} | {cost} |" in card
    assert f"| this router | {metrics['validation']['routing_acc']:.4f} | {metrics['test']['routing_acc']:.4f} |" in card
    for row in ("best single model", "task-prior router", "oracle", "Bayes ceiling"):
        assert row in card
    provenance = json.loads((tiny_run / "provenance.json").read_text())
    assert provenance["data_fingerprint"] in card and "## Limitations" in card and "data:" in card


def test_the_hubs_parser_reads_the_model_index_back(tiny_run):
    """ModelCard.load (the Hub's own metadata parser) gives every evaluation number on the named dataset and split."""
    from huggingface_hub import ModelCard

    card = ModelCard.load(tiny_run / "router" / "README.md")
    metrics = json.loads((tiny_run / "metrics.json").read_text())
    results = {(r.dataset_split, r.metric_name): r for r in card.data.eval_results}
    for split in ("validation", "test"):
        for key, name in (("routing_acc", "routing accuracy"), ("oracle_acc", "oracle accuracy (best model per query)"),
                          ("best_single_acc", "best single model accuracy"), ("task_prior_acc", "task-prior router accuracy")):
            result = results[(split, name)]
            assert result.metric_value == pytest.approx(metrics[split][key], abs=1e-4)
            assert result.dataset_type == "synthetic" and result.task_type == "text-classification" and result.metric_type == "accuracy"
    assert card.data.library_name == "routertrain" and card.data.license == "apache-2.0" and card.data.model_name == "router"


def test_card_usage_snippet_runs(tiny_run, capsys):
    card = render(tiny_run / "router")
    snippet = re.search(r"```python\n(.*?)```", card, re.S).group(1)
    snippet = snippet.replace('cost_weight=0.01', 'cost_weight=0.0')
    exec(compile(snippet, "card-snippet", "exec"), {})
    printed = capsys.readouterr().out
    models = router_settings(tiny_run / "router")["models"]
    assert any(name in printed for name in models)


def test_card_names_hub_base_model_and_repo(tiny_run):
    config_path = tiny_run / "router" / "config.json"
    meta = metadata({"base_model": "sentence-transformers/all-MiniLM-L6-v2", "models": ["a"]}, {}, {}, "org/my-router").to_dict()
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert 'Router.from_pretrained("org/my-router")' in render(config_path.parent, repo_id="org/my-router")


def test_route_command_line_writes_jsonl(tiny_run, tmp_path):
    queries = tmp_path / "q.txt"
    queries.write_text("Explain the binary search briefly.\n\nWhy does the Cold War matter? Reply in detail.\n")
    out = tmp_path / "routes.jsonl"
    assert route_main([str(tiny_run), "Explain the mens rea in one sentence.", "--file", str(queries), "--output", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    router = Router.from_pretrained(tiny_run / "router", device="cpu")
    assert [r["query"] for r in rows] == ["Explain the mens rea in one sentence.", "Explain the binary search briefly.", "Why does the Cold War matter? Reply in detail."]
    probs = router.predict([r["query"] for r in rows])
    for row, p in zip(rows, probs):
        assert list(row["probabilities"]) == router.models
        assert row["model"] == router.models[int(np.argmax(p))]
    assert route_main([str(tiny_run), "q", "--max-cost", "1e-9"]) == 2  # no model that cheap


class FakeApi:
    calls: list = []

    def __init__(self, token=None):
        FakeApi.calls.append(("init", token is not None))

    def create_repo(self, repo_id, **kw):
        FakeApi.calls.append(("create_repo", repo_id, kw.get("private")))

    def create_branch(self, repo_id, branch, **kw):
        FakeApi.calls.append(("create_branch", repo_id, branch))

    def upload_folder(self, folder_path, repo_id, revision=None, **kw):
        from pathlib import Path

        FakeApi.calls.append(("upload_folder", repo_id, revision, sorted(p.name for p in Path(folder_path).iterdir())))
        return type("Info", (), {"commit_url": f"https://hub.example/{repo_id}/commit/abc"})()


def test_push_uploads_the_router_folder_to_the_right_repo_and_branch(tiny_run, monkeypatch, capsys):
    import huggingface_hub

    secret = "hf_SECRETtoken1234567890"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    FakeApi.calls = []
    assert push_module.main([str(tiny_run), "--repo-id", "org/router", "--revision", "sweep-0.25", "--private"]) == 0
    kinds = [c[0] for c in FakeApi.calls]
    assert kinds == ["init", "create_repo", "create_branch", "upload_folder"]
    assert FakeApi.calls[1] == ("create_repo", "org/router", True)
    upload = FakeApi.calls[3]
    assert upload[1:3] == ("org/router", "sweep-0.25")
    assert "model.safetensors" in upload[3] and "README.md" in upload[3] and "checkpoints" not in upload[3]
    out = capsys.readouterr()
    assert secret not in out.out + out.err
    assert all(secret not in p.read_text(errors="ignore") for p in (tiny_run / "router").iterdir() if p.suffix in (".md", ".json", ".yaml"))
    assert 'Router.from_pretrained("org/router")' in (tiny_run / "router" / "README.md").read_text()


def test_push_offline_fails_fast_in_one_line_and_keeps_the_folder(tiny_run, capsys):
    before = sorted(p.name for p in (tiny_run / "router").iterdir())
    with pytest.raises(PushError) as info:
        push(tiny_run, "org/router")
    assert "offline" in str(info.value) and "\n" not in str(info.value)
    assert push_module.main([str(tiny_run), "--repo-id", "org/router"]) == 2
    assert "error: cannot push to the Hub while offline" in capsys.readouterr().err
    assert sorted(p.name for p in (tiny_run / "router").iterdir()) == before


def test_push_at_end_of_training_offline_keeps_everything(tiny_encoder, tmp_path):
    from routertrain.cli.common import main_train
    from tests.conftest import tiny_args

    code = main_train(tiny_args(tiny_encoder, tmp_path, "run.name=p", "train.max_steps=2", "push.repo_id=org/router"))
    assert code == 3
    assert (tmp_path / "p" / "router" / "model.safetensors").is_file()


def test_card_shows_the_best_frozen_baseline_after_evaluation(tiny_run, tmp_path):
    import shutil

    folder = tmp_path / "router"
    shutil.copytree(tiny_run / "router", folder)
    evaluation = {"data": {"split": "test"}, "routers": {
        "knn": {"accuracy": {"value": 0.41}}, "mlp": {"accuracy": {"value": 0.47}}, "oracle": {"accuracy": {"value": 0.99}}}}
    (folder / "evaluation.json").write_text(json.dumps(evaluation))
    card = render(folder)
    assert "| best frozen-embedding baseline | - | 0.4700 |" in card
    assert "Best frozen-embedding baseline: mlp on test" in card
