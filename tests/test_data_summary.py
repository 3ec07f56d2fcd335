"""The dataset summary (numbers on a hand-made dataset) and the ``python -m routertrain.data`` CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from routertrain.data.__main__ import main
from routertrain.data.dataset import RoutingData
from routertrain.data.summary import format_summary, summarize

REPO = Path(__file__).resolve().parents[1]
ROUTELLM = REPO.parent / "shared" / "data" / "routellm-evals"


def toy() -> RoutingData:
    def split(labels, mask, tasks):
        return Dataset.from_dict({"query": [f"q{i}" for i in range(len(labels))], "labels": labels, "label_mask": mask, "task": tasks})

    return RoutingData(
        splits=DatasetDict({
            # train: model a is best (mean 0.75 vs 0.5); b's last label is missing
            "train": split([[1, 1], [1, 0], [0, 0], [1, 0.0]], [[1, 1], [1, 1], [1, 1], [1, 0]], ["x", "x", "y", "y"]),
            "validation": split([[0, 1], [1, 1]], [[1, 1], [1, 1]], ["x", "y"]),
            # test: b is better on the split, but the best single model stays the one chosen on train
            "test": split([[0, 1], [0, 1], [1, 0]], [[1, 1], [1, 1], [1, 1]], ["x", "y", "y"]),
        }),
        models=["a", "b"], costs=[1.0, 2.0], name="toy", fingerprint="f00",
    )


def test_summary_numbers():
    s = summarize(toy())
    assert s["models"] == ["a", "b"] and s["best_single_model"] == "a"
    train, test = s["splits"]["train"], s["splits"]["test"]
    assert train["n_queries"] == 4 and train["n_missing_labels"] == 1
    assert train["model_means"] == {"a": 0.75, "b": pytest.approx(1 / 3, abs=1e-6)}
    assert train["oracle"] == 0.75
    assert test["best_single"] == {"model": "a", "mean": pytest.approx(1 / 3, abs=1e-6)}
    assert test["best_on_split"] == {"model": "b", "mean": pytest.approx(2 / 3, abs=1e-6)}
    assert test["oracle"] == 1.0
    assert test["tasks"]["y"]["n_queries"] == 2 and test["tasks"]["y"]["oracle"] == 1.0
    assert test["tasks"]["x"]["best_single"]["mean"] == 0.0
    json.dumps(s, allow_nan=False)  # NaN never reaches the JSON
    text = format_summary(s)
    assert "best single (chosen on train): a" in text and "test by task:" in text


def test_cli_json_summary(tmp_path):
    env = {**os.environ, "ROUTERTRAIN_CACHE": str(tmp_path), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "routertrain.data", "summary", "data=routellm-mtbench", f"data.path={ROUTELLM}", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["models"] == ["gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"]
    assert sum(s["splits"][k]["n_queries"] for k in ("train", "validation", "test")) == 72
    for st in s["splits"].values():
        assert st["oracle"] >= st["best_single"]["mean"]
    assert s["build"]["dropped"] == {"contaminated": 8}
    assert "[data] routellm: read 80 rows" in out.stderr


def test_cli_text_build_and_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ROUTERTRAIN_CACHE", str(tmp_path))
    assert main(["summary", "data=routellm-gsm8k", f"data.path={ROUTELLM}"]) == 0
    text = capsys.readouterr().out
    assert "routellm" in text and "gpt-4-1106-preview" in text and "validation" in text
    assert main(["build", "data=routellm-gsm8k", f"data.path={ROUTELLM}"]) == 0
    assert Path(capsys.readouterr().out.strip()).is_dir()
    assert main(["summary", "data=routellm-gsm8k"]) == 2
    assert "error: data.path is not set" in capsys.readouterr().err
    assert main(["summary", "data=routellm-gsm8k", f"data.path={ROUTELLM}", "data.subset=hellaswag"]) == 2
    assert "data.subset names ['hellaswag']" in capsys.readouterr().err
    assert main(["explain"]) == 2
