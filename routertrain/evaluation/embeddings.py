"""Frozen-encoder query embeddings for the baseline routers, cached on disk.

``embed_queries`` runs a pretrained encoder (``AutoModel`` + ``AutoTokenizer``, never trained here)
over queries in batches sorted by length, pools the token states (mean over the attention mask, or
the first token), and L2-normalises, so a dot product is a cosine similarity.

``split_embeddings`` caches the result of one dataset split as ``<key>.npy`` plus ``<key>.json``
(what the key was made of, with the dataset fingerprint and split) under
``$ROUTERTRAIN_CACHE/embeddings`` (default ``~/.cache/routertrain/embeddings``). The key hashes the
encoder name or path (for a local folder also the size and modification time of its files), the
maximum length, the pooling and the split's query texts themselves (SHA-256 of the queries in
order). Keying on the texts rather than on the dataset fingerprint means a split is re-embedded
exactly when its queries change: not when the fingerprint changes for reasons that leave the
queries alone (a new data-code version, another ``data.fraction`` that keeps test and validation),
and never served stale when the text changes under an unchanged fingerprint. Files are written to
a temporary name and renamed into place.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from routertrain.provenance import atomic_write_bytes, atomic_write_json, writing

FORMAT_VERSION = "embeddings-v1"


def cache_dir(root: str | os.PathLike | None = None) -> Path:
    if root is not None:
        return Path(root).expanduser()
    base = os.environ.get("ROUTERTRAIN_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "routertrain") / "embeddings"


def encoder_identity(encoder: str) -> dict:
    """What identifies an encoder's weights: its name, plus file sizes and times for a local folder."""
    path = Path(encoder).expanduser()
    if not path.is_dir():
        return {"encoder": encoder}
    files = sorted(p for p in path.iterdir() if p.is_file())
    return {"encoder": str(path.resolve()), "files": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]}


def queries_digest(queries: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for query in queries:
        digest.update(query.encode("utf-8", "surrogatepass") + b"\0")
    return digest.hexdigest()


def cache_key(encoder: str, queries: Sequence[str], max_length: int, pooling: str) -> tuple[str, dict]:
    parts = {"format": FORMAT_VERSION, **encoder_identity(encoder), "queries": queries_digest(queries), "max_length": max_length, "pooling": pooling}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:24], parts


@functools.lru_cache(maxsize=2)
def load_frozen(encoder: str, device: str | None = None):
    """Tokenizer and encoder in eval mode, kept for the next split (``load_encoder`` gives the errors)."""
    from transformers import AutoTokenizer

    from routertrain.model.encoders import resolve
    from routertrain.model.modeling import load_encoder

    model = load_encoder(encoder).eval()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return AutoTokenizer.from_pretrained(resolve(encoder)), model.to(device)


@torch.inference_mode()
def embed_queries(
    queries: Sequence[str], encoder: str, max_length: int = 128, pooling: str = "mean", batch_size: int = 64, device: str | None = None
) -> np.ndarray:
    """(len(queries), hidden) float32 unit vectors from the frozen ``encoder``."""
    if pooling not in ("mean", "cls"):
        raise ValueError(f"pooling must be mean or cls, got {pooling!r}")
    tokenizer, model = load_frozen(encoder, device)
    device = next(model.parameters()).device
    queries = list(queries)
    out = np.zeros((len(queries), model.config.hidden_size), dtype=np.float32)
    order = sorted(range(len(queries)), key=lambda i: len(queries[i]))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer([queries[i] for i in idx], truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        hidden = model(**batch).last_hidden_state.float()
        if pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1e-6)
        out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
    return out


def split_embeddings(
    data,
    split: str,
    encoder: str,
    max_length: int = 128,
    pooling: str = "mean",
    batch_size: int = 64,
    device: str | None = None,
    root: str | os.PathLike | None = None,
) -> np.ndarray:
    """Embeddings of ``data.splits[split]['query']``, read from the cache or computed and cached."""
    queries = data.queries(split)
    key, parts = cache_key(encoder, queries, max_length, pooling)
    folder = cache_dir(root)
    path = folder / f"{key}.npy"
    if path.is_file():
        cached = np.load(path)
        if cached.shape[0] == len(queries):
            if not (folder / f"{key}.digests.npy").is_file():  # entries from before digests were kept
                np.save(folder / f"{key}.digests.npy", query_digests(queries))
            return cached
    vectors = from_superset(folder, parts, queries)
    if vectors is not None:
        return vectors
    vectors = embed_queries(queries, encoder, max_length, pooling, batch_size, device)
    with writing(folder, "free space or set ROUTERTRAIN_CACHE to a folder with room, then run again"):
        atomic_write_bytes(path, npy_bytes(vectors))
        atomic_write_bytes(folder / f"{key}.digests.npy", npy_bytes(query_digests(queries)))  # before the .json that announces it
        atomic_write_json(folder / f"{key}.json", {**parts, "rows": len(queries), "data": data.fingerprint, "split": split})
    return vectors


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def query_digests(queries: Sequence[str]) -> np.ndarray:
    """One SHA-1 digest per query, for finding a query's row in a cached superset."""
    return np.array([hashlib.sha1(q.encode("utf-8", "surrogatepass")).digest() for q in queries], dtype="S20")


def from_superset(folder: Path, parts: dict, queries: Sequence[str]) -> np.ndarray | None:
    """Rows of a cached split (same encoder, length, pooling) that holds every query, e.g. the full
    training split for a ``data.fraction`` subset of it; None when no cached split does."""
    same = {k: v for k, v in parts.items() if k != "queries"}
    want = query_digests(queries)
    for meta_path in folder.glob("*.json") if folder.is_dir() else []:
        meta = json.loads(meta_path.read_text())
        digests_path = meta_path.with_suffix(".digests.npy")
        if any(meta.get(k) != v for k, v in same.items()) or meta.get("rows", 0) < len(want) or not digests_path.is_file():
            continue
        have = np.load(digests_path)
        row = {d: i for i, d in enumerate(have.tolist())}
        if all(d in row for d in want.tolist()):
            return np.load(meta_path.with_suffix(".npy"))[[row[d] for d in want.tolist()]]
    return None
