"""Compare routers on a dataset's test split from the command line (the work is in ``routertrain.evaluation``).

    routertrain evaluate run=checkpoints/minilm-l6-1a2b3c4d data=routerdc data.path=../shared/data/routerdc
    routertrain evaluate run=none routers=[oracle,best-single,knn,logreg] encoder=sentence-transformers/all-MiniLM-L6-v2 --json out.json

Prints the comparison table and, with ``--json``, writes every number (see ``evaluate_routers``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from routertrain.hub.card import render as render_card
from routertrain.cli.args import Parser, bounded, fail
from routertrain.cli.common import device_option
from routertrain.config import ConfigError, available_data_recipes, headline_average, load_config
from routertrain.data import DataError, load_routing_data
from routertrain.evaluation.compare import default_routers, evaluate_routers, format_table, to_json
from routertrain.evaluation.routers import RouterUnavailable, describe, names
from routertrain.model.modeling import EncoderNotFound
from routertrain.provenance import atomic_write_json, atomic_write_text, writing
from routertrain.hub.router import router_folder

RERUN = "free space or fix the folder's permissions, then run the evaluation again"

OWN_KEYS = ("run", "routers", "encoder")
EPILOG = """

key=value arguments:
  run=FOLDER|none   a training run (or its router/ folder): adds finetuned and frozen, and its data config
  routers=[a,b,...] routers to compare (default: {defaults}, plus {own} with run=)
  encoder=ID|FOLDER frozen encoder of the embedding baselines (default: the run's base encoder, else the config's model)
  data=NAME, data.*=...  the dataset, as in training (data recipes: {recipes});
                    with run= and no data arguments, the run's own data config is used
  eval.average=micro|macro  headline average (default: the data recipe's data.average; RouterDC: macro)
  eval.missing=complete|wrong  queries with a missing label: score only fully labelled ones (default), or count an unlabelled choice as wrong
"""


def epilog() -> str:
    """The routers the registry holds now (``interface.register_router``), then the key=value arguments."""
    listed = "\n".join(f"  {name:<12} {describe(name)}" for name in names())
    recipes = ", ".join(available_data_recipes()) or "none"
    return f"routers:\n{listed}" + EPILOG.format(defaults=",".join(default_routers()), own=",".join(names("run")), recipes=recipes)


def split_args(pairs: list[str]) -> tuple[dict, list[str]]:
    own, rest = {}, []
    for pair in pairs:
        key = pair.split("=", 1)[0]
        if key in OWN_KEYS and "=" in pair:
            own[key] = pair.split("=", 1)[1]
        else:
            rest.append(pair)
    return own, rest


def parse_routers(text: str | None, run) -> list[str]:
    if not text:
        return list(default_routers(run))
    chosen = [n.strip() for n in text.strip("[]").split(",") if n.strip()]
    unknown = [n for n in chosen if n not in names()]
    if unknown:
        raise ConfigError(f"unknown router(s) {', '.join(unknown)} in routers=; choose from {', '.join(names())}")
    return chosen


def data_config(run, rest: list[str]):
    """The data config: from the arguments, or the run's own when run= is given without data arguments."""
    if run is not None and not any(a.split("=", 1)[0].split(".")[0] == "data" for a in rest):
        saved = Path(run) / "config.yaml"
        if not saved.is_file():
            saved = router_folder(run) / "training_config.yaml"
        if saved.is_file():
            import yaml
            from omegaconf import OmegaConf
            from omegaconf.errors import OmegaConfBaseException

            from routertrain.config import Config

            try:
                return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.load(saved))), saved
            except (OmegaConfBaseException, yaml.YAMLError) as err:  # a config from an older schema, or a broken file
                raise ConfigError(f"cannot read the run's config {saved} ({str(err).splitlines()[0]}); give data=... arguments instead") from None
    return load_config(rest), None


def json_file(text: str) -> Path:
    """An argparse type: a writable JSON path (missing folders are created), checked before the evaluation runs."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file path, e.g. {path / 'results.json'}")
    folder = next(p for p in path.absolute().parents if p.exists())
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{folder} is a file, so {path} cannot be written; choose another path")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = Parser(
        prog="routertrain evaluate", description=__doc__.splitlines()[0], epilog=epilog(), formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("args", nargs="*", metavar="key=value", help="run=, routers=, encoder=, data=, data.*= (see below)")
    parser.add_argument("--json", type=json_file, help="write the full results here as JSON")
    parser.add_argument("--split", default="test", help="split to evaluate on (default: test)")
    parser.add_argument("--n-boot", type=bounded(int, 1), default=1000, help="bootstrap resamples for the intervals (default: 1000)")
    parser.add_argument("--seed", type=bounded(int, 0), default=0, help="seed of the bootstrap, the heads and random-draw (default: 0)")
    parser.add_argument("--hard-k", type=bounded(int, 1), default=1, help="hard queries: solved by at most this many models (default: 1)")
    parser.add_argument(
        "--solved-at", type=bounded(float, 0, 1, low_open=True), default=0.5, help="a label this high counts as solved, in (0, 1] (hard queries, overlap, AUROC; default: 0.5)"
    )
    parser.add_argument("--batch-size", type=bounded(int, 1), default=64, help="queries per encoder forward pass")
    parser.add_argument("--device", type=device_option, default=None, help="cpu, cuda, ...; default: cuda when available")
    opts = parser.parse_args(argv)
    try:
        own, rest = split_args(opts.args)
        run = None if own.get("run", "none").lower() in ("", "none", "null") else own["run"]
        routers = parse_routers(own.get("routers"), run)
        cfg, source = data_config(run, rest)
        if source:
            print(f"[evaluate] data config from {source}", file=sys.stderr)
        data = load_routing_data(cfg.data)
        if opts.split not in data.splits:
            raise ConfigError(f"--split {opts.split} is not a split of {data.name}; choose one of {', '.join(data.splits)}")
        encoder = own.get("encoder") or (None if run else cfg.model.name_or_path)
        result = evaluate_routers(
            data, routers, run=run, encoder=encoder, split=opts.split, n_boot=opts.n_boot, seed=opts.seed,
            max_length=cfg.data.max_length, batch_size=opts.batch_size, device=opts.device, hard_k=opts.hard_k, solved_at=opts.solved_at,
            average=headline_average(cfg), missing=cfg.eval.missing,
        )
    except (ConfigError, DataError, EncoderNotFound, RouterUnavailable, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_table(result))
    try:  # writes are atomic: a failure (disk full, permissions) leaves the earlier files as they were
        if run is not None:  # the run's model card gains the baselines' row
            folder = router_folder(run)
            with writing(folder / "evaluation.json", RERUN):
                atomic_write_json(folder / "evaluation.json", to_json(result))
            with writing(folder / "README.md", RERUN):
                atomic_write_text(folder / "README.md", render_card(folder))
            print(f"model card updated: {folder / 'README.md'}")
        if opts.json:
            with writing(opts.json, RERUN):
                atomic_write_json(opts.json, to_json(result))
            print(f"results: {opts.json}")
    except OSError as err:
        return fail(err)
    return 0


if __name__ == "__main__":
    sys.exit(main())
