"""Expand a sweep file into runs and run them in order, skipping points already finished.

A sweep file (``recipes/sweeps/<name>.yaml``) names the claim it tests and lists groups of points::

    name: scaling-routerdc
    claim: more-data                                             # or a list of claims
    common: [data=routerdc, data.path=../shared/data/routerdc]   # arguments of every point
    groups:
      - kind: train                                              # accelerate launch -m routertrain.cli.train ...
        args: [recipe=minilm-l3]
        grid: {data.fraction: [0.1, 0.25, 0.5, 1.0], data.subsample_seed: [0, 1, 2]}
      - kind: evaluate                                           # python -m routertrain.cli.evaluate ...
        args: ["routers=[knn,logreg]", encoder=sentence-transformers/all-MiniLM-L6-v2]
        grid: {data.fraction: [0.1, 1.0]}
      - kind: blend                                              # python -m routertrain.cli.blend OUT RUN
        args: [run=@train-minilm-l6]                             # (only run=: the blend reads the run's data)
      - kind: ensemble                                           # python -m routertrain.cli.ensemble OUT RUN RUN ...
        args: ["runs=[@train-seed0,@train-seed1]"]               # (only runs=: the members, at least 2)
      - kind: tune                                               # python -m routertrain.cli.tune ... (an Optuna study)
        args: [recipe=minilm-l6, tune.space=cpu, tune.trials=10] # its best router: run=@tune-<label>/best

Every point gets a name from its grid values, so its output is ``<out>/<sweep>/<point>`` (a run,
blend or ensemble folder, or a study folder whose ``best/`` is the exported router) or ``<out>/<sweep>/<point>.json`` (an evaluation); ``run=@<point>`` in an evaluate
or blend point (and each ``@<point>`` of an ensemble's ``runs=[...]``) refers to a point of the same sweep. The file's keys and every point's arguments are checked
(as ``train.py`` and ``routertrain.cli.evaluate`` read them) before anything runs, so a typo fails in one
line. A train point is finished when its run folder holds ``done.json`` (written last by training).
Points run here (``--executor local``, the default; ``--parallel N`` runs independent points at once:
``routertrain.experiments.local``) or as SLURM jobs (``--executor slurm``, resources from ``slurm:`` keys
and ``--partition --gpus --cpus --mem --time --account --qos --sbatch``: ``routertrain.experiments.slurm``).
SIGTERM or SIGINT to a local runner reaches the running points' launchers and training processes, which
save a checkpoint; the runner waits for them, then exits 75 (rerun to continue). ``--dry-run``
prints the commands; ``--status`` each point's state, job id, last log line and log path::

    routertrain sweep routerdc-scaling [--dry-run] [--out checkpoints/sweeps]     # a packaged sweep, by name
    routertrain sweep my-sweep.yaml --parallel 2                                 # or a sweep file, by path
    routertrain sweep routerdc-scaling --executor slurm --partition gpu --gpus 1  # then: --status

A train point that finished before training wrote ``done.json`` is marked from its own evidence (its
``router/`` and final ``metrics.json``), never by hand: ``routertrain sweep NAME --adopt POINT``.
"""

from __future__ import annotations

import argparse
import itertools
import re
import shlex
import sys
from pathlib import Path

import yaml

from routertrain.experiments.points import FOLDER_KINDS, Point, SweepError, SweepInterrupted, _kv, launch_env, members, runnable  # noqa: F401 (the API of sweep)
from routertrain.provenance import DONE, atomic_write_json, atomic_write_text
from routertrain.training.preemption import PREEMPTED_EXIT

KINDS = ("train", "evaluate", "blend", "ensemble", "tune")
SWEEP_KEYS = ("name", "claim", "common", "groups", "slurm")
GROUP_KEYS = ("kind", "label", "args", "grid", "slurm")
# SLURM resources of a group's jobs (``slurm:`` of the sweep file or of a group; --partition ... on the command line)
RESOURCE_KEYS = ("partition", "gpus", "cpus", "mem", "time", "account", "qos", "sbatch")
CLAIMS = ("plateau", "predictability", "more-data", "encoder", "finetune", "remedies")


def _slug(value: object) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", str(value)).strip("-")


def point_name(kind: str, label: str, values: dict) -> str:
    parts = [kind] + ([_slug(label)] if label else []) + [f"{key.split('.')[-1]}{_slug(v)}" for key, v in values.items()]
    return "-".join(parts)


def _check_keys(found: dict, allowed: tuple, where: str) -> None:
    from routertrain.config import did_you_mean

    for key in found:
        if key not in allowed:
            raise SweepError(f"{where}: unknown key '{key}'{did_you_mean(str(key), list(allowed))} (keys: {', '.join(allowed)})")


def _check_args(args: object, where: str) -> None:
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise SweepError(f"{where} must be a list of key=value strings, e.g. [data=routerdc, train.epochs=1]")


def _check_resources(resources: object, where: str) -> None:
    if resources is None:
        return
    if not isinstance(resources, dict):
        raise SweepError(f"{where} must map resources to values, e.g. {{gpus: 1, cpus: 8, mem: 64G, time: 240}}")
    _check_keys(resources, RESOURCE_KEYS, where)


def find_sweep(name: str | Path) -> Path:
    """A packaged sweep by name (``routerdc-main``), or a sweep file by path, with or without ``.yaml``."""
    from routertrain.config.schema import SWEEPS_DIR, ConfigError, find_recipe

    try:
        return find_recipe(str(name), SWEEPS_DIR, "sweep", sorted(p.stem for p in SWEEPS_DIR.glob("*.yaml")))
    except ConfigError as err:
        raise SweepError(str(err)) from None


def load_sweep(path: str | Path) -> dict:
    """Read a sweep file (or packaged sweep, by name) and check its structure; every problem is one SweepError naming the key."""
    path = find_sweep(path)
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        why = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise SweepError(f"sweep file {path} is not valid YAML{where} ({why}); fix the syntax (see routertrain/experiments/sweep.py for the format)") from None
    if not isinstance(spec, dict):
        raise SweepError(f"sweep file {path} must be a mapping with name, claim and groups; see routertrain/experiments/sweep.py for the format")
    _check_keys(spec, SWEEP_KEYS, f"sweep file {path}")
    for key in ("name", "claim", "groups"):
        if key not in spec:
            raise SweepError(f"sweep file {path} has no '{key}'; see routertrain/experiments/sweep.py for the format")
    if not isinstance(spec["name"], str) or not spec["name"].strip():
        raise SweepError(f"sweep file {path}: name must be a non-empty text (the output folder's name)")
    claims = spec["claim"] if isinstance(spec["claim"], list) else [spec["claim"]]
    if not claims:
        raise SweepError(f"sweep file {path}: claim is empty; name one or more of {', '.join(CLAIMS)}")
    for claim in claims:
        if claim not in CLAIMS:
            raise SweepError(f"sweep file {path}: claim '{claim}' is not one of {', '.join(CLAIMS)}")
    _check_args(spec.get("common", []), f"sweep file {path}: common")
    _check_resources(spec.get("slurm"), f"sweep file {path}: slurm")
    if not isinstance(spec["groups"], list) or not spec["groups"]:
        raise SweepError(f"sweep file {path}: groups must be a list of groups, each starting with '- kind: train' or '- kind: evaluate'")
    for i, group in enumerate(spec["groups"]):
        where = f"sweep file {path}: group {i}"
        if not isinstance(group, dict):
            raise SweepError(f"{where} must be a mapping with kind, and optionally label, args and grid")
        _check_keys(group, GROUP_KEYS, where)
        if group.get("kind") not in KINDS:
            raise SweepError(f"{where} has kind {group.get('kind')!r}; use train, evaluate, blend, ensemble or tune")
        _check_args(group.get("args", []), f"{where}: args")
        _check_resources(group.get("slurm"), f"{where}: slurm")
        grid = group.get("grid") or {}
        if not isinstance(grid, dict):
            raise SweepError(f"{where}: grid must map each key to a list of values, e.g. {{data.fraction: [0.5, 1.0]}}")
        for key, values in grid.items():
            if not isinstance(values, list) or not values:
                example = values if isinstance(values, (str, int, float)) else "..."
                raise SweepError(f"{where}: grid value of '{key}' must be a non-empty list of values, e.g. {key}: [{example}]")
    return spec


def expand(spec: dict, out: str | Path) -> list[Point]:
    """All points of a sweep, in file order, each grid expanded as a cartesian product."""
    root = Path(out) / spec["name"]
    points: list[Point] = []
    for index, group in enumerate(spec["groups"]):
        grid = group.get("grid") or {}
        keys = list(grid)
        slurm = {**(spec.get("slurm") or {}), **(group.get("slurm") or {})}
        for combo in itertools.product(*(grid[k] for k in keys)) if keys else [()]:
            values = dict(zip(keys, combo))
            name = point_name(group["kind"], group.get("label", ""), values)
            args = [*spec.get("common", []), *group.get("args", []), *(f"{k}={v}" for k, v in values.items())]
            needs = tuple(dict.fromkeys(ref.split("/")[0] for a in args if a.startswith(("run=", "runs=")) for ref in re.findall(r"@([^,\]\s]+)", a)))
            if group["kind"] in ("train", "tune"):  # a run folder, or a study folder holding its trials' runs
                output = root / name
                args += [f"run.output_dir={root}", f"run.name={name}" if group["kind"] == "train" else f"tune.study={name}"]
            else:
                output = root / name if group["kind"] in FOLDER_KINDS else root / f"{name}.json"
                args = [re.sub(r"^run=@(.+)$", lambda m: f"run={root / m.group(1)}", a) for a in args]
                args = [re.sub(r"(?<=[\[,])\s*@([^,\]]+)", lambda m: str(root / m.group(1).strip()), a) if a.startswith("runs=") else a for a in args]
            points.append(Point(group["kind"], name, args, output, index, needs, slurm))
    names = [p.name for p in points]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SweepError(f"sweep '{spec['name']}' names points twice ({', '.join(dupes)}); give the groups distinct labels")
    return points


def check_points(points: list[Point], path: str | Path) -> None:
    """Read every point's configuration as its command will, so a typo fails before anything runs."""
    from routertrain.cli.common import DEFAULT_RECIPE, check_names
    from routertrain.cli.evaluate import parse_routers, split_args
    from routertrain.config import ConfigError, load_config

    for point in points:
        try:
            if point.kind in ("train", "tune"):
                cfg = check_names(load_config(point.args, default_recipe=DEFAULT_RECIPE))
                if point.kind == "tune":  # the search space too (its keys and values), as the study reads it
                    from routertrain.training.tune import load_space

                    load_space(cfg.tune.space, point.args)
            elif point.kind == "blend":
                if not _kv(point.args).get("run"):
                    raise ConfigError("a blend point needs run=@<train point> (or a run folder)")
            elif point.kind == "ensemble":
                if len(members(point.args)) < 2:
                    raise ConfigError("an ensemble point needs runs=[@<point>,@<point>,...] (at least 2 run folders)")
            else:
                own, rest = split_args(point.args)
                parse_routers(own.get("routers"), own.get("run"))
                check_names(load_config(rest))
        except ConfigError as err:
            raise SweepError(f"sweep file {path}, point {point.name}: {err}") from None


def run_sweep(path: str | Path, out: str | Path = "checkpoints/sweeps", dry_run: bool = False, accelerate_config: str = "accelerate_config.yaml",
              executor: str = "local", parallel: int = 1, resources: dict | None = None, wait: bool = False) -> list[Point]:
    """Run (local) or submit (slurm) every unfinished point; returns the points (finished ones included)."""
    spec = load_sweep(path)
    points = expand(spec, out)
    check_points(points, path)
    root = Path(out) / spec["name"]
    if dry_run:
        for point in points:
            print(f"[sweep] done already: {point.name}" if point.done() else shlex.join(point.command(accelerate_config)), flush=True)
        return points
    if executor == "slurm":
        from routertrain.experiments import slurm

        slurm.check_available()
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / "sweep.yaml", yaml.safe_dump(spec, sort_keys=False))
    if executor == "slurm":
        slurm.submit(points, root, accelerate_config, resources or {}, wait=wait)
    else:
        from routertrain.experiments.local import run_local

        run_local(points, root, accelerate_config, parallel)
    return points


def adopt(path: str | Path, point_name: str, out: str | Path = "checkpoints/sweeps") -> Path:
    """Mark train point ``point_name`` finished from its own evidence: a run folder that training
    completed before ``done.json`` existed. Its ``router/`` must hold every file a router folder needs
    (``hub.folder``), and its ``metrics.json`` the final validation and test scores (written only
    after the router); then ``done.json`` is written, saying it was adopted and on which evidence.
    Anything else is refused in one line, naming the fix. Returns the ``done.json`` path."""
    import datetime
    import json

    from routertrain.config import did_you_mean
    from routertrain.hub.folder import CONFIG, LEGACY_CONFIG, REQUIRED_FILES

    spec = load_sweep(path)
    points = {p.name: p for p in expand(spec, out)}
    point = points.get(point_name)
    if point is None or point.kind != "train":
        trains = [n for n, p in points.items() if p.kind == "train"]
        raise SweepError(f"sweep {spec['name']} has no train point '{point_name}'{did_you_mean(point_name, trains)}; its train points: {', '.join(trains) or 'none'}")
    run = point.output
    if point.done():
        raise SweepError(f"{run} holds {DONE} already: the point is finished, nothing to adopt")
    router = run / "router"
    needed = [f for f in (WEIGHTS_AND_TOKENIZER if (router / LEGACY_CONFIG).is_file() else REQUIRED_FILES) if not (router / f).is_file()]
    if needed:
        raise SweepError(f"{run} cannot be adopted: {router} lacks {', '.join(needed)}; rerun the sweep to train the point")
    try:
        metrics = json.loads((run / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = {}
    missing = [k for k in ("validation", "test") if not isinstance(metrics.get(k), dict)]
    if missing:
        raise SweepError(f"{run} cannot be adopted: its metrics.json lacks the final {' and '.join(missing)} scores; rerun the sweep to train the point")
    evidence = [f"router/{CONFIG if (router / CONFIG).is_file() else LEGACY_CONFIG}", "router/model.safetensors", "metrics.json: validation, test"]
    done = run / DONE
    atomic_write_json(done, {"router": "router", "metrics": "metrics.json", "best_step": metrics.get("best_step"),
                             "adopted": {"evidence": evidence, "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                                         "command": f"routertrain sweep {path} --adopt {point_name}"}})
    return done


WEIGHTS_AND_TOKENIZER = ("model.safetensors", "tokenizer.json")  # a format-1 router folder (router_config.json) holds these too


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="routertrain sweep", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", help="a packaged sweep's name (routertrain recipes ls) or a sweep file's path, with or without .yaml")
    parser.add_argument("--out", default="checkpoints/sweeps", help="parent folder of sweep outputs")
    parser.add_argument("--dry-run", action="store_true", help="print the commands of unfinished points, run nothing")
    parser.add_argument("--accelerate-config", default="accelerate_config.yaml", help="accelerate config of train points")
    parser.add_argument("--adopt", metavar="POINT", help="mark a train point finished from its own evidence (a run from before done.json: its router/ and "
                        "final metrics.json); runs nothing else")
    parser.add_argument("--executor", choices=("local", "slurm"), default="local", help="local: run here (default); slurm: one SLURM job per point (submitit)")
    parser.add_argument("--parallel", type=int, default=1, metavar="N", help="local: run up to N independent points at once (one GPU each where there are GPUs)")
    parser.add_argument("--status", action="store_true", help="print each point's state (finished, running, pending, failed), job id, last log line and log path")
    parser.add_argument("--wait", action="store_true", help="slurm: after submitting, wait until the sweep's jobs have left the queue; exit 1 if a point failed")
    group = parser.add_argument_group("SLURM resources (override the sweep file's slurm: settings)")
    group.add_argument("--partition")
    group.add_argument("--gpus", type=int, help="GPUs per job (a train point launches one process per GPU)")
    group.add_argument("--cpus", type=int, help="CPUs per job")
    group.add_argument("--mem", help="memory per job, e.g. 64G")
    group.add_argument("--time", help="time limit per job, minutes or H:MM:SS")
    group.add_argument("--account")
    group.add_argument("--qos")
    group.add_argument("--sbatch", action="append", default=[], metavar="ARG", help="an extra sbatch argument, e.g. --sbatch=--constraint=a100 (repeatable)")
    args = parser.parse_args(argv)
    resources = {key: getattr(args, key) for key in RESOURCE_KEYS if getattr(args, key) not in (None, [])}
    try:
        if args.adopt:
            print(f"adopted {args.adopt}: wrote {adopt(args.sweep, args.adopt, args.out)}")
            return 0
        if args.parallel < 1:
            raise SweepError(f"--parallel {args.parallel}: give the number of points to run at once, 1 or more")
        if args.status:
            from routertrain.experiments.slurm import print_status

            spec = load_sweep(args.sweep)
            return print_status(expand(spec, args.out), Path(args.out) / spec["name"])
        run_sweep(args.sweep, args.out, args.dry_run, args.accelerate_config, args.executor, args.parallel, resources, args.wait)
    except SweepError as err:
        print(f"error: {err}", file=sys.stderr)
        return PREEMPTED_EXIT if isinstance(err, SweepInterrupted) else 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
