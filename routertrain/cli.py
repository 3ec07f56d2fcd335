"""Command-line front ends: argument handling, one-line errors and the end-of-run summary."""

from __future__ import annotations

import sys

from routertrain.config import ConfigError, available_data_recipes, available_recipes, load_config, valid_keys
from routertrain.data import DataError
from routertrain.kernels import KernelUnavailable
from routertrain.modeling import EncoderNotFound

DEFAULT_RECIPE = "minilm-l6"
USER_ERRORS = (ConfigError, DataError, EncoderNotFound, KernelUnavailable)

USAGE = f"""usage: accelerate launch --config_file accelerate_config.yaml train.py [recipe=NAME] [data=NAME] [key=value ...]

recipes: {', '.join(available_recipes())} (default {DEFAULT_RECIPE})
data recipes: {', '.join(available_data_recipes()) or 'none'}
keys: {', '.join(k for k in valid_keys() if '.' in k)}

inspect a dataset: python -m routertrain.data summary data=NAME data.path=...
route with a router: python -m routertrain.route checkpoints/<run> "query"
"""


def fail(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2


def summary(results: dict) -> str:
    val = results.get("validation", {})
    run = results["run_dir"]
    parts = [f"validation routing accuracy {val.get('routing_acc', float('nan')):.4f}"]
    for key, label in (("best_single_acc", "best single"), ("task_prior_acc", "task prior"), ("oracle_acc", "oracle"), ("bayes_acc", "Bayes ceiling")):
        if key in val:
            parts.append(f"{label} {val[key]:.4f}")
    lines = [" | ".join(parts)]
    if "test" in results:
        lines.append(f"test routing accuracy {results['test']['routing_acc']:.4f} (best single {results['test']['best_single_acc']:.4f}, oracle {results['test']['oracle_acc']:.4f})")
    lines += [f"router:  {run}/router", f"metrics: {run}/metrics.json", f"logs:    {run}/log.jsonl (config.yaml, provenance.json beside it)"]
    return "\n".join(lines)


def main_train(args: list[str]) -> int:
    if any(a in ("-h", "--help") for a in args):
        print(USAGE)
        return 0
    from routertrain.training import train

    try:
        cfg = load_config(args, default_recipe=DEFAULT_RECIPE)
        results = train(cfg)
    except USER_ERRORS as err:
        return fail(err)
    from accelerate import PartialState

    if PartialState().is_main_process:
        print(summary(results))
        if "error" in results.get("push", {}):
            print(f"error: {results['push']['error']}", file=sys.stderr)
            return 3
        if "url" in results.get("push", {}):
            print(f"pushed:  {results['push']['url']}")
    return 0
