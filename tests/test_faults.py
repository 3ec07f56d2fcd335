"""Fault injection: ``kill -9`` at each stage of a run and SIGTERM at a step; two writers on one folder.

Each faulty run is ``train.py``'s ``main_train`` in a subprocess whose own code sends the signal at
the chosen point (tests/fault_points.py). Afterwards nothing looks finished (no ``done.json``; the
sweep, evaluate and push refuse the folder), and a rerun of the same command ends with the
uninterrupted run's weights, a log without repeated steps and no temporary folder left.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from routertrain.cli.common import main_train
from routertrain.experiments.sweep import Point
from routertrain.hub.router import router_folder
from routertrain.provenance import DONE, finished
from routertrain.training.checkpoints import problem
from routertrain.training.preemption import PREEMPTED_EXIT
from tests.conftest import REPO, assert_same_weights, tiny_args

# 8 steps, evaluated and checkpointed at steps 4 and 8
COMMON = ("train.max_steps=8", "tracking.log_every=1")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


@pytest.fixture(scope="module")
def reference(tiny_encoder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    assert main_train(tiny_args(tiny_encoder, out, "run.name=ref", *COMMON)) == 0
    return out / "ref"


def faulty_run(args: list[str], stage: str, step: int = 0) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(REPO / "tests" / "fault_points.py"), stage, str(step), *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=600)


def assert_not_finished(run: Path) -> None:
    assert not finished(run)
    assert not Point("train", run.name, [], run).done()  # the sweep runs it again
    if (run / "router").is_dir():
        with pytest.raises(FileNotFoundError, match="did not finish"):  # evaluate, route and push refuse it
            router_folder(run)


def assert_finished_like(run: Path, reference: Path) -> None:
    assert finished(run) and json.loads((run / DONE).read_text())["total_steps"] == 8
    assert_same_weights(run / "router" / "model.safetensors", reference / "router" / "model.safetensors", atol=1e-6)
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines() if "train/loss" in line]
    assert steps == list(range(1, 9))  # the log was cut back to the resumed step: no step twice
    leftovers = [p.name for p in run.rglob("*") if ".tmp" in p.name or p.name.endswith(".old")]
    assert leftovers == []


@pytest.mark.parametrize(
    "stage, step, left",
    [
        ("checkpoint", 8, "checkpoints/step-000008.tmp"),  # kill -9 with the step-8 tensors written, before its manifest and rename
        ("before-export", 0, "metrics.json absent"),  # final evaluation done, nothing exported
        ("during-export", 0, "router.tmp-"),  # router weights written into the temporary folder
        ("before-marker", 0, "router/ and metrics.json in place"),  # everything but done.json
    ],
)
def test_kill_9_at_each_stage_then_rerun_gets_the_uninterrupted_weights(tiny_encoder, tmp_path, reference, stage, step, left):
    args = tiny_args(tiny_encoder, tmp_path, "run.name=faulty", *COMMON)
    proc = faulty_run(args, stage, step)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run = tmp_path / "faulty"
    if stage == "checkpoint":
        assert (run / left).is_dir() and not (run / "checkpoints" / "step-000008").exists()
    if stage == "during-export":
        assert any(p.name.startswith(left) for p in run.iterdir())
    if stage == "before-marker":
        assert (run / "router" / "model.safetensors").is_file() and (run / "metrics.json").is_file()
    assert_not_finished(run)
    assert main_train(args) == 0
    assert_finished_like(run, reference)


def test_sigterm_at_a_step_saves_a_checkpoint_there_and_the_rerun_resumes_exactly(tiny_encoder, tmp_path, reference):
    args = tiny_args(tiny_encoder, tmp_path, "run.name=preempted", *COMMON)
    proc = faulty_run(args, "sigterm", 5)
    assert proc.returncode == PREEMPTED_EXIT, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "stopped by SIGTERM at step 5" in errors[0] and "run the same command again to resume" in errors[0], proc.stderr[-2000:]
    run = tmp_path / "preempted"
    assert problem(run / "checkpoints" / "step-000005") is None
    assert_not_finished(run)
    assert main_train(args) == 0
    assert_finished_like(run, reference)


def test_a_truncated_latest_checkpoint_is_skipped_for_the_previous_one(tiny_encoder, tmp_path, reference, capsys):
    run = tmp_path / "truncated"
    shutil.copytree(reference, run)
    for name in ("router", "metrics.json", DONE, "config.yaml"):  # config.yaml names the reference's output_dir
        shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink()
    weights = run / "checkpoints" / "step-000008" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    capsys.readouterr()
    assert main_train(tiny_args(tiny_encoder, tmp_path, "run.name=truncated", *COMMON)) == 0
    out = capsys.readouterr().out
    assert "skipping checkpoint" in out and "step-000008: model.safetensors is missing or truncated" in out
    assert "resumed from" in out and "step-000004 at step 4" in out
    assert_finished_like(run, reference)


class Payload:
    """Unpickling this object would create the file ``target``."""

    def __init__(self, target: Path):
        self.target = target

    def __reduce__(self):
        return (Path.touch, (self.target,))


def test_a_checkpoint_holding_a_pickle_is_refused_and_never_unpickled(tiny_encoder, tmp_path, reference, capsys):
    import pickle

    crafted = tmp_path / "crafted"
    shutil.copytree(reference / "checkpoints" / "step-000004", crafted)
    target = tmp_path / "pwned"
    (crafted / "custom_checkpoint_0.pkl").write_bytes(pickle.dumps(Payload(target)))
    code = main_train(tiny_args(tiny_encoder, tmp_path, "run.name=victim", *COMMON, f"train.resume={crafted}"))
    err = capsys.readouterr().err
    assert code == 2 and "holds pickle files (custom_checkpoint_0.pkl)" in err and "Traceback" not in err
    assert not target.exists() and not (tmp_path / "victim").exists()
    assert not list(reference.glob("checkpoints/*/*.pkl"))  # routertrain's own checkpoints hold no pickle


def children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_a_second_writer_stops_at_once_and_the_launcher_and_trainer_die_together(tiny_encoder, tmp_path, capsys):
    """A long run under ``accelerate launch`` holds the folder: a second identical command stops in one
    line naming the trainer's pid. SIGTERM to the launcher alone then stops the trainer too, at a
    step boundary with a checkpoint (no orphan training on)."""
    args = tiny_args(tiny_encoder, tmp_path, "run.name=busy", "train.max_steps=100000", "train.save_every=100000", "tracking.log_every=1")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", str(REPO / "accelerate_config.yaml"), str(REPO / "train.py"), *args]
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV)
    run = tmp_path / "busy"
    try:
        for _ in range(1200):  # until the trainer is inside its loop (a step logged)
            if (run / "log.jsonl").is_file() and (run / "log.jsonl").read_text().strip():
                break
            assert launcher.poll() is None, launcher.communicate()[1][-2000:]
            time.sleep(0.1)
        trainer = json.loads((tmp_path / ".busy.lock.json").read_text())["pid"]
        assert trainer in children(launcher.pid)

        capsys.readouterr()
        assert main_train(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [f"error: run folder {run} is being written by another training process (pid {trainer} on {os.uname().nodename}); wait for it to finish or stop it, or set run.name=<another name>"]

        launcher.send_signal(signal.SIGTERM)
        _, stderr = launcher.communicate(timeout=300)  # the pipe closes when the trainer has exited too
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert not Path(f"/proc/{trainer}").exists() or Path(f"/proc/{trainer}/stat").read_text().split()[2] == "Z"
    assert "error: stopped by SIGTERM at step" in stderr, stderr[-2000:]
    saved = [p for p in (run / "checkpoints").iterdir()]
    assert len(saved) == 1 and problem(saved[0]) is None
    assert not (tmp_path / ".busy.lock.json").exists() and not finished(run)
