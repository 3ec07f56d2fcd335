"""A trained router as a self-describing folder, and the inference API that loads it in one call.

Folder layout (written atomically by ``save_router``)::

    router_config.json   the model pool in label order, costs, pooling, max length, base encoder
    config.json          the encoder's transformers config (weights are built from it, no download)
    model.safetensors    encoder + head weights (LoRA already merged)
    tokenizer.json       the tokenizer used in training, with tokenizer_config.json
    metrics.json         evaluation results;  training_config.yaml, provenance.json: how it was made
    README.md            the model card (routertrain.hub.card)

``Router.from_pretrained(folder_or_repo_id)`` needs none of the training config. A folder with a
missing, truncated or mismatched file is refused with a one-line ``RouterFolderError``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel, AutoTokenizer

from routertrain.hub.card import render as render_card
from routertrain.model.modeling import RouterModel
from routertrain.provenance import DONE, atomic_dir, atomic_write_json, finished

ROUTER_CONFIG = "router_config.json"
WEIGHTS = "model.safetensors"
FORMAT_VERSION = 1
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")  # what save_pretrained writes for the (fast) training tokenizer
REQUIRED_FILES = (ROUTER_CONFIG, "config.json", WEIGHTS, *TOKENIZER_FILES)
REFETCH = "copy or download the router folder again, or train again"


class RunUnfinished(OSError):
    """A run folder whose training stopped before its end (no done.json), in one line."""


class RouterFolderError(OSError):
    """A router folder that cannot be loaded (a missing, truncated or mismatched file), in one line."""


def save_router(
    model: RouterModel,
    tokenizer,
    folder: str | os.PathLike,
    models: list[str],
    costs: list[float] | None,
    max_length: int,
    base_model: str,
    extra_files: dict[str, str] | None = None,
) -> Path:
    """Write a loadable router folder; ``extra_files`` maps file names to text (metrics, card, ...)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    with atomic_dir(folder) as tmp:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        model.encoder.config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        atomic_write_json(
            tmp / ROUTER_CONFIG,
            {
                "format_version": FORMAT_VERSION,
                "models": list(models),
                "costs": list(costs) if costs is not None else None,
                "pooling": model.pooling,
                "max_length": max_length,
                "base_model": base_model,
            },
        )
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if not (tmp / "README.md").exists():
            (tmp / "README.md").write_text(render_card(tmp, final=folder))
    return Path(folder)


def router_folder(run: str | os.PathLike) -> Path:
    """The router folder of a run folder (``run/router``), or ``run`` itself if it is one."""
    run = Path(run)
    for folder in (run / "router", run):
        if (folder / ROUTER_CONFIG).is_file():
            if folder != run and not finished(run):
                raise RunUnfinished(f"run {run} did not finish (no {DONE}: it stopped before its end); rerun its training command to finish it")
            return folder
    raise FileNotFoundError(f"{run} holds no router (no {ROUTER_CONFIG} in it or in {run}/router); pass a run folder that finished training")


def tokenize(tokenizer, queries: Sequence[str], max_length: int, pad: bool = True) -> dict:
    """The one tokenisation used in training, evaluation and inference."""
    return tokenizer(list(queries), truncation=True, max_length=max_length, padding=pad, return_tensors="pt" if pad else None)


class Router:
    """A loaded router: ``predict`` gives P(correct) per model, ``route`` picks a model per query."""

    def __init__(self, model: RouterModel, tokenizer, config: dict, folder: Path, device: str | torch.device = "cpu"):
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.config = config
        self.folder = folder
        self.device = torch.device(device)

    @property
    def models(self) -> list[str]:
        return list(self.config["models"])

    @property
    def costs(self) -> list[float] | None:
        return self.config.get("costs")

    @classmethod
    def from_pretrained(cls, path_or_repo_id: str | os.PathLike, revision: str | None = None, device: str | None = None) -> "Router":
        folder = Path(path_or_repo_id)
        if not folder.is_dir():
            from huggingface_hub import snapshot_download

            try:
                folder = Path(snapshot_download(str(path_or_repo_id), revision=revision))
            except Exception as err:
                raise OSError(
                    f"router '{path_or_repo_id}' is not a local folder and could not be fetched from the Hub or the HF cache "
                    f"({type(err).__name__}); pass the router folder's path"
                ) from None
        if not (folder / ROUTER_CONFIG).is_file():
            raise OSError(f"{folder} is not a router folder (no {ROUTER_CONFIG}); pass the 'router' folder of a run")
        if (folder / "ensemble.json").is_file():  # several routers shipped as one (routertrain.hub.ensemble)
            from routertrain.hub.ensemble import EnsembleRouter

            return EnsembleRouter.from_folder(folder, device)
        device = check_device(device)
        missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
        if missing:
            raise RouterFolderError(f"router folder {folder} lacks {', '.join(missing)}; {REFETCH}")
        config = read_router_config(folder / ROUTER_CONFIG)
        try:
            encoder_config = AutoConfig.from_pretrained(folder)
        except (OSError, ValueError) as err:
            raise RouterFolderError(f"{folder / 'config.json'} is not a valid encoder config ({first_line(err)}); {REFETCH}") from None
        model = RouterModel(AutoModel.from_config(encoder_config), len(config["models"]), config["pooling"], dropout=0.0)
        load_weights(model, folder / WEIGHTS)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except Exception as err:  # tokenizers raises plain Exceptions for malformed files
            raise RouterFolderError(f"the tokenizer files {', '.join(TOKENIZER_FILES)} in {folder} cannot be loaded ({first_line(err)}); {REFETCH}") from None
        return cls(model, tokenizer, config, folder, device)

    @torch.inference_mode()
    def predict(self, queries: Sequence[str] | str, batch_size: int = 64) -> np.ndarray:
        """P(correct) per (query, model): an array of shape (len(queries), len(self.models))."""
        queries = check_queries(queries)
        check_batch_size(batch_size)
        order = sorted(range(len(queries)), key=lambda i: len(queries[i]))  # similar lengths pad less
        out = np.zeros((len(queries), len(self.models)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenize(self.tokenizer, [queries[i] for i in idx], self.config["max_length"])
            batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            out[idx] = torch.sigmoid(self.model(**batch).float()).cpu().numpy()
        return out

    def route(self, queries: Sequence[str] | str, cost_weight: float = 0.0, max_cost: float | None = None, batch_size: int = 64) -> list[str]:
        """The chosen model per query.

        Maximises P(correct) - cost_weight * cost; with ``max_cost``, the most likely correct model
        among those whose cost is at most ``max_cost``.
        """
        check_cost_options(cost_weight, max_cost)  # before the work of predict
        probs = self.predict(queries, batch_size=batch_size)
        return [self.models[i] for i in choose(probs, self.costs, cost_weight, max_cost)]


def check_queries(queries) -> list[str]:
    """``queries`` as a list of texts; a one-line TypeError for anything else (None, a number, ...)."""
    if isinstance(queries, str):
        return [queries]
    if not hasattr(queries, "__iter__"):
        raise TypeError(f"queries must be a text or a list of texts, not {type(queries).__name__}")
    queries = list(queries)
    bad = [i for i, q in enumerate(queries) if not isinstance(q, str)]
    if bad:
        raise TypeError(f"queries must be texts: item {bad[0]} is {type(queries[bad[0]]).__name__} ({queries[bad[0]]!r:.40})")
    return queries


def check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def check_cost_options(cost_weight, max_cost) -> None:
    check_number("cost_weight", cost_weight)
    if max_cost is not None:
        check_number("max_cost", max_cost)


def check_number(name: str, value) -> None:
    """A one-line error unless ``value`` is a finite number >= 0 (cost weights and budgets)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def first_line(err: BaseException) -> str:
    """The first line of an error's message, for one-line reports."""
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


def check_device(device: str | torch.device | None) -> torch.device:
    """``device`` parsed and checked to be usable here (default: cuda when available, else cpu); a one-line ValueError if not."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if parsed is None or parsed.type not in available:
        raise ValueError(f"unknown device {str(device)!r}; use cpu, cuda, cuda:N or mps")
    if not available[parsed.type]:
        raise ValueError(f"device {str(device)!r} is not available on this machine (torch {torch.__version__}); use --device cpu")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s); use cuda:0 or --device cpu")
    return parsed


def read_router_config(path: Path) -> dict:
    """``router_config.json``, checked to hold what ``save_router`` writes."""
    try:
        config = json.loads(path.read_text())
    except ValueError as err:  # invalid JSON, or not text
        raise RouterFolderError(f"{path} is not valid JSON ({first_line(err)}); {REFETCH}") from None
    config = config if isinstance(config, dict) else {}
    models, costs = config.get("models"), config.get("costs")
    problems = [
        (not isinstance(models, list) or not models, "no 'models' list"),
        (config.get("pooling") not in ("mean", "cls"), "no 'pooling' (mean or cls)"),
        (not isinstance(config.get("max_length"), int) or config["max_length"] < 1, "no positive 'max_length'"),
        (costs is not None and (not isinstance(costs, list) or len(costs) != len(models or [])), "'costs' that do not give one cost per model"),
        (isinstance(costs, list) and not all(isinstance(c, (int, float)) and math.isfinite(c) and c >= 0 for c in costs), "'costs' that are not all finite numbers >= 0"),
    ]
    for bad, problem in problems:
        if bad:
            raise RouterFolderError(f"{path} has {problem}; {REFETCH}")
    return config


def load_weights(model: RouterModel, path: Path) -> None:
    """Load ``model.safetensors`` into ``model``, refusing a truncated file or one of another shape."""
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise RouterFolderError(f"{path} is truncated or not a safetensors file ({first_line(err)}); {REFETCH}") from None
    expected = model.state_dict()
    mismatch = [f"{k} is missing" for k in expected if k not in state] + [f"{k} is not expected" for k in state if k not in expected]
    mismatch += [f"{k} has shape {list(state[k].shape)}, expected {list(v.shape)}" for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if mismatch:
        n = model.head.out_features
        raise RouterFolderError(f"{path} does not fit {ROUTER_CONFIG} ({n} models) and config.json: {mismatch[0]}; {REFETCH}")
    model.load_state_dict(state, strict=True)


def choose(probs: np.ndarray, costs: Sequence[float] | None, cost_weight: float = 0.0, max_cost: float | None = None) -> np.ndarray:
    """Index of the chosen model per row of ``probs`` under a cost weight or a cost budget."""
    check_cost_options(cost_weight, max_cost)
    if (cost_weight or max_cost is not None) and costs is None:
        raise ValueError("this router has no model costs: cost_weight and max_cost need costs (set them when building the dataset)")
    utility = np.asarray(probs, dtype=np.float64).copy()
    if costs is not None:
        cost = np.asarray(costs, dtype=np.float64)
        utility -= cost_weight * cost
        if max_cost is not None:
            allowed = cost <= max_cost
            if not allowed.any():
                raise ValueError(f"no model costs at most max_cost={max_cost} (cheapest: {cost.min()}); raise the budget")
            utility[:, ~allowed] = -np.inf
    return utility.argmax(axis=1)
