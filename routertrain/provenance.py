"""Provenance and atomic writes: what produced a run, and files that are complete or absent.

Every run folder and router folder records the git revision, package versions and the data
fingerprint. Writes go to a temporary sibling first and are renamed into place, so an interrupted
run never leaves a file or folder that looks finished; they get the permissions the umask allows
(as ``open`` and ``mkdir`` give), not the owner-only ones of ``tempfile``. A run folder is finished
when it holds ``done.json`` (``DONE``), written last, after its ``router/`` folder is in place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Iterator

DONE = "done.json"  # written last in a run folder: training, metrics and router/ are all in place


class WriteFailed(OSError):
    """A write that failed (full disk, file-size limit, permissions), as one line naming the path and the cause."""


TORCH_WRITER = ("inline_container", "PytorchStreamWriter", "file write failed")  # how torch.save's writer reports a failed write


@contextlib.contextmanager
def writing(path: str | os.PathLike, then: str = "free space or fix the folder's permissions, then run the same command again") -> Iterator[None]:
    """Turn a failed write inside the block (an ``OSError``, or the error safetensors or ``torch.save``
    raise instead) into one ``WriteFailed`` line that names ``path``, the cause and what to do (``then``)."""
    from safetensors import SafetensorError

    try:
        yield
    except WriteFailed:
        raise
    except (OSError, SafetensorError, RuntimeError) as err:
        if not_a_write_error(err):
            raise
        raise WriteFailed(f"could not write {path} ({write_cause(err, Path(path))}); {then}") from None


def not_a_write_error(err: BaseException) -> bool:
    """A RuntimeError other than torch.save's failed write, or a one-line error of routertrain's own
    that subclasses OSError (a broken router folder, a missing path): left as it is."""
    if isinstance(err, RuntimeError):
        return not any(mark in str(err) for mark in TORCH_WRITER)
    return type(err).__module__.startswith("routertrain") or (isinstance(err, FileNotFoundError) and err.errno is None)


def write_cause(err: BaseException, path: Path) -> str:
    """Why a write failed, in a few words: the OS's reason, else a file-size limit or a full disk found here."""
    if getattr(err, "strerror", None):
        return err.strerror
    import resource

    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY:
        return f"File too large: the file-size limit (ulimit -f) is {limit} bytes"
    folder = next((p for p in (path, *path.parents) if p.is_dir()), Path.cwd())
    if shutil.disk_usage(folder).free < 1 << 20:
        return f"No space left on device in {folder}"
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def finished(run_dir: str | os.PathLike) -> bool:
    """Whether the run folder's training finished (``done.json`` present): sweeps, evaluate and push use it."""
    return (Path(run_dir) / DONE).is_file()


def umask_mode(full: int) -> int:
    """``full`` (0o666 for files, 0o777 for folders) less the process umask."""
    mask = os.umask(0)
    os.umask(mask)
    return full & ~mask


def apply_umask(folder: Path) -> None:
    """Give ``folder`` and everything in it the umask's permissions (some writers, safetensors and
    ``tempfile`` among them, create owner-only files whatever the umask)."""
    os.chmod(folder, umask_mode(0o777))
    for path in folder.rglob("*"):
        if not path.is_symlink():
            os.chmod(path, umask_mode(0o777 if path.is_dir() else 0o666))


PACKAGES = ("routertrain", "torch", "transformers", "accelerate", "datasets", "peft", "tokenizers", "safetensors", "huggingface_hub", "omegaconf")


def git_revision(cwd: str | os.PathLike | None = None) -> str:
    """The current commit (with ``-dirty`` when the tree has changes), or ``unknown`` outside git."""
    cwd = cwd or Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def provenance(data_fingerprint: str) -> dict:
    return {
        "git_revision": git_revision(),
        "packages": package_versions(),
        "data_fingerprint": data_fingerprint,
        "command": " ".join(sys.argv),
    }


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, umask_mode(0o666))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``path`` whole, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=path.name + ".tmp-", dir=path.parent))
    try:
        yield tmp
        apply_umask(tmp)
        old = None
        if path.exists():
            old = path.with_name(path.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_DIGESTS: dict[tuple, str] = {}


def cache_root(cfg=None) -> Path:
    """routertrain's cache folder (datasets, embeddings, encoders, ONNX graphs): ``cfg.cache_dir``, else
    ``$ROUTERTRAIN_CACHE``, else ``~/.cache/routertrain``."""
    if cfg is not None and getattr(cfg, "cache_dir", None):
        return Path(cfg.cache_dir).expanduser()
    if os.environ.get("ROUTERTRAIN_CACHE"):
        return Path(os.environ["ROUTERTRAIN_CACHE"]).expanduser()
    return Path.home() / ".cache" / "routertrain"


def file_digest(path: Path) -> str:
    """SHA-256 of the file's bytes, memoised per process by (path, size, mtime)."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]
