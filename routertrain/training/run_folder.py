"""The run folder's life cycle: one writer at a time, a clean start, and a marker written last.

- ``RunLock``: a ``filelock`` lock on ``<output_dir>/.<run name>.lock``, beside the run folder (which
  it may precede), held by the main process for the whole run; a second writer stops at once, before
  loading anything, with one line naming the holder's process id (``.<run name>.lock.json``).
- ``clean_leftovers``: temporary folders and files of an interrupted run (``router.tmp-*``,
  ``best.tmp-*``, ``*.old``, ``checkpoints/step-*.tmp``, ``*.tmp``) removed at start.
- ``cut_log``: on resume, ``log.jsonl`` keeps only the steps up to the checkpoint's.
- ``routertrain.provenance.DONE`` (``done.json``): written last, after ``router/`` is in place.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

from filelock import FileLock, Timeout

from routertrain.config import ConfigError
from routertrain.provenance import DONE, atomic_write_json, atomic_write_text

STALE = ("checkpoints", "best", "router", "metrics.json", "log.jsonl", DONE)  # what a run started from step 0 clears


class RunFolderBusy(ConfigError):
    """Another process is writing this run folder."""


class RunLock:
    """The run folder's writer lock (main process only), with the holder's pid beside it."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.holder = holder_file(run_dir)
        self.lock = FileLock(run_dir.parent / f".{run_dir.name}.lock", timeout=0)

    def acquire(self) -> "RunLock":
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.lock.acquire()
        except Timeout:
            raise RunFolderBusy(
                f"run folder {self.run_dir} is being written by another training process ({read_holder(self.holder)}); "
                "wait for it to finish or stop it, or set run.name=<another name>"
            ) from None
        atomic_write_json(self.holder, {"pid": os.getpid(), "host": socket.gethostname()})
        return self

    def release(self) -> None:
        if self.lock.is_locked:
            self.holder.unlink(missing_ok=True)
            self.lock.release()


def holder_file(run_dir: Path) -> Path:
    """Where the lock's holder (pid and host) is written."""
    return run_dir.parent / f".{run_dir.name}.lock.json"


def read_holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        return f"pid {holder['pid']} on {holder['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown: it is still starting"


def check_writable(folder: Path, key: str) -> None:
    """One ConfigError unless ``folder`` exists or can be created, and files can be written in it."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{key}: {folder} cannot be created because {existing} is a file; choose another folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ConfigError(f"{key}: cannot write in {existing} ({err.strerror}); choose a writable folder or fix its permissions") from None


def clean_leftovers(run_dir: Path) -> None:
    """Remove what interrupted atomic writes left behind (never a finished file or folder)."""
    for path in [*run_dir.glob("*.tmp-*"), *run_dir.glob("*.old"), *run_dir.glob("*.tmp"), *run_dir.glob("checkpoints/*.tmp")]:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def clear_stale(run_dir: Path) -> None:
    """A run that starts from step 0 leaves no earlier log, weights or marker behind."""
    for stale in STALE:
        path = run_dir / stale
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def cut_log(run_dir: Path, step: int) -> None:
    """Drop the log lines of steps after ``step`` (an interrupted run logged them; the resume repeats them)."""
    log = run_dir / "log.jsonl"
    if log.is_file():
        lines = [line for line in log.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
        if len(kept) != len(lines):
            atomic_write_text(log, "".join(line + "\n" for line in kept))
