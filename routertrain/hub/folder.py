"""The router folder format: file names, how to find a router folder in a run folder, and its settings
read without loading any weights (``router_settings``). ``routertrain.hub.router`` writes and loads
these folders; the card, the evaluator and the commands read them through here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from routertrain.model.modeling import MODEL_TYPE
from routertrain.provenance import DONE, finished

CONFIG = "config.json"
LEGACY_CONFIG = "router_config.json"  # format 1
ENSEMBLE = "ensemble.json"  # an ensemble folder: members/<i>/ router folders (routertrain.hub.ensemble)
BLEND, BLEND_MEMORY = "blend.json", "blend.safetensors"  # a blend folder: the router + kNN and task-prior memory (routertrain.hub.blend)
WEIGHTS = "model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")  # what save_pretrained writes for the (fast) training tokenizer
REQUIRED_FILES = (CONFIG, WEIGHTS, *TOKENIZER_FILES)
REFETCH = "copy or download the router folder again, or train again"


class RunUnfinished(OSError):
    """A run folder whose training stopped before its end (no done.json), in one line."""


class RouterFolderError(OSError):
    """A router folder that cannot be loaded (a missing, truncated or mismatched file), in one line."""


def is_router_folder(folder: Path) -> bool:
    """A folder ``save_router`` wrote: a router ``config.json``, or a format-1 ``router_config.json``.
    A ``config.json`` that is not valid JSON is refused in one line (``RouterFolderError``), not taken for "no router"."""
    if (folder / LEGACY_CONFIG).is_file():
        return True
    if not (folder / CONFIG).is_file():
        return False
    raw = read_json(folder / CONFIG)
    return isinstance(raw, dict) and raw.get("model_type") == MODEL_TYPE


def read_json(path: Path):
    """A router folder's JSON file, or a one-line ``RouterFolderError`` when it is not valid JSON."""
    try:
        return json.loads(path.read_text())
    except ValueError as err:  # invalid JSON, or not text
        raise RouterFolderError(f"{path} is not valid JSON ({first_line(err)}); {REFETCH}") from None


def router_folder(run: str | os.PathLike) -> Path:
    """The router folder of a run folder (``run/router``), or ``run`` itself if it is one."""
    run = Path(run)
    for folder in (run / "router", run):
        if is_router_folder(folder):
            if folder != run and not finished(run):
                raise RunUnfinished(f"run {run} did not finish (no {DONE}: it stopped before its end); rerun its training command to finish it")
            return folder
    raise FileNotFoundError(f"{run} holds no router (no router {CONFIG} in it or in {run}/router); pass a run folder that finished training")


def router_settings(folder: str | os.PathLike) -> dict:
    """The pool, costs, pooling, max length, base encoder, calibration and train means of a router
    folder, without loading it: from its ``config.json`` (``id2label`` in output order), or a
    format-1 ``router_config.json`` (an ensemble's shared settings)."""
    folder = Path(folder)
    if (folder / LEGACY_CONFIG).is_file():
        return read_json(folder / LEGACY_CONFIG)
    config = read_json(folder / CONFIG) if (folder / CONFIG).is_file() else {}
    config = config if isinstance(config, dict) else {}
    labels = config.get("id2label") or {}
    models = [labels[k] for k in sorted(labels, key=int)]
    return {"models": models, **{k: config.get(k) for k in ("costs", "pooling", "max_length", "base_model", "calibration", "train_means")}}


def first_line(err: BaseException) -> str:
    """The first line of an error's message, for one-line reports."""
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__
