"""The run folder's life cycle: one writer at a time, a clean start, and a marker written last.

- ``RunLock``: a ``filelock`` lock on ``<output_dir>/.<run name>.lock``, beside the run folder (which
  it may precede), held by the main process for the whole run; a second writer stops at once, before
  loading anything, with one line naming the holder's process id (``.<run name>.lock.json``).
- ``clean_leftovers``: temporary folders and files of an interrupted run (``router.tmp-*``,
  ``best.tmp-*``, ``*.old``, ``checkpoints/step-*.tmp``, ``*.tmp``) removed at start.
- ``cut_log``: on resume, ``log.jsonl`` keeps only the steps up to the checkpoint's (and no line cut short).
- ``finished_results``: a rerun of a finished run's command says so and leaves the folder as it is.
- ``RESUME_HINT``: what a failed write (full disk, file-size limit) tells the user (``provenance.writing``).
- ``routertrain.provenance.DONE`` (``done.json``): written last, after ``router/`` is in place.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

from accelerate import Accelerator
from filelock import FileLock, Timeout
from omegaconf import OmegaConf

from routertrain.config import Config, ConfigError, to_dict, to_yaml
from routertrain.provenance import DONE, atomic_write_json, atomic_write_text, finished, writing
from routertrain.training.checkpoints import find_checkpoint

RESUME_HINT = "free space (or raise the file-size limit) or fix the folder's permissions, then run the same command again: it resumes from the last complete checkpoint"
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
        kept = [line for line in lines if (entry := log_entry(line)) is not None and entry.get("step", 0) <= step]
        if len(kept) != len(lines):
            atomic_write_text(log, "".join(line + "\n" for line in kept))


def log_entry(line: str) -> dict | None:
    """One line of ``log.jsonl``, or None for a line cut short (a write that failed, a kill -9 mid-line)."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


def result_settings(settings: dict) -> dict:
    """The config minus what does not change the result (run name, resume, tracking, push, tune)."""
    settings = {k: (dict(v) if isinstance(v, dict) else v) for k, v in settings.items() if k not in ("tracking", "push", "tune")}
    settings["run"].pop("name", None)
    settings["train"].pop("resume", None)
    return settings


def lock_run_dir(cfg: Config, run_dir: Path, accelerator: Accelerator) -> RunLock | None:
    """The run folder's writer lock (main process), once its folders are known to be writable and an
    explicit ``train.resume`` checkpoint to be sound: before any data or model is loaded."""
    check_writable(run_dir, "run.output_dir")
    if (run_dir / "checkpoints").is_dir():
        check_writable(run_dir / "checkpoints", "the run's checkpoints folder")
    if cfg.train.resume not in ("auto", "never"):
        find_checkpoint(run_dir, cfg.train.resume)  # a broken checkpoint is refused in one line
    return RunLock(run_dir).acquire() if accelerator.is_main_process else None


def same_config(cfg: Config, config_file: Path) -> bool:
    """Whether ``config_file`` (a run folder's ``config.yaml``) holds ``cfg``'s result settings."""
    previous = OmegaConf.to_container(OmegaConf.load(config_file))
    return result_settings(previous) == result_settings(to_dict(cfg))


def finished_results(cfg: Config, run_dir: Path) -> dict | None:
    """The metrics of this config's earlier run in ``run_dir`` when it finished (``done.json``) and
    ``train.resume=auto``: the rerun has nothing to train and leaves the folder as it is. None otherwise."""
    config_file = run_dir / "config.yaml"
    if cfg.train.resume != "auto" or not finished(run_dir) or not config_file.is_file() or not same_config(cfg, config_file):
        return None
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None  # done.json without readable metrics: trained again


def prepare_run_dir(cfg: Config, run_dir: Path, accelerator: Accelerator) -> None:
    """Refuse to mix two different configs in one folder; remove what an interrupted run left
    half-written; start clean when the run starts from step 0 (resume=never, or resume=auto with no
    complete checkpoint), so no earlier log, weights or marker linger."""
    if accelerator.is_main_process:
        config_file = run_dir / "config.yaml"
        if cfg.train.resume == "auto" and config_file.is_file() and not same_config(cfg, config_file):
            raise ConfigError(f"run folder {run_dir} holds a run with a different config; set run.name=<new name> or train.resume=never")
        with writing(run_dir, RESUME_HINT):
            run_dir.mkdir(parents=True, exist_ok=True)
            clean_leftovers(run_dir)
            if find_checkpoint(run_dir, cfg.train.resume) is None:  # says which broken checkpoints it skips
                clear_stale(run_dir)
            atomic_write_text(config_file, to_yaml(cfg))
    accelerator.wait_for_everyone()
