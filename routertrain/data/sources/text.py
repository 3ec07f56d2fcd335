"""Query text as the router sees it: multiple-choice formatting, prompt lists, shared few-shot prefixes.

- ``format_mcq``: a question followed by one ``A. option`` line per option (letters A-J), the same
  layout as RouteLLM's MMLU prompts and RouterDC's multiple-choice questions.
- ``parse_prompt_list``: RouterBench stores each prompt as a stringified Python list of strings;
  it is parsed with ``ast.literal_eval`` (never ``eval``), identical consecutive parts (a RouterBench
  quirk: the same prompt twice) are collapsed, and the parts are joined with a blank line.
- ``strip_shared_prefix``: few-shot exemplars repeated verbatim at the start of every prompt of a
  task carry no routing signal but fill the encoder's token budget (for RouterBench ARC, 1,650 of
  ~2,000 characters); the longest prefix shared by all of a task's prompts, cut back to a blank-line
  boundary, is removed.
"""

from __future__ import annotations

import ast
import os
import string
from collections import defaultdict
from typing import Optional, Sequence

LETTERS = string.ascii_uppercase


def format_mcq(question: str, options: Sequence[str]) -> str:
    if len(options) > len(LETTERS):
        raise ValueError(f"{len(options)} options: at most {len(LETTERS)} can be lettered")
    lines = [question.strip()] + [f"{LETTERS[i]}. {str(opt).strip()}" for i, opt in enumerate(options)]
    return "\n".join(lines)


def clean_text(text: str) -> str:
    """Replace lone surrogates (undecodable escapes in JSON) with U+FFFD so the text encodes as UTF-8."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def looks_like_list(text: str) -> bool:
    text = text.strip()
    return text.startswith("[") and text.endswith("]")


def parse_prompt_list(text: str) -> tuple[str, int]:
    """A stringified list of prompt parts as one query, and how many repeated parts were collapsed.

    Raises ValueError when the text is not a Python/JSON list of strings.
    """
    value = ast.literal_eval(text.strip())
    if isinstance(value, str):
        return value, 0
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a list of strings")
    return join_parts(list(value))


def join_parts(parts: list[str]) -> tuple[str, int]:
    kept = [p for i, p in enumerate(parts) if i == 0 or p != parts[i - 1]]
    return "\n\n".join(kept), len(parts) - len(kept)


def strip_shared_prefix(queries: list[str], tasks: Optional[Sequence[str]]) -> tuple[list[str], dict[str, int]]:
    """Remove, per task, the longest blank-line-bounded prefix that every query of the task starts with.

    Returns the new queries and the number of characters removed per task (tasks with nothing
    removed are left out). A task with a single query, or where stripping would empty a query, is
    left alone.
    """
    by_task: dict[str, list[int]] = defaultdict(list)
    for i in range(len(queries)):
        by_task[tasks[i] if tasks is not None else ""].append(i)
    out = list(queries)
    removed = {}
    for task, rows in by_task.items():
        if len(rows) < 2:
            continue
        prefix = os.path.commonprefix([queries[i] for i in rows])
        cut = prefix.rfind("\n\n")
        if cut < 0:
            continue
        cut += 2
        if any(not queries[i][cut:].strip() for i in rows):
            continue
        for i in rows:
            out[i] = queries[i][cut:]
        removed[task] = cut
    return out, removed
