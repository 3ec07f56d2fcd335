"""Finding and reading source files, with one-line errors that name the file, row and fix.

Text is decoded as UTF-8 with undecodable bytes replaced by U+FFFD (rows holding one are counted in
the build report, not dropped). Row numbers in messages are 1-based: the n-th record of a JSON list,
the line of a JSONL file, the n-th data row of a CSV (header not counted).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from routertrain.data.dataset import DataError


def require_dir(cfg, source: str, expect: str) -> Path:
    """``data.path`` as an existing folder, or a DataError saying what the folder should hold."""
    if not cfg.path:
        raise DataError(f"data.path is not set: point it at the {source} folder ({expect})")
    root = Path(cfg.path).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"data.path={cfg.path} is not a folder: point it at the {source} folder ({expect})")
    return root


def find(root: Path, pattern: str, source: str, expect: str) -> list[Path]:
    files = sorted(p for p in root.glob(pattern) if p.is_file())
    if not files:
        raise DataError(f"no files match {pattern} under {root}: data.path should be the {source} folder ({expect})")
    return files


def rel(path: Path, root: Path | None) -> str:
    try:
        return path.relative_to(root).as_posix() if root is not None else str(path)
    except ValueError:
        return str(path)


def decode(data: bytes) -> str:
    return data.decode("utf-8-sig", errors="replace")


def parse_json(data: bytes, label: str) -> Any:
    try:
        return json.loads(decode(data))
    except json.JSONDecodeError as err:
        raise DataError(f"{label} line {err.lineno} column {err.colno}: invalid JSON ({err.msg}); fix or remove the file") from None


def read_json(path: Path, label: str) -> Any:
    return parse_json(path.read_bytes(), label)


def read_jsonl(path: Path, label: str) -> list[dict]:
    out = []
    for i, line in enumerate(decode(path.read_bytes()).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{label} row {i}: invalid JSON ({err.msg}); fix the line or remove it") from None
        if not isinstance(record, dict):
            raise DataError(f"{label} row {i}: expected a JSON object, got {type(record).__name__}")
        out.append(record)
    return out


def as_score(value: Any, label: str, row: int, column: str) -> float:
    """A score cell as a float: numbers and booleans as-is, empty / None / NaN as missing (NaN)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return float("nan")
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return float(value.strip().lower() == "true")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{label} row {row} column '{column}': score {value!r} is not a number; "
                        "fix the cell or leave it empty (missing)") from None
