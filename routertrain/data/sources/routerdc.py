"""RouterDC (split2_model7): 10 benchmarks x 7 open 7-8B models, graded scores, with the source's split.

Files: ``datasets/split2_model7/*.json`` under ``data.path`` (or directly under it), each a JSON list
of ``{"question": str, "scores": {model: float}}``. Task = file name without its split suffix
(``mmlu_train.json`` -> mmlu, ``gsm8k-test.json`` -> gsm8k); split = the suffix; files without one
(MATH_prealgebra, ceval, mbpp, javascript) are test-only (out-of-distribution in the paper).
Validation is carved from train by query hash. ``data.subset`` = comma-separated tasks to keep.

Scores are kept as graded labels in [0, 1]: for multiple choice, the probability of the correct
option when the model's top option is correct, else 0 (so label > 0 <=> correct); for generation,
the share of 10 samples that pass. Models missing from a record are missing labels (``data.missing``)
and reported as differing model sets.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from routertrain.data.dataset import DataError
from routertrain.data.sources.assemble import SourceRows
from routertrain.data.sources.files import as_score, find, read_json, rel, require_dir

NAME = "routerdc"
EXPECT = "datasets/split2_model7/*.json lists of {question, scores}"
SUFFIX = re.compile(r"^(?P<task>.+?)[-_](?P<split>train|test)$")


def locate(cfg) -> list[Path]:
    root = require_dir(cfg, NAME, EXPECT)
    sub = root / "datasets" / "split2_model7"
    files = find(sub if sub.is_dir() else root, "*.json", NAME, EXPECT)
    if cfg.subset:
        wanted = [t.strip() for t in cfg.subset.split(",") if t.strip()]
        known = sorted({task_split(p)[0] for p in files})
        unknown = [t for t in wanted if t not in known]
        if unknown:
            raise DataError(f"data.subset names tasks {unknown} that {NAME} does not have; choose from {', '.join(known)}")
        files = [p for p in files if task_split(p)[0] in wanted]
    return files


def task_split(path: Path) -> tuple[str, str]:
    match = SUFFIX.match(path.stem)
    return (match["task"], match["split"]) if match else (path.stem, "test")


def read(cfg, files: list[Path]) -> SourceRows:
    root = Path(cfg.path).expanduser().resolve()
    models: list[str] = []
    records = []  # (label, row, question, scores dict, task, split)
    model_sets = Counter()
    for path in files:
        label = rel(path, root)
        task, split = task_split(path)
        data = read_json(path, label)
        if not isinstance(data, list):
            raise DataError(f"{label}: expected a JSON list of {{question, scores}} records, got {type(data).__name__}")
        for k, r in enumerate(data, start=1):
            if not isinstance(r, dict) or not isinstance(r.get("question"), str) or not isinstance(r.get("scores"), dict):
                raise DataError(f"{label} row {k}: expected {{\"question\": str, \"scores\": {{model: score}}}}; fix or remove the record")
            for m in r["scores"]:
                if m not in models:
                    models.append(m)
            model_sets[(label, tuple(r["scores"]))] += 1
            records.append((label, k, r["question"], r["scores"], task, split))
    scores = np.array([[as_score(s.get(m), label, k, m) for m in models] for label, k, _, s, _, _ in records], dtype=np.float64)
    differing = {f"{label}": [m for m in models if m not in ms] for (label, ms) in model_sets if set(ms) != set(models)}
    return SourceRows(
        models=models,
        queries=[r[2] for r in records],
        scores=scores,
        origins=[f"{label} row {k}" for label, k, *_ in records],
        tasks=[r[4] for r in records],
        splits=[r[5] for r in records],
        issues={"files_missing_models": differing} if differing else {},
        notes=["graded labels kept as-is (multiple choice: probability of the correct option if chosen, else 0)",
               "files without a _train/_test suffix are test-only"],
    )
