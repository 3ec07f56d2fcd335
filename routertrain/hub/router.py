"""A trained router as a Hugging Face model folder, and the inference API that loads it in one call.

Folder layout (written atomically by ``save_router``)::

    config.json          RouterConfig (model_type routertrain-router): the model pool as id2label in
                         output order, costs, pooling, max length, base encoder, ``calibration``
                         (route()'s default setting, routertrain.hub.calibrate),
                         and the encoder's own config nested under "encoder"
    model.safetensors    encoder + head weights (LoRA already merged)
    tokenizer.json       the tokenizer used in training, with tokenizer_config.json
    metrics.json         evaluation results;  training_config.yaml, provenance.json: how it was made
    README.md            the model card (routertrain.hub.card)

``Router.from_pretrained(folder_or_repo_id)`` loads it for ``predict``/``route``; as a transformers
model it also loads with ``RouterModel.from_pretrained``, ``AutoModelForSequenceClassification`` and
``pipeline("text-classification", model=folder, function_to_apply="sigmoid", top_k=None)``. A folder
with a missing, truncated or mismatched file is refused with a one-line ``RouterFolderError``.

Folders of format 1 (``router_config.json`` beside the encoder's ``config.json``) still load with
``Router.from_pretrained``; ``routertrain convert OLD NEW`` rewrites one in this format, which the
Auto classes and ``pipeline`` need.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoTokenizer

from routertrain.hub.card import render as render_card
from routertrain.hub.folder import (  # noqa: F401 (the folder format, re-exported: router_settings lives next to the Router)
    BLEND, BLEND_MEMORY, CONFIG, ENSEMBLE, LEGACY_CONFIG, REFETCH, REQUIRED_FILES, TOKENIZER_FILES, WEIGHTS,
    RouterFolderError, RunUnfinished, first_line, is_router_folder, read_json, router_folder, router_settings,
)
from routertrain.model.modeling import MODEL_TYPE, RouterConfig, RouterModel
from routertrain.provenance import atomic_dir
from routertrain.routing import blend
from routertrain.routing.rule import check_cost_options, check_costs, check_finite, check_number, choose  # noqa: F401 (choose: the rule route() uses, re-exported)

def save_router(
    model: RouterModel,
    tokenizer,
    folder: str | os.PathLike,
    models: list[str],
    costs: list[float] | None,
    max_length: int,
    base_model: str,
    extra_files: dict[str, str] | None = None,
    train_means: Sequence[float] | None = None,
) -> Path:
    """Write a loadable router folder; ``extra_files`` maps file names to text (metrics, card, ...);
    ``train_means``: each model's mean train label, the routing rule's tie-break (kept from
    ``model.config`` when not given)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    config = copy.deepcopy(model.config)
    config.set_pool(list(models), costs)
    if train_means is not None:
        config.train_means = [float(v) for v in check_finite(train_means, "the train means")]
    if config.train_means is not None and len(config.train_means) != len(models):
        raise ValueError(f"{len(config.train_means)} train means for {len(models)} models; give one per model")
    config.pooling, config.max_length, config.base_model = model.pooling, max_length, base_model
    config.architectures = [type(model).__name__]
    config.dtype = next(iter(state.values())).dtype
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.model_max_length = max_length  # so pipeline(..., truncation=True) cuts queries as training did
    with atomic_dir(folder) as tmp:
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        if not (tmp / "README.md").exists():
            (tmp / "README.md").write_text(render_card(tmp, final=folder))
    return Path(folder)


def read_config(folder: Path) -> RouterConfig:
    """The router's config: ``config.json`` (checked to hold what ``save_router`` writes), or built from a format-1 folder."""
    path = folder / CONFIG
    raw = read_json(path)
    raw = raw if isinstance(raw, dict) else {}
    if (folder / LEGACY_CONFIG).is_file() and raw.get("model_type") != MODEL_TYPE:
        legacy = read_legacy_config(folder / LEGACY_CONFIG)
        try:
            encoder = AutoConfig.for_model(**raw) if "model_type" in raw else None
        except (ValueError, TypeError) as err:
            raise RouterFolderError(f"{path} is not a valid encoder config ({first_line(err)}); {REFETCH}") from None
        if encoder is None:
            raise RouterFolderError(f"{path} is not a valid encoder config (no model_type); {REFETCH}")
        config = RouterConfig(encoder=encoder, pooling=legacy["pooling"], max_length=legacy["max_length"], base_model=legacy.get("base_model"), format_version=1)
        config.set_pool(legacy["models"], legacy.get("costs"))
        return config
    if raw.get("model_type") != MODEL_TYPE:
        raise RouterFolderError(f"{path} is not a router config (model_type {raw.get('model_type')!r}, not {MODEL_TYPE!r}); pass the 'router' folder of a run, or {REFETCH}")
    labels, costs = raw.get("id2label"), raw.get("costs")
    problems = [
        (not isinstance(labels, dict) or not labels, "no 'id2label' (the model pool)"),
        (raw.get("pooling") not in ("mean", "cls"), "no 'pooling' (mean or cls)"),
        (not isinstance(raw.get("max_length"), int) or raw["max_length"] < 1, "no positive 'max_length'"),
        (costs is not None and (not isinstance(costs, list) or len(costs) != len(labels or {})), "'costs' that do not give one cost per model"),
        (not isinstance(raw.get("encoder"), dict) or "model_type" not in raw["encoder"], "no 'encoder' config with a model_type"),
    ]
    for bad, problem in problems:
        if bad:
            raise RouterFolderError(f"{path} has {problem}; {REFETCH}")
    try:
        return RouterConfig.from_dict(raw)
    except (ValueError, TypeError, KeyError) as err:
        raise RouterFolderError(f"{path} is not a valid router config ({first_line(err)}); {REFETCH}") from None


def read_legacy_config(path: Path) -> dict:
    """A format-1 ``router_config.json``, checked to hold what the old ``save_router`` wrote."""
    config = read_json(path)
    config = config if isinstance(config, dict) else {}
    models, costs = config.get("models"), config.get("costs")
    problems = [
        (not isinstance(models, list) or not models, "no 'models' list"),
        (config.get("pooling") not in ("mean", "cls"), "no 'pooling' (mean or cls)"),
        (not isinstance(config.get("max_length"), int) or config["max_length"] < 1, "no positive 'max_length'"),
        (costs is not None and (not isinstance(costs, list) or len(costs) != len(models or [])), "'costs' that do not give one cost per model"),
    ]
    for bad, problem in problems:
        if bad:
            raise RouterFolderError(f"{path} has {problem}; {REFETCH}")
    return config


def tokenize(tokenizer, queries: Sequence[str], max_length: int, pad: bool = True) -> dict:
    """The one tokenisation used in training, evaluation and inference."""
    return tokenizer(list(queries), truncation=True, max_length=max_length, padding=pad, return_tensors="pt" if pad else None)


class Router:
    """A loaded router: ``predict`` gives P(correct) per model, ``route`` picks a model per query."""

    def __init__(self, model: RouterModel, tokenizer, folder: Path, device: str | torch.device = "cpu"):
        self.model = model.eval().to(device)
        self.tokenizer = tokenizer
        self.config: RouterConfig = model.config
        self.folder = folder
        self.device = torch.device(device)
        self.onnx = None  # an OnnxNetwork in place of the torch network (backend="onnx")

    @property
    def models(self) -> list[str]:
        return self.config.models

    @property
    def costs(self) -> list[float] | None:
        return list(self.config.costs) if self.config.costs is not None else None

    @property
    def train_means(self) -> list[float] | None:
        """Each model's mean train label (the routing rule's tie-break after cost), or None for folders
        written before it was stored (ties then go to the lower cost, then pool order)."""
        means = getattr(self.config, "train_means", None)
        return list(means) if means is not None else None

    @property
    def calibration(self) -> dict | None:
        """The saved routing setting ``route()`` applies by default (``routertrain.hub.calibrate``), or None."""
        return getattr(self.config, "calibration", None)

    @classmethod
    def from_pretrained(
        cls,
        path_or_repo_id: str | os.PathLike,
        revision: str | None = None,
        device: str | None = None,
        *,
        cache_dir: str | os.PathLike | None = None,
        token: str | bool | None = None,
        local_files_only: bool = False,
        dtype: torch.dtype | str | None = None,
        torch_dtype: torch.dtype | str | None = None,
        backend: str = "torch",
    ) -> "Router":
        """Load a router folder, or a Hub repo (``revision``, ``cache_dir``, ``token``, ``local_files_only`` as
        in transformers; the Hub's own error passes through when it cannot be fetched). ``dtype``: the
        weights' dtype here (default: as saved, float32); ``torch_dtype`` is its older transformers name.
        ``backend="onnx"``: run the network(s) with ONNX Runtime on CPU (``routertrain.hub.onnx``)."""
        if backend not in ("torch", "onnx"):
            raise ValueError(f"unknown backend {backend!r}; use torch or onnx")
        if backend == "onnx":
            from routertrain.hub.onnx import use_onnx

            return use_onnx(cls.from_pretrained(path_or_repo_id, revision, device or "cpu", cache_dir=cache_dir, token=token,
                                                local_files_only=local_files_only, dtype=dtype, torch_dtype=torch_dtype))
        dtype = dtype if dtype is not None else torch_dtype
        folder = local_folder(path_or_repo_id)
        if folder is None:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(str(path_or_repo_id), revision=revision, cache_dir=cache_dir, token=token, local_files_only=local_files_only))
        if (folder / BLEND).is_file():  # a router (or ensemble) blended with kNN and the task prior (routertrain.hub.blend)
            return BlendRouter.from_folder(folder, device, dtype)
        if (folder / ENSEMBLE).is_file():  # several routers shipped as one (routertrain.hub.ensemble)
            return EnsembleRouter.from_folder(folder, device, dtype)
        return cls.from_folder(folder, device, dtype)

    @classmethod
    def from_folder(cls, folder: Path, device: str | None = None, dtype: torch.dtype | str | None = None) -> "Router":
        """One fine-tuned router from a local router folder (``from_pretrained`` resolves Hub ids and the folder kinds)."""
        device = check_device(device)
        missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
        if missing:
            raise RouterFolderError(f"router folder {folder} lacks {', '.join(missing)}; {REFETCH}")
        config = read_config(folder)
        config.classifier_dropout = 0.0
        model = RouterModel(config)
        load_weights(model, folder / WEIGHTS)
        check_settings(config, folder / CONFIG)
        if dtype is not None:
            model = model.to(getattr(torch, dtype) if isinstance(dtype, str) else dtype)
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder)
        except Exception as err:  # tokenizers raises plain Exceptions for malformed files
            raise RouterFolderError(f"the tokenizer files {', '.join(TOKENIZER_FILES)} in {folder} cannot be loaded ({first_line(err)}); {REFETCH}") from None
        return cls(model, tokenizer, folder, device)

    def predict(self, queries: Sequence[str] | str, batch_size: int = 64) -> np.ndarray:
        """P(correct) per (query, model): an array of shape (len(queries), len(self.models))."""
        return self.encode(queries, batch_size)[0]

    def networks(self) -> list[RouterModel]:
        """The networks this router runs (one here; an ensemble's members'), e.g. to quantize them."""
        return [self.model]

    @property
    def embedding_dim(self) -> int:
        """Width of the pooled query vectors ``encode`` returns."""
        return self.model.head.in_features

    @torch.inference_mode()
    def encode(self, queries: Sequence[str] | str, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """P(correct) per (query, model) and the pooled query vectors the head reads, from one pass."""
        queries = check_queries(queries)
        check_batch_size(batch_size)
        order = sorted(range(len(queries)), key=lambda i: len(queries[i]))  # similar lengths pad less
        out = np.zeros((len(queries), len(self.models)), dtype=np.float32)
        pooled = np.zeros((len(queries), self.model.head.in_features), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenize(self.tokenizer, [queries[i] for i in idx], self.config.max_length)
            batch = {k: v.to(self.device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            out[idx], pooled[idx] = self.run_network(batch)
        return out, pooled

    def run_network(self, batch: dict) -> tuple[np.ndarray, np.ndarray]:
        """P(correct) and the pooled vectors of one tokenised batch: the torch network, or its ONNX export."""
        if getattr(self, "onnx", None) is not None:
            return self.onnx({k: v.numpy() for k, v in batch.items()})
        vectors = self.model.embed(**batch)
        return torch.sigmoid(self.model.head(vectors.to(self.model.head.weight.dtype)).float()).cpu().numpy(), vectors.float().cpu().numpy()

    def route(self, queries: Sequence[str] | str, cost_weight: float | None = None, max_cost: float | None = None, batch_size: int = 64) -> list[str]:
        """The chosen model per query.

        Maximises P(correct) - cost_weight * cost; with ``max_cost``, the most likely correct model
        among those whose cost is at most ``max_cost``. With neither, the setting saved by
        ``calibrate`` (``config.calibration``) if there is one, else cost weight 0.
        """
        check_cost_options(cost_weight, max_cost)  # before the work of predict
        probs = self.predict(queries, batch_size=batch_size)
        return [self.models[i] for i in self.decide(probs, cost_weight, max_cost)]

    def decide(self, probs: np.ndarray, cost_weight: float | None = None, max_cost: float | None = None) -> np.ndarray:
        """The chosen model's index per row of ``probs``, by the rule of ``route`` (``routertrain.routing.rule``:
        ties to the lower cost, then the higher train mean, then pool order; NaN never chosen)."""
        from routertrain.hub.calibrate import decisions

        if cost_weight is None and max_cost is None:
            return decisions(probs, self.models, self.costs, self.calibration, self.train_means)
        return choose(probs, self.costs, cost_weight or 0.0, max_cost, prior=self.train_means)

    def calibrate(self, queries: Sequence[str], max_share: dict | None = None, mean_cost: float | None = None,
                  accuracy_share: float | None = None, labels: np.ndarray | None = None, models: Sequence[str] | None = None,
                  save: bool = True, batch_size: int = 64, query_costs: np.ndarray | None = None, missing: str = "complete") -> dict:
        """Find the setting that meets one target on ``queries`` (``routertrain.hub.calibrate``) and,
        with ``save``, make it this router's default (in memory and in its folder).

        ``max_share={"modelA": 0.2}`` or ``{("modelA", "modelB"): 0.2}``: those models get at most that
        share of calls; ``mean_cost=0.3``: mean cost per query; ``accuracy_share=0.95`` with ``labels``
        (queries x models, NaN = missing): keep that share of the routing accuracy at cost weight 0.
        ``models``: choose only among these (the models a server has backends for). ``query_costs``:
        the per-query costs of ``queries`` (queries x models), which cost targets then spend;
        ``missing``: how unlabelled (query, model) pairs count for ``accuracy_share`` (as ``eval.missing``).
        """
        from routertrain.hub import calibrate as cal

        probs = self.predict(queries, batch_size=batch_size)
        setting = cal.solve(probs, self.models, self.costs, max_share=max_share, mean_cost=mean_cost, accuracy_share=accuracy_share, labels=labels,
                            allowed=models, prior=self.train_means, query_costs=query_costs, missing=missing)
        if save:
            cal.save_calibration(self.folder, setting)
            self.config.calibration = setting
        return setting


def check_settings(config, path: Path) -> None:
    """Refuse, in one line, a router config whose costs, train means or calibration hold a non-finite
    value: the routing rule would otherwise choose by a NaN."""
    try:
        check_costs(config.costs, len(config.models), "the costs")
        if getattr(config, "train_means", None) is not None:
            check_finite(config.train_means, "the train means")
            if len(config.train_means) != len(config.models):
                raise ValueError(f"the train means give {len(config.train_means)} values for {len(config.models)} models")
        check_calibration(getattr(config, "calibration", None))
    except (ValueError, TypeError) as err:
        raise RouterFolderError(f"{path}: {first_line(err)}; {REFETCH}") from None


def check_calibration(setting: dict | None) -> None:
    """A saved routing setting's cost weight must be a finite number >= 0 (a one-line error if not)."""
    if setting is not None:
        if not isinstance(setting, dict):
            raise ValueError(f"the calibration is {type(setting).__name__}, not a setting; calibrate again")
        check_number("the calibration's cost_weight", setting.get("cost_weight", 0.0))


class EnsembleRouter(Router):
    """Several routers of one pool; P(correct) is the mean of theirs."""

    def __init__(self, members: list[Router], folder: Path, calibration: dict | None = None):
        self.members = members
        self.config = copy.copy(members[0].config)  # the pool, costs, max length and train means every member shares
        self.config.calibration = calibration  # the ensemble's own setting (its router_config.json), never a member's
        self.folder = folder
        self.device = members[0].device

    @classmethod
    def from_folder(cls, folder: Path, device: str | None = None, dtype: torch.dtype | str | None = None) -> "EnsembleRouter":
        try:
            spec = json.loads((folder / ENSEMBLE).read_text())
            names = [m["folder"] for m in spec["members"]]
        except (OSError, ValueError, KeyError, TypeError):
            raise RouterFolderError(f"{folder / ENSEMBLE} does not list the members' folders; {REFETCH}") from None
        members = [Router.from_folder(folder / name, device, dtype) for name in names]
        for name, member in zip(names, members):
            if member.models != members[0].models or member.costs != members[0].costs:
                raise RouterFolderError(f"member {folder / name} routes to another pool than {folder / names[0]}; {REFETCH}")
        try:
            calibration = router_settings(folder).get("calibration")
            check_calibration(calibration)
        except (OSError, ValueError, TypeError) as err:
            raise RouterFolderError(f"{folder / LEGACY_CONFIG} cannot be read ({first_line(err)}); {REFETCH}") from None
        return cls(members, folder, calibration)

    def encode(self, queries: Sequence[str] | str, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """The members' mean P(correct) per (query, model), and their pooled vectors side by side, each
        scaled to unit length (so the cosine of two such rows is the mean of the members' cosines)."""
        parts = [m.encode(queries, batch_size) for m in self.members]
        return np.mean([probs for probs, _ in parts], axis=0), np.hstack([blend.unit(vectors) for _, vectors in parts])

    def networks(self) -> list[RouterModel]:
        return [net for m in self.members for net in m.networks()]

    @property
    def embedding_dim(self) -> int:
        return sum(m.embedding_dim for m in self.members)


class BlendRouter(Router):
    """A fine-tuned router (or an ensemble of them) blended with kNN on its own embeddings and the soft
    task prior (``routertrain.routing.blend``); ``predict`` returns the blended scores and ``route`` picks by them."""

    def __init__(self, inner: Router, memory: "blend.TrainMemory", spec: dict):
        self.inner, self.memory, self.blend = inner, memory, spec
        self.config, self.folder, self.device = inner.config, inner.folder, inner.device
        if hasattr(inner, "model"):  # one fine-tuned router: its network and tokenizer, as on any router
            self.model, self.tokenizer = inner.model, inner.tokenizer

    @classmethod
    def from_folder(cls, folder: Path, device: str | None = None, dtype: torch.dtype | str | None = None) -> "BlendRouter":
        inner = EnsembleRouter.from_folder(folder, device, dtype) if (folder / ENSEMBLE).is_file() else Router.from_folder(folder, device, dtype)
        try:
            spec = json.loads((folder / BLEND).read_text())
            arrays = load_file(str(folder / BLEND_MEMORY))
            memory = blend.TrainMemory(arrays["keys"].numpy(), arrays["labels"].double().numpy(), arrays["task_ids"].numpy(),
                                       arrays["task_means"].double().numpy(), list(spec["tasks"]))
            if not {"weights", "k"} <= set(spec):
                raise KeyError("weights and k")
            check_finite(memory.task_means, "the task means")
            check_finite([spec["weights"][name] for name in blend.COMPONENTS], "the blend weights")
        except (ValueError, KeyError, TypeError, OSError, SafetensorError) as err:
            raise RouterFolderError(f"the blend files {BLEND}, {BLEND_MEMORY} in {folder} cannot be read ({first_line(err)}); {REFETCH}") from None
        if memory.labels.shape[1] != len(inner.models) or memory.keys.shape[1] != inner.embedding_dim:
            raise RouterFolderError(f"{folder / BLEND_MEMORY} does not fit the router's pool or encoder; {REFETCH}")
        return cls(inner, memory, spec)

    @classmethod
    def wrap(cls, router: Router, memory: "blend.TrainMemory", spec: dict) -> "BlendRouter":
        """``router`` blended as ``spec`` says (k, weights) with the training ``memory``."""
        return cls(router, memory, spec)

    def encode(self, queries: Sequence[str] | str, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
        """The inner router's P(correct) and pooled vectors (what the blend weighs and searches)."""
        return self.inner.encode(queries, batch_size)

    def networks(self) -> list[RouterModel]:
        return self.inner.networks()

    @property
    def embedding_dim(self) -> int:
        return self.inner.embedding_dim

    def components(self, queries: Sequence[str] | str, batch_size: int = 64) -> dict[str, np.ndarray]:
        """The fine-tuned, kNN and soft task-prior scores the blend weighs."""
        probs, pooled = self.encode(queries, batch_size)
        return blend.components(self.memory, pooled, probs, int(self.blend["k"]))

    def predict(self, queries: Sequence[str] | str, batch_size: int = 64) -> np.ndarray:
        """The blended scores per (query, model): a weighted mean of P(correct) estimates, in [0, 1]."""
        return blend.combine(self.components(queries, batch_size), self.blend["weights"]).astype(np.float32)


def local_folder(path_or_repo_id) -> Path | None:
    """The local folder ``path_or_repo_id`` names, or None for a Hub repo id (ORG/NAME, not a folder here).
    One line for what is neither: None or a non-text, a missing path that cannot be a repo id, a file."""
    if not isinstance(path_or_repo_id, (str, os.PathLike)):
        raise TypeError(f"path_or_repo_id must be a router folder or a Hub repo id (ORG/NAME), not {type(path_or_repo_id).__name__}")
    folder = Path(path_or_repo_id).expanduser()
    if folder.is_dir():
        return folder
    text = os.fspath(path_or_repo_id)
    if folder.exists():
        raise RouterFolderError(f"{text} is a file; give its router folder (the run's router/) or a Hub repo id")
    if isinstance(path_or_repo_id, str) and hub_id_form(text):
        return None  # fetched (or found in the HF cache) by from_pretrained
    raise FileNotFoundError(f"router folder {text} does not exist (and it is not a Hub repo id, ORG/NAME); check the path")


def hub_id_form(text: str) -> bool:
    """Whether ``text`` has the form of a Hub repo id (NAME or ORG/NAME)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(text)
        return True
    except HFValidationError:
        return False


def check_queries(queries) -> list[str]:
    """``queries`` as a list of texts; a one-line TypeError for anything else (None, a number, ...),
    a ValueError for an empty or whitespace-only text (the rule ``/v1/route`` applies too)."""
    if isinstance(queries, str):
        return [queries]
    if not hasattr(queries, "__iter__"):
        raise TypeError(f"queries must be a text or a list of texts, not {type(queries).__name__}")
    queries = list(queries)
    bad = [i for i, q in enumerate(queries) if not isinstance(q, str)]
    if bad:
        raise TypeError(f"queries must be texts: item {bad[0]} is {type(queries[bad[0]]).__name__} ({queries[bad[0]]!r:.40})")
    empty = [i for i, q in enumerate(queries) if not q.strip()]
    if empty:
        raise ValueError(f"queries must be non-empty texts: item {empty[0]} is {queries[empty[0]]!r:.20}, which has nothing to route on; drop it or give it text")
    return queries


def check_batch_size(batch_size) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


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
        raise RouterFolderError(f"{path} does not fit {CONFIG} ({n} models) and its encoder config: {mismatch[0]}; {REFETCH}")
    model.load_state_dict(state, strict=True)


def convert_folder(old: str | os.PathLike, new: str | os.PathLike) -> Path:
    """Rewrite a format-1 router folder (``router_config.json`` + the encoder's ``config.json``) as a
    transformers model folder at ``new``, keeping its metrics, configs and provenance; weights unchanged."""
    old = router_folder(old)
    if (old / BLEND).is_file():  # only this format writes blends; rewriting would drop the blend's files
        raise ValueError(f"{old} is a blend folder, already in the current format; it loads with Router.from_pretrained as it is")
    router = Router.from_pretrained(old, device="cpu")
    keep = ("metrics.json", "training_config.yaml", "provenance.json", "evaluation.json")
    extra = {name: (old / name).read_text() for name in keep if (old / name).is_file()}
    config = router.config
    return save_router(router.model, router.tokenizer, new, config.models, config.costs, config.max_length, config.base_model or "", extra_files=extra)
