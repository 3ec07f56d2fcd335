"""Fault injection: ``kill -9`` at each stage of a run and SIGTERM at a step; two writers on one folder.

Each faulty run is ``train.py``'s ``main_train`` in a subprocess whose own code sends the signal at
the chosen point (tests/fault_points.py). Afterwards nothing looks finished (no ``done.json``; the
sweep, evaluate and push refuse the folder), and a rerun of the same command ends with the
uninterrupted run's weights, a log without repeated steps and no temporary folder left.
"""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from routertrain.cli.common import main_train
from routertrain.experiments.sweep import Point
from routertrain.hub.router import RunUnfinished, router_folder
from routertrain.provenance import DONE, finished
from routertrain.training.checkpoints import problem
from routertrain.training.preemption import PREEMPTED_EXIT
from tests.conftest import REPO, assert_same_weights, tiny_args

# 8 steps, evaluated and checkpointed at steps 4 and 8, the loss logged at steps 3, 6 and 8 (a resumed
# run's first logged loss then spans steps before and after its checkpoint)
COMMON = ("train.max_steps=8", "tracking.log_every=3")
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
        with pytest.raises(RunUnfinished, match="did not finish"):  # evaluate, route and push refuse it
            router_folder(run)


def losses_logged(run: Path) -> dict:
    return {line["step"]: line["train/loss"] for line in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "train/loss" in line}


def assert_finished_like(run: Path, reference: Path) -> None:
    assert finished(run) and json.loads((run / DONE).read_text())["total_steps"] == 8
    assert_same_weights(run / "router" / "model.safetensors", reference / "router" / "model.safetensors", atol=1e-6)
    losses = [losses_logged(path) for path in (run, reference)]
    assert sorted(losses[0]) == [3, 6, 8]  # the log was cut back to the resumed step: no step twice
    assert losses[0] == pytest.approx(losses[1], rel=1e-6)  # and a loss logged after the resume is the uninterrupted run's
    leftovers = [p.name for p in run.rglob("*") if ".tmp" in p.name or p.name.endswith(".old")]
    assert leftovers == []


@pytest.mark.parametrize(
    "stage, step, left",
    [
        ("checkpoint", 8, "checkpoints/step-000008.tmp"),  # kill -9 with the step-8 tensors written, before its manifest and rename
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
    stats = json.loads((run / "metrics.json").read_text())["train"]  # the whole run's, not only the rerun's (nothing, once at step 8)
    assert stats["samples_seen"] == 64 and stats["padding_share"] < 1 and stats["runtime_s"] > 0.01


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


def test_a_rerun_of_a_finished_run_says_so_and_leaves_it_as_it_is(tiny_encoder, reference, capsys):
    before = sorted((str(p.relative_to(reference)), p.stat().st_mtime_ns) for p in reference.rglob("*"))
    capsys.readouterr()
    assert main_train(tiny_args(tiny_encoder, reference.parent, "run.name=ref", *COMMON)) == 0
    assert f"run {reference} already finished" in capsys.readouterr().out
    assert sorted((str(p.relative_to(reference)), p.stat().st_mtime_ns) for p in reference.rglob("*")) == before


def test_a_file_size_limit_mid_run_ends_in_one_line_and_the_last_checkpoint_resumes(tiny_encoder, tmp_path, reference):
    """A real EFBIG (RLIMIT_FSIZE from step 5 on, standing in for a full disk): one line naming the
    path and the cause, exit 2; the step-4 checkpoint is intact and the rerun finishes as the reference."""
    args = tiny_args(tiny_encoder, tmp_path, "run.name=full", *COMMON)
    proc = faulty_run(args, "fsize", 5)
    run = tmp_path / "full"
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert f"could not write {run}/" in errors[0] and "File too large" in errors[0] and "run the same command again" in errors[0]
    assert problem(run / "checkpoints" / "step-000004") is None
    assert_not_finished(run)
    assert main_train(args) == 0
    assert_finished_like(run, reference)


def test_a_log_line_cut_short_by_a_failed_write_is_dropped_on_resume(tmp_path):
    from routertrain.training.run_folder import cut_log

    (tmp_path / "log.jsonl").write_text('{"step": 1, "train/loss": 0.7}\n{"step": 2, "train/loss": 0.6}\n{"step": 3, "train/lo')
    cut_log(tmp_path, 2)
    assert [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("broken, then", [
    ("step-000008", "resumed from {run}/checkpoints/step-000004 at step 4"),  # the newest: the previous one is resumed
    ("step-000004", "no complete checkpoint is left in {run}/checkpoints: training starts again from step 0"),  # the only one
])
def test_a_truncated_checkpoint_is_skipped_saying_so(tiny_encoder, tmp_path, reference, capsys, broken, then):
    run = tmp_path / "truncated"
    shutil.copytree(reference, run)
    for name in ("router", "metrics.json", DONE, "config.yaml"):  # config.yaml names the reference's output_dir
        shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink()
    if broken == "step-000004":
        shutil.rmtree(run / "checkpoints" / "step-000008")
    weights = run / "checkpoints" / broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    capsys.readouterr()
    assert main_train(tiny_args(tiny_encoder, tmp_path, "run.name=truncated", *COMMON)) == 0
    out = capsys.readouterr().out
    assert f"skipping checkpoint {run}/checkpoints/{broken}: model.safetensors is missing or truncated" in out
    assert then.format(run=run) in out and ("resumed from" in out) == (broken == "step-000008")
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


@pytest.mark.parametrize("cause", ["nan-at-step-6", "huge-lr"])
def test_a_diverged_run_stops_in_one_line_keeps_its_last_good_checkpoint_and_exports_nothing(tiny_encoder, tmp_path, monkeypatch, capsys, cause):
    from routertrain.training import losses  # the loop's loss is losses.step_loss, BCE through losses.masked_bce

    extra = ["train.max_grad_norm=0", "train.lr=1e30"] if cause == "huge-lr" else []
    if cause == "nan-at-step-6":  # one micro-batch per step: the 6th loss is the first non-finite one
        calls, masked_bce = [], losses.masked_bce
        monkeypatch.setattr(losses, "masked_bce", lambda *a, **k: masked_bce(*a, **k) * (math.nan if calls.append(1) or len(calls) >= 6 else 1.0))
    code = main_train(tiny_args(tiny_encoder, tmp_path, "run.name=diverged", *COMMON, *extra))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and "Traceback" not in err, err
    run = tmp_path / "diverged"
    assert "training diverged at step" in errors[0] and "lower train.lr" in errors[0] and "no router or metrics were written" in errors[0]
    assert not (run / "router").exists() and not (run / "metrics.json").exists() and not finished(run)
    assert not list(run.glob("*.tmp*"))
    if cause == "nan-at-step-6":
        assert "diverged at step 6" in errors[0] and f"the last good checkpoint is {run}/checkpoints/step-000004" in errors[0]
        assert [p.name for p in (run / "checkpoints").iterdir()] == ["step-000004"] and problem(run / "checkpoints" / "step-000004") is None
        assert json.loads((run / "best" / "metrics.json").read_text())["step"] == 4  # the best weights are from before the divergence


def test_artifacts_respect_the_umask_and_the_card_names_the_final_folder(reference):
    mask = os.umask(0)
    os.umask(mask)
    for path in [reference / "metrics.json", reference / DONE, reference / "log.jsonl", reference / "router" / "model.safetensors",
                 reference / "router" / "config.json", reference / "best" / "state.safetensors", *reference.glob("checkpoints/*/*.json")]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path
    for path in [reference / "router", reference / "best", *reference.glob("checkpoints/*")]:
        assert path.stat().st_mode & 0o777 == 0o777 & ~mask, path
    card = (reference / "router" / "README.md").read_text()
    assert f'Router.from_pretrained("{reference}/router")' in card and "tmp-" not in card


OFFLINE_SCRIPT = """
import socket, sys
def no_network(*args, **kwargs):
    raise RuntimeError("a network connection was attempted")
socket.socket.connect = no_network
socket.create_connection = no_network
from routertrain.cli.common import main_train
sys.exit(main_train(sys.argv[1:]))
"""


def test_a_cached_hub_encoder_loads_without_any_network_request(tiny_encoder, tmp_path):
    """HF_HUB_OFFLINE unset and every connection refused: the cached encoder is found locally, said once."""
    snapshot = tmp_path / "hub" / "models--someorg--tiny-bert" / "snapshots" / ("0" * 40)  # the Hugging Face cache's layout
    shutil.copytree(tiny_encoder, snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    script = tmp_path / "offline.py"
    script.write_text(OFFLINE_SCRIPT)
    env = {k: v for k, v in ENV.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env |= {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    args = tiny_args(tiny_encoder, tmp_path, "run.name=offline", "train.max_steps=2", "model.name_or_path=someorg/tiny-bert")
    proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("encoder someorg/tiny-bert: loading the local HF cache's copy") == 1
    assert finished(tmp_path / "offline")
    assert json.loads((tmp_path / "offline" / "router" / "config.json").read_text())["base_model"] == "someorg/tiny-bert"


def wait_for_log(run: Path, proc: subprocess.Popen) -> None:
    for _ in range(1200):  # until the trainer is inside its loop (a step logged)
        if (run / "log.jsonl").is_file() and (run / "log.jsonl").read_text().strip():
            return
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        time.sleep(0.1)
    raise AssertionError("the trainer logged no step")


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_the_sweep_runner_its_launcher_and_trainer_live_and_die_together(tiny_encoder, tmp_path):
    """SIGTERM to the sweep runner reaches its point's trainer, which checkpoints; the runner waits for
    it and exits 75 (a kill -9 of the runner reaches the trainer too: PDEATHSIG on launcher and trainer)."""
    sig = signal.SIGTERM
    common = tiny_args(tiny_encoder, tmp_path, "train.max_steps=100000", "train.save_every=100000", "tracking.log_every=1")
    spec = {"name": "long", "claim": "more-data", "common": [a for a in common if not a.startswith("run.output_dir")], "groups": [{"kind": "train", "args": ["recipe=smoke"]}]}
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(spec))
    cmd = [sys.executable, "-m", "routertrain.experiments.sweep", str(tmp_path / "long.yaml"), "--out", str(tmp_path / "out"), "--accelerate-config", str(REPO / "accelerate_config.yaml")]
    runner = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV)
    run = tmp_path / "out" / "long" / "train"
    try:
        wait_for_log(run, runner)
        trainer = json.loads((run.parent / ".train.lock.json").read_text())["pid"]
        runner.send_signal(sig)
        _, stderr = runner.communicate(timeout=300)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert gone(trainer)
    saved = list((run / "checkpoints").iterdir())
    assert len(saved) == 1 and problem(saved[0]) is None and not finished(run)
    assert runner.returncode == PREEMPTED_EXIT
    assert "error: sweep stopped by SIGTERM during point train, which saved a checkpoint; rerun the sweep to continue from it" in stderr, stderr[-2000:]


def test_sigterm_to_one_rank_stops_every_rank_at_the_same_step_with_one_checkpoint(tiny_encoder, tmp_path):
    args = tiny_args(tiny_encoder, tmp_path, "run.name=ranks", "train.max_steps=100000", "train.save_every=100000", "tracking.log_every=1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(REPO / "train.py"), *args]
    agent = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=ENV)
    run = tmp_path / "ranks"
    try:
        wait_for_log(run, agent)
        rank0 = json.loads((tmp_path / ".ranks.lock.json").read_text())["pid"]
        rank1 = next(pid for pid in children(agent.pid) if pid != rank0)
        os.kill(rank1, signal.SIGTERM)
        _, stderr = agent.communicate(timeout=300)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert gone(rank0) and gone(rank1)
    stopped = [line for line in stderr.splitlines() if line.startswith("error: stopped by")]
    assert len(stopped) == 1 and "stopped by a stop signal on another process at step" in stopped[0], stderr[-3000:]
    saved = list((run / "checkpoints").iterdir())
    assert len(saved) == 1 and problem(saved[0]) is None and f"saved in {saved[0]}" in stopped[0]
