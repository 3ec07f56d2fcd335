"""``accelerate launch train.py`` in a subprocess, and two CPU processes sharing one run."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, tiny_args


def launch(*args: str, processes: int = 1) -> subprocess.CompletedProcess:
    """One process: as ``make train`` launches (``--quiet``: no launcher traceback after an error)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", str(REPO / "accelerate_config.yaml")]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]  # gloo on CPU
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*cmd, str(REPO / "train.py"), *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


def test_accelerate_launch_trains_and_prints_where_things_are(tiny_encoder, tmp_path):
    proc = launch(*tiny_args(tiny_encoder, tmp_path, "run.name=cli", "train.max_steps=4"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "validation routing accuracy" in proc.stdout and "Bayes ceiling" in proc.stdout and "oracle" in proc.stdout
    assert f"router:  {tmp_path}/cli/router" in proc.stdout
    assert (tmp_path / "cli" / "router" / "model.safetensors").is_file()


def test_bad_override_fails_in_one_line_before_any_work(tiny_encoder, tmp_path):
    proc = launch(*tiny_args(tiny_encoder, tmp_path, "run.name=bad", "train.lrr=1"))
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == ["error: unknown config key 'train.lrr' in override 'train.lrr=1'; did you mean 'train.lr'?"]
    assert not (tmp_path / "bad").exists()


def test_missing_encoder_fails_cleanly_without_a_run_folder(tmp_path):
    proc = launch("recipe=smoke", "model.name_or_path=nobody/missing-encoder", f"run.output_dir={tmp_path}", "run.name=gone")
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: tokenizer of 'nobody/missing-encoder' not found locally")
    assert "huggingface-cli download nobody/missing-encoder" in lines[0]
    assert not (tmp_path / "gone").exists()


def test_two_processes_gather_every_example_once_and_only_rank0_writes(tiny_encoder, tmp_path):
    proc = launch(*tiny_args(tiny_encoder, tmp_path, "run.name=ddp", "train.max_steps=4", "tracking.log_every=1"), processes=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "ddp"
    metrics = json.loads((run / "metrics.json").read_text())
    # 13 validation and 11 test queries are odd: duplicates padded in by the sharding must be dropped
    assert metrics["validation"]["n_queries"] == 13 and metrics["test"]["n_queries"] == 11
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["num_processes"] == 2 and provenance["per_device_batch_size"] == 4
    assert provenance["distributed_type"] == "MULTI_CPU"
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    train_steps = [line["step"] for line in lines if "train/loss" in line]
    assert train_steps == [1, 2, 3, 4]  # one writer: each step logged once
    assert proc.stdout.count("validation routing accuracy") == 1
    leftovers = [p.name for p in Path(run).rglob("*") if ".tmp" in p.name]
    assert leftovers == []
