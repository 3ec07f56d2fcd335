r"""The generic table loader (``data.name=table``): any (query, per-model scores) table, by config alone.

Where the rows come from:

- ``data.path`` set: ``data.table.files`` = comma-separated globs under it (CSV, JSON list of
  records, JSONL, parquet; format from ``table.format`` or each file's extension). Nested JSON objects
  are flattened with dots (``{"scores": {"m": 1}}`` -> column ``scores.m``).
- ``data.path`` null: ``data.table.files`` is a Hugging Face dataset id (or a local dataset folder)
  given to ``datasets.load_dataset``; with ``HF_DATASETS_OFFLINE=1`` it is read from the local cache.

Columns: ``query_column``; scores from ``score_columns`` (names become model names),
``score_pattern`` (regex; group 1, if any, is the model name; the query, task, id, split and cost
columns never count as scores) or ``scores_field``: one field holding each query's ``{model: score}``
mapping, as many public routing sets ship (``{"question": ..., "scores": {"model-a": 0.7}}``;
``scores_field=scores`` is the same as ``score_pattern='^scores\.(.+)$'`` on the flattened
columns, and also reads a CSV column of JSON text); optional ``cost_pattern`` (``{model}`` = model name) for per-query
costs; ``task_column``, ``id_column``; ``split_column`` (train / validation / test, also val, dev).
Without a split column, splits come from the file names (``*_train.csv``, ``test.jsonl``: the last
name token among train/validation/val/dev/test) or the Hub splits when every source has one, else
the query-hash split. Labels: ``label_map`` as-is (scores already in [0, 1]), threshold (score >=
``threshold``) or rescale (from [``score_min``, ``score_max``]); scores outside that declared range
are an error naming file, row and column.

Side file: ``join_file`` (under ``data.path``) adds columns (``join_columns``, default all) to every
row whose key matches, ``join_on`` = a column of both tables or ``main=side`` (e.g. tasks kept in a
second file keyed by the query text: ``join_file=tasks.json join_on=question join_columns=task
task_column=task``). Unmatched rows get empty cells (an empty task is ``unknown``) and are counted in
the build report; a side key listed twice keeps its first row.

Query cells that are lists (parquet/JSON arrays), or a column whose every cell is a stringified list
of strings, are joined like RouterBench prompts (see ``text.parse_prompt_list``). With the table
option ``strip_shared_prefix`` (set as ``data.table.strip_shared_prefix=true``), the few-shot prefix
shared by every query of a task is removed (``text.strip_shared_prefix``).
"""

from __future__ import annotations

import io
import re
import string
from pathlib import Path

import numpy as np
import pandas as pd

from routertrain.data.dataset import DataError
from routertrain.data.sources.assemble import SourceRows, nearest
from routertrain.data.sources.files import as_score, decode, parse_json, read_jsonl, rel, require_dir
from routertrain.data.sources.text import join_parts, looks_like_list, parse_prompt_list, strip_shared_prefix
from routertrain.data.splits import SPLIT_ALIASES

NAME = "table"
EXPECT = "files matching data.table.files"
FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


def globs(cfg) -> list[str]:
    if not cfg.table.files:
        raise DataError("data.table.files is not set: give comma-separated globs under data.path (e.g. '*.csv') "
                        "or, with data.path null, a Hub dataset id")
    return [g.strip() for g in cfg.table.files.split(",") if g.strip()]


def locate(cfg) -> list:
    if cfg.path is None:
        return [f"hub:{cfg.table.files}:{split}:{ds._fingerprint}" for split, ds in load_hub(cfg).items()]
    root = require_dir(cfg, NAME, EXPECT)
    files: list[Path] = []
    for pattern in globs(cfg):
        matched = sorted(p for p in root.glob(pattern) if p.is_file())
        if not matched:
            raise DataError(f"data.table.files pattern '{pattern}' matches no file under {root}")
        files += [p for p in matched if p not in files]
    return files


def load_hub(cfg):
    import datasets

    try:
        loaded = datasets.load_dataset(cfg.table.files)
    except Exception as err:  # the hub client raises many types; all mean "cannot load this id"
        raise DataError(f"cannot load dataset '{cfg.table.files}' ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                        "download it once online, or set data.path to local files") from None
    return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})


def read_frame(path: Path, fmt: str | None, label: str) -> pd.DataFrame:
    fmt = fmt or FORMATS.get(path.suffix.lower())
    if fmt in ("csv", "parquet"):
        try:
            if fmt == "csv":
                return pd.read_csv(io.StringIO(decode(path.read_bytes())), dtype=str, keep_default_na=False, na_values=[""])
            return pd.read_parquet(path)
        except (ValueError, OSError) as err:  # pandas' ParserError and pyarrow's ArrowInvalid are ValueErrors
            why = (str(err).splitlines() or [type(err).__name__])[0][:200]
            raise DataError(f"{label}: cannot read it as {fmt} ({why}); repair or re-export the file, "
                            "or set data.table.format if it is another format") from None
    if fmt == "json":
        records = parse_json(path.read_bytes(), label)
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DataError(f"{label}: expected a JSON list of objects (one per query); use JSONL for one object per line")
        return pd.json_normalize(records)
    if fmt == "jsonl":
        return pd.json_normalize(read_jsonl(path, label))
    raise DataError(f"{label}: unknown format '{fmt or path.suffix}'; set data.table.format to csv, json, jsonl or parquet")


def split_from_name(path: Path) -> str | None:
    tokens = [t.lower() for t in re.split(r"[^A-Za-z0-9]+", path.stem) if t]
    found = [SPLIT_ALIASES[t] for t in tokens if t in SPLIT_ALIASES]
    return found[-1] if found else None


def frames(cfg, sources: list) -> list[tuple[str, pd.DataFrame, str | None]]:
    """(label, table, split implied by the source or None) per source."""
    if cfg.path is None:
        out = []
        for split, ds in load_hub(cfg).items():
            if split.lower() not in SPLIT_ALIASES and not cfg.table.split_column:
                raise DataError(f"{cfg.table.files} has a split '{split}': name splits train/validation/test "
                                "or set data.table.split_column")
            out.append((f"{cfg.table.files}[{split}]", ds.to_pandas(), SPLIT_ALIASES.get(split.lower())))
        return out
    root = Path(cfg.path).expanduser().resolve()
    out = [(rel(p, root), read_frame(p, cfg.table.format, rel(p, root)), split_from_name(p)) for p in sources]
    empty = [label for label, df, _ in out if len(df) == 0]
    if empty:
        raise DataError(f"{empty[0]} holds no rows (an empty list, or only a header); add queries to it or leave it out of data.table.files")
    named = [label for label, _, s in out if s is not None]
    if named and len(named) < len(out) and not cfg.table.split_column:
        unnamed = [label for label, _, s in out if s is None]
        raise DataError(f"files {named[:3]} name a split but {unnamed[:3]} do not: "
                        "rename them (*_train, *_test) or set data.table.split_column")
    return out


def score_columns(t, tables: list[pd.DataFrame]) -> dict[str, str]:
    """Source column -> model name, in first-seen order over all tables."""
    if t.score_columns:
        listed = t.score_columns.strip()
        listed = listed[1:-1] if listed.startswith("[") and listed.endswith("]") else listed  # [m1,m2] as typed for a list
        wanted = [c.strip() for c in listed.split(",") if c.strip()]
        present = list(dict.fromkeys(str(c) for df in tables for c in df.columns))
        absent = [c for c in wanted if c not in present]
        if absent:
            raise DataError(f"data.table.score_columns names {absent} but no file has such a column"
                            f"{nearest(absent[0], present)}; columns: {present[:12]}")
        return {c: c for c in wanted}
    if not t.score_pattern and not t.scores_field:
        raise DataError("set data.table.score_columns (comma-separated), data.table.score_pattern (regex) or "
                        "data.table.scores_field (a field of {model: score} mappings) to say which columns are model scores")
    pattern = t.score_pattern or f"^{re.escape(t.scores_field)}\\.(.+)$"
    try:
        regex = re.compile(pattern)
    except re.error as err:
        raise DataError(f"data.table.score_pattern '{t.score_pattern}' is not a valid regular expression ({err}); "
                        r"fix it, e.g. '^score_(.+)$' (group 1 = model name)") from None
    reserved = {t.query_column, t.task_column, t.id_column, t.split_column}
    cost_regex = re.compile("^" + re.escape(t.cost_pattern).replace(re.escape("{model}"), ".+") + "$") if t.cost_pattern else None
    out: dict[str, str] = {}
    for df in tables:
        for c in map(str, df.columns):
            m = regex.search(c)
            if m and c not in reserved and not (cost_regex and cost_regex.match(c)) and c not in out:
                out[c] = m.group(1) if regex.groups else c
    if not out:
        names = list(map(str, tables[0].columns))[:12]
        what = f"data.table.scores_field '{t.scores_field}' holds no {{model: score}} mapping" if not t.score_pattern else f"data.table.score_pattern '{t.score_pattern}' matches no column"
        raise DataError(f"{what} (columns: {names})")
    return out


def expand_field(df: pd.DataFrame, field: str, label: str) -> pd.DataFrame:
    """Columns ``field.<model>`` from a column of ``{model: score}`` mappings (objects or JSON text);
    JSON objects were already flattened that way when the file was read."""
    if field not in df.columns:
        if not any(str(c).startswith(field + ".") for c in df.columns):
            names = list(map(str, df.columns))
            raise DataError(f"{label}: no field '{field}' for data.table.scores_field{nearest(field, names)}; columns: {names[:12]}")
        return df
    parsed = []
    for k, v in enumerate(df[field].tolist(), start=1):
        if isinstance(v, str) and v.strip():
            v = parse_json(v.encode(), f"{label} row {k} field '{field}'")
        if v is not None and not isinstance(v, dict) and not (isinstance(v, float) and np.isnan(v)):
            raise DataError(f"{label} row {k}: field '{field}' is not a {{model: score}} mapping; fix the row or set data.table.score_columns")
        parsed.append(v if isinstance(v, dict) else {})
    wide = pd.DataFrame(parsed, index=df.index).add_prefix(field + ".")
    return pd.concat([df.drop(columns=[field]), wide], axis=1)


def join_side_file(cfg, tables: list) -> tuple[list, dict]:
    """Add the side table's columns to every row whose key matches (``data.table.join_*``)."""
    t = cfg.table
    if not t.join_on:
        raise DataError("data.table.join_file needs data.table.join_on: the key column (or main_column=side_column)")
    main_key, _, side_key = t.join_on.partition("=")
    side_key = side_key or main_key
    root = Path(cfg.path).expanduser().resolve() if cfg.path else Path.cwd()
    path = root / t.join_file
    if not path.is_file():
        raise DataError(f"data.table.join_file {path} does not exist; give a file under data.path")
    side = read_frame(path, None, t.join_file)
    if t.scores_field and any(str(c).startswith(t.scores_field + ".") for c in side.columns):
        side = side[[c for c in side.columns if not str(c).startswith(t.scores_field + ".")]]
    if side_key not in side.columns:
        raise DataError(f"{t.join_file}: no key column '{side_key}'{nearest(side_key, list(map(str, side.columns)))} for data.table.join_on")
    wanted = [c.strip() for c in t.join_columns.split(",") if c.strip()] if t.join_columns else [c for c in side.columns if c != side_key]
    absent = [c for c in wanted if c not in side.columns]
    if absent:
        raise DataError(f"{t.join_file}: data.table.join_columns names {absent} but it has {list(map(str, side.columns))[:12]}")
    repeated = int(side[side_key].duplicated().sum())
    side = side.assign(**{side_key: side[side_key].astype(str)})  # keys compared as text: CSV cells are text, JSON ones may not be
    lookup = side.drop_duplicates(side_key).set_index(side_key)[wanted]
    out, unmatched = [], 0
    for label, df, implied in tables:
        if main_key not in df.columns:
            raise DataError(f"{label}: no key column '{main_key}'{nearest(main_key, list(map(str, df.columns)))} for data.table.join_on")
        extra = lookup.reindex(df[main_key].astype(str))
        unmatched += int(extra.isna().all(axis=1).sum())
        extra.index = df.index
        out.append((label, pd.concat([df.drop(columns=[c for c in wanted if c in df.columns]), extra], axis=1), implied))
    return out, {"file": t.join_file, "on": t.join_on, "columns": wanted, "unmatched_rows": unmatched, "repeated_side_keys": repeated}


def check_scores_look_like_scores(t, tables: list, columns: list[str]) -> None:
    """A pattern-selected column whose cells are not scores (a task name, a cluster id) is a pattern
    that caught too much: say to narrow it, not to rescale. Cells that read as numbers (``nan`` and
    ``inf`` too) are scores: a missing or out-of-range one is judged as with ``score_columns``
    (``data.missing``, the declared range); integers are taken for ids only when most fall outside it."""
    if t.score_columns:
        return
    for label, df, _ in tables:
        for c in columns:
            if c not in df.columns:
                continue
            text = df[c][df[c].notna() & df[c].map(not_a_number)]
            values = pd.to_numeric(df[c], errors="coerce")
            whole = values[np.isfinite(values.astype("float64"))]
            outside = (whole < t.score_min) | (whole > t.score_max)
            if len(text) or (len(whole) and outside.mean() > 0.5 and (whole == whole.round()).all()):
                example = text.iloc[0] if len(text) else whole[outside].iloc[0]
                example = example.item() if hasattr(example, "item") else example
                how = f"data.table.scores_field '{t.scores_field}'" if t.scores_field and not t.score_pattern else f"data.table.score_pattern '{t.score_pattern}'"
                raise DataError(f"{label}: column '{c}', selected by {how}, holds {example!r}, which is not a score (a name or an id?): "
                                "narrow the pattern so it matches only score columns, or list them in data.table.score_columns")


def not_a_number(value) -> bool:
    """A cell that ``as_score`` cannot read as a score (text other than a number, true or false)."""
    try:
        float(value)
        return False
    except (TypeError, ValueError):
        return str(value).strip().lower() not in ("", "true", "false")


def cells(df: pd.DataFrame, column: str, label: str) -> list:
    if column not in df.columns:
        names = list(map(str, df.columns))
        raise DataError(f"{label}: no column '{column}'{nearest(column, names)}; columns: {names[:12]}")
    return [None if (v is None or (isinstance(v, float) and np.isnan(v))) else v for v in df[column].tolist()]


def score_matrix(df: pd.DataFrame, columns: list[str], label: str, missing_cols: dict) -> np.ndarray:
    out = np.full((len(df), len(columns)), np.nan)
    for j, c in enumerate(columns):
        if c not in df.columns:
            missing_cols.setdefault(label, []).append(c)
            continue
        series = df[c]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            out[:, j] = series.astype("float64").to_numpy()
        else:
            out[:, j] = [as_score(v, label, k, c) for k, v in enumerate(series.tolist(), start=1)]
    return out


def parses_as_list(text: str) -> bool:
    try:
        parse_prompt_list(text)
        return True
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False


def query_texts(raw: list, origins: list[str], column: str) -> tuple[list[str], dict]:
    """Query text per row. A column whose every cell is a stringified list of strings is read as
    prompt parts; one where no cell parses as a list is plain text even if each cell is bracketed;
    a column mixing the two is refused (a corrupted list cell would otherwise pass silently)."""
    texts, info = [], {}
    stringified = [v for v in raw if isinstance(v, str) and v.strip()]
    as_lists = bool(stringified) and all(looks_like_list(v) for v in stringified)
    if as_lists and not any(parses_as_list(v) for v in stringified):
        as_lists = False  # bracketed text, not lists: "[INST] ... [/INST]" chat prompts
    collapsed = 0
    for v, origin in zip(raw, origins):
        if v is None:
            texts.append("")
        elif isinstance(v, (list, tuple, np.ndarray)):
            text, n = join_parts([str(p) for p in v])
            texts.append(text)
            collapsed += n
        elif as_lists and isinstance(v, str) and v.strip():
            try:
                text, n = parse_prompt_list(v)
            except (ValueError, SyntaxError, TypeError):
                raise DataError(f"{origin} column '{column}': not a list of strings like the rest of the column; fix the cell") from None
            texts.append(text)
            collapsed += n
        else:
            texts.append(str(v))
    if as_lists:
        info["query_column_stringified_lists_parsed"] = True
    if collapsed:
        info["repeated_prompt_parts_collapsed"] = collapsed
    return texts, info


def read(cfg, sources: list) -> SourceRows:
    t = cfg.table
    if t.label_map == "as-is" and (t.score_min < 0 or t.score_max > 1):
        raise DataError(f"label_map=as-is needs scores in [0, 1] but the declared range is [{t.score_min}, {t.score_max}]: "
                        "use data.table.label_map=rescale")
    if t.cost_pattern:
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(t.cost_pattern) if f is not None}
        except ValueError:  # an unmatched brace
            fields = set()
        if fields != {"model"}:
            raise DataError(f"data.table.cost_pattern '{t.cost_pattern}' must name each model's cost column with {{model}} "
                            "and no other {...} field; e.g. data.table.cost_pattern='cost_{model}'")
    tables = frames(cfg, sources)
    issues = {}
    if t.scores_field:
        tables = [(label, expand_field(df, t.scores_field, label), s) for label, df, s in tables]
    if t.join_file:
        tables, issues["join"] = join_side_file(cfg, tables)
    mapping = score_columns(t, [df for _, df, _ in tables])
    check_scores_look_like_scores(t, tables, list(mapping))
    columns, models = list(mapping), list(dict.fromkeys(mapping.values()))
    if len(models) < len(columns):
        raise DataError(f"score columns {columns} give repeated model names {models}: make data.table.score_pattern's group 1 unique")
    raw, origins, tasks, ids, splits, scores, costs = [], [], [], [], [], [], []
    missing_cols: dict = {}
    for label, df, implied in tables:
        origins += [f"{label} row {k}" for k in range(1, len(df) + 1)]
        raw += cells(df, t.query_column, label)
        scores.append(score_matrix(df, columns, label, missing_cols))
        if t.cost_pattern:
            costs.append(score_matrix(df, [t.cost_pattern.format(model=m) for m in models], label, {}))
        if t.task_column:
            tasks += ["unknown" if v is None else str(v) for v in cells(df, t.task_column, label)]
        if t.id_column:
            ids += [str(v) for v in cells(df, t.id_column, label)]
        if t.split_column:
            for k, v in enumerate(cells(df, t.split_column, label), start=1):
                if str(v).strip().lower() not in SPLIT_ALIASES:
                    raise DataError(f"{label} row {k} column '{t.split_column}': split '{v}' is not train, validation or test")
                splits.append(SPLIT_ALIASES[str(v).strip().lower()])
        elif implied is not None:
            splits += [implied] * len(df)
    queries, text_info = query_texts(raw, origins, t.query_column)
    issues.update(text_info)
    if t.strip_shared_prefix:
        queries, removed = strip_shared_prefix(queries, tasks or None)
        issues["fewshot_prefix_chars_removed"] = removed
    if missing_cols:
        issues["files_missing_models"] = missing_cols
    cost_matrix = np.vstack(costs) if costs else None
    if cost_matrix is not None and np.isnan(cost_matrix).all(axis=0).any():
        absent = [m for m, empty in zip(models, np.isnan(cost_matrix).all(axis=0)) if empty]
        raise DataError(f"data.table.cost_pattern '{t.cost_pattern}' finds no cost column for models {absent[:3]}; check the pattern")
    return SourceRows(
        models=models, queries=queries, scores=np.vstack(scores), origins=origins, columns=columns,
        tasks=tasks or None, ids=ids or None, splits=splits or None, row_costs=cost_matrix,
        score_range=(t.score_min, t.score_max), label_map=t.label_map, threshold=t.threshold, issues=issues,
        notes=[f"table: {len(tables)} source(s), {len(models)} score columns, label_map={t.label_map}"],
    )
