"""Ensembles of routers: the mean of several routers' P(correct) (seeds, checkpoints), shipped as one folder.

Folder layout (written atomically by ``save_ensemble``)::

    ensemble.json        the members (subfolders, where each came from, its seed and validation accuracy)
    router_config.json   the pool and settings every member shares (with "ensemble": number of members), for the card
    members/0/, ...      each member a complete router folder (routertrain.hub.router)
    metrics.json         the ensemble's own scores (written by routertrain.cli.ensemble)
    README.md            the model card

``Router.from_pretrained(folder)`` returns an ``EnsembleRouter`` for such a folder: ``predict`` and
``route`` are called as for one router. Every member reads the query with its own tokenizer and
max length.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Sequence


from routertrain.hub.router import router_settings
from routertrain.hub.router import ENSEMBLE, LEGACY_CONFIG, EnsembleRouter, router_folder  # noqa: F401 (EnsembleRouter re-exported)
from routertrain.provenance import atomic_dir, atomic_write_json

def member_folders(sources: Sequence[str | Path]) -> tuple[list[Path], list[dict]]:
    """The router folders of ``sources`` and their configs, checked to share one pool (models and costs)."""
    paths = [router_folder(s) for s in sources]
    if len(paths) < 2:
        raise ValueError(f"an ensemble needs at least 2 routers, got {len(paths)}")
    configs = [router_settings(p) for p in paths]
    for path, config in zip(paths[1:], configs[1:]):
        if config["models"] != configs[0]["models"] or config.get("costs") != configs[0].get("costs"):
            raise ValueError(f"{path} routes to another pool (models or costs) than {paths[0]}; ensemble routers trained on the same data")
    return paths, configs


def save_ensemble(sources: Sequence[str | Path], folder: str | Path, metrics: dict | None = None, extra_files: dict[str, str] | None = None) -> Path:
    """Copy the routers of ``sources`` (run or router folders of one pool) into an ensemble folder."""
    from routertrain.hub.card import render as render_card

    paths, configs = member_folders(sources)
    members = []
    for i, path in enumerate(paths):
        own = json.loads((path / "metrics.json").read_text()) if (path / "metrics.json").is_file() else {}
        members.append({"folder": f"members/{i}", "source": str(path), "validation_routing_acc": own.get("validation", {}).get("routing_acc")})
    with atomic_dir(folder) as tmp:
        for path, member in zip(paths, members):
            shutil.copytree(path, tmp / member["folder"])
        atomic_write_json(tmp / LEGACY_CONFIG, {**configs[0], "ensemble": len(paths)})
        atomic_write_json(tmp / ENSEMBLE, {"combine": "mean of the members' P(correct)", "members": members})
        for name in ("training_config.yaml", "provenance.json"):  # the first member's, for the card
            if (paths[0] / name).is_file():
                shutil.copy(paths[0] / name, tmp / name)
        if metrics is not None:
            atomic_write_json(tmp / "metrics.json", metrics)
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
        (tmp / "README.md").write_text(render_card(tmp, final=folder))
    return Path(folder)
