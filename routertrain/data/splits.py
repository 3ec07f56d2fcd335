"""Deterministic train / validation / test splits keyed by the query text.

A query's place is decided by a salted SHA-256 hash of its normalised text (lowercased, whitespace
collapsed), so identical and whitespace-variant queries always land in the same split, and the split
does not depend on row order. Within each task (the stratum) the query groups are sorted by hash and
the first ones, up to the requested share of the task's rows, are held out; so every task keeps its
proportions exactly, up to one group's size.

Source splits are respected: rows keep the split the source gives them, and a split the source lacks
(validation, usually) is carved from the source's train rows the same way.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from typing import Optional, Sequence

SPLIT_NAMES = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "training": "train", "validation": "validation", "valid": "validation", "val": "validation",
                 "dev": "validation", "test": "test", "testing": "test"}


def normalize_query(text: str) -> str:
    """Lowercase and collapse runs of whitespace: the identity of a query for splits and duplicates."""
    return " ".join(text.lower().split())


def query_hash(normalized: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}\x00{normalized}".encode("utf-8", "surrogatepass")).hexdigest()


def held_out(keys: Sequence[str], tasks: Optional[Sequence[str]], share: float, salt: str) -> list[bool]:
    """Which rows to hold out: about ``share`` of each task's rows, whole key groups at a time.

    ``keys`` are normalised queries; rows with equal keys are one group and share a fate. A group
    belongs to the stratum of its first row.
    """
    if share <= 0 or not keys:
        return [False] * len(keys)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, rows in groups.items():
        strata[tasks[rows[0]] if tasks is not None else ""].append(key)
    out = [False] * len(keys)
    for stratum_keys in strata.values():
        n_rows = sum(len(groups[k]) for k in stratum_keys)
        target = math.floor(share * n_rows + 0.5)
        taken = 0
        for key in sorted(stratum_keys, key=lambda k: query_hash(k, salt)):
            if taken >= target:
                break
            for i in groups[key]:
                out[i] = True
            taken += len(groups[key])
    return out


def carve(split: list[str], keys: list[str], tasks: Optional[Sequence[str]], target: str, share: float, salt: str) -> None:
    """Move ``share`` of each task's train rows (whole query groups, by hash) to ``target``, in place."""
    train_rows = [i for i, s in enumerate(split) if s == "train"]
    sub_tasks = [tasks[i] for i in train_rows] if tasks is not None else None
    for i, moved in zip(train_rows, held_out([keys[i] for i in train_rows], sub_tasks, share, salt)):
        if moved:
            split[i] = target


def assign_splits(
    queries: Sequence[str],
    tasks: Optional[Sequence[str]],
    source_splits: Optional[Sequence[str]],
    validation_size: float,
    test_size: float,
    seed: int,
) -> tuple[list[str], str]:
    """Split name of every row, and a one-line description of how the split was made.

    Without source splits: ``test_size`` of each task goes to test, then ``validation_size`` of what
    is left (of train, per task) to validation. With source splits, the rows keep them, and a split
    the source lacks is carved from its train rows the same way (test first, then validation). Source
    splits without any train row are ignored (noted in the description).
    """
    keys = [normalize_query(q) for q in queries]
    how = ""
    if source_splits is not None:
        bad = sorted({s for s in source_splits if s not in SPLIT_NAMES})
        if bad:
            raise ValueError(f"unknown source split names {bad}: use train, validation or test")
        if "train" not in source_splits:
            how, source_splits = "the source names no train rows, so its split is ignored; ", None
    if source_splits is None:
        split = ["train"] * len(keys)
        how += (f"query-hash split (sha256, split_seed={seed}), stratified by task: "
                f"test {test_size}, validation {validation_size} of the rest")
        carve(split, keys, tasks, "test", test_size, f"test:{seed}")
        carve(split, keys, tasks, "validation", validation_size, f"validation:{seed}")
        return split, how
    split = list(source_splits)
    given = [s for s in SPLIT_NAMES if s in split]
    how = f"source split ({'/'.join(given)} as given)"
    for target, share in (("test", test_size), ("validation", validation_size)):
        if target not in given:
            carve(split, keys, tasks, target, share, f"{target}:{seed}")
            how += f"; {target} carved from train by query hash (split_seed={seed}, share {share}), stratified by task"
    return split, how
