"""RouterBench 0-shot subset from the RouterDC repo: ARC-Challenge, MBPP, Winogrande; 11 models with costs.

Files: ``datasets/routerbench_zs/*_{train,test}.csv`` under ``data.path`` (or directly under it).
Columns: ``sample_id, prompt, eval_name``, one 0/1 score column per model, ``<model>|total_cost``
(USD for that query), ``<model>|model_response`` and ``oracle_model_to_route_to`` (both unused).

- split: the file's ``_train`` / ``_test`` suffix; validation carved from train by query hash.
- query: ``prompt`` is a stringified list, parsed with ``ast.literal_eval``; repeated identical
  parts are collapsed (counted) and parts joined by a blank line; then the few-shot exemplars every
  prompt of a task starts with are removed (see ``text.strip_shared_prefix``; characters removed per
  task are reported). Task = ``eval_name``; id = ``sample_id`` (duplicated ids are reported, kept).
- costs: per-query costs in a ``costs`` column (model order), and ``RoutingData.costs`` = each
  model's mean per-query cost over the train split.
- NaN scores follow ``data.missing``. ``data.pool=open-weight`` keeps the 6 open models.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from routertrain.data.dataset import DataError
from routertrain.data.sources.assemble import SourceRows
from routertrain.data.sources.files import as_score, decode, find, rel, require_dir
from routertrain.data.sources.text import parse_prompt_list, strip_shared_prefix

NAME = "routerbench"
EXPECT = "datasets/routerbench_zs/<task>_{train,test}.csv"
META = ("", "Unnamed: 0", "sample_id", "prompt", "eval_name", "oracle_model_to_route_to")
COST = "{model}|total_cost"
OPEN = ["WizardLM/WizardLM-13B-V1.2", "meta/code-llama-instruct-34b-chat", "meta/llama-2-70b-chat",
        "mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat", "zero-one-ai/Yi-34B-Chat"]


def locate(cfg) -> list[Path]:
    root = require_dir(cfg, NAME, EXPECT)
    sub = root / "datasets" / "routerbench_zs"
    return find(sub if sub.is_dir() else root, "*.csv", NAME, EXPECT)


def split_of(path: Path) -> str:
    for split in ("train", "test"):
        if path.stem.endswith("_" + split):
            return split
    raise DataError(f"{path.name}: the file name must end in _train.csv or _test.csv (the source's split)")


def read(cfg, files: list[Path]) -> SourceRows:
    root = Path(cfg.path).expanduser().resolve()
    models: list[str] = []
    queries, scores, costs, origins, tasks, ids, splits = [], [], [], [], [], [], []
    collapsed, model_sets = 0, {}
    csv.field_size_limit(2**31 - 1)  # model responses can exceed the default 128 KiB per cell
    for path in files:
        label = rel(path, root)
        reader = csv.DictReader(io.StringIO(decode(path.read_bytes())))
        header = reader.fieldnames or []
        for column in ("sample_id", "prompt", "eval_name"):
            if column not in header:
                raise DataError(f"{label}: no '{column}' column (columns: {header[:6]}...); is this a RouterBench CSV?")
        file_models = [c for c in header if c not in META and "|" not in c]
        for m in file_models:
            if COST.format(model=m) not in header:
                raise DataError(f"{label}: no '{COST.format(model=m)}' column for model '{m}'")
            if m not in models:
                models.append(m)
        model_sets[label] = file_models
        for k, row in enumerate(reader, start=1):
            try:
                text, n = parse_prompt_list(row["prompt"])
            except (ValueError, SyntaxError, TypeError):
                raise DataError(f"{label} row {k} column 'prompt': not a stringified list of strings; fix the cell") from None
            collapsed += n
            queries.append(text)
            scores.append({m: as_score(row[m], label, k, m) for m in file_models})
            costs.append({m: as_score(row[COST.format(model=m)], label, k, COST.format(model=m)) for m in file_models})
            origins.append(f"{label} row {k}")
            tasks.append(row["eval_name"])
            ids.append(row["sample_id"])
            splits.append(split_of(path))
    score_matrix = np.array([[s.get(m, np.nan) for m in models] for s in scores], dtype=np.float64)
    cost_matrix = np.array([[c.get(m, np.nan) for m in models] for c in costs], dtype=np.float64)
    queries, removed = strip_shared_prefix(queries, tasks)
    differing = {f: [m for m in models if m not in ms] for f, ms in model_sets.items() if set(ms) != set(models)}
    issues = {"repeated_prompt_parts_collapsed": collapsed, "fewshot_prefix_chars_removed": removed,
              "nan_scores": int(np.isnan(score_matrix).sum()), "missing_costs": int(np.isnan(cost_matrix).sum())}
    if differing:
        issues["files_missing_models"] = differing
    return SourceRows(
        models=models, queries=queries, scores=score_matrix, origins=origins, tasks=tasks, ids=ids, splits=splits,
        row_costs=cost_matrix, pools={"open-weight": OPEN}, issues=issues,
        notes=["query = parsed prompt list without the few-shot exemplars shared by every prompt of its task"],
    )
