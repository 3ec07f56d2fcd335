"""Routing-aware losses beside per-model BCE, and the auxiliary task-classification loss.

Per-model BCE learns each model's P(correct) on its own; routing only needs the order of the
models on a query. ``train.rank_loss`` adds a loss on that order:

- ``listwise``: cross-entropy between softmax(logits over the query's observed models) and the
  query's labels normalised to sum 1 (the models that answered correctly, graded labels weighted);
  queries where no observed model is correct carry no listwise loss.
- ``pairwise``: a hinge ``max(0, margin - (s_i - s_j))`` for every observed pair where model i's label
  is above model j's, weighted by the label difference, averaged over the query's pairs.

``train.task_loss_weight`` adds cross-entropy of an auxiliary head that predicts the query's task
(``routertrain.model.modeling.add_task_head``); queries of a task unseen in train are left out.

``step_loss`` is what the training loop calls: BCE plus the weighted extras that are switched on.

Every loss function returns a sum over the batch's queries divided by ``denominator`` (the training loop
passes the step's real queries over all micro-batches and processes, as it does for BCE's labels),
or the mean over the batch's queries when ``denominator`` is None.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from routertrain.config import ConfigError
from routertrain.data.dataset import column
from routertrain.model.modeling import masked_bce
from routertrain.training.batching import UNKNOWN_TASK, model_inputs


def _reduce(per_query: torch.Tensor, denominator: float | None) -> torch.Tensor:
    if denominator is None:
        return per_query.sum() / max(len(per_query), 1)
    return per_query.sum() / max(denominator, 1e-12)


def listwise_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, denominator: float | None = None) -> torch.Tensor:
    """Softmax cross-entropy over the observed models toward the correct ones (see the module doc)."""
    logits, labels, mask = logits.float(), labels.float(), mask.float()
    target = labels.clamp(0, 1) * mask
    total = target.sum(dim=1, keepdim=True)
    log_p = torch.log_softmax(logits.masked_fill(mask == 0, float("-inf")), dim=1)
    log_p = torch.where(mask > 0, log_p, torch.zeros_like(log_p))  # unobserved models: no term (and no -inf * 0)
    per_query = -(target / total.clamp_min(1e-12) * log_p).sum(dim=1)
    return _reduce(torch.where(total.squeeze(1) > 0, per_query, torch.zeros_like(per_query)), denominator)


def pairwise_loss(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, margin: float = 1.0, denominator: float | None = None) -> torch.Tensor:
    """Hinge between every better and worse observed model of a query, weighted by the label gap."""
    logits, labels, mask = logits.float(), labels.float(), mask.float()
    gap = labels[:, :, None] - labels[:, None, :]  # [q, i, j] = label_i - label_j
    both = mask[:, :, None] * mask[:, None, :]
    weight = gap.clamp_min(0) * both
    hinge = (margin - (logits[:, :, None] - logits[:, None, :])).clamp_min(0)
    pairs = (weight > 0).float().sum(dim=(1, 2))
    per_query = (weight * hinge).sum(dim=(1, 2)) / pairs.clamp_min(1)
    return _reduce(per_query, denominator)


def task_loss(task_logits: torch.Tensor, task_ids: torch.Tensor, denominator: float | None = None) -> torch.Tensor:
    """Cross-entropy of the auxiliary task head; queries of unknown task (``UNKNOWN_TASK``) are left out."""
    per_query = nn.functional.cross_entropy(task_logits.float(), task_ids.long(), ignore_index=UNKNOWN_TASK, reduction="none")
    return _reduce(per_query, denominator)


def rank_loss(train_cfg, logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, denominator: float | None = None) -> torch.Tensor:
    """``train.rank_loss`` (listwise or pairwise), unweighted."""
    if train_cfg.rank_loss == "listwise":
        return listwise_loss(logits, labels, mask, denominator)
    if train_cfg.rank_loss == "pairwise":
        return pairwise_loss(logits, labels, mask, train_cfg.rank_margin, denominator)
    raise ValueError(f"train.rank_loss={train_cfg.rank_loss!r} has no loss; choose listwise or pairwise")


def task_vocabulary(train_tasks, task_loss_weight: float) -> list[str]:
    """The task names of the training split, in a fixed order (the task head's classes). Refuses a
    task loss on data without tasks, in one line."""
    if train_tasks is None:
        raise ConfigError(f"train.task_loss_weight={task_loss_weight} needs a task column in the data (this dataset has none); set train.task_loss_weight=0")
    names = sorted({str(t) for t in train_tasks if t is not None and str(t) != ""})
    if len(names) < 2:
        raise ConfigError(f"train.task_loss_weight={task_loss_weight} needs at least 2 tasks in the training split (found {len(names)}); set train.task_loss_weight=0")
    return names


def task_ids(tasks, vocabulary: list[str]) -> np.ndarray:
    """Class index of each query's task in ``vocabulary``; ``UNKNOWN_TASK`` where it is not in it."""
    index = {name: i for i, name in enumerate(vocabulary)}
    return np.asarray([index.get(str(t), UNKNOWN_TASK) for t in tasks], dtype=np.int64)


def with_task_ids(train_split, task_loss_weight: float):
    """The training split with a ``task_id`` column (the task head's target) and the number of tasks."""
    tasks = column(train_split, "task") if "task" in train_split.column_names else None
    vocabulary = task_vocabulary(tasks, task_loss_weight)
    return train_split.add_column("task_id", task_ids(tasks, vocabulary).tolist()), len(vocabulary)


def step_loss(train_cfg, model, batch: dict, label_share: float, query_share: float) -> torch.Tensor:
    """One micro-batch's training loss: masked BCE over its labels (summed, divided by ``label_share``,
    the step's observed labels per micro-batch and process), plus ``train.rank_loss_weight`` x the
    routing-aware loss and ``train.task_loss_weight`` x the task loss (each summed over queries,
    divided by ``query_share``, the step's real queries per micro-batch and process)."""
    labels, mask = batch["labels"], batch["label_mask"]
    if train_cfg.task_loss_weight > 0:
        logits, task_logits = model(**model_inputs(batch), with_task_logits=True)
    else:
        logits = model(**model_inputs(batch)).logits
    loss = masked_bce(logits, labels, mask, denominator=label_share)
    if train_cfg.rank_loss != "none" and train_cfg.rank_loss_weight > 0:
        loss = loss + train_cfg.rank_loss_weight * rank_loss(train_cfg, logits, labels, mask, query_share)
    if train_cfg.task_loss_weight > 0:
        loss = loss + train_cfg.task_loss_weight * task_loss(task_logits, batch["task_id"], query_share)
    return loss
