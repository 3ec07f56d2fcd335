"""Adapters that read real benchmark result files into the canonical routing dataset.

``SOURCE_BUILDERS`` maps ``data.name`` to a builder ``DataConfig -> RoutingData``. Every adapter
module has ``locate(cfg)`` (the files it will read, after ``data.pool`` / ``data.models`` where that
narrows the files) and ``read(cfg, files) -> SourceRows``; the shared ``assemble`` step cleans,
splits and reports (see ``assemble.py``), and builds are cached by fingerprint (see
``routertrain.data.cache``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from routertrain.data.cache import cached_build, source_fingerprint
from routertrain.data.sources import mmlu_pro, routellm, routerbench, routerdc, table
from routertrain.data.sources.assemble import assemble


def source_builder(name: str, module) -> Callable:
    def build(cfg):
        files = module.locate(cfg)
        root = Path(cfg.path).expanduser().resolve() if cfg.path else None
        fp = source_fingerprint(name, cfg, files, root)
        return cached_build(name, cfg, fp, lambda: assemble(cfg, module.read(cfg, files), name))

    build.__doc__ = (module.__doc__ or name).strip().splitlines()[0]
    build.__name__ = f"build_{module.__name__.rsplit('.', 1)[-1]}"
    return build


SOURCE_BUILDERS: dict = {
    "mmlu-pro": source_builder("mmlu-pro", mmlu_pro),
    "routerdc": source_builder("routerdc", routerdc),
    "routerbench": source_builder("routerbench", routerbench),
    "routellm": source_builder("routellm", routellm),
    "table": source_builder("table", table),
}
