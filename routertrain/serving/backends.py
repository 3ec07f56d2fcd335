"""The backends file of ``serve``: each pool model's OpenAI-compatible endpoint.

    backends:
      gpt-4o:      {base_url: https://api.openai.com/v1, model: gpt-4o, api_key_env: OPENAI_API_KEY}
      llama-3-8b:  {base_url: http://127.0.0.1:8001/v1, model: meta-llama/Meta-Llama-3-8B-Instruct}
    fallback: llama-3-8b   # optional: where a request goes when its backend fails
    timeout_s: 60          # optional: per backend call (default 60)

Pool models without a backend are never chosen. An API key is read from the named environment
variable when the server starts and is only ever sent to that backend, never logged or echoed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import yaml


class BackendConfigError(ValueError):
    """A backends file that cannot be served, in one line that names the fix."""


@dataclass
class Backend:
    name: str  # the pool model it serves
    base_url: str  # ends before /chat/completions, e.g. http://host:port/v1
    model: str  # the model name the backend expects
    api_key: str | None = field(default=None, repr=False)  # never shown

    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


@dataclass
class Backends:
    models: dict[str, Backend]
    fallback: str | None = None
    timeout_s: float = 60.0


def load_backends(path: str | os.PathLike, pool: Sequence[str], keys: bool = True) -> Backends:
    """Read and check ``path`` against the router's model pool (``keys=False``: leave API keys unread)."""
    path = Path(path)
    if not path.is_file():
        raise BackendConfigError(f"backends file {path} does not exist; write a YAML file with a 'backends:' mapping (see routertrain.serving.backends)")
    try:
        raw = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise BackendConfigError(f"backends file {path} is not valid YAML ({str(err).splitlines()[0]}); fix its syntax") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("backends"), dict) or not raw["backends"]:
        raise BackendConfigError(f"backends file {path} has no 'backends:' mapping of pool model -> {{base_url, model}}; add one")
    unknown = set(raw) - {"backends", "fallback", "timeout_s"}
    if unknown:
        raise BackendConfigError(f"backends file {path} has unknown key(s) {', '.join(sorted(unknown))}; use backends, fallback, timeout_s")
    models = {}
    for name, entry in raw["backends"].items():
        if name not in pool:
            raise BackendConfigError(f"backends file {path}: {name!r} is not in the router's pool; use one of {', '.join(pool)}")
        if not isinstance(entry, dict) or not str(entry.get("base_url", "")).startswith(("http://", "https://")):
            raise BackendConfigError(f"backends file {path}: {name} needs base_url: http(s)://host[:port]/v1")
        key_env = entry.get("api_key_env")
        key = None
        if key_env and keys:
            key = os.environ.get(str(key_env))
            if not key:
                raise BackendConfigError(f"backends file {path}: {name} reads its API key from ${key_env}, which is not set; export it or drop api_key_env")
        models[name] = Backend(name, str(entry["base_url"]).rstrip("/"), str(entry.get("model") or name), key)
    fallback = raw.get("fallback")
    if fallback is not None and fallback not in models:
        raise BackendConfigError(f"backends file {path}: fallback {fallback!r} has no backend; use one of {', '.join(models)}")
    timeout = raw.get("timeout_s", 60.0)
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        raise BackendConfigError(f"backends file {path}: timeout_s must be a positive number of seconds")
    return Backends(models, fallback, float(timeout))
