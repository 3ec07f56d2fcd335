"""Calibrate a router to a budget and save the setting as its default (``route()`` and ``serve`` use it).

    python -m routertrain.cli.calibrate ROUTER --queries traffic.txt --max-share gpt-4o=0.2
    python -m routertrain.cli.calibrate ROUTER --queries traffic.txt --max-share "gpt-4o,claude-3=0.3"
    python -m routertrain.cli.calibrate ROUTER --queries traffic.txt --mean-cost 0.3
    python -m routertrain.cli.calibrate ROUTER --keep-accuracy 0.95 [--split validation] [data=NAME data.path=...]

Queries come from ``--queries`` (one per line, unlabelled) or from a dataset split (the run's own data
config unless ``data=...`` arguments are given); ``--keep-accuracy`` needs the split's labels.
``--backends FILE`` (serve's) solves it choosing only among the models that have a backend, as the
server will. ``--clear`` removes a saved setting. See ``routertrain.hub.calibrate`` for how each target is solved.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from routertrain.cli.args import Parser, bounded, fail
from routertrain.cli.common import device_option
from routertrain.cli.route import read_queries
from routertrain.config import ConfigError
from routertrain.data import DataError


def share_target(text: str) -> dict:
    """An argparse type: ``MODEL[,MODEL...]=SHARE`` with SHARE in [0, 1]."""
    names, sep, value = text.rpartition("=")
    models = tuple(n.strip() for n in names.split(",") if n.strip())
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not sep or not models or not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError(f"got {text!r}; give MODEL=SHARE or MODEL1,MODEL2=SHARE with SHARE in [0, 1], e.g. gpt-4o=0.2")
    return {models[0] if len(models) == 1 else models: share}


def split_data(router, split: str, args: list[str]):
    """(queries, labels, per-query costs or None) of a dataset split: the router's training data config
    unless ``data=`` args are given."""
    from routertrain.cli.evaluate import data_config
    from routertrain.data import load_routing_data

    cfg, _ = data_config(router.folder, args)
    data = load_routing_data(cfg.data)
    if split not in data.splits:
        raise ConfigError(f"--split {split} is not a split of {data.name}; choose one of {', '.join(data.splits)}")
    if list(data.models) != router.models:
        raise ConfigError(f"the data's models ({len(data.models)}) are not the router's pool ({len(router.models)}) in order; give data= arguments for the router's data")
    return data.queries(split), data.labels(split), data.query_costs(split) if data.cost_source == "per-query" else None


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m routertrain.cli.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("router", help="router folder or run folder (the setting is written into it)")
    parser.add_argument("data_args", nargs="*", metavar="data=...", help="data=NAME data.path=... (default: the run's own data config)")
    parser.add_argument("--queries", type=Path, help="unlabelled queries, one per line (default: the --split of the data)")
    parser.add_argument("--split", default="validation", help="dataset split to calibrate on when --queries is not given (default: validation)")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--max-share", type=share_target, help="MODEL[,MODEL...]=SHARE: at most this share of calls to these models")
    target.add_argument("--mean-cost", type=bounded(float, 0), help="at most this mean cost per query (the router's cost units)")
    target.add_argument("--keep-accuracy", type=bounded(float, 0, 1, low_open=True), help="keep this share of the routing accuracy at cost weight 0 (needs labels)")
    target.add_argument("--clear", action="store_true", help="remove the saved setting (route() goes back to cost weight 0)")
    parser.add_argument("--backends", type=Path, help="serve's backends file: choose only among the models it has backends for")
    parser.add_argument("--missing", choices=("complete", "wrong"), default="complete", help="--keep-accuracy on unlabelled pairs: score only fully labelled queries (default) or count a chosen model without a label as wrong")
    parser.add_argument("--batch-size", type=bounded(int, 1), default=64)
    parser.add_argument("--device", type=device_option, default=None, help="cpu, cuda, ...; default: cuda when available")
    args = parser.parse_intermixed_args(argv)

    from routertrain.hub.calibrate import CalibrationError, describe, save_calibration
    from routertrain.hub.router import Router, router_folder
    from routertrain.serving.backends import load_backends

    try:
        folder = router_folder(args.router)
        if args.clear:
            save_calibration(folder, None)
            print(f"calibration removed from {folder}")
            return 0
        if args.keep_accuracy is not None and args.queries:
            raise ConfigError("--keep-accuracy needs labels: drop --queries and calibrate on a dataset split (--split, data=...)")
        if args.queries and args.data_args:
            raise ConfigError("give either --queries or data= arguments, not both")
        router = Router.from_pretrained(folder, device=args.device)
        served = list(load_backends(args.backends, router.models, keys=False).models) if args.backends else None
        labels = query_costs = None
        if args.queries:
            queries = read_queries(args.queries, "--queries")
        else:
            queries, labels, query_costs = split_data(router, args.split, args.data_args)
        setting = router.calibrate(
            queries, max_share=args.max_share, mean_cost=args.mean_cost, accuracy_share=args.keep_accuracy,
            labels=labels if args.keep_accuracy is not None else None, models=served, batch_size=args.batch_size,
            query_costs=query_costs, missing=args.missing,
        )
    except (CalibrationError, ConfigError, DataError, OSError, ValueError) as err:
        return fail(err)
    print(f"calibrated {folder}: {describe(setting)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
