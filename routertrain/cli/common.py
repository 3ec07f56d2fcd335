"""Command-line front ends: argument handling, one-line errors and the end-of-run summary."""

from __future__ import annotations

import argparse
import sys

from routertrain.cli.args import fail
from routertrain.config import ConfigError, available_data_recipes, available_recipes, load_config, valid_keys
from routertrain.data import DataError
from routertrain.hub.card import shortfalls
from routertrain.model.kernels import KernelUnavailable
from routertrain.model.modeling import EncoderNotFound
from routertrain.provenance import WriteFailed
from routertrain.hub.router import check_device
from routertrain.training.registries import check_names  # noqa: F401 (re-exported for the commands)

DEFAULT_RECIPE = "minilm-l6"
USER_ERRORS = (ConfigError, DataError, EncoderNotFound, KernelUnavailable, WriteFailed)

USAGE = f"""usage: routertrain train [recipe=NAME|FILE] [data=NAME|FILE] [key=value ...]
       accelerate launch --config_file accelerate_config.yaml train.py [recipe=...] [key=value ...]   (several processes)

recipes: {', '.join(available_recipes())} (default {DEFAULT_RECIPE}); or a YAML file's path, with or without .yaml
data recipes: {', '.join(available_data_recipes()) or 'none'}; or a YAML file's path, with or without .yaml
keys: {', '.join(k for k in valid_keys() if '.' in k)}

exit codes: 0 done (done.json written, or already there: nothing to train), 2 bad input, a failed write or diverged training (one error line),
75 stopped by SIGTERM/SIGINT after saving a checkpoint (run the same command to resume)

list and copy recipes: routertrain recipes ls; routertrain recipes cp smoke my-recipe.yaml
inspect a dataset: routertrain data summary data=NAME data.path=...
route with a router: routertrain route checkpoints/<run> "query"
"""


def device_option(text: str) -> str:
    """An argparse type: a device this machine has (``check_device``)."""
    try:
        check_device(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def score_lines(results: dict) -> list[str]:
    """The final numbers of a run: validation (with the reference routers) and test."""
    val = results.get("validation", {})
    parts = [f"validation routing accuracy {val.get('routing_acc', float('nan')):.4f}"]
    for key, label in (("best_single_acc", "best single"), ("task_prior_acc", "task prior"), ("oracle_acc", "oracle"), ("bayes_acc", "Bayes ceiling")):
        if key in val:
            parts.append(f"{label} {val[key]:.4f}")
    lines = [" | ".join(parts)]
    if "test" in results:
        lines.append(f"test routing accuracy {results['test']['routing_acc']:.4f} (best single {results['test']['best_single_acc']:.4f}, oracle {results['test']['oracle_acc']:.4f})")
    return lines


def verdict_lines(results: dict) -> list[str]:
    """A warning per reference router the router does not beat on validation (empty when it beats them)."""
    return [f"warning: {line}; a simpler router serves this data at least as well (see the card's limitations)" for line in shortfalls(results.get("validation", {}))]


def summary(results: dict) -> str:
    run = results["run_dir"]
    lines = score_lines(results)
    lines += [f"router:  {run}/router", f"metrics: {run}/metrics.json", f"logs:    {run}/log.jsonl (config.yaml, provenance.json beside it)"]
    return "\n".join(lines + verdict_lines(results))


def main_train(args: list[str]) -> int:
    """``routertrain train``, ``train.py``: one training run from ``recipe=``, ``data=`` and ``key=value`` arguments."""
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    from accelerate import PartialState

    from routertrain.training.loop import Diverged, train
    from routertrain.training.preemption import PREEMPTED_EXIT, Preempted, die_with_parent

    die_with_parent()  # a killed launcher (or sweep runner above it) stops this run cleanly, not orphaned
    try:
        cfg = check_names(load_config(args, default_recipe=DEFAULT_RECIPE))
        results = train(cfg)
    except (Diverged, Preempted) as err:  # every rank stops alike: one line, from the main process
        if PartialState().is_main_process:
            print(f"error: {err}", file=sys.stderr)
        return PREEMPTED_EXIT if isinstance(err, Preempted) else 2
    except USER_ERRORS as err:
        return fail(err)

    if PartialState().is_main_process:
        print(summary(results))
        if "error" in results.get("push", {}):
            print(f"error: {results['push']['error']}", file=sys.stderr)
            return 3
        if "url" in results.get("push", {}):
            print(f"pushed:  {results['push']['url']}")
    return 0
