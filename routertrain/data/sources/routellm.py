"""RouteLLM evaluation sets: MMLU, GSM8K and MT-Bench answered by a weak and a strong model.

Files under ``data.path`` (the ``routellm-evals`` folder, or its ``routellm/evals`` inside):
``mmlu/responses/mmlu_<subject>.csv``, ``gsm8k/gsm8k_responses.csv`` (columns ``prompt`` and one
boolean per model), ``mt_bench/question.jsonl`` + ``mt_bench/judgements.jsonl`` (GPT-4 judge,
1-10 per turn), and ``<benchmark>/contaminated_prompts.jsonl``.

``data.subset`` = comma-separated benchmarks among mmlu, gsm8k, mt_bench (null = all three).

- Prompts listed in ``contaminated_prompts.jsonl`` (``eval_prompt``, overlapping RouteLLM's router
  training data) are dropped and counted, as RouteLLM does when evaluating.
- MMLU / GSM8K: label = the boolean (correct). Task = the MMLU subject file (``mmlu_anatomy``) or
  ``gsm8k``.
- MT-Bench: one row per question; query = the first user turn (what a router sees); label = mean of
  the judge's scores over the two turns, rescaled from 1-10 to [0, 1] as (score - 1) / 9. Task =
  ``mt_bench_<category>``.
- Models: gpt-4-1106-preview (strong), then mistralai/Mixtral-8x7B-Instruct-v0.1 (weak).
- No source split (evaluation sets only): the query-hash split applies.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from routertrain.data.dataset import DataError
from routertrain.data.sources.assemble import SourceRows
from routertrain.data.sources.files import as_score, decode, find, read_jsonl, rel, require_dir

NAME = "routellm"
BENCHMARKS = ("mmlu", "gsm8k", "mt_bench")
EXPECT = "mmlu/responses/*.csv, gsm8k/gsm8k_responses.csv, mt_bench/{question,judgements}.jsonl"
FILES = {
    "mmlu": ["mmlu/responses/mmlu_*.csv", "mmlu/contaminated_prompts.jsonl"],
    "gsm8k": ["gsm8k/gsm8k_responses.csv", "gsm8k/contaminated_prompts.jsonl"],
    "mt_bench": ["mt_bench/question.jsonl", "mt_bench/judgements.jsonl", "mt_bench/contaminated_prompts.jsonl"],
}
JUDGE_RANGE = (1.0, 10.0)
MODELS = ["gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"]  # strong first, in every subset


def benchmarks(cfg) -> list[str]:
    wanted = [b.strip() for b in (cfg.subset or ",".join(BENCHMARKS)).split(",") if b.strip()]
    unknown = [b for b in wanted if b not in BENCHMARKS]
    if unknown:
        raise DataError(f"data.subset names {unknown}: routellm has {', '.join(BENCHMARKS)} (comma-separated)")
    return wanted


def evals_dir(cfg) -> Path:
    root = require_dir(cfg, NAME, EXPECT)
    inner = root / "routellm" / "evals"
    return inner if inner.is_dir() else root


def locate(cfg) -> list[Path]:
    base = evals_dir(cfg)
    return [p for b in benchmarks(cfg) for pattern in FILES[b] for p in find(base, pattern, NAME, EXPECT)]


def contaminated(path: Path, label: str) -> set[str]:
    records = read_jsonl(path, label)
    for k, r in enumerate(records, start=1):
        if not isinstance(r.get("eval_prompt"), str):
            raise DataError(f"{label} row {k}: no 'eval_prompt' string; expected RouteLLM's contaminated_prompts format")
    return {r["eval_prompt"] for r in records}


def read_boolean_csvs(files: list[Path], root: Path, bench: str) -> list[tuple]:
    """(prompt, {model: score}, origin, task) per row of RouteLLM response CSVs; MMLU's task is the subject file."""
    rows = []
    csv.field_size_limit(2**31 - 1)
    for path in files:
        label = rel(path, root)
        reader = csv.DictReader(io.StringIO(decode(path.read_bytes())))
        header = reader.fieldnames or []
        if "prompt" not in header:
            raise DataError(f"{label}: no 'prompt' column (columns: {header}); expected RouteLLM's response CSV")
        models = [c for c in header if c != "prompt" and not c.endswith("_response")]
        for k, row in enumerate(reader, start=1):
            task = path.stem if bench == "mmlu" else bench
            rows.append((row["prompt"], {m: as_score(row[m], label, k, m) for m in models}, f"{label} row {k}", task))
    return rows


def read_mt_bench(base: Path, root: Path, issues: dict) -> list[tuple]:
    q_label, j_label = rel(base / "mt_bench/question.jsonl", root), rel(base / "mt_bench/judgements.jsonl", root)
    questions = read_jsonl(base / "mt_bench/question.jsonl", q_label)
    judged: dict[tuple, dict] = defaultdict(dict)
    repeated = 0
    for k, r in enumerate(read_jsonl(base / "mt_bench/judgements.jsonl", j_label), start=1):
        for key in ("question_id", "model", "turn", "score"):
            if key not in r:
                raise DataError(f"{j_label} row {k}: no '{key}' field; expected FastChat single-answer judgements")
        score = as_score(r["score"], j_label, k, "score")
        if score == -1:  # FastChat's marker for a judgement it could not parse
            score = float("nan")
        if not np.isnan(score) and not JUDGE_RANGE[0] <= score <= JUDGE_RANGE[1]:
            raise DataError(f"{j_label} row {k} column 'score': {score} is outside the judge's 1-10 scale; fix the record")
        turns = judged[(str(r["question_id"]), r["model"])]
        if str(r["turn"]) in turns:
            repeated += 1
            continue
        turns[str(r["turn"])] = score
    issues["mt_bench_repeated_judgements"] = repeated
    models = list(dict.fromkeys(m for _, m in judged))
    rows = []
    for k, q in enumerate(questions, start=1):
        if not q.get("turns") or "question_id" not in q:
            raise DataError(f"{q_label} row {k}: expected question_id and a non-empty 'turns' list")
        qid = str(q["question_id"])
        scores = {}
        for m in models:
            per_turn = [s for s in judged.get((qid, m), {}).values() if not np.isnan(s)]
            scores[m] = (np.mean(per_turn) - 1.0) / 9.0 if per_turn else float("nan")
        rows.append((q["turns"][0], scores, f"{q_label} row {k} (question_id {qid})", f"mt_bench_{q.get('category', 'unknown')}"))
    return rows


def read(cfg, files: list[Path]) -> SourceRows:
    base = evals_dir(cfg)
    root = Path(cfg.path).expanduser().resolve()
    rows, dropped, issues = [], Counter(), {}
    for bench in benchmarks(cfg):
        if bench == "mt_bench":
            bench_rows = read_mt_bench(base, root, issues)
        else:
            csvs = [p for p in files if p.suffix == ".csv" and p.is_relative_to(base / bench)]
            bench_rows = read_boolean_csvs(csvs, root, bench)
        path = base / bench / "contaminated_prompts.jsonl"
        banned = contaminated(path, rel(path, root))
        hits = [r for r in bench_rows if r[0] in banned]
        dropped["contaminated"] += len(hits)
        issues[f"{bench}_contaminated_prompts"] = {"listed": len(banned), "rows_dropped": len(hits),
                                                   "unmatched": len(banned - {r[0] for r in hits})}
        rows += [r for r in bench_rows if r[0] not in banned]
    seen = {m for r in rows for m in r[1]}
    models = [m for m in MODELS if m in seen] + sorted(seen - set(MODELS))
    mt_note = "MT-Bench label = mean judge score over both turns, (score - 1) / 9; query = first turn"
    return SourceRows(
        models=models,
        queries=[r[0] for r in rows],
        scores=np.array([[r[1].get(m, np.nan) for m in models] for r in rows], dtype=np.float64).reshape(len(rows), len(models)),
        origins=[r[2] for r in rows],
        tasks=[r[3] for r in rows],
        rows_read=len(rows) + sum(dropped.values()),
        dropped=dict(dropped),
        issues=issues,
        notes=[mt_note] if "mt_bench" in benchmarks(cfg) else [],
    )
