"""MMLU-Pro: the benchmark authors' 5-shot CoT outputs of 32 models on its 12,032 test questions.

Files under ``data.path`` (see SOURCE.md of mmlu-pro-outputs):

- ``eval_results/model_outputs_<model>_5shots.zip``: one JSON list per model (29 models);
- ``historical_eval_results_<model>_commit_<sha>.zip``: ``<model>/<category>_result.json`` files
  (gpt4o, deepseek, merged); the ``*summary.json`` files beside them are ignored.

Records are joined on ``question_id``. Label = 1 when the model's extracted ``pred`` equals the
``answer`` of that model's own record (the benchmark was revised over time, so a few files carry
another answer key or option order; grading each model against what it was shown is the only
faithful reading), 0 when it differs or ``pred`` is null (extraction failed). A question a model's
file lacks is a missing label (``data.missing``). Entries of a list that are not records (bare
strings in DeepSeek-Coder-V2's file) are skipped and counted.

Query text = question, then one ``A. option`` line per option. Where files disagree on a question's
text or options (about 180 questions, mostly in ``merged``), the text is taken from the first loaded
model in ``TEXT_PRIORITY``: the 20 models whose files carry the original release text come first, so
any pool holding one of them gets the same text as the full pool. The split is the same too when the
pool holds a model whose file has every question (all of ``MODELS`` but a few do; both named pools
qualify): the split's per-category sizes count the questions read, so a pool of only models that
lack questions (e.g. ``data.models=[deepseek]``, 35 missing) moves a handful of queries (5 to 18 of
12,032 in the pools checked). Task = category (14). No source split,
so the query-hash split applies. Model names are the file-name spellings; ``data.pool=open-weight``
leaves out gpt4o, the two Gemini 1.5 models, jamba-1.5-large and merged (27 models). Only the
files of the selected models are read.
"""

from __future__ import annotations

import re
import zipfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from routertrain.data.dataset import DataError
from routertrain.data.sources.assemble import SourceRows, select_models
from routertrain.data.sources.files import parse_json, rel, require_dir
from routertrain.data.sources.text import format_mcq

NAME = "mmlu-pro"
EXPECT = "eval_results/model_outputs_<model>_5shots.zip and historical_eval_results_<model>_commit_<sha>.zip"
MODELS = [
    "DeepSeek-Coder-V2", "Llama-2-7b-hf", "Llama-2-13b-hf", "Llama-2-70b-hf", "Meta-Llama-3-8B", "Meta-Llama-3-70B",
    "Meta-Llama-3_1-8B", "Meta-Llama-3_1-8B-Instruct", "Meta-Llama-3_1-70B", "Meta-Llama-3_1-70B-Instruct",
    "Mistral-7B-v0.1", "Mistral-7B-v0.2-hf", "Mistral-7B-Instruct-v0.1", "Mistral-7B-Instruct-v0.2", "Mixtral-8x7B-v0.1",
    "Mixtral-8x7B-Instruct-v0.1", "Phi-3-mini-4k-instruct", "Qwen1.5-7B-Chat", "Qwen1.5-72B-Chat", "Qwen1.5-110B",
    "Yi-6B", "Yi-6b-Chat", "Yi-34B", "c4ai-command-r-v01", "gemini-1.5-flash-002", "gemini-1.5-pro-002", "gemma-7b",
    "jamba-1.5-large", "mathstral-7B", "gpt4o", "deepseek", "merged",
]
REVISED_TEXT = ("DeepSeek-Coder-V2", "mathstral-7B", "Meta-Llama-3_1-8B", "Meta-Llama-3_1-8B-Instruct", "Meta-Llama-3_1-70B",
                "Meta-Llama-3_1-70B-Instruct", "gemini-1.5-flash-002", "gemini-1.5-pro-002", "jamba-1.5-large", "merged")
TEXT_PRIORITY = [m for m in MODELS if m not in REVISED_TEXT] + list(REVISED_TEXT)
NOT_OPEN = ("gpt4o", "gemini-1.5-flash-002", "gemini-1.5-pro-002", "jamba-1.5-large", "merged")
POOLS = {"open-weight": [m for m in MODELS if m not in NOT_OPEN], "all": MODELS}
PATTERNS = {
    "eval_results/model_outputs_*_5shots.zip": re.compile(r"model_outputs_(.+)_5shots\.zip$"),
    "historical_eval_results_*_commit_*.zip": re.compile(r"historical_eval_results_(.+)_commit_[0-9a-f]+\.zip$"),
}
REQUIRED = ("question_id", "question", "options", "answer", "category")


def discover(root: Path) -> dict[str, Path]:
    """Model name -> zip, ordered as ``MODELS`` (unknown models after, by name)."""
    found: dict[str, Path] = {}
    for pattern, regex in PATTERNS.items():
        for path in sorted(root.glob(pattern)):
            model = regex.search(path.name).group(1)
            if model in found:
                raise DataError(f"two result zips for model '{model}': {found[model].name} and {path.name}; keep one")
            found[model] = path
    if not found:
        raise DataError(f"no MMLU-Pro result zips under {root}: data.path should hold {EXPECT}")
    order = [m for m in MODELS if m in found] + sorted(m for m in found if m not in MODELS)
    return {m: found[m] for m in order}


def locate(cfg) -> list[Path]:
    root = require_dir(cfg, NAME, EXPECT)
    files = discover(root)
    return [files[m] for m in select_models(cfg, list(files), POOLS, NAME)]


def model_of(path: Path) -> str:
    for regex in PATTERNS.values():
        match = regex.search(path.name)
        if match:
            return match.group(1)
    raise DataError(f"{path.name} is not an MMLU-Pro result zip ({EXPECT})")


def records_of(path: Path, label: str):
    """(member label, index, record) for every entry of the zip's result lists."""
    with zipfile.ZipFile(path) as zf:
        members = [n for n in zf.namelist() if n.endswith(".json") and not n.endswith("summary.json")]
        if not members:
            raise DataError(f"{label} holds no result JSON (expected a .json list or <category>_result.json files)")
        for member in sorted(members):
            where = f"{label}:{member}"
            entries = parse_json(zf.read(member), where)
            if not isinstance(entries, list):
                raise DataError(f"{where}: expected a JSON list of records, got {type(entries).__name__}")
            for k, entry in enumerate(entries):
                yield where, k, entry


def read(cfg, files: list[Path]) -> SourceRows:
    root = Path(cfg.path).expanduser().resolve()
    models = [model_of(p) for p in files]
    correct: dict[str, dict[str, float]] = {m: {} for m in models}
    text: dict[str, tuple[int, str]] = {}  # question id -> (priority of the model it came from, text)
    versions: dict[str, set] = defaultdict(set)
    rank = {m: i for i, m in enumerate(TEXT_PRIORITY)}
    answers: dict[str, set] = defaultdict(set)
    category: dict[str, str] = {}
    non_records, repeated, null_pred = Counter(), Counter(), Counter()
    for model, path in zip(models, files):
        for where, k, r in records_of(path, rel(path, root)):
            if not isinstance(r, dict):
                non_records[model] += 1
                continue
            absent = [key for key in REQUIRED if key not in r]
            if absent:
                raise DataError(f"{where} row {k + 1}: record has no {absent}; expected fields {list(REQUIRED)}")
            if not isinstance(r["options"], list):
                raise DataError(f"{where} row {k + 1} column 'options': expected a list of options, got {type(r['options']).__name__}")
            qid = str(r["question_id"])
            if qid in correct[model]:
                repeated[model] += 1
                continue
            pred = r.get("pred")
            null_pred[model] += pred is None
            correct[model][qid] = float(pred is not None and pred == r["answer"])
            query = format_mcq(str(r["question"]), r["options"])
            versions[qid].add(query)
            if qid not in text or rank.get(model, len(rank)) < text[qid][0]:
                text[qid] = (rank.get(model, len(rank)), query)
            answers[qid].add(str(r["answer"]))
            category.setdefault(qid, str(r["category"]))
    qids = sorted(versions, key=lambda q: (not q.isdigit(), int(q) if q.isdigit() else 0, q))
    scores = np.full((len(qids), len(models)), np.nan)
    for j, m in enumerate(models):
        for i, q in enumerate(qids):
            if q in correct[m]:
                scores[i, j] = correct[m][q]
    queries = [text[q][1] for q in qids]
    n_versions = sum(len(versions[q]) > 1 for q in qids)
    return SourceRows(
        models=models,
        queries=queries,
        scores=scores,
        origins=[f"question_id {q}" for q in qids],
        tasks=[category[q] for q in qids],
        ids=qids,
        pools={k: [m for m in v if m in models] for k, v in POOLS.items()},  # the files read: locate() applied data.pool already
        issues={
            "non_record_entries": dict(non_records),
            "repeated_records": dict(repeated),
            "null_predictions_scored_wrong": {m: int(c) for m, c in null_pred.items() if c},
            "questions_with_several_text_versions": n_versions,
            "questions_with_several_answer_keys": sum(len(answers[q]) > 1 for q in qids),
            "questions_per_model": {m: len(correct[m]) for m in models},
        },
        notes=[
            "label = pred == answer of the model's own record (null pred = wrong)",
            "query = question + 'A. option' lines; where files disagree, the text of the first loaded model in TEXT_PRIORITY",
        ],
    )
