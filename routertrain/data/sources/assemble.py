"""From rows read out of source files to a ``RoutingData``, reporting every cleaning decision.

A reader returns ``SourceRows`` (query text, raw scores with NaN for missing, optional task, id,
source split and per-query costs). ``assemble`` then, in this order:

1. replaces undecodable characters (counted) and assigns every row read to a split (see
   ``routertrain.data.splits``) before anything is dropped, so narrowing the pool or changing the
   missing-score policy never moves a query to another split (for sources whose readers read only
   the selected models' files, as MMLU-Pro's, the rows read can differ: see that reader);
2. narrows the pool to ``data.pool`` / ``data.models``;
3. checks scores against the source's declared range (a bad file is a one-line ``DataError`` naming
   file, row and column) and maps them to labels (as-is, threshold or rescale);
4. drops, counting each reason: empty queries; rows folded into another because they are one
   query split in pieces (same text and id, complementary labels; see ``merge_complementary``);
   missing scores (``data.missing``: mask keeps the row with a ``label_mask``, drop removes it, fail
   raises); rows with no label left; non-test copies of queries that the source also puts in its
   test (or validation) split (they would leak; ``data.keep_test_duplicates=true`` keeps them, only
   to reproduce someone else's split);
5. reports duplicated queries (normalised text) and ids, which are kept, and warns when the test
   split covers fewer tasks than train;
6. attaches costs: per-query costs from the files as a ``costs`` column, with the dataset's cost per
   model = mean over the kept train rows; or ``data.costs`` where the files have none.

The report is printed (stderr) and stored in ``RoutingData.info["build"]``.
"""

from __future__ import annotations

import difflib
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from datasets import Dataset, DatasetDict, Features, Sequence, Value

from routertrain.data.dataset import SPLITS, DataError, RoutingData
from routertrain.data.sources.text import clean_text
from routertrain.data.splits import assign_splits, normalize_query


@dataclass
class SourceRows:
    models: list[str]  # model names, in the source's order
    queries: list[str]
    scores: np.ndarray  # (N, M) raw scores, NaN = missing
    origins: list[str]  # where each row came from ("file row 12"), for error messages
    columns: Optional[list[str]] = None  # the source column (or file) holding each model's scores
    tasks: Optional[list[str]] = None
    ids: Optional[list[str]] = None
    splits: Optional[list[str]] = None  # the source's split of each row (train/validation/test)
    row_costs: Optional[np.ndarray] = None  # (N, M) cost of each model on each query
    score_range: tuple[float, float] = (0.0, 1.0)  # declared range of the raw scores
    label_map: str = "as-is"  # as-is, threshold or rescale
    threshold: float = 0.5
    rows_read: Optional[int] = None  # rows in the files, including rows the reader left out
    dropped: dict = field(default_factory=dict)  # rows the reader left out, by reason
    issues: dict = field(default_factory=dict)  # reader-specific findings
    notes: list = field(default_factory=list)  # documented choices of the reader
    pools: dict = field(default_factory=dict)  # named model pools of the source


def nearest(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def select_models(cfg, available: list[str], pools: dict[str, list[str]], source: str) -> list[str]:
    """The pool after ``data.pool`` then ``data.models`` (kept in the order given)."""
    base = list(available)
    if cfg.pool:
        if cfg.pool not in pools:
            names = ", ".join(pools) or "none"
            raise DataError(f"unknown pool '{cfg.pool}' for {source}{nearest(cfg.pool, list(pools))}: named pools are {names}")
        absent = [m for m in pools[cfg.pool] if m not in available]
        if absent:
            raise DataError(f"pool '{cfg.pool}' needs models {absent} that the {source} files do not have; check data.path")
        base = [m for m in available if m in pools[cfg.pool]]
    if not cfg.models:
        return base
    for m in cfg.models:
        if m not in base:
            where = f"pool '{cfg.pool}'" if cfg.pool else f"the {source} files"
            raise DataError(f"data.models names '{m}', which is not in {where}{nearest(m, base)}; available: {', '.join(base)}")
    if len(set(cfg.models)) != len(cfg.models):
        raise DataError(f"data.models repeats a model: {list(cfg.models)}; list each model once")
    return list(cfg.models)


def to_labels(scores: np.ndarray, label_map: str, lo: float, hi: float, threshold: float) -> np.ndarray:
    if label_map == "threshold":
        return np.where(np.isnan(scores), np.nan, (scores >= threshold).astype(np.float64))
    if label_map == "rescale":
        if hi <= lo:
            raise DataError(f"score range [{lo}, {hi}] is empty: set data.table.score_max above data.table.score_min")
        return (scores - lo) / (hi - lo)
    return scores


def check_range(scores: np.ndarray, lo: float, hi: float, origins: list[str], columns: list[str]) -> None:
    bad = np.argwhere((scores < lo) | (scores > hi))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        raise DataError(
            f"{origins[i]} column '{columns[j]}': score {scores[i, j]} is outside the declared range [{lo}, {hi}] "
            f"({len(bad)} such cells); set data.table.score_min/score_max (label_map=rescale) or fix the file"
        )


def merge_complementary(keys, ids, labels: np.ndarray, row_costs, split: list[str], keep: np.ndarray) -> np.ndarray:
    """Fold rows that are one query split in pieces (same text and id, labels that fill each other's gaps).

    RouterBench, for one, has a few questions twice under one ``sample_id``: one row scored by
    gpt-3.5 only, the other by every model but gpt-3.5. Such a group becomes one row (in the
    group's test, else validation, else train position); the other rows are returned for dropping.
    Labels and costs of the merged row come from the rows that observed them. Groups whose observed
    labels disagree, or that fill no gap, are left alone (and reported as duplicates).
    """
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i in np.flatnonzero(keep):
        groups[(keys[i], ids[i] if ids is not None else None)].append(int(i))
    out = np.zeros(len(keys), dtype=bool)
    rank = {"test": 0, "validation": 1, "train": 2}
    for rows in groups.values():
        if len(rows) < 2:
            continue
        block = labels[rows]
        observed = ~np.isnan(block)
        spread = np.nanmax(np.where(observed, block, -np.inf), axis=0) - np.nanmin(np.where(observed, block, np.inf), axis=0)
        conflict = (observed.sum(axis=0) > 1) & (spread > 0)
        fills_gap = (observed.any(axis=0) & ~observed.all(axis=0)).any()
        if conflict.any() or not fills_gap:
            continue
        target = min(rows, key=lambda i: (rank[split[i]], i))
        for j in np.flatnonzero(np.isnan(labels[target])):
            donor = next((i for i in rows if not np.isnan(labels[i, j])), None)
            if donor is not None:
                labels[target, j] = labels[donor, j]
                if row_costs is not None:
                    row_costs[target, j] = row_costs[donor, j]
        out[[i for i in rows if i != target]] = True
    return out


def duplicate_report(keys: list[str], labels: np.ndarray) -> dict:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    dup = [rows for rows in groups.values() if len(rows) > 1]
    conflicting = sum(1 for rows in dup if not all(np.array_equal(labels[rows[0]], labels[r], equal_nan=True) for r in rows[1:]))
    return {"groups": len(dup), "rows": sum(len(r) for r in dup), "groups_with_different_labels": conflicting}


def assemble(cfg, rows: SourceRows, name: str) -> RoutingData:
    n = len(rows.queries)
    columns = rows.columns or rows.models
    queries = [clean_text(q) if isinstance(q, str) else "" for q in rows.queries]
    issues = dict(rows.issues)
    issues["undecodable_text_rows"] = sum("\ufffd" in q for q in queries)
    split, how = assign_splits(queries, rows.tasks, rows.splits, cfg.validation_size, cfg.test_size, cfg.split_seed)

    models = select_models(cfg, rows.models, rows.pools, name)
    idx = [rows.models.index(m) for m in models]
    raw = np.asarray(rows.scores, dtype=np.float64).reshape(n, len(rows.models))[:, idx]
    lo, hi = rows.score_range
    check_range(raw, lo, hi, rows.origins, [columns[j] for j in idx])
    labels = to_labels(raw, rows.label_map, lo, hi, rows.threshold)

    dropped = Counter(rows.dropped)
    keep = np.ones(n, dtype=bool)

    def drop(mask: np.ndarray, reason: str) -> None:
        mask = mask & keep
        if mask.any():
            dropped[reason] += int(mask.sum())
            keep[mask] = False

    drop(np.array([not q.strip() for q in queries], dtype=bool), "empty_query")
    keys = [normalize_query(q) for q in queries]
    row_costs = None if rows.row_costs is None else np.asarray(rows.row_costs, dtype=np.float64)[:, idx]
    merged = merge_complementary(keys, rows.ids, labels, row_costs, split, keep)
    drop(merged, "merged_into_duplicate")
    missing = np.isnan(labels)
    if cfg.missing == "fail" and (missing & keep[:, None]).any():
        i, j = (int(v) for v in np.argwhere(missing & keep[:, None])[0])
        raise DataError(
            f"{rows.origins[i]} column '{columns[idx[j]]}': missing score ({int((missing & keep[:, None]).sum())} missing in all); "
            "set data.missing=mask (ignore missing labels) or data.missing=drop (drop those rows)"
        )
    if cfg.missing == "drop":
        drop(missing.any(axis=1), "missing_score")
    drop(missing.all(axis=1), "no_observed_label")

    where: dict[str, set] = defaultdict(set)
    for i in np.flatnonzero(keep):
        where[keys[i]].add(split[i])
    if cfg.keep_test_duplicates:
        issues["kept_duplicates_of_test_queries"] = int(sum(split[i] != "test" and "test" in where[keys[i]] for i in np.flatnonzero(keep)))
    else:
        drop(np.array([split[i] != "test" and "test" in where[keys[i]] for i in range(n)]), "duplicate_of_test_query")
        drop(np.array([split[i] == "train" and "validation" in where[keys[i]] for i in range(n)]), "duplicate_of_validation_query")

    kept = np.flatnonzero(keep)
    issues["duplicate_queries"] = duplicate_report([keys[i] for i in kept], labels[kept])
    if rows.ids is not None:
        counts = Counter(rows.ids)
        repeated = sorted(k for k, c in counts.items() if c > 1)
        issues["duplicate_ids"] = {"ids": len(repeated), "rows": sum(counts[k] for k in repeated), "examples": repeated[:5]}
    if rows.tasks is not None:
        train_tasks = {rows.tasks[i] for i in kept if split[i] == "train"}
        absent = sorted(train_tasks - {rows.tasks[i] for i in kept if split[i] == "test"})
        if absent:
            issues["warning_test_lacks_train_tasks"] = f"the test split has no queries of {len(absent)} of {len(train_tasks)} training tasks: {', '.join(map(str, absent[:8]))}"
    n_missing = int(missing[kept].sum())
    if n_missing:
        issues["masked_labels"] = {"cells": n_missing, "rows": int(missing[kept].any(axis=1).sum()),
                                   "per_model": {m: int(c) for m, c in zip(models, missing[kept].sum(axis=0)) if c}}

    costs, cost_note = dataset_costs(cfg, models, row_costs, [i for i in kept if split[i] == "train"])
    notes = list(rows.notes) + ([cost_note] if cost_note else [])

    use_mask = bool(missing[kept].any())
    splits = {}
    for s in SPLITS:
        sel = [int(i) for i in kept if split[i] == s]
        splits[s] = make_split(sel, queries, labels, missing, rows, None if cfg.costs else row_costs, use_mask)
    report = {
        "source": name,
        "rows_read": int(rows.rows_read if rows.rows_read is not None else n),
        "kept": {s: len(splits[s]) for s in SPLITS} | {"total": int(sum(len(d) for d in splits.values()))},
        "dropped": dict(sorted(dropped.items())),
        "split": how,
        "missing_policy": cfg.missing,
        "issues": issues,
        "notes": notes,
    }
    print_report(report)
    return RoutingData(splits=DatasetDict(splits), models=models, costs=costs, name=name, info={"build": report})


def dataset_costs(cfg, models: list[str], row_costs: Optional[np.ndarray], train_rows: list[int]) -> tuple[Optional[list[float]], str]:
    if cfg.costs:
        absent = [m for m in models if m not in cfg.costs]
        if absent:
            raise DataError(f"data.costs has no cost for {absent}; give one cost per model of the pool")
        extra = sorted(set(cfg.costs) - set(models))
        note = "costs from data.costs" + (" (overriding the files' per-query costs)" if row_costs is not None else "")
        return [float(cfg.costs[m]) for m in models], note + (f"; ignored costs of models not in the pool: {extra}" if extra else "")
    if row_costs is None:
        return None, ""
    if not train_rows:
        raise DataError("the train split is empty, so model costs (mean per-query cost over train) cannot be computed")
    train = row_costs[train_rows]
    unpriced = [m for m, seen in zip(models, np.isfinite(train).any(axis=0)) if not seen]
    if unpriced:
        raise DataError(f"no train query has a cost for {unpriced[:3]}, so its mean cost is unknown; give costs with data.costs (model: cost) or drop the model")
    means = np.nanmean(train, axis=0)
    return [float(c) for c in means], "dataset costs = mean per-query cost over the train split; per-query costs in the 'costs' column"


def make_split(sel, queries, labels, missing, rows: SourceRows, row_costs, use_mask: bool) -> Dataset:
    cols = {"query": [queries[i] for i in sel], "labels": np.nan_to_num(labels[sel], nan=0.0).astype(np.float32).tolist()}
    feats = {"query": Value("string"), "labels": Sequence(Value("float32"))}
    if use_mask:
        cols["label_mask"] = (~missing[sel]).astype(np.int8).tolist()
        feats["label_mask"] = Sequence(Value("int8"))
    for key, values in (("task", rows.tasks), ("id", rows.ids)):
        if values is not None:
            cols[key] = [str(values[i]) for i in sel]
            feats[key] = Value("string")
    if row_costs is not None:
        cols["costs"] = row_costs[sel].astype(np.float32).tolist()
        feats["costs"] = Sequence(Value("float32"))
    return Dataset.from_dict(cols, features=Features(feats))


def print_report(r: dict) -> None:
    kept = r["kept"]
    dropped = ", ".join(f"{k} {v}" for k, v in r["dropped"].items()) or "none"
    lines = [
        f"[data] {r['source']}: read {r['rows_read']} rows; kept {kept['total']} (train {kept['train']}, "
        f"validation {kept['validation']}, test {kept['test']}); dropped: {dropped}",
        f"[data]   split: {r['split']}",
    ]
    for key, value in r["issues"].items():
        if value not in (0, {}, [], None) and not (isinstance(value, dict) and value.get("groups") == 0):
            lines.append(f"[data]   {key}: {value}")
    lines += [f"[data]   note: {note}" for note in r["notes"]]
    print("\n".join(lines), file=sys.stderr)
