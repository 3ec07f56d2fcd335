"""Routing data: builders that turn sources into the canonical dataset, and the loader used by training.

``BUILDERS`` maps ``data.name`` to a function ``DataConfig -> RoutingData`` that reads the full
dataset; ``load_routing_data`` validates it, takes the ``data.fraction`` training subset and
stamps the fingerprint of sources plus data config.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from datasets import Dataset, DatasetDict, Features, Sequence, Value

from routertrain.data import synthetic
from routertrain.data.dataset import SPLITS, DataError, RoutingData, fingerprint, nested_subset, validate
from routertrain.data.sources import SOURCE_BUILDERS

__all__ = ["BUILDERS", "DataError", "check_name", "RoutingData", "load_routing_data", "build_synthetic", "validate"]


FEATURES = Features(
    {
        "query": Value("string"),
        "task": Value("string"),
        "labels": Sequence(Value("float32")),
        "p_correct": Sequence(Value("float32")),
    }
)


def synthetic_examples(plan: synthetic.Plan, split: str):
    """One example at a time, for ``Dataset.from_generator``."""
    for part in synthetic.rows(plan, split):
        for i in range(len(part["query"])):
            yield {key: values[i] for key, values in part.items()}


def build_synthetic(cfg) -> RoutingData:
    """The embedded demo benchmark (see ``routertrain.data.synthetic``). A demo of more than one
    generator chunk streams through Arrow files in routertrain's cache instead of being held in memory."""
    s = cfg.synthetic
    fp = fingerprint("synthetic-v1", dataclasses.asdict(s))
    plan = synthetic.plan(s.seed, s.n_train, s.n_validation, s.n_test, s.n_models)
    splits = {}
    for name in SPLITS:
        lo, hi = plan.bounds[name]
        if hi - lo <= synthetic.CHUNK:
            cols = next(synthetic.rows(plan, name), {key: [] for key in FEATURES})
            splits[name] = Dataset.from_dict(cols, features=FEATURES)
        else:
            from routertrain.provenance import cache_root

            splits[name] = Dataset.from_generator(synthetic_examples, features=FEATURES, gen_kwargs={"plan": plan, "split": name},
                                                  cache_dir=str(cache_root(cfg) / "generated"), fingerprint=f"{fp}-{name}")
    return RoutingData(
        splits=DatasetDict(splits),
        models=plan.models,
        costs=plan.costs,
        name="synthetic",
        fingerprint=fp,
        info={"kind": "synthetic demo benchmark (not a real benchmark)"},
    )


def build_disk(cfg) -> RoutingData:
    """A dataset saved earlier with ``RoutingData.save_to_disk`` at ``data.path``."""
    return RoutingData.load_from_disk(cfg.path)


BUILDERS: dict[str, Callable] = {"synthetic": build_synthetic, "disk": build_disk, **SOURCE_BUILDERS}


def check_name(name: str) -> None:
    """Refuse a ``data.name`` with no builder in ``BUILDERS``, in one line (before any work starts)."""
    if name not in BUILDERS:
        from routertrain.config import ConfigError, did_you_mean

        raise ConfigError(f"bad value '{name}' for 'data.name': choose one of {', '.join(BUILDERS)}{did_you_mean(name, list(BUILDERS))}")


def load_routing_data(cfg) -> RoutingData:
    """Build, validate and subset the dataset described by a ``DataConfig``."""
    check_name(cfg.name)
    data = BUILDERS[cfg.name](cfg)
    validate(data)
    train = data.splits["train"]
    keep = nested_subset(len(train), cfg.fraction, cfg.subsample_seed)
    if len(keep) < len(train):
        data.splits = DatasetDict({**data.splits, "train": train.select(keep)})
    data.fingerprint = fingerprint(data.fingerprint, cfg.fraction, cfg.subsample_seed)
    data.info = {**data.info, "n_rows": {s: len(data.splits[s]) for s in SPLITS}}
    return data
