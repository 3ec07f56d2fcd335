"""RouterDC (split2_model7) as its paper runs it: 7 open 7-8B models, trained on five tasks.

Files: ``datasets/split2_model7/*.json`` under ``data.path`` (or directly under it), each a JSON list
of ``{"question": str, "scores": {model: float}}``. Task = file name without its split suffix
(``mmlu_train.json`` -> mmlu, ``gsm8k-test.json`` -> gsm8k); split = the suffix; files without one
(MATH_prealgebra, ceval, mbpp, javascript) are test-only.

Settings (the RouterDC paper, arXiv:2409.19886):

- in-distribution (``data=routerdc``): train on the training files of MMLU, GSM8K, CMMLU,
  ARC-Challenge and HumanEval (``data.subset`` defaults to these five), test on their five test
  files; validation is carved from train by query hash. Results are macro averages (each task
  weighs the same), as the paper reports them.
- out-of-distribution (``data=routerdc-ood``): the same training data, tested on MATH prealgebra,
  MBPP and C-Eval (``data.test_subset``).
- other tasks (arc_easy, javascript) are reachable through ``data.subset`` / ``data.test_subset``.

Labels (``data.labels``): ``correctness`` (default, the paper's) scores a multiple-choice answer
(mmlu, cmmlu, ceval, arc_*) 1 when correct and 0 otherwise: the source stores the probability of
the correct option when the model's top option is correct, else 0, so ``score > 0`` means correct;
generation tasks keep the share of 10 samples that pass, and MATH its 0/1. ``graded`` keeps the
source's scores as they are (multiple choice then measures confidence, not correctness). Models
missing from a record are missing labels (``data.missing``) and reported as differing model sets.
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
IN_DISTRIBUTION = ("mmlu", "gsm8k", "cmmlu", "arc_challenge", "humaneval")  # trained and tested on in the paper
OUT_OF_DISTRIBUTION = ("MATH_prealgebra", "mbpp", "ceval")  # tested with routers trained on the five above
MULTIPLE_CHOICE = ("mmlu", "cmmlu", "ceval", "arc_challenge", "arc_easy")  # score = P(correct option) if chosen, else 0


def task_list(text: str | None, default: tuple[str, ...], key: str, known: list[str]) -> list[str]:
    wanted = [t.strip() for t in text.split(",") if t.strip()] if text else list(default)
    unknown = [t for t in wanted if t not in known]
    if unknown:
        raise DataError(f"{key} names tasks {unknown} that {NAME} does not have; choose from {', '.join(known)}")
    return wanted


def locate(cfg) -> list[Path]:
    """The training files of the training tasks and the test files of the test tasks."""
    root = require_dir(cfg, NAME, EXPECT)
    sub = root / "datasets" / "split2_model7"
    files = find(sub if sub.is_dir() else root, "*.json", NAME, EXPECT)
    known = sorted({task_split(p)[0] for p in files})
    train = task_list(cfg.subset, IN_DISTRIBUTION, "data.subset", known)
    test = task_list(cfg.test_subset, tuple(train), "data.test_subset", known)
    chosen = [p for p in files if task_split(p) in {(t, "train") for t in train} | {(t, "test") for t in test}]
    if not any(task_split(p)[1] == "train" for p in chosen):
        raise DataError(f"data.subset={','.join(train)} has no training files in {NAME} (test-only tasks: {', '.join(OUT_OF_DISTRIBUTION)}, javascript); add a task with a _train file")
    return chosen


LABEL_NOTES = {
    "correctness": "labels = correctness, as the RouterDC paper scores: multiple choice 1/0 (score > 0), generation the share of passing samples",
    "graded": "graded labels kept as-is (multiple choice: probability of the correct option if chosen, else 0; data.labels=graded)",
}


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
    if cfg.labels == "correctness":
        choice = np.array([r[4] in MULTIPLE_CHOICE for r in records], dtype=bool)
        scores[choice] = np.where(np.isnan(scores[choice]), np.nan, (scores[choice] > 0).astype(np.float64))
    differing = {f"{label}": [m for m in models if m not in ms] for (label, ms) in model_sets if set(ms) != set(models)}
    return SourceRows(
        models=models,
        queries=[r[2] for r in records],
        scores=scores,
        origins=[f"{label} row {k}" for label, k, *_ in records],
        tasks=[r[4] for r in records],
        splits=[r[5] for r in records],
        issues={"files_missing_models": differing} if differing else {},
        notes=[LABEL_NOTES[cfg.labels], "files without a _train/_test suffix are test-only"],
    )
