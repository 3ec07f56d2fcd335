"""Blend a trained router with kNN on its own embeddings and the task prior, shipped as one router folder.

Folder layout (written atomically by ``save_blend``): the trained router's folder as it was (config,
weights, tokenizer, metrics of the router alone as ``router_metrics.json``), plus::

    blend.json           the weights, k, task names and the validation accuracies they were chosen by
    blend.safetensors    what kNN and the soft task prior read at inference: the training queries'
                         pooled embeddings (unit norm), their labels (NaN = missing), their task ids,
                         and each task's per-model mean label
    metrics.json         the blend's own scores (validation, and test scored once at export)

``Router.from_pretrained(folder)`` returns a ``BlendRouter``: ``predict``/``route`` are called as for
any router, and no task label is needed. ``RouterModel.from_pretrained`` and the Auto classes still
load the fine-tuned router alone. The math is ``routertrain.routing.blend``; the fit on validation,
``routertrain.evaluation.blend.fit_router_blend``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from routertrain.hub.router import BLEND, BLEND_MEMORY
from routertrain.routing.blend import TrainMemory
from routertrain.provenance import atomic_dir, atomic_write_json


def save_blend(router_dir: str | Path, folder: str | Path, mem: TrainMemory, spec: dict, metrics: dict | None = None) -> Path:
    """Copy the router folder ``router_dir`` to ``folder`` and add the blend's files (see the module doc)."""
    from routertrain.hub.card import render as render_card

    router_dir = Path(router_dir)
    arrays = {
        "keys": torch.from_numpy(np.ascontiguousarray(mem.keys, dtype=np.float32)),
        "labels": torch.from_numpy(np.ascontiguousarray(mem.labels, dtype=np.float32)),
        "task_ids": torch.from_numpy(np.ascontiguousarray(mem.task_ids, dtype=np.int64)),
        "task_means": torch.from_numpy(np.ascontiguousarray(mem.task_means, dtype=np.float32)),
    }
    with atomic_dir(folder) as tmp:
        shutil.copytree(router_dir, tmp, dirs_exist_ok=True)
        (tmp / "README.md").unlink(missing_ok=True)
        if (tmp / "metrics.json").is_file():
            (tmp / "metrics.json").rename(tmp / "router_metrics.json")
        save_file(arrays, str(tmp / BLEND_MEMORY), metadata={"format": "pt"})
        atomic_write_json(tmp / BLEND, {"combine": "weighted sum of the fine-tuned, kNN and soft task-prior scores", "source": str(router_dir), "tasks": mem.task_names, **spec})
        if metrics is not None:
            atomic_write_json(tmp / "metrics.json", metrics)
        (tmp / "README.md").write_text(render_card(tmp, final=folder))
    return Path(folder)
