"""Resumable checkpoints: tensors through Accelerate, everything else as JSON, nothing unpickled.

``checkpoints/step-000123/`` holds what ``Accelerator.save_state`` writes for the model and the
optimizer (safetensors, and tensor-only ``.bin`` files that ``load_state`` reads with
``weights_only=True``), then, written last by the main process:

- ``rng_state_<rank>.json``: Python, NumPy and torch RNG states, one file written by each process
  (as ``save_state`` writes its RNG file per rank), with that process's own training statistics
  (``process``: the loss parts since the last log, samples and tokens seen, training time) so that
  a resumed run logs and reports what the uninterrupted one would;
- ``trainer_state.json``: step, best step, the learning-rate schedule's state and the size of every
  file of the checkpoint (its manifest).

Accelerate's pickled files (``random_states_*.pkl``, ``custom_checkpoint_*.pkl``) are never written
(no custom object is registered) or are deleted before the folder is renamed into place. A
checkpoint whose files do not match its manifest, or that holds any pickle file, is refused: with
``train.resume=auto`` the previous complete one is used instead, saying so.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from safetensors import SafetensorError, safe_open

from routertrain.config import ConfigError
from routertrain.provenance import apply_umask, atomic_write_json

STATE = "trainer_state.json"
STEP_DIR = re.compile(r"^step-(\d+)$")


def rng_state() -> dict:
    """This process's RNG states as JSON-ready lists."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"python": [version, list(internal), gauss], "numpy": [kind, keys.tolist(), pos, has_gauss, cached], "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if torch.cuda.is_available() and "cuda" in state:
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def manifest(folder: Path) -> dict[str, int]:
    """Size of every file under ``folder`` (relative names), the trainer state excepted."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file() and p.name != STATE}


def save_checkpoint(accelerator: Accelerator, run_dir: Path, step: int, state: dict, keep: int, process: dict | None = None) -> Path:
    """``save_state`` into ``step-N.tmp``, the JSON state beside it (``process``: this process's own
    part, JSON-ready), renamed into place once every rank has written."""
    final = run_dir / "checkpoints" / f"step-{step:06d}"
    tmp = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    (tmp / f"random_states_{accelerator.process_index}.pkl").unlink(missing_ok=True)  # kept as JSON instead
    atomic_write_json(tmp / f"rng_state_{accelerator.process_index}.json", {**rng_state(), "process": process or {}})
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        apply_umask(tmp)
        atomic_write_json(tmp / STATE, {**state, "files": manifest(tmp)})
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        done = sorted((int(m.group(1)), p) for p in final.parent.iterdir() if (m := STEP_DIR.match(p.name)))
        for _, old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def problem(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (missing or truncated files, pickles), or None."""
    try:
        state = json.loads((checkpoint / STATE).read_text())
        files = dict(state["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"its {STATE} is missing or unreadable"
    pickles = sorted(p.name for p in checkpoint.rglob("*.pkl"))
    if pickles:
        return f"it holds pickle files ({', '.join(pickles)}), which routertrain never writes and will not load"
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file() or path.stat().st_size != size:
            return f"{name} is missing or truncated"
        if path.suffix == ".safetensors":
            try:
                with safe_open(str(path), "pt"):
                    pass
            except (SafetensorError, OSError):
                return f"{name} is not a readable safetensors file"
    return None


def checkpoints(run_dir: Path) -> list[Path]:
    """The run's checkpoint folders, newest first."""
    found = [(int(m.group(1)), p) for p in (run_dir / "checkpoints").glob("step-*") if (m := STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found, reverse=True)]


def find_checkpoint(run_dir: Path, resume: str, say=print) -> Path | None:
    """The checkpoint to resume from: ``train.resume`` itself (refused in one line when broken), or
    with ``auto`` the newest complete one of the run, skipping (and naming) broken ones."""
    if resume == "never":
        return None
    if resume != "auto":
        why = problem(Path(resume))
        if why:
            raise ConfigError(f"train.resume={resume} cannot be resumed from: {why}; name another checkpoint or set train.resume=never")
        return Path(resume)
    for checkpoint in checkpoints(run_dir):
        why = problem(checkpoint)
        if why is None:
            return checkpoint
        say(f"skipping checkpoint {checkpoint}: {why}; trying the previous one")
    if checkpoints(run_dir):
        say(f"no complete checkpoint is left in {run_dir / 'checkpoints'}: training starts again from step 0")
    return None


def load_checkpoint(accelerator: Accelerator, checkpoint: Path, scheduler) -> dict:
    """Model and optimizer tensors (``weights_only`` loads), then the JSON state; returns the trainer
    state, with this process's own part under ``process`` (empty for checkpoints that lack it)."""
    accelerator.load_state(str(checkpoint))
    state = json.loads((checkpoint / STATE).read_text())
    scheduler.load_state_dict(state["scheduler"])
    rng = checkpoint / f"rng_state_{accelerator.process_index}.json"
    own = json.loads(rng.read_text()) if rng.is_file() else {}
    if own:
        set_rng_state(own)
    return {**state, "process": own.get("process", {})}
