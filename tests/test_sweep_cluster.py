"""Sweeps on a cluster engine: ``--parallel 2`` on this machine, and ``--executor slurm`` on a one-node
SLURM cluster that the project's own script (``.ci/slurm-cluster``) starts: results equal the local
executor's, a job cancelled mid-training is resubmitted and resumes, and ``--status`` reports each state."""

import json
import os
import subprocess
import sys
import time

import pytest
import yaml

from routertrain.experiments import local
from routertrain.experiments.sweep import expand
from tests.conftest import REPO

CLUSTER = REPO / ".ci" / "slurm-cluster"
CONFIG = str(REPO / "accelerate_config.yaml")


def tiny_sweep(folder, encoder):
    """Two smoke trainings (8 steps) and an evaluation of one of them."""
    common = [f"model.name_or_path={encoder}", "data.synthetic.n_train=32", "data.synthetic.n_validation=8", "data.synthetic.n_test=8",
              "train.global_batch_size=8", "train.max_steps=8", "train.eval_every=4", "train.save_every=100"]
    groups = [{"kind": "train", "args": ["recipe=smoke"], "grid": {"data.fraction": [0.5, 1.0]}, "slurm": {"cpus": 1, "time": 20}},
              {"kind": "evaluate", "label": "full", "args": ["run=@train-fraction1.0", "routers=[finetuned,task-prior]"]}]
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "claim": "more-data", "common": common, "groups": groups}))
    return path


def sweep(*args, env=None, check=True):
    result = subprocess.run([sys.executable, "-m", "routertrain", "sweep", *map(str, args)], capture_output=True, text=True, env=env, cwd=REPO)
    assert not check or result.returncode == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def local_run(tiny_encoder, tmp_path_factory):
    """The tiny sweep run here with --parallel 2: its folder and the runner's output."""
    folder = tmp_path_factory.mktemp("local")
    result = sweep(tiny_sweep(folder, tiny_encoder), "--out", folder / "out", "--parallel", "2", "--accelerate-config", CONFIG)
    return folder / "out" / "tiny", result.stdout


def test_parallel_runs_independent_points_together_and_dependents_after(local_run):
    root, out = local_run
    events = [line.split()[1].rstrip(":") if line.startswith("[sweep] train") or line.startswith("[sweep] evaluate") else line
              for line in out.splitlines() if line.startswith("[sweep] ")]
    first_end = next(i for i, e in enumerate(events) if e.startswith("[sweep] finished:"))
    assert {"train-fraction0.5", "train-fraction1.0"} <= set(events[:first_end])  # both trainings started before either finished
    assert events.index("evaluate-full") > events.index("[sweep] finished: train-fraction1.0")
    assert (root / "train-fraction1.0" / "done.json").is_file() and (root / "evaluate-full.json").is_file()
    assert (root / "logs" / "train-fraction0.5.log").is_file()


def test_parallel_points_get_their_own_gpu_and_wait_for_what_they_need(tmp_path, monkeypatch):
    """Fake points (a command that records its GPU, then writes its output): two at once, on different
    GPUs; the one that names another starts after it; a third GPU-less slot never opens."""
    spec = {"name": "s", "claim": "plateau", "groups": [{"kind": "evaluate", "label": "a"}, {"kind": "evaluate", "label": "b"},
                                                        {"kind": "evaluate", "label": "c", "args": ["run=@evaluate-a"]}]}
    points = expand(spec, tmp_path)
    events = tmp_path / "events"
    script = ("import os, sys, time; e = open(sys.argv[1], 'a'); e.write('start ' + sys.argv[2] + ' ' + os.environ['CUDA_VISIBLE_DEVICES'] + '\\n'); e.flush();"
              " time.sleep(1); open(sys.argv[3], 'w').write('{}'); e.write('end ' + sys.argv[2] + '\\n')")
    by_cmd = {}

    def fake(cmd, processes=None):
        point = by_cmd[tuple(cmd)]
        return [sys.executable, "-c", script, str(events), point.name, str(point.output)]

    for point in points:
        by_cmd[tuple(point.command())] = point
    monkeypatch.setattr(local, "runnable", fake)
    monkeypatch.setattr(local, "visible_gpus", lambda: ["4", "7"])
    local.run_local(points, tmp_path / "s", "accelerate_config.yaml", parallel=3)
    lines = events.read_text().splitlines()
    starts = {line.split()[1]: line.split()[2] for line in lines if line.startswith("start")}
    assert {line.split()[:2][1] for line in lines[:2] if line.startswith("start")} == {"evaluate-a", "evaluate-b"}
    assert {starts["evaluate-a"], starts["evaluate-b"]} == {"4", "7"}  # two at once, each on its own GPU
    assert lines.index("end evaluate-a") < lines.index(f"start evaluate-c {starts['evaluate-c']}")
    assert all(p.done() for p in points)


def test_gpu_slots_follow_cuda_visible_devices():
    assert local.gpu_slots("2,3", 8) == ["2", "3"]
    assert local.gpu_slots(None, 2) == ["0", "1"]
    assert local.gpu_slots("", 2) == [] and local.gpu_slots(None, 0) == []


@pytest.fixture(scope="module")
def slurm_cluster():
    """The one-node cluster, started by the project's script unless it already runs (then left running)."""
    if subprocess.run([CLUSTER, "status"], capture_output=True).returncode == 0:
        yield
        return
    started = subprocess.run([CLUSTER, "start"], capture_output=True, text=True)
    assert started.returncode == 0, f"the one-node SLURM cluster did not start (.ci/slurm-cluster start): {started.stderr.strip()}"
    yield
    subprocess.run([CLUSTER, "stop"], check=False)


def status(out):
    """--status as {point: (state, job, log line)}."""
    lines = sweep(*out, check=False).stdout.splitlines()
    return {line.split()[0]: (line.split()[1], line.split()[3], line) for line in lines if line.strip()}


def poll(condition, what, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def leaves(record, path=""):
    """A result's values by path, less timings and the folders that differ between two output folders."""
    if isinstance(record, dict):
        skip = ("seconds", "info", "run", "train")  # timings, folders; a training's own session statistics (a resumed one counts from its resume)
        return {k: v for key, value in record.items() if key not in skip for k, v in leaves(value, f"{path}/{key}").items()}
    if isinstance(record, list):
        return {k: v for i, value in enumerate(record) for k, v in leaves(value, f"{path}[{i}]").items()}
    return {path: record}


def same_results(ours, theirs):
    """Equal up to float32 summation order (a job's 1 CPU thread against the local run's 2)."""
    a, b = leaves(json.loads(ours.read_text())), leaves(json.loads(theirs.read_text()))
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == (pytest.approx(b[key], rel=1e-5, abs=1e-7) if isinstance(b[key], float) else b[key]), key


@pytest.fixture
def cancel_leftovers(tmp_path):
    """Whatever happens, the test's jobs do not outlive it."""
    yield
    for record in json.loads(jobs.read_text()).values() if (jobs := tmp_path / "out" / "tiny" / "jobs.json").is_file() else []:
        subprocess.run(["scancel", record["job_id"]], check=False)


def test_slurm_sweep_equals_local_and_a_cancelled_job_resumes(slurm_cluster, local_run, tiny_encoder, tmp_path, cancel_leftovers):
    local_root, _ = local_run
    path = tiny_sweep(tmp_path, tiny_encoder)
    out = tmp_path / "out"
    status_args = (path, "--out", out, "--status")
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "slow_steps"), "ROUTERTRAIN_TEST_STEP_SLEEP": "2"}
    first = sweep(path, "--out", out, "--executor", "slurm", "--accelerate-config", CONFIG, env=env)
    assert first.stdout.count("[sweep] submitted:") == 3
    jobs = json.loads((out / "tiny" / "jobs.json").read_text())
    assert jobs["train-fraction0.5"]["job_id"].split("_")[0] == jobs["train-fraction1.0"]["job_id"].split("_")[0]  # one array
    assert status(status_args)["evaluate-full"][0] == "pending"  # afterok on the training it evaluates

    job = poll(lambda: status(status_args)["train-fraction1.0"][0] == "running" and jobs["train-fraction1.0"]["job_id"], "train-fraction1.0 to run")
    again = sweep(path, "--out", out, "--executor", "slurm", "--accelerate-config", CONFIG, env=env)
    assert "submitted" not in again.stdout and "running already: train-fraction1.0" in again.stdout  # not submitted twice
    log = jobs["train-fraction1.0"]["err"]
    poll(lambda: os.path.isfile(log) and "[slow-steps] step 2" in open(log).read(), "train-fraction1.0 to reach step 2")
    subprocess.run(["scancel", job], check=True)  # SIGTERM first, SIGKILL after KillWait
    poll(lambda: status(status_args)["train-fraction1.0"][0] == "failed", "the cancelled job to leave the queue")
    assert list((out / "tiny" / "train-fraction1.0" / "checkpoints").glob("step-*")), "SIGTERM saved no checkpoint"

    resumed = sweep(path, "--out", out, "--executor", "slurm", "--accelerate-config", CONFIG, "--wait", env=env)
    assert "submitted: train-fraction1.0" in resumed.stdout and "submitted: train-fraction0.5" not in resumed.stdout
    assert "submitted: evaluate-full" in resumed.stdout  # its old job waited on the cancelled one
    record = json.loads((out / "tiny" / "jobs.json").read_text())["train-fraction1.0"]
    assert record["job_id"] != job and "resumed from" in open(record["log"]).read()
    final = status(status_args)
    assert {state for state, _, _ in final.values()} == {"finished"}
    same_results(out / "tiny" / "evaluate-full.json", local_root / "evaluate-full.json")
    for point in ("train-fraction0.5", "train-fraction1.0"):
        same_results(out / "tiny" / point / "metrics.json", local_root / point / "metrics.json")


def test_slurm_resources_come_from_the_sweep_file_and_the_command_line_wins(tmp_path):
    from routertrain.experiments.slurm import minutes, sbatch_parameters

    spec = {"name": "s", "claim": "plateau", "slurm": {"partition": "gpu", "time": "4:00:00", "mem": 64},
            "groups": [{"kind": "evaluate", "slurm": {"gpus": 2, "cpus": 16, "qos": "high", "sbatch": ["--constraint=a100", "--exclusive"]}}]}
    (point,) = expand(spec, tmp_path)
    params = sbatch_parameters({**point.slurm, "partition": "debug", "account": "lab"}, "s:evaluate", "afterok:12_0:13")
    assert params["partition"] == "debug" and params["account"] == "lab" and params["qos"] == "high"
    assert params["gpus_per_node"] == 2 and params["cpus_per_task"] == 16 and params["time"] == 240
    extra = params["additional_parameters"]
    assert extra == {"export": "ALL", "constraint": "a100", "exclusive": True, "mem": "64G", "dependency": "afterok:12_0:13"}
    assert minutes(90) == 90 and minutes("1-00:00:00") == 24 * 60 and minutes("2:30") == 150


def test_executor_slurm_without_sbatch_fails_in_one_line_naming_the_fix(tmp_path, capsys, monkeypatch):
    from routertrain.experiments import slurm
    from routertrain.experiments.sweep import main

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "claim": "plateau", "groups": [{"kind": "evaluate", "args": ["routers=[task-prior]"]}]}))
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    assert main([str(path), "--out", str(tmp_path / "out"), "--executor", "slurm"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--executor slurm needs SLURM's sbatch" in err and "--executor local" in err
    assert main([str(path), "--parallel", "0"]) == 2
    assert "--parallel 0" in capsys.readouterr().err
