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
load the fine-tuned router alone. The math is ``routertrain.evaluation.blend``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from routertrain.evaluation import blend
from routertrain.hub.router import BLEND, BLEND_MEMORY, Router
from routertrain.provenance import atomic_dir, atomic_write_json


def fit_router_blend(router: Router, data, average: str, batch_size: int = 64) -> tuple[blend.TrainMemory, dict]:
    """The blend of ``router`` on ``data`` (a ``RoutingData`` of its pool): the training split's
    memory, and the k and weights best on the validation split."""
    if list(data.models) != list(router.models):
        raise ValueError(f"the data's models {list(data.models)[:3]}... are not the router's pool {router.models[:3]}...; blend a router with the data it was trained on")
    _, train_vectors = router.encode(list(data.splits["train"]["query"]), batch_size)
    mem = blend.memory(train_vectors, data.labels("train"), data.tasks("train"), average)
    probs, vectors = router.encode(list(data.splits["validation"]["query"]), batch_size)
    spec = blend.fit(mem, vectors, probs, data.labels("validation"), data.tasks("validation"), average)
    return mem, spec


def save_blend(router_dir: str | Path, folder: str | Path, mem: blend.TrainMemory, spec: dict, metrics: dict | None = None) -> Path:
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
