"""The canonical routing dataset: a ``datasets.DatasetDict`` plus the model pool it is labelled for.

Columns of every split: ``query`` (string) and ``labels`` (float32 per model in [0, 1], in the
order of ``RoutingData.models``). Optional: ``label_mask`` (1 = observed, 0 = missing; missing
labels are ignored by the loss and the metrics), ``task`` (category used for stratification and
the task-prior router), ``id`` and, for the synthetic benchmark, ``p_correct``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from datasets import DatasetDict, load_from_disk

from routertrain.provenance import atomic_dir

SPLITS = ("train", "validation", "test")
META_FILE = "routing_meta.json"


def column(ds, name: str) -> list:
    """One column of a split as a Python list, read through Arrow. (``list(ds[name])`` formats row by row
    in datasets >= 4: ten times slower, 8 of the evaluator's 11 seconds on 100k test queries.)"""
    return ds.with_format("arrow")[name].to_pylist()


class DataError(ValueError):
    """A dataset that cannot be routed on, reported as one line that names the fix."""


@dataclass
class RoutingData:
    splits: DatasetDict  # train / validation / test
    models: list[str]  # the model pool, in label order
    costs: Optional[list[float]] = None  # cost per query of each model, same order, when known
    name: str = "custom"  # which builder made it
    fingerprint: str = ""  # hash of the sources and the data config
    info: dict = field(default_factory=dict)  # build summary and builder-specific facts

    def labels(self, split: str) -> np.ndarray:
        """The (N, M) label matrix of a split, NaN where a label is missing."""
        table = self.splits[split].with_format("arrow")[:]
        n, m = table.num_rows, len(self.models)
        y = np.asarray(table["labels"].combine_chunks().flatten(), dtype=np.float32).reshape(n, m)
        if "label_mask" in table.column_names:
            mask = np.asarray(table["label_mask"].combine_chunks().flatten()).reshape(n, m).astype(bool)
            y = np.where(mask, y, np.nan)
        return y

    def query_costs(self, split: str) -> np.ndarray | None:
        """The (N, M) cost of each model on each query of a split: the per-query ``costs`` column where
        the data has one (a missing cell gets the model's mean cost), else each model's mean cost;
        None without costs."""
        if self.costs is None:
            return None
        mean = np.asarray(self.costs, dtype=np.float64)
        ds = self.splits[split]
        if "costs" not in ds.column_names:
            return np.tile(mean, (len(ds), 1))
        table = ds.with_format("arrow")[:]
        per_query = np.asarray(table["costs"].combine_chunks().flatten(), dtype=np.float64).reshape(len(ds), len(self.models))
        return np.where(np.isfinite(per_query), per_query, mean[None, :])

    @property
    def cost_source(self) -> str | None:
        """Which costs the cost metrics read: "per-query" (a ``costs`` column), "model mean", or None."""
        if self.costs is None:
            return None
        return "per-query" if all("costs" in ds.column_names for ds in self.splits.values()) else "model mean"

    def queries(self, split: str) -> list[str]:
        """The query texts of a split, in order."""
        return column(self.splits[split], "query")

    def tasks(self, split: str) -> np.ndarray | None:
        """The task of each query of a split, or None when the data has no task column."""
        ds = self.splits[split]
        return np.asarray(column(ds, "task")) if "task" in ds.column_names else None

    def meta(self) -> dict:
        return {"name": self.name, "models": self.models, "costs": self.costs, "fingerprint": self.fingerprint, "info": self.info}

    def save_to_disk(self, path: str | os.PathLike) -> None:
        """Write atomically: a folder appears complete or not at all."""
        with atomic_dir(path) as tmp:
            self.splits.save_to_disk(str(tmp / "splits"))
            (tmp / META_FILE).write_text(json.dumps(self.meta(), indent=2))

    @classmethod
    def load_from_disk(cls, path: str | os.PathLike) -> "RoutingData":
        path = Path(path)
        if not (path / META_FILE).is_file():
            raise DataError(f"{path} is not a saved routing dataset (no {META_FILE}); write one with RoutingData.save_to_disk")
        meta = json.loads((path / META_FILE).read_text())
        return cls(splits=load_from_disk(str(path / "splits")), **meta)


def validate(data: RoutingData) -> None:
    """Raise DataError on anything the trainer cannot use; the message names the fix."""
    if not data.models:
        raise DataError("the dataset names no models: set RoutingData.models to the pool in label order")
    if len(set(data.models)) != len(data.models):
        raise DataError(f"model names repeat in the pool {data.models}: each model must appear once")
    if data.costs is not None and len(data.costs) != len(data.models):
        raise DataError(f"{len(data.costs)} costs for {len(data.models)} models: give one cost per model or none")
    if data.costs is not None and not all(math.isfinite(c) and c >= 0 for c in data.costs):
        raise DataError(f"model costs {data.costs} hold a NaN, infinite or negative value: fix the cost columns or set data.costs")
    if len(data.models) < 2:
        raise DataError(f"the pool has one model ({data.models[0]!r}): a router chooses between models, so give scores for at least two "
                        "(check data.models, data.pool or the score columns)")
    missing = [s for s in SPLITS if s not in data.splits]
    if missing:
        raise DataError(f"the dataset has no {'/'.join(missing)} split: provide train, validation and test")
    n_models = len(data.models)
    for split in SPLITS:
        ds = data.splits[split]
        for name in ("query", "labels"):
            if name not in ds.column_names:
                raise DataError(f"split '{split}' has no '{name}' column (columns: {ds.column_names}); rename yours to 'query' and 'labels'")
        if len(ds) == 0:
            raise DataError(f"split '{split}' is empty: every split needs at least one query")
        for i, query in enumerate(column(ds, "query")):
            if not isinstance(query, str) or not query.strip():
                raise DataError(f"split '{split}' row {i}: empty query; drop or fill empty queries before training")
        rows = column(ds, "labels")
        for i, row in enumerate(rows):
            if row is None or len(row) != n_models:
                got = "none" if row is None else len(row)
                raise DataError(f"split '{split}' row {i}: {got} labels for {n_models} models {data.models[:3]}...; labels must have one value per model")
        y = np.asarray(list(rows), dtype=np.float64)
        if np.isnan(y).any():
            i = int(np.argwhere(np.isnan(y))[0][0])
            raise DataError(f"split '{split}' row {i}: NaN label; mark missing labels with a label_mask column (0) instead of NaN")
        if (y < 0).any() or (y > 1).any():
            i, j = (int(v) for v in np.argwhere((y < 0) | (y > 1))[0])
            raise DataError(f"split '{split}' row {i}: label {y[i, j]} for model '{data.models[j]}' is outside [0, 1]; rescale or threshold scores into [0, 1]")
        if "costs" in ds.column_names:
            c = np.asarray([[np.nan] * n_models if r is None else r for r in column(ds, "costs")], dtype=np.float64)
            bad = np.isinf(c) | (c < 0)
            if c.shape != (len(ds), n_models) or bad.any():
                i = int(np.argwhere(bad)[0][0]) if c.shape == (len(ds), n_models) else 0
                raise DataError(f"split '{split}' row {i}: the per-query costs must give one finite cost >= 0 per model (NaN = unknown, the model's mean cost is used); fix the cost columns")
    unlabelled = [m for m, seen in zip(data.models, (~np.isnan(data.labels("train"))).any(axis=0)) if not seen]
    if unlabelled:
        raise DataError(f"model {unlabelled[0]!r} has no label in the train split (every score of it is missing{f', as for {unlabelled[1:]}' if unlabelled[1:] else ''}), "
                        "so the router cannot learn it: leave it out of the pool (data.models, or its score column) or give it scores")


def nested_subset(n: int, fraction: float, seed: int) -> list[int]:
    """Indices of a ``fraction`` subset of ``range(n)``, in original order.

    Subsets are prefixes of one seeded permutation, so for one seed the 0.1 subset lies inside the
    0.25 subset, which lies inside the 0.5 subset, and so on.
    """
    if fraction >= 1.0:
        return list(range(n))
    order = np.random.default_rng(seed).permutation(n)
    keep = max(1, math.ceil(fraction * n))
    return sorted(int(i) for i in order[:keep])


def fingerprint(*parts: object) -> str:
    """A short stable hash of JSON-serialisable parts (source hashes, data config)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
