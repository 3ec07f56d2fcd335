"""``routertrain sweep NAME --executor local [--parallel N]``: run a sweep's unfinished points on this machine.

With ``--parallel 1`` (the default) the points run one after another in file order, each one's output
on the terminal. With ``--parallel N`` up to N points run at once, each as soon as the points it names
(``run=@<point>``, ``runs=[@<point>,...]``) have finished; each writes ``<sweep>/logs/<point>.log``.
Where there are GPUs each running point gets its own (``CUDA_VISIBLE_DEVICES``), so at most one point
per visible GPU runs at a time. A failed point stops new points from starting; the running ones finish,
then the runner reports the failure (points that need it never start). SIGTERM or SIGINT to the runner
reaches every running point's launcher and training processes, which save a checkpoint; the runner
waits for them, then exits 75 (rerun to continue).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from routertrain.experiments.points import Point, SweepError, SweepInterrupted, launch_env, runnable
from routertrain.training.preemption import die_with_parent


@dataclass
class Running:
    point: Point
    proc: subprocess.Popen
    device: str | None
    log: Path | None


def gpu_slots(visible: str | None, count: int) -> list[str]:
    """The GPU of each slot: the ids in ``CUDA_VISIBLE_DEVICES`` when set, else 0..count-1 (none without GPUs)."""
    if visible is not None and visible.strip() not in ("", "-1"):
        return [d.strip() for d in visible.split(",") if d.strip()]
    return [str(i) for i in range(count)] if visible is None else []


def visible_gpus() -> list[str]:
    import torch

    return gpu_slots(os.environ.get("CUDA_VISIBLE_DEVICES"), torch.cuda.device_count())


def start(point: Point, root: Path, accelerate_config: str, device: str | None, to_log: bool) -> Running:
    env = launch_env()
    if device is not None:
        env["CUDA_VISIBLE_DEVICES"] = device
    log = root / "logs" / f"{point.name}.log" if to_log else None
    out = None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        out = open(log, "ab")  # noqa: SIM115 (closed by the child's exit: Popen dups it)
    cmd = runnable(point.command(accelerate_config))
    print(f"[sweep] {point.name}: {shlex.join(cmd)}" + (f"  (log: {log}{', GPU ' + device if device is not None else ''})" if log else ""), flush=True)
    try:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, preexec_fn=die_with_parent, stdout=out, stderr=subprocess.STDOUT if out else None)
    finally:
        if out is not None:
            out.close()
    return Running(point, proc, device, log)


def group_alive(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs (zombies, awaiting their reaper, do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def run_local(points: list[Point], root: Path, accelerate_config: str, parallel: int = 1) -> None:
    """Run every unfinished point, up to ``parallel`` at once, each after the points it needs."""
    finished = {p.name for p in points if p.done()}
    for point in points:
        if point.name in finished:
            print(f"[sweep] done already: {point.name}")
    todo = [p for p in points if p.name not in finished]
    devices = visible_gpus() if parallel > 1 else []
    slots = min(parallel, len(devices)) if devices else parallel
    running: list[Running] = []
    failed: list[tuple[Point, int, Path | None]] = []
    stopped_by: list[str] = []

    stopped_during: list[str] = []

    def forward(signum, frame):
        stopped_by.append(signal.Signals(signum).name)
        stopped_during.extend(j.point.name for j in running if j.point.name not in stopped_during)
        for job in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(job.proc.pid, signum)

    def ready(point: Point) -> bool:
        if parallel == 1:  # one at a time, in file order: today's behaviour
            return point is todo[0]
        return all(n in finished for n in point.needs)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while todo or running:
            while not failed and not stopped_by and len(running) < slots and (nxt := next((p for p in todo if ready(p)), None)):
                todo.remove(nxt)
                free = [d for d in devices if d not in {j.device for j in running}]
                running.append(start(nxt, root, accelerate_config, free[0] if free else None, parallel > 1))
            if not running:
                break  # what is left needs a failed point (or the runner was stopped)
            time.sleep(0.2)
            for job in [j for j in running if j.proc.poll() is not None and not group_alive(j.proc.pid)]:
                running.remove(job)  # the launcher and the training processes under it have exited
                if job.proc.returncode == 0:
                    finished.add(job.point.name)
                    print(f"[sweep] finished: {job.point.name}", flush=True)
                elif not stopped_by:
                    failed.append((job.point, job.proc.returncode, job.log))
                    print(f"[sweep] failed: {job.point.name} (exit code {job.proc.returncode})", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stopped_by:
        during = f"during point {', '.join(stopped_during)}, which saved a checkpoint" if stopped_during else "between points"
        raise SweepInterrupted(f"sweep stopped by {stopped_by[0]} {during}; rerun the sweep to continue from it")
    if failed:
        point, code, log = failed[0]
        where = f"its log: {log}" if log else "its error is above"
        raise SweepError(f"point {point.name} failed with exit code {code} ({where}); fix the cause, then rerun the sweep to continue from it")
