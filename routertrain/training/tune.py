"""Hyperparameter search for fine-tuning, on validation routing accuracy, with Optuna.

    routertrain tune recipe=minilm-l6 data=routerdc data.path=... tune.trials=30

Each trial is an ordinary training run (``train(cfg, on_evaluate=...)``) with the values the TPE
sampler proposes from the search space (``recipes/search/<tune.space>.yaml``). After
each validation evaluation the trial reports ``routing_acc`` and Optuna's median pruner may stop
it. Trials score validation only; the test split is never read while searching.

Study folder (``<run.output_dir>/<tune.study>``)::

    study.db                 the Optuna study (the default storage: SQLite; tune.storage takes any SQLAlchemy URL)
    search.json              the search: base settings and space (a rerun with others is refused)
    trials/trial-0003/       each trial's run folder (a run like any other, resumable)
    best/                    the best trial's router folder, scored once on test, its card naming the study

Many workers may run the same command against one shared ``tune.storage``; each starts trials until
the study holds ``tune.trials`` finished (complete or pruned) ones. A killed worker's trial stops
sending heartbeats; after 2 x ``tune.heartbeat_s`` the next worker fails it and runs its parameters
again in the same run folder, resuming from its last checkpoint. Run one process per worker (one
GPU each): trials are not split over processes.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import warnings
from pathlib import Path

import optuna
import yaml
from optuna.trial import TrialState

from routertrain.config import ConfigError, did_you_mean, headline_average, load_config, to_dict, valid_keys
from routertrain.config.schema import RECIPES_DIR
from routertrain.data import load_routing_data
from routertrain.data.dataset import fingerprint
from routertrain.hub.card import render as render_card
from routertrain.hub.router import Router
from routertrain.provenance import atomic_dir, atomic_write_json, atomic_write_text
from routertrain.training.loop import router_report, train
from routertrain.training.run_folder import result_settings

SEARCH_DIR = RECIPES_DIR / "search"
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STUDY_FILE = "study.json"  # in the exported router folder: what the card's search section reads


def space_file(space: str) -> Path:
    """``recipes/search/<space>.yaml``, or ``space`` itself when it is a yaml path."""
    if space.endswith((".yaml", ".yml")):
        path = Path(space)
        if not path.is_file():
            raise ConfigError(f"tune.space={space}: no such file; give a search space yaml or a name in {SEARCH_DIR}")
        return path
    path = SEARCH_DIR / f"{space}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in SEARCH_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown search space tune.space={space}{did_you_mean(space, names)} (available: {', '.join(names)}, or a path to a yaml file)")
    return path


def load_space(space: str, base_args: list[str]) -> dict[str, dict]:
    """The search space, each key and every value it can take checked against the config schema."""
    path = space_file(space)
    loaded = yaml.safe_load(path.read_text()) or {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"search space {path} must map config keys to distributions ({{low: .., high: ..}} or {{choices: [..]}})")
    keys = [k for k in valid_keys() if "." in k]
    for key, spec in loaded.items():
        if key not in keys or key.startswith("tune."):
            raise ConfigError(f"search space {path}: '{key}' is not a config key that training reads{did_you_mean(str(key), keys)}")
        ok = isinstance(spec, dict) and (
            (set(spec) == {"choices"} and isinstance(spec["choices"], list) and spec["choices"])
            or ({"low", "high"} <= set(spec) <= {"low", "high", "log"} and all(isinstance(spec[b], (int, float)) and not isinstance(spec[b], bool) for b in ("low", "high")) and spec["low"] < spec["high"])
        )
        if not ok:
            raise ConfigError(f"search space {path}: '{key}' must be {{low: A, high: B}} with A < B (optional log: true) or {{choices: [a, b, ...]}}, got {spec!r}")
        for value in spec.get("choices", [spec.get("low"), spec.get("high")]):
            try:
                load_config([*base_args, as_override(key, value)])
            except ConfigError as err:
                raise ConfigError(f"search space {path}: {key}={value!r} is not a valid setting ({err})") from None
    return loaded


def as_override(key: str, value) -> str:
    """``key=value`` as the config loader reads it (booleans and null in YAML spelling)."""
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else repr(value) if isinstance(value, float) else str(value)
    return f"{key}={text}"


def suggest(trial: optuna.Trial, space: dict[str, dict]) -> dict:
    """One value per key of the space, from the trial's sampler."""
    params = {}
    for key, spec in space.items():
        if "choices" in spec:
            params[key] = trial.suggest_categorical(key, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            params[key] = trial.suggest_int(key, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            params[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return params


def search_identity(cfg, space: dict) -> dict:
    """What defines a study: the settings that change a run's result, and the space searched."""
    base = result_settings(to_dict(cfg))
    base.pop("tune", None)
    base["run"].pop("output_dir", None)
    return {"recipe": cfg.recipe, "base": base, "space": space}


def study_folder(cfg, identity: dict) -> Path:
    return Path(cfg.run.output_dir) / (cfg.tune.study or f"tune-{cfg.recipe or 'default'}-{fingerprint(identity)[:8]}")


def storage_url(cfg, folder: Path) -> str:
    """``tune.storage``, or SQLite in the study folder."""
    return cfg.tune.storage or f"sqlite:///{folder.resolve() / 'study.db'}"


def public_url(url: str) -> str:
    """The storage URL without its password (for files and cards)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_study(cfg, folder: Path) -> optuna.Study:
    """Create the study at its storage, or load it (a rerun, another worker)."""
    url = storage_url(cfg, folder)
    with warnings.catch_warnings():  # heartbeats and their retry callback are marked experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            url,
            heartbeat_interval=cfg.tune.heartbeat_s,
            grace_period=2 * cfg.tune.heartbeat_s,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(inherit_intermediate_values=True),
        )
    study = optuna.create_study(
        study_name=folder.name,
        storage=storage,
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=cfg.tune.startup_trials, n_warmup_steps=cfg.tune.warmup_steps),
        load_if_exists=True,
    )
    # the seed moves on with the trials already in the study: a continued study (or a later worker)
    # does not replay the random start-up proposals of the first run
    seed = (cfg.run.seed if cfg.tune.seed is None else cfg.tune.seed) + len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=cfg.tune.startup_trials)
    return study


def finished_trials(study: optuna.Study) -> list:
    return study.get_trials(deepcopy=False, states=FINISHED)


def objective(args: list[str], folder: Path, space: dict):
    """The study's objective: one training run, pruned through ``on_evaluate``, scored on validation."""

    def run_trial(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            number = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        name = f"trial-{trial.number if number is None else number:04d}"  # a retried trial resumes in its first folder
        trial_args = [*args, *(as_override(k, v) for k, v in params.items()), f"run.output_dir={folder / 'trials'}", f"run.name={name}",
                      "eval.splits=validation", "push.repo_id=null", "train.resume=auto"]
        cfg = load_config(trial_args)
        trial.set_user_attr("run_dir", str(folder / "trials" / name))
        trial.set_user_attr("args", trial_args)
        trial.set_user_attr("host", socket.gethostname())
        stopped = []

        def on_evaluate(step: int, metrics: dict) -> bool:
            trial.report(float(metrics["routing_acc"]), step)
            if trial.should_prune():
                stopped.append(step)
                return True
            return False

        results = train(cfg, on_evaluate=on_evaluate)
        if stopped:
            raise optuna.TrialPruned(f"validation routing accuracy below the median of earlier trials at step {stopped[0]}")
        return float(results["validation"]["routing_acc"])

    return run_trial


def check_search(folder: Path, identity: dict) -> None:
    """Record the search beside the study; refuse to continue a study with other settings."""
    path = folder / "search.json"
    if path.is_file():
        recorded = json.loads(path.read_text())
        if fingerprint(recorded) != fingerprint(json.loads(json.dumps(identity, default=str))):  # as written to the file
            raise ConfigError(f"study folder {folder} holds a search with other settings or another space; set tune.study=<new name> or rerun with the same arguments")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(path, identity)


class BestElsewhere(FileNotFoundError):
    """The best trial's router is on another worker's machine (a shared storage)."""


def export_best(study: optuna.Study, folder: Path, cfg, space: dict) -> Path | None:
    """Copy the best trial's router to ``<study>/best``, score it once on test, and write its card
    with the study and search named. Returns the folder (None before any trial completed)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    best = max(complete, key=lambda t: (t.value, -t.number))  # ties: the earlier trial
    source = Path(best.user_attrs["run_dir"]) / "router"
    if not source.is_dir():  # a shared storage: the best trial ran on another machine
        raise BestElsewhere(f"the best trial ({best.number}) ran on {best.user_attrs.get('host', 'another worker')}: its router {source} is not on this machine; rerun this command there to export it")
    metrics = json.loads((source / "metrics.json").read_text())
    kept = folder / "best" / STUDY_FILE
    if kept.is_file() and json.loads(kept.read_text())["trial"] == best.number:  # exported before: test is not scored again
        metrics["test"] = json.loads((folder / "best" / "metrics.json").read_text())["test"]
    else:
        trial_cfg = load_config(best.user_attrs["args"])
        metrics["test"] = router_report(Router.from_pretrained(source, device="cpu"), load_routing_data(trial_cfg.data), "test", headline_average(trial_cfg), trial_cfg.eval.missing)
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)}
    record = {
        "study": study.study_name,
        "storage": public_url(storage_url(cfg, folder)),
        "trial": best.number,
        "validation_routing_acc": best.value,
        "params": best.params,
        "space": space,
        "space_file": cfg.tune.space,
        "trials": counts,
        "sampler": "TPE",
        "pruner": f"median of earlier trials after each validation evaluation ({cfg.tune.startup_trials} startup trials, {cfg.tune.warmup_steps} warmup steps)",
        "choice": "the highest validation routing accuracy",
    }
    with atomic_dir(folder / "best") as tmp:
        shutil.copytree(source, tmp, dirs_exist_ok=True)
        atomic_write_json(tmp / "metrics.json", metrics)
        atomic_write_json(tmp / STUDY_FILE, record)
        atomic_write_text(tmp / "README.md", render_card(tmp, final=folder / "best"))
    return folder / "best"


def tune(args: list[str], default_recipe: str | None = None) -> dict:
    """Run trials until the study holds ``tune.trials`` finished ones, then export the best.
    Returns the study folder, trial counts and the exported router's metrics."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ConfigError("tune runs one process per worker; start one worker per GPU (CUDA_VISIBLE_DEVICES=i routertrain tune ...) with a shared tune.storage")
    cfg = load_config(args, default_recipe=default_recipe)
    base_args = [a for a in args if not a.split("=", 1)[0].lstrip("+").startswith("tune.")]
    if default_recipe and not any(a.startswith("recipe=") for a in base_args):
        base_args.insert(0, f"recipe={default_recipe}")
    space = load_space(cfg.tune.space, base_args)
    data = load_routing_data(cfg.data)
    notes = []
    if "task" not in data.splits["train"].column_names and "train.task_loss_weight" in space:
        space = {k: v for k, v in space.items() if k != "train.task_loss_weight"}
        notes.append("this dataset has no task column: train.task_loss_weight is not searched (stays at its configured value)")
    identity = search_identity(cfg, space)
    folder = study_folder(cfg, identity)
    check_search(folder, identity)
    study = open_study(cfg, folder)
    searched = fingerprint(json.loads(json.dumps(identity, default=str)))
    if study.user_attrs.setdefault("search", searched) != searched:  # another machine's worker with other arguments
        raise ConfigError(f"study {study.study_name} at {public_url(storage_url(cfg, folder))} searches with other settings or another space; set tune.study=<new name> or run the same arguments")
    study.set_user_attr("search", searched)
    done = len(finished_trials(study))
    if done < cfg.tune.trials:
        study.optimize(
            objective(base_args, folder, space),
            callbacks=[optuna.study.MaxTrialsCallback(cfg.tune.trials, states=FINISHED)],
            gc_after_trial=True,
        )
    try:
        best = export_best(study, folder, cfg, space)
    except BestElsewhere as err:
        best = None
        notes.append(str(err))
    states = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,))) for s in (*FINISHED, TrialState.FAIL)}
    out = {"study": study.study_name, "folder": str(folder), "trials": states, "finished_before": done, "notes": notes}
    if best is not None:
        out["best"] = str(best)
        out["metrics"] = json.loads((best / "metrics.json").read_text())
        out["best_trial"] = json.loads((best / STUDY_FILE).read_text())
    return out
