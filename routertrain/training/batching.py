"""Tokenised splits, samplers and the collator that feed the training loop.

The training order of every epoch is a pure function of (seed, epoch): a resumed run sees the
same batches as an uninterrupted one. With length grouping, indices are shuffled, cut into
mega-batches, and each mega-batch is sorted by length, so a batch holds queries of similar length
and dynamic padding wastes little.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
UNKNOWN_TASK = -100  # task_id of a query whose task train never saw (cross_entropy's ignore_index)


def tokenize_split(dataset, tokenizer, max_length: int):
    """Add token ids (unpadded) and a ``row`` index; drop columns the collator does not need
    (``task_id``, the auxiliary task head's target, is kept when present)."""
    keep = {"labels", "label_mask", "task_id"}

    def encode(batch, indices):
        enc = tokenizer(batch["query"], truncation=True, max_length=max_length)
        out = {k: enc[k] for k in MODEL_INPUTS if k in enc}
        out["row"] = indices
        out["length"] = [len(ids) for ids in enc["input_ids"]]
        return out

    drop = [c for c in dataset.column_names if c not in keep]
    return dataset.map(encode, batched=True, with_indices=True, remove_columns=drop, desc="tokenize")


class EpochSampler(Sampler[int]):
    """Seeded per-epoch order, optionally grouped by length. Set ``epoch`` before iterating.

    With ``pad_last_step``, a short last step is filled up to ``step_size`` with indices ``n + j``:
    example ``j`` of that step again, as padding (``StepPadded`` masks all its labels). Every process
    then gets the same number of whole micro-batches per step, so none is filled with examples from
    the start of the epoch and no accumulation window is cut short."""

    def __init__(self, lengths: list[int], seed: int, shuffle: bool = True, group_size: int | None = None, step_size: int = 1,
                 pad_last_step: bool = False):
        self.lengths = np.asarray(lengths)
        self.seed = seed
        self.shuffle = shuffle
        self.group_size = group_size  # mega-batch sorted by length (None: no grouping)
        self.step_size = step_size  # examples per step over all processes: the unit whose order is shuffled
        self.pad_last_step = pad_last_step
        self.epoch = 0

    def order(self, epoch: int) -> list[int]:
        n = len(self.lengths)
        if not self.shuffle:
            return sorted(range(n), key=lambda i: -self.lengths[i]) if self.group_size else list(range(n))
        rng = np.random.default_rng([self.seed, epoch])
        perm = rng.permutation(n)
        if not self.group_size:
            return perm.tolist()
        chunks = [perm[i : i + self.group_size] for i in range(0, n, self.group_size)]
        grouped = np.concatenate([chunk[np.argsort(-self.lengths[chunk], kind="stable")] for chunk in chunks])
        # shuffle whole steps of similar-length examples, so that long and short steps interleave
        steps = [grouped[i : i + self.step_size] for i in range(0, n, self.step_size)]
        last = steps.pop() if len(steps[-1]) < self.step_size else None  # a short step stays last
        order = [int(i) for k in rng.permutation(len(steps)) for i in steps[k]]
        return order + ([int(i) for i in last] if last is not None else [])

    def padded_order(self, epoch: int) -> list[int]:
        order = self.order(epoch)
        short = len(order) % self.step_size
        if not self.pad_last_step or not short:
            return order
        last = order[len(order) - short :]
        return order + [len(order) + last[i % short] for i in range(self.step_size - short)]

    def step_weights(self, epoch: int, observed: np.ndarray) -> np.ndarray:
        """Per step of ``epoch``: the sum of ``observed`` (labels per example) over its real examples."""
        order = np.asarray(self.padded_order(epoch))
        real = order < len(self.lengths)
        per_example = np.where(real, np.asarray(observed, dtype=np.float64)[np.where(real, order, 0)], 0.0)
        return np.add.reduceat(per_example, np.arange(0, len(order), self.step_size)) if len(order) else per_example

    def __iter__(self):
        return iter(self.padded_order(self.epoch))

    def __len__(self) -> int:
        n = len(self.lengths)
        return -(-n // self.step_size) * self.step_size if self.pad_last_step else n


class StepPadded(torch.utils.data.Dataset):
    """The rows of a tokenised split, where index ``n + j`` is row ``j`` again marked ``pad`` (the
    collator masks all its labels and leaves it out of the counts): ``EpochSampler``'s step padding."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.n = len(dataset)

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, indices: list[int]) -> list[dict]:
        rows = self.dataset.__getitems__([i % self.n for i in indices])
        return [{**row, "pad": i >= self.n} for row, i in zip(rows, indices)]

    def __getitem__(self, index: int) -> dict:
        return self.__getitems__([index])[0]


class Collator:
    """Pad token ids to the longest query of the batch (rounded up to a multiple of
    ``pad_to_multiple_of``, so kernels compiled per length see few lengths); stack labels, masks and
    row indices."""

    def __init__(self, tokenizer, n_models: int, pad_to_multiple_of: int = 1):
        self.tokenizer = tokenizer
        self.n_models = n_models
        self.pad_to_multiple_of = pad_to_multiple_of if pad_to_multiple_of > 1 else None

    def __call__(self, rows: list[dict]) -> dict:
        inputs = [{k: r[k] for k in MODEL_INPUTS if k in r} for r in rows]
        batch = dict(self.tokenizer.pad(inputs, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"))
        batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.float32)
        if "label_mask" in rows[0]:
            batch["label_mask"] = torch.tensor([r["label_mask"] for r in rows], dtype=torch.float32)
        else:
            batch["label_mask"] = torch.ones(len(rows), self.n_models)
        batch["row"] = torch.tensor([r["row"] for r in rows], dtype=torch.long)
        if "task_id" in rows[0]:
            batch["task_id"] = torch.tensor([UNKNOWN_TASK if r.get("pad", False) else r["task_id"] for r in rows], dtype=torch.long)  # step padding: no task target
        real = torch.tensor([not r.get("pad", False) for r in rows])
        batch["label_mask"] *= real[:, None]  # step padding (StepPadded) carries no label
        batch["real"] = real
        return batch


def model_inputs(batch: dict) -> dict:
    return {k: batch[k] for k in MODEL_INPUTS if k in batch}
