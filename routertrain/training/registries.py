"""The names a config gives that live in registries (``data.name``, ``model.attention_kernel``), checked
by the registries themselves right after ``load_config`` and before any work starts (the config layer
imports nothing of the package, so it cannot check them)."""

from __future__ import annotations

from routertrain.config import Config
from routertrain.data import check_name
from routertrain.model.kernels import check_kernel


def check_names(cfg: Config) -> Config:
    """``cfg`` after its registry names were checked (a one-line error naming the closest valid name)."""
    check_name(cfg.data.name)
    check_kernel(cfg.model.attention_kernel)
    return cfg
