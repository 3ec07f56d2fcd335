"""The typed configuration schema and the command-line loader.

One dataclass per section (run, data, model, train, eval, tracking, push, tune). A run's configuration is
the schema's defaults, merged with ``recipes/<recipe>.yaml`` (which holds only what differs), then
with ``key=value`` overrides from the command line. Every mistake (unknown recipe, unknown key,
wrong type, bad value) is reported as one line naming the key and, where it helps, the nearest
valid one, before any work starts.
"""

from __future__ import annotations

import difflib
import math
from importlib import resources
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


def _recipes_dir() -> Path:
    """``recipes/`` at the repository root, installed as ``routertrain.recipes`` (pyproject.toml maps it);
    a source tree on ``sys.path`` without an install (or with one from before the mapping) reads it beside the package."""
    try:
        return Path(str(resources.files("routertrain.recipes")))
    except ModuleNotFoundError:
        return Path(__file__).resolve().parents[2] / "recipes"


RECIPES_DIR = _recipes_dir()
DATA_RECIPES_DIR = RECIPES_DIR / "data"
SWEEPS_DIR = RECIPES_DIR / "sweeps"


class ConfigError(ValueError):
    """A configuration mistake, reported to the user as one line."""


@dataclass
class RunConfig:
    name: Optional[str] = None  # run folder name; derived from the recipe and overrides when null
    output_dir: str = "checkpoints"  # parent folder of run folders
    seed: int = 42  # training seed (weight init of the head, dropout, shuffling)


@dataclass
class SyntheticConfig:
    seed: int = 0  # seed of the generated benchmark (queries, model skills, labels)
    n_train: int = 6000  # training queries
    n_validation: int = 500  # validation queries
    n_test: int = 500  # test queries
    n_models: int = 6  # simulated models in the pool


@dataclass
class TableConfig:
    files: Optional[str] = None  # comma-separated globs under data.path (csv, json, jsonl, parquet); with data.path null, a Hub id or local dataset folder for datasets.load_dataset
    format: Optional[str] = None  # csv, json, jsonl or parquet; null = from the file extension
    query_column: str = "query"  # column holding the query text
    score_columns: Optional[str] = None  # comma-separated model score columns (the column names become model names)
    score_pattern: Optional[str] = None  # regex selecting score columns; group 1, if any, is the model name
    scores_field: Optional[str] = None  # one field holding each query's {model: score} mapping (JSON object or JSON text), e.g. scores
    cost_pattern: Optional[str] = None  # cost column per model, with {model} standing for the model name
    task_column: Optional[str] = None  # optional task / category column
    id_column: Optional[str] = None  # optional id column (duplicates are reported)
    split_column: Optional[str] = None  # column naming each row's split; null = from file names (*_train/*_test) or Hub splits with train, else query-hash split
    label_map: str = "as-is"  # how scores become labels: as-is, threshold or rescale
    threshold: float = 0.5  # label = score >= threshold (label_map=threshold)
    score_min: float = 0.0  # lowest possible score (label_map=rescale)
    score_max: float = 1.0  # highest possible score (label_map=rescale)
    strip_shared_prefix: bool = False  # remove the few-shot prefix every query of a task starts with (cut at a blank line)
    join_file: Optional[str] = None  # a side table under data.path (csv, json, jsonl, parquet) whose columns are added to each row, matched on join_on
    join_on: Optional[str] = None  # the join key: a column of both tables, or main_column=side_column (e.g. question=prompt)
    join_columns: Optional[str] = None  # comma-separated side-table columns to add (e.g. task); null = all but the key


@dataclass
class DataConfig:
    name: str = "synthetic"  # dataset builder: synthetic, disk (a saved routing dataset), or a source adapter
    path: Optional[str] = None  # where the source files or the saved dataset live
    fraction: float = 1.0  # share of the training split to use (nested subsets: 0.1 in 0.25 in 0.5 in 1)
    subsample_seed: int = 0  # seed of the training subset, separate from run.seed
    max_length: int = 128  # tokens per query after truncation
    cache_dir: Optional[str] = None  # where built datasets are cached; null = $ROUTERTRAIN_CACHE or ~/.cache/routertrain
    models: Optional[List[str]] = None  # keep only these models of the pool (in this order)
    pool: Optional[str] = None  # a named model pool of the source (mmlu-pro: open-weight, all; routerbench: open-weight)
    costs: Optional[Dict[str, float]] = None  # cost per query of each model, where the files have none
    missing: str = "mask"  # missing or NaN scores: mask the label, drop the row, or fail
    validation_size: float = 0.1  # share of train carved out as validation when the source has none
    test_size: float = 0.2  # share held out as test when the source has no test split
    split_seed: int = 0  # salt of the query-hash split (changing it gives a different split)
    subset: Optional[str] = None  # source-specific part to load (routellm: mmlu, gsm8k, mt_bench; routerdc: comma-separated tasks to train and test on, default its 5 in-distribution tasks)
    test_subset: Optional[str] = None  # routerdc: comma-separated tasks whose test files form the test split (routerdc-ood: MATH_prealgebra,mbpp,ceval); null = data.subset
    labels: str = "correctness"  # routerdc: correctness (the paper's: multiple choice 1/0, generation the share of passing samples) or graded (the source's scores as they are)
    keep_test_duplicates: bool = False  # keep train/validation rows whose query is also in test (only to reproduce someone else's split: they leak)
    average: str = "micro"  # how this dataset's accuracies are averaged: micro (over queries) or macro (plain mean of per-task accuracies); data recipes set their paper's
    table: TableConfig = field(default_factory=TableConfig)  # the generic table loader's column mapping
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)  # the embedded demo benchmark


@dataclass
class LoraConfig:
    r: int = 0  # LoRA rank; 0 fine-tunes the full encoder
    alpha: int = 16  # LoRA scaling numerator
    dropout: float = 0.05  # dropout on the LoRA branch
    target_modules: str = "all-linear"  # peft target_modules (comma-separated names or all-linear)


@dataclass
class ModelConfig:
    name_or_path: str = "sentence-transformers/all-MiniLM-L6-v2"  # Hub id (resolved offline from the HF cache) or local folder
    pooling: str = "mean"  # how token states become one query vector: mean or cls
    dropout: float = 0.1  # dropout before the routing head
    gradient_checkpointing: bool = False  # trade compute for memory in the encoder
    attn_implementation: Optional[str] = None  # transformers attention backend (sdpa, eager); null = library default
    attention_kernel: str = "hf"  # DeBERTa attention: hf, disentangled-flash (Triton on CUDA) or disentangled-flash-torch
    lora: LoraConfig = field(default_factory=LoraConfig)  # parameter-efficient fine-tuning (peft)
    freeze_layers: int = 0  # keep the embeddings and the lowest N transformer blocks fixed (cheaper fine-tuning of a large encoder); 0 = train them all
    prior_bias: bool = False  # start each model's head bias at the logit of its training mean label (training starts from the best-single router)


@dataclass
class TrainConfig:
    lr: float = 5e-5  # peak learning rate of the encoder
    head_lr: Optional[float] = None  # learning rate of the routing head; null = train.lr
    weight_decay: float = 0.01  # AdamW weight decay of the encoder (not applied to biases, norms or the routing head)
    warmup_ratio: float = 0.1  # share of optimizer steps spent warming up linearly
    epochs: float = 3.0  # passes over the training split
    max_steps: int = -1  # stop after this many optimizer steps; -1 = epochs decide
    global_batch_size: int = 32  # examples per optimizer step, over all processes
    per_device_batch_size: Optional[int] = None  # examples per forward pass; null = global / processes
    max_grad_norm: float = 1.0  # gradient clipping; 0 disables it
    mixed_precision: str = "no"  # no, bf16 or fp16
    eval_every: int = 0  # evaluate on validation every N optimizer steps; 0 = once per epoch
    save_every: int = 0  # save a resumable checkpoint every N optimizer steps; 0 = once per epoch; -1 = never
    keep_checkpoints: int = 2  # resumable checkpoints kept on disk (oldest deleted first)
    resume: str = "auto"  # auto (latest checkpoint in the run folder), never, or a checkpoint folder
    num_workers: int = 0  # DataLoader worker processes
    group_by_length: bool = True  # batch queries of similar length together to cut padding
    pad_to_multiple_of: int = 0  # round each batch's padded length up to a multiple of this; 0 = auto (32 under Triton attention kernels, which compile once per length; else 1)
    rank_loss: str = "none"  # routing-aware loss added to per-model BCE: none, listwise (softmax over models toward the correct ones) or pairwise (margin between correct and wrong models)
    rank_loss_weight: float = 1.0  # weight of train.rank_loss beside BCE
    rank_margin: float = 1.0  # logit margin of the pairwise loss
    task_loss_weight: float = 0.0  # weight of an auxiliary task-classification head on the pooled query (needs a task column; inference needs no task); 0 = off


@dataclass
class EvalConfig:
    batch_size: int = 64  # examples per forward pass at evaluation, per process
    splits: str = "validation,test"  # splits evaluated by the final router
    average: Optional[str] = None  # headline average of every accuracy (and of checkpoint choice): micro or macro; null = data.average
    missing: str = "complete"  # queries with a missing label: complete (score only queries with every model labelled) or wrong (an unlabelled choice fails)


@dataclass
class TrackingConfig:
    backend: str = "none"  # none, tensorboard or wandb (WANDB_MODE=offline works without network)
    project: str = "routertrain"  # tracker project name
    log_every: int = 10  # log training loss and lr every N optimizer steps


@dataclass
class PushConfig:
    repo_id: Optional[str] = None  # push the final router to this Hub repo at the end of training
    revision: Optional[str] = None  # branch to push to; null = main
    private: bool = False  # create the repo as private
    license: str = "apache-2.0"  # license id in the model card (the base encoder's license may constrain it)


@dataclass
class TuneConfig:
    trials: int = 20  # finished trials (complete or pruned) the study aims for, over all its workers
    space: str = "default"  # search space: recipes/search/<space>.yaml, or a path to such a file
    study: Optional[str] = None  # study name and folder under run.output_dir; null = tune-<recipe>-<hash of the search>
    storage: Optional[str] = None  # SQLAlchemy URL of the study (a shared database lets many workers run it); null = sqlite under the study folder
    seed: Optional[int] = None  # TPE sampler seed, offset by the trials already in the study (workers started together: give each its own); null = run.seed
    startup_trials: int = 5  # random trials before TPE proposes and before trials are pruned
    warmup_steps: int = 0  # optimizer steps of a trial before it can be pruned
    heartbeat_s: int = 60  # a running trial's heartbeat; one silent for 2x this (a killed worker) is failed and retried


@dataclass
class Config:
    recipe: Optional[str] = None  # the recipe this run was built from: a packaged name (recipes/<recipe>.yaml) or a user file's stem
    run: RunConfig = field(default_factory=RunConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    push: PushConfig = field(default_factory=PushConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)  # hyperparameter search (routertrain tune); ignored by train.py


CHOICES = {
    "data.missing": ("mask", "drop", "fail"),
    "data.table.label_map": ("as-is", "threshold", "rescale"),
    "data.labels": ("correctness", "graded"),
    "data.average": ("micro", "macro"),
    "eval.missing": ("complete", "wrong"),
    "model.pooling": ("mean", "cls"),
    "train.mixed_precision": ("no", "bf16", "fp16"),
    "tracking.backend": ("none", "tensorboard", "wandb"),
    "train.rank_loss": ("none", "listwise", "pairwise"),
}


EVAL_SPLITS = ("validation", "test")  # the splits the final router is scored on (train is what it learnt from)


def valid_keys(schema: type = Config, prefix: str = "") -> list[str]:
    """All dotted keys of the schema, sections included (``train``, ``train.lr``, ...)."""
    keys = []
    for f in fields(schema):
        key = prefix + f.name
        keys.append(key)
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if is_dataclass(default):
            keys.extend(valid_keys(type(default), key + "."))
    return keys


def did_you_mean(word: str, candidates: list[str]) -> str:
    """``"; did you mean 'X'?"`` for the closest candidate, or ``""`` when none is close."""
    match = difflib.get_close_matches(word, candidates, n=1, cutoff=0.5)
    return f"; did you mean '{match[0]}'?" if match else ""


def available_recipes() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def available_data_recipes() -> list[str]:
    return sorted(p.stem for p in DATA_RECIPES_DIR.glob("*.yaml"))


def find_recipe(name: str, folder: Path, what: str, available: list[str]) -> Path:
    """A packaged recipe by name (``smoke``), or a user's recipe file by path, with or without ``.yaml``
    (``my-recipes/big``, ``my-recipes/big.yaml``). A bare name that is packaged wins over a file in
    the current folder; ``routertrain recipes cp NAME DEST`` copies a packaged one out for editing."""
    packaged = folder / f"{name}.yaml"
    if Path(name).name == name and not name.endswith((".yaml", ".yml")) and packaged.is_file():
        return packaged
    for candidate in (Path(name).expanduser(), Path(f"{name}.yaml").expanduser()):
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"unknown {what} '{name}'{did_you_mean(name, available)} (packaged: {', '.join(available) or 'none'}; "
        f"or give the path of a YAML file, e.g. one copied out with routertrain recipes cp NAME my.yaml)"
    )


def _shown(path: Path) -> str:
    """How a recipe file is named in messages: relative to the package for packaged ones."""
    try:
        return f"recipes/{path.resolve().relative_to(RECIPES_DIR.resolve()).as_posix()}"
    except ValueError:
        return str(path)


def _read_yaml(path: Path, what: str) -> DictConfig:
    try:
        loaded = OmegaConf.load(path)
    except Exception as err:  # yaml syntax errors come in many types
        raise ConfigError(f"{what} {path} is not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{what} {path} must be a mapping of config keys")
    return loaded


def _merge(base: DictConfig, other: DictConfig, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(base, other)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or ""
        msg = str(err).splitlines()[0]
        if "Key" in type(err).__name__ or "not in struct" in msg.lower():
            leaf = key.split(".")[-1] if key else ""
            parent = key.rsplit(".", 1)[0] + "." if "." in key else ""
            candidates = [k for k in valid_keys() if k.startswith(parent)] if parent else valid_keys()
            hint = did_you_mean(key, candidates) or did_you_mean(leaf, [c.split(".")[-1] for c in candidates])
            raise ConfigError(f"unknown config key '{key}' in {source}{hint}") from None
        value = getattr(err, "value", None)
        raise ConfigError(f"bad value {value!r} for '{key}' in {source}: {msg}") from None


def parse_overrides(args: list[str]) -> tuple[Optional[str], Optional[str], list[str]]:
    """Split ``recipe=NAME``, ``data=NAME`` and dotted ``key=value`` overrides."""
    recipe = data_recipe = None
    dotlist = []
    for arg in args:
        if "=" not in arg:
            raise ConfigError(f"argument '{arg}' is not key=value (e.g. recipe=smoke train.lr=2e-5)")
        key, value = arg.split("=", 1)
        key = key.lstrip("+")
        if key == "recipe":
            if not value.strip():
                raise ConfigError(f"'recipe=' is empty: name a recipe ({', '.join(available_recipes())}) or a recipe file, or leave the argument out for the default")
            recipe = value
        elif key == "data" and value and not value.startswith("{"):
            data_recipe = value
        else:
            dotlist.append(f"{key}={value}")
    return recipe, data_recipe, dotlist


def load_config(args: list[str] | None = None, default_recipe: str | None = None) -> Config:
    """Build the run's config from ``recipe=NAME``, ``data=NAME`` and ``key=value`` arguments."""
    recipe, data_recipe, dotlist = parse_overrides(list(args or []))
    recipe = recipe or default_recipe
    cfg: DictConfig = OmegaConf.structured(Config)
    if recipe:
        path = find_recipe(recipe, RECIPES_DIR, "recipe", available_recipes())
        cfg = _merge(cfg, _read_yaml(path, "recipe"), _shown(path))
        cfg.recipe = path.stem
    if data_recipe:
        path = find_recipe(data_recipe, DATA_RECIPES_DIR, "data recipe", available_data_recipes())
        cfg = _merge(cfg, OmegaConf.create({"data": _read_yaml(path, "data recipe")}), _shown(path))
    keys = valid_keys()
    for item in dotlist:
        key, raw = item.split("=", 1)
        inside = [k for k in keys if k.startswith(key + ".")]
        if inside and not raw.lstrip().startswith("{"):  # a section given a plain value (train=5)
            example = inside[0]
            raise ConfigError(f"'{key}' in override '{item}' is a config section, not a value; set one of its keys, e.g. '{example}=...' (routertrain train --help lists them)")
        try:
            if _is_str_field(key) and raw not in ("null", "~"):
                # keep text as typed: YAML would read no/yes/off/on as booleans (train.mixed_precision=no)
                override = OmegaConf.create(_nest(key.split("."), raw.strip("'\"")))
            else:
                override = OmegaConf.from_dotlist([item])
        except OmegaConfBaseException as err:
            raise ConfigError(f"cannot parse override '{item}': {str(err).splitlines()[0]}") from None
        _check_mapping(item, override)
        cfg = _merge(cfg, override, f"override '{item}'")
    config: Config = OmegaConf.to_object(cfg)  # type: ignore[assignment]
    validate(config)
    return config


def _check_mapping(item: str, override: DictConfig) -> None:
    """``key={a:0.2}`` reads as the key 'a:0.2' with no value (YAML needs a space after the colon): say so."""
    node: Any = override
    while isinstance(node, DictConfig) and len(node) == 1 and not any(":" in str(k) for k in node.keys()):
        node = node[next(iter(node.keys()))]
    if isinstance(node, DictConfig) and any(":" in str(k) and node[k] is None for k in node.keys()):
        key = item.split("=", 1)[0]
        raise ConfigError(f"cannot read the mapping in override '{item}': put a space after each colon, e.g. {key}={{a: 0.2, b: 1.0}}")


def _nest(parts: list[str], value: object) -> dict:
    return {parts[0]: _nest(parts[1:], value) if len(parts) > 1 else value}


def _is_str_field(dotted: str) -> bool:
    """Whether the schema declares ``dotted`` as a string (or optional string) field."""
    schema: Any = Config
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        match = [f for f in fields(schema) if f.name == part]
        if not match:
            return False
        f = match[0]
        if i == len(parts) - 1:
            return f.type in ("str", "Optional[str]", str, Optional[str])
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        if not is_dataclass(default):
            return False
        schema = type(default)
    return False


def validate(cfg: Config) -> None:
    """Check values that types alone cannot (choices, ranges, consistency). Names kept in registries
    (``data.name``, ``model.attention_kernel``) are checked by the registries themselves
    (``routertrain.training.registries.check_names``), so this module imports nothing of the package."""
    for key, allowed in CHOICES.items():
        value = get_key(cfg, key)
        if value not in allowed:
            raise ConfigError(f"bad value '{value}' for '{key}': choose one of {', '.join(allowed)}{did_you_mean(str(value), list(allowed))}")
    if cfg.eval.average not in (None, "micro", "macro"):
        raise ConfigError(f"bad value '{cfg.eval.average}' for 'eval.average': choose micro, macro or null (= data.average){did_you_mean(str(cfg.eval.average), ['micro', 'macro'])}")
    checks = [
        ("run.seed", 0 <= cfg.run.seed < 2**32, "must be in [0, 2**32)"),
        ("data.fraction", 0 < cfg.data.fraction <= 1, "must be in (0, 1]"),
        ("data.subsample_seed", cfg.data.subsample_seed >= 0, "must be 0 or a positive seed"),
        ("data.split_seed", cfg.data.split_seed >= 0, "must be 0 or a positive seed"),
        ("data.max_length", cfg.data.max_length >= 4, "must be at least 4"),
        ("model.freeze_layers", cfg.model.freeze_layers >= 0, "must be 0 (train every block) or a positive number of blocks"),
        ("train.lr", math.isfinite(cfg.train.lr) and cfg.train.lr > 0, "must be a positive finite number (e.g. 2e-5)"),
        ("train.weight_decay", math.isfinite(cfg.train.weight_decay) and cfg.train.weight_decay >= 0, "must be 0 (off) or a positive finite number"),
        ("train.max_grad_norm", math.isfinite(cfg.train.max_grad_norm) and cfg.train.max_grad_norm >= 0, "must be 0 (no clipping) or a positive finite norm"),
        ("train.max_steps", cfg.train.max_steps == -1 or cfg.train.max_steps > 0, "must be -1 (train.epochs decide) or a positive number of steps"),
        ("train.epochs", math.isfinite(cfg.train.epochs) and (cfg.train.epochs > 0 or cfg.train.max_steps > 0), "must be positive and finite (or set train.max_steps)"),
        ("train.global_batch_size", cfg.train.global_batch_size > 0, "must be positive"),
        ("train.warmup_ratio", 0 <= cfg.train.warmup_ratio < 1, "must be in [0, 1)"),
        ("train.keep_checkpoints", cfg.train.keep_checkpoints >= 1, "must be at least 1"),
        ("train.save_every", cfg.train.save_every >= -1, "must be -1 (never), 0 (every epoch) or a positive number of steps"),
        ("train.eval_every", cfg.train.eval_every >= 0, "must be 0 (every epoch) or a positive number of steps"),
        ("train.pad_to_multiple_of", cfg.train.pad_to_multiple_of >= 0, "must be 0 (auto) or a positive multiple"),
        ("train.num_workers", cfg.train.num_workers >= 0, "must be 0 (load in the main process) or a positive number of workers"),
        ("tracking.log_every", cfg.tracking.log_every >= 1, "must be at least 1"),
        ("model.dropout", 0 <= cfg.model.dropout < 1, "must be in [0, 1)"),
        ("model.lora.dropout", 0 <= cfg.model.lora.dropout < 1, "must be in [0, 1)"),
        ("model.lora.alpha", cfg.model.lora.alpha > 0, "must be positive"),
        ("data.validation_size", 0 < cfg.data.validation_size < 1, "must be in (0, 1): the share of train carved out as validation"),
        ("data.test_size", 0 < cfg.data.test_size < 1, "must be in (0, 1): the share held out as test"),
        ("model.lora.r", cfg.model.lora.r >= 0, "must be 0 (off) or a positive rank"),
        ("data.synthetic.n_models", cfg.data.synthetic.n_models >= 2, "must be at least 2"),
        ("data.synthetic.seed", cfg.data.synthetic.seed >= 0, "must be 0 or a positive seed"),
        ("data.synthetic.n_train", cfg.data.synthetic.n_train >= 1, "must be at least 1"),
        ("data.synthetic.n_validation", cfg.data.synthetic.n_validation >= 1, "must be at least 1"),
        ("data.synthetic.n_test", cfg.data.synthetic.n_test >= 1, "must be at least 1"),
        ("data.table.threshold", math.isfinite(cfg.data.table.threshold), "must be a finite number"),
        ("data.table.score_min", math.isfinite(cfg.data.table.score_min), "must be a finite number"),
        ("data.table.score_max", math.isfinite(cfg.data.table.score_max) and cfg.data.table.score_max > cfg.data.table.score_min, "must be a finite number above data.table.score_min"),
        ("eval.batch_size", cfg.eval.batch_size > 0, "must be positive"),
        ("train.rank_loss_weight", math.isfinite(cfg.train.rank_loss_weight) and cfg.train.rank_loss_weight >= 0, "must be 0 or a positive finite number"),
        ("train.rank_margin", math.isfinite(cfg.train.rank_margin) and cfg.train.rank_margin >= 0, "must be 0 or a positive finite number"),
        ("train.task_loss_weight", math.isfinite(cfg.train.task_loss_weight) and cfg.train.task_loss_weight >= 0, "must be 0 (off) or a positive finite number"),
        ("tune.trials", cfg.tune.trials >= 1, "must be at least 1"),
        ("tune.startup_trials", cfg.tune.startup_trials >= 0, "must be 0 or positive"),
        ("tune.warmup_steps", cfg.tune.warmup_steps >= 0, "must be 0 or positive"),
        ("tune.heartbeat_s", cfg.tune.heartbeat_s >= 1, "must be at least 1 second"),
    ]
    splits = [x.strip() for x in cfg.eval.splits.split(",") if x.strip()]
    unknown = [x for x in splits if x not in EVAL_SPLITS]
    if not splits or unknown:
        hint = did_you_mean(unknown[0], list(EVAL_SPLITS)) if unknown else ""
        raise ConfigError(f"bad value '{cfg.eval.splits}' for 'eval.splits': name one or both of {', '.join(EVAL_SPLITS)}, comma-separated{hint}")
    if cfg.train.head_lr is not None:
        checks.append(("train.head_lr", math.isfinite(cfg.train.head_lr) and cfg.train.head_lr > 0, "must be a positive finite number, or null (= train.lr)"))
    for model, cost in (cfg.data.costs or {}).items():
        if not (isinstance(cost, (int, float)) and math.isfinite(cost) and cost >= 0):
            raise ConfigError(f"bad cost {cost!r} for model '{model}' in 'data.costs': costs must be finite numbers >= 0")
    for key, ok, why in checks:
        if not ok:
            raise ConfigError(f"bad value {get_key(cfg, key)!r} for '{key}': {why}")
    if cfg.model.attention_kernel != "hf" and cfg.model.lora.r > 0:  # the fused QKV projection reads the weights directly
        raise ConfigError(f"model.attention_kernel={cfg.model.attention_kernel} cannot be combined with LoRA (model.lora.r>0): its fused QKV projection bypasses the adapters; set model.attention_kernel=hf")
    if cfg.data.name == "disk" and not cfg.data.path:
        raise ConfigError("data.name=disk needs data.path=<folder written by RoutingData.save_to_disk>")
    if cfg.train.resume not in ("auto", "never") and not (Path(cfg.train.resume) / "trainer_state.json").is_file():
        raise ConfigError(f"train.resume='{cfg.train.resume}' is neither auto, never nor a checkpoint folder (<run>/checkpoints/step-NNNNNN with trainer_state.json)")
    if Path(cfg.run.output_dir).exists() and not Path(cfg.run.output_dir).is_dir():
        raise ConfigError(f"run.output_dir='{cfg.run.output_dir}' is a file, not a folder; name a folder for the run folders")


def headline_average(cfg: Config) -> str:
    """How accuracies are averaged for this run: ``eval.average``, else the data recipe's ``data.average``."""
    return cfg.eval.average or cfg.data.average


def get_key(cfg: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def to_dict(cfg: Config) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg), resolve=True)  # type: ignore[return-value]


def to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def flatten(d: dict, prefix: str = "", sep: str = "/") -> dict:
    """``{'train': {'lr': 1}}`` -> ``{'train/lr': 1}`` (the names used in logs)."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}{sep}", sep))
        else:
            out[f"{prefix}{key}"] = value
    return out
