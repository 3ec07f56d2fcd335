"""``accelerate launch train.py`` in a subprocess, and two CPU processes sharing one run (DDP and FSDP2)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import REPO, assert_same_weights, read_weights, tiny_args


def launch(*args: str, processes: int = 1, fsdp: bool = False, precision: str = "no") -> subprocess.CompletedProcess:
    """One process: as ``make train`` launches (``--quiet``: no launcher traceback after an error).
    Several: gloo through torchrun, or with ``fsdp`` accelerate's FSDP2 path over gloo (tests/fsdp_on_cpu.py)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", str(REPO / "accelerate_config.yaml")]
    if fsdp:
        config = REPO / "accelerate_configs" / "fsdp.yaml"
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", str(config), "--num_processes", str(processes)]
        cmd += ["--mixed_precision", precision, str(REPO / "tests" / "fsdp_on_cpu.py")]
    elif processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]  # gloo on CPU; a free port
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*cmd, str(REPO / "train.py"), *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)


# two-process runs: 4 steps, evaluated and checkpointed at steps 2 and 4
PARALLEL = ("train.max_steps=4", "train.save_every=2", "train.eval_every=2", "tracking.log_every=1")


@pytest.fixture(scope="module")
def ddp_run(tiny_encoder, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("ddp")
    return out / "ddp", launch(*tiny_args(tiny_encoder, out, "run.name=ddp", *PARALLEL), processes=2)


def train_steps(run: Path) -> list[int]:
    return [line["step"] for line in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "train/loss" in line]


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


def test_two_processes_gather_every_example_once_and_only_rank0_writes(ddp_run):
    run, proc = ddp_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    # 13 validation and 11 test queries are odd: duplicates padded in by the sharding must be dropped
    assert metrics["validation"]["n_queries"] == 13 and metrics["test"]["n_queries"] == 11
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["num_processes"] == 2 and provenance["per_device_batch_size"] == 4
    assert provenance["distributed_type"] == "MULTI_CPU"
    assert train_steps(run) == [1, 2, 3, 4]  # one writer: each step logged once
    assert proc.stdout.count("validation routing accuracy") == 1
    leftovers = [p.name for p in Path(run).rglob("*") if ".tmp" in p.name]
    assert leftovers == []


def test_fsdp_shards_over_two_processes_and_exports_the_ddp_router(ddp_run, tiny_encoder, tmp_path):
    """accelerate_configs/fsdp.yaml over two gloo processes: parameters are DTensor shards, so the
    best-weights gather, their reload before the final evaluation, the router export and sharded
    save_state all run. Both ranks see the same batches as under DDP and the gradient of the mean
    loss is the same, so the exported router must equal the DDP one (tolerance 1e-6: reduce-scatter
    and all-reduce may add in another order)."""
    ddp, ddp_proc = ddp_run
    assert ddp_proc.returncode == 0, ddp_proc.stderr[-3000:]
    proc = launch(*tiny_args(tiny_encoder, tmp_path, "run.name=fsdp", *PARALLEL), processes=2, fsdp=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "fsdp"
    assert json.loads((run / "provenance.json").read_text())["distributed_type"] == "FSDP"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    assert train_steps(run) == [1, 2, 3, 4]
    assert_same_weights(run / "router" / "model.safetensors", ddp / "router" / "model.safetensors", atol=1e-6)
    assert_same_weights(run / "best" / "state.safetensors", ddp / "best" / "state.safetensors", atol=1e-6)
    fsdp_metrics, ddp_metrics = (json.loads((r / "metrics.json").read_text()) for r in (run, ddp))
    for split in ("validation", "test"):
        assert fsdp_metrics[split]["routing_acc"] == pytest.approx(ddp_metrics[split]["routing_acc"])


def test_fsdp_in_bf16_resumes_exactly_and_exports_a_router_that_loads(tiny_encoder, tmp_path):
    """The config as shipped (bf16 mixed precision) over two gloo processes; a copy cut back to its
    step-2 checkpoint (best weights of step 2 kept, as an interruption leaves them) resumes under
    FSDP and must end with the uninterrupted run's router (1e-6: same arithmetic, same machine)."""
    args = ("train.mixed_precision=bf16", *PARALLEL)
    proc = launch(*tiny_args(tiny_encoder, tmp_path, "run.name=whole", *args), processes=2, fsdp=True, precision="bf16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    whole = tmp_path / "whole"
    assert json.loads((whole / "provenance.json").read_text())["distributed_type"] == "FSDP"
    from routertrain import Router

    router = Router.from_pretrained(whole / "router")
    assert len(router.route(["What is the derivative of x squared?", "Who wrote Hamlet?"])) == 2
    assert {v.dtype for v in load_file(str(whole / "router" / "model.safetensors")).values()} == {torch.float32}

    cut = tmp_path / "cut"
    shutil.copytree(whole, cut)
    shutil.rmtree(cut / "router")
    shutil.rmtree(cut / "checkpoints" / "step-000004")
    (cut / "metrics.json").unlink()
    log = [line for line in (cut / "log.jsonl").read_text().splitlines() if json.loads(line)["step"] <= 2]
    (cut / "log.jsonl").write_text("\n".join(log) + "\n")
    proc = launch(*tiny_args(tiny_encoder, tmp_path, "run.name=cut", *args), processes=2, fsdp=True, precision="bf16")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from" in proc.stdout + proc.stderr
    assert train_steps(cut) == [1, 2, 3, 4]
    assert json.loads((cut / "metrics.json").read_text())["train"]["samples_seen"] == 32  # the whole run's: steps 1 and 2 from the checkpoint
    assert_same_weights(cut / "router" / "model.safetensors", whole / "router" / "model.safetensors", atol=1e-6)
    assert_same_weights(cut / "checkpoints" / "step-000004" / "pytorch_model_fsdp.bin", whole / "checkpoints" / "step-000004" / "pytorch_model_fsdp.bin", atol=1e-6)


def test_lora_over_two_processes_trains_and_exports_a_merged_router(tiny_encoder, tmp_path):
    """DDP needs a gradient for every trainable parameter at every step; LoRA with all-linear also
    wraps the BERT pooler, which our pooling never uses, so those adapters must be frozen."""
    proc = launch(*tiny_args(tiny_encoder, tmp_path, "run.name=lora", "model.lora.r=4", "train.max_steps=2"), processes=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    weights = read_weights(tmp_path / "lora" / "router" / "model.safetensors")
    assert not any("lora" in name for name in weights)
    initial = read_weights(tiny_encoder / "model.safetensors")
    moved = [name for name in initial if not torch.equal(weights[f"encoder.{name}"], initial[name])]
    assert any("attention.self.query" in name for name in moved)  # the merged adapters changed the base weights
    assert not any("pooler" in name for name in moved)


def test_two_processes_with_accumulation_train_the_one_process_router(tmp_path):
    """The same global batch over 2 processes x 2 micro-batches as in one process, on rows with 1 or
    6 labels and a short last step: the short step is padded with masked copies (no example of the
    epoch's start repeated) and each step's loss is its full batch's mean, so the routers match."""
    from routertrain.config import load_config
    from routertrain.training.loop import train
    from tests.conftest import build_tiny_encoder, sparse_label_data

    encoder = build_tiny_encoder(tmp_path / "encoder", dropout=0.0)
    data = sparse_label_data(tmp_path / "sparse")
    common = ("data.name=disk", f"data.path={data}", "train.epochs=2", "model.dropout=0", "train.eval_every=1000", "train.save_every=-1")
    single = train(load_config(tiny_args(encoder, tmp_path, "run.name=one", *common)))
    proc = launch(*tiny_args(encoder, tmp_path, "run.name=two", "train.per_device_batch_size=2", *common), processes=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "metrics.json").read_text())
    assert json.loads((tmp_path / "two" / "provenance.json").read_text())["gradient_accumulation_steps"] == 2
    assert two["train"]["samples_seen"] == single["train"]["samples_seen"] == 122
    assert_same_weights(tmp_path / "two" / "router" / "model.safetensors", tmp_path / "one" / "router" / "model.safetensors", atol=1e-6)


STOP_SCRIPT = """
import os
import sys
from routertrain.config import load_config
from routertrain.training.loop import train
from accelerate import PartialState
calls = []
results = train(load_config(sys.argv[1:]), on_evaluate=lambda step, metrics: calls.append(step) or step >= 2)
os.write(1, f"rank {PartialState().process_index} calls {calls} stopped_at {results.get('stopped_at')}\\n".encode())  # one write: the ranks' lines never interleave
"""


def test_on_evaluate_runs_on_the_main_process_and_its_stop_reaches_every_rank(tiny_encoder, tmp_path):
    script = tmp_path / "stop.py"
    script.write_text(STOP_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), *tiny_args(tiny_encoder, tmp_path, "run.name=stop", *PARALLEL)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(line for line in proc.stdout.splitlines() if line.startswith("rank")) == ["rank 0 calls [2] stopped_at 2", "rank 1 calls [] stopped_at 2"]
