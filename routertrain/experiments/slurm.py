"""``routertrain sweep NAME --executor slurm``: each unfinished point is a SLURM job, submitted by submitit.

A train point runs ``accelerate launch`` inside its job with one process per GPU of the job (one on a
CPU-only job). An evaluate, blend or ensemble point waits on the points it names (``afterok``). The
points of a group that wait on nothing are submitted together, as one job array. Resources come from
the sweep file (``slurm:`` at the top, then per group) and the command line (``--partition --gpus
--cpus --mem --time --account --qos --sbatch``)::

    slurm: {partition: gpu, gpus: 1, cpus: 8, mem: 64G, time: 240, sbatch: [--constraint=a100]}

The job ids go to ``<sweep>/jobs.json`` (written atomically); submitit's scripts and logs to
``<sweep>/slurm/``. Rerunning the command skips finished points (``done.json``) and points whose
job is still pending or running (``squeue``; accounting, ``sacct``, is not needed), and resubmits the
others, failed or cancelled ones included; a pending point that waits on a resubmitted point is
resubmitted too (its old dependency can never be met). ``--status`` prints each point's state.

Preemption and time limits: SLURM's SIGTERM reaches the training processes, which save a checkpoint
and exit 75; the next ``sweep`` command resubmits the point, which resumes from that checkpoint. Before
the time limit, submitit's USR2 (``--signal=USR2@90``) makes the job stop its training the same way
and requeue itself (same job id), so it resumes without a new command.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from routertrain.experiments.local import group_alive
from routertrain.experiments.points import Point, SweepError, launch_env, runnable
from routertrain.provenance import atomic_write_json

JOBS = "jobs.json"
QUEUED = {"PENDING": "pending", "CONFIGURING": "pending", "REQUEUED": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending",
          "RESV_DEL_HOLD": "pending", "SUSPENDED": "pending", "RUNNING": "running", "COMPLETING": "running", "STAGE_OUT": "running",
          "RESIZING": "running", "SIGNALING": "running"}
DEFAULT_TIME_MIN = 24 * 60


def check_available() -> None:
    """One line naming the fix when this machine cannot submit SLURM jobs."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        raise SweepError("--executor slurm needs SLURM's sbatch and squeue on PATH (none found): run on a cluster's login node, or use --executor local")
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise SweepError("--executor slurm needs submitit: pip install 'routertrain[cluster]'") from None


def job_gpus() -> int:
    """GPUs given to this job (SLURM sets CUDA_VISIBLE_DEVICES for its GPUs); 0 on a CPU-only job."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    import torch

    return torch.cuda.device_count()


class PointJob:
    """The function a point's job runs (pickled by submitit): its command, as a process group of its own.

    ``checkpoint`` is submitit's hook for USR2 before the time limit (or a preemption announced by it):
    it sends SIGTERM to the training processes, waits until they saved a checkpoint, and returns the
    same job, which submitit requeues."""

    def __init__(self, point: Point, accelerate_config: str):
        self.point = point
        self.accelerate_config = accelerate_config
        self.proc: subprocess.Popen | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "proc": None}

    def __call__(self) -> str:
        cmd = self.point.command(self.accelerate_config)
        cmd = runnable(cmd, max(1, job_gpus()) if self.point.kind == "train" else None)
        print(f"[sweep] {self.point.name}: {' '.join(cmd)}", flush=True)
        # USR2 is submitit's, here: the training processes ignore it (SLURM signals every process of the step)
        env = {**launch_env(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS") or os.environ.get("SLURM_CPUS_PER_TASK") or launch_env()["OMP_NUM_THREADS"]}
        self.proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGUSR2, signal.SIG_IGN))
        code = self.proc.wait()
        while group_alive(self.proc.pid):  # the launcher is gone (SLURM signals it too); training may still be saving
            time.sleep(0.2)
        if code != 0:
            raise RuntimeError(f"point {self.point.name} failed with exit code {code}")
        return self.point.name

    def checkpoint(self):
        import submitit

        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait()
            while group_alive(self.proc.pid):
                time.sleep(0.2)
        return submitit.helpers.DelayedSubmission(PointJob(self.point, self.accelerate_config))


def minutes(value) -> int:
    """A time limit in minutes: 240, "240", "4:00:00" or "1-00:00:00"."""
    text = str(value).strip()
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise SweepError(f"time limit {text!r}: give minutes (240) or H:MM:SS (4:00:00)")
    days, a, b, c = match.groups()
    if b is None:
        total = int(a)
    elif c is None:
        total = int(a) * 60 + int(b)  # H:MM as SLURM reads D-H:MM; plain M:SS is rare for a job
    else:
        total = int(a) * 60 + int(b) + (int(c) > 0)
    return total + int(days or 0) * 24 * 60


def sbatch_parameters(resources: dict, name: str, dependency: str | None) -> dict:
    """submitit.SlurmExecutor parameters for a job with ``resources`` (keys of sweep.RESOURCE_KEYS)."""
    extra: dict = {"export": "ALL"}  # the submitting environment (HF_HUB_OFFLINE, ...) reaches the job
    for arg in resources.get("sbatch") or []:
        key, _, value = str(arg).lstrip("-").partition("=")
        extra[key.replace("-", "_")] = value if value else True
    if resources.get("mem"):
        mem = str(resources["mem"])
        extra["mem"] = f"{mem}G" if mem.isdigit() else mem
    if dependency:
        extra["dependency"] = dependency
    params = {"job_name": name, "time": minutes(resources.get("time", DEFAULT_TIME_MIN)), "additional_parameters": extra}
    for key, target in (("partition", "partition"), ("cpus", "cpus_per_task"), ("account", "account"), ("qos", "qos")):
        if resources.get(key) not in (None, ""):
            params[target] = resources[key]
    if int(resources.get("gpus") or 0) > 0:
        params["gpus_per_node"] = int(resources["gpus"])
    return params


def queue() -> dict[str, str]:
    """This user's jobs in the queue: job id (array tasks as ``123_4``) -> SLURM state."""
    result = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T"], capture_output=True, text=True)
    if result.returncode != 0:
        raise SweepError(f"squeue failed ({result.stderr.strip() or result.returncode}); is the SLURM controller up? (scontrol ping)")
    return dict(line.strip().split("|", 1) for line in result.stdout.splitlines() if "|" in line)


def read_jobs(root: Path) -> dict:
    path = root / JOBS
    return json.loads(path.read_text()) if path.is_file() else {}


def state(point: Point, record: dict | None, queued: dict[str, str]) -> str:
    """finished, running, pending, failed (its job left the queue unfinished) or not submitted."""
    if record and record["job_id"] in queued:
        return QUEUED.get(queued[record["job_id"]], "running")
    if point.done():
        return "finished"
    return "failed" if record else "not submitted"


def submit(points: list[Point], root: Path, accelerate_config: str, overrides: dict, wait: bool = False) -> dict:
    """Submit every point that is neither finished nor queued, each after the jobs of the points it needs."""
    import submitit

    jobs = read_jobs(root)
    queued = queue()
    states = {p.name: state(p, jobs.get(p.name), queued) for p in points}
    names = {p.name for p in points}
    submitted: set[str] = set()
    for index in sorted({p.group for p in points}):
        group = [p for p in points if p.group == index]
        todo = []
        for point in group:
            needs = [n for n in point.needs if n in names]
            if states[point.name] == "finished":
                print(f"[sweep] done already: {point.name}")
            elif states[point.name] in ("pending", "running") and not (states[point.name] == "pending" and submitted & set(needs)):
                print(f"[sweep] {states[point.name]} already: {point.name} (job {jobs[point.name]['job_id']})")
            else:
                if states[point.name] == "pending":  # it waits on a job that failed: its dependency can never be met
                    subprocess.run(["scancel", jobs[point.name]["job_id"]], check=False)
                todo.append(point)
        resources = {**(group[0].slurm if group else {}), **overrides}
        for batch in [[p for p in todo if not dependency(p, jobs, states, submitted, names)]] + [[p] for p in todo if dependency(p, jobs, states, submitted, names)]:
            if not batch:
                continue
            executor = submitit.SlurmExecutor(folder=root / "slurm" / "%j", max_num_timeout=3)
            label = f"{root.name}:{batch[0].name if len(batch) == 1 else batch[0].kind}"
            executor.update_parameters(**sbatch_parameters(resources, label, dependency(batch[0], jobs, states, submitted, names)))
            with executor.batch():
                handles = [executor.submit(PointJob(p, accelerate_config)) for p in batch]
            for point, job in zip(batch, handles):
                jobs[point.name] = {"job_id": str(job.job_id), "log": str(job.paths.stdout), "err": str(job.paths.stderr)}
                submitted.add(point.name)
                print(f"[sweep] submitted: {point.name} (job {job.job_id})", flush=True)
            atomic_write_json(root / JOBS, jobs)
    if wait:
        wait_for(points, root)
    return jobs


def dependency(point: Point, jobs: dict, states: dict, submitted: set, names: set) -> str | None:
    """``afterok:<id>:<id>`` on the jobs of the unfinished points it needs, or None."""
    ids = []
    for need in (n for n in point.needs if n in names):
        if need in submitted or states[need] in ("pending", "running"):
            ids.append(jobs[need]["job_id"])
        elif states[need] != "finished":
            raise SweepError(f"point {point.name} needs {need}, which is neither finished nor submitted")
    return "afterok:" + ":".join(ids) if ids else None


def wait_for(points: list[Point], root: Path, poll_s: float = 2.0) -> None:
    """Block until none of the sweep's jobs is in the queue; a point left unfinished is one SweepError."""
    jobs = read_jobs(root)
    while True:
        queued = queue()
        states = {p.name: state(p, jobs.get(p.name), queued) for p in points}
        waiting = [n for n, s in states.items() if s in ("pending", "running")]
        # a job waiting on a failed one never runs: stop waiting once nothing runs and every pending job is blocked
        if not waiting or all(states[n] == "pending" and blocked(n, points, states) for n in waiting):
            break
        time.sleep(poll_s)
    left = [n for n, s in states.items() if s != "finished"]
    if left:
        raise SweepError(f"points not finished: {', '.join(left)} (routertrain sweep {root.name} --status shows their logs); rerun the sweep to resubmit them")


def blocked(name: str, points: list[Point], states: dict) -> bool:
    point = next(p for p in points if p.name == name)
    return any(states.get(n) in ("failed", "not submitted") for n in point.needs)


def last_line(path: str | None) -> str:
    if not path or not Path(path).is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - 4096))
        lines = [ln.strip() for ln in f.read().decode(errors="replace").replace("\r", "\n").splitlines() if ln.strip()]
    return lines[-1][:120] if lines else ""


def print_status(points: list[Point], root: Path) -> int:
    """One line per point: state, job id, last log line, log path. 0 when every point finished, else 1."""
    jobs = read_jobs(root)
    queued = queue() if jobs and shutil.which("squeue") else {}
    width = max(len(p.name) for p in points)
    states = []
    for point in points:
        record = jobs.get(point.name)
        states.append(state(point, record, queued))
        logs = [f for f in ((record or {}).get("log"), (record or {}).get("err")) if f and Path(f).is_file()]
        log = max(logs, key=os.path.getmtime) if logs else None
        job = record["job_id"] if record else "-"
        print(f"{point.name:<{width}}  {states[-1]:<13}  job {job:<10}  {last_line(log)!r}  {log or '-'}")
    sys.stdout.flush()
    return 0 if all(s == "finished" for s in states) else 1
