"""The training loop: ``train(cfg)`` fine-tunes a router end to end with Accelerate and returns its metrics.

One visible loop built on Accelerate's own tools (``accumulate``, ``gather_for_metrics``,
``save_state``/``load_state``, ``unwrap_model``) with small helper functions around it. Only the
main process writes files; the run folder is derived from the config, so every rank agrees.

Run folder layout (``checkpoints/<run.name>``, its writer lock ``checkpoints/.<run.name>.lock`` beside it)::

    config.yaml, provenance.json     resolved config; git revision, packages, data fingerprint
    log.jsonl                        every logged metric, one JSON object per line
    checkpoints/step-000123/         resumable states, JSON besides tensors (training.checkpoints)
    best/                            weights and metrics of the best validation routing accuracy
    router/                          the final router folder (see routertrain.hub.router)
    metrics.json                     final validation and test metrics
    done.json                        written last: the run finished (sweeps, evaluate and push check it)

A run stops early, keeping its checkpoints and writing no router, metrics or marker, when the loss
or gradient norm turns non-finite (``Diverged``) or on SIGTERM/SIGINT (``Preempted``, after a
checkpoint at the current step; ``train.py`` exits 75 then, see training.preemption). A failed write
(full disk, file-size limit) stops it in one line naming the path (``provenance.WriteFailed``), the
last complete checkpoint kept. Rerunning a finished run's command trains nothing and leaves it as it is.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import DataLoaderConfiguration, DistributedType, ProjectConfiguration, broadcast, parse_flag_from_env, set_seed
from safetensors.torch import load_file, save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import AutoTokenizer, get_linear_schedule_with_warmup

from routertrain.evaluation import decision as M
from routertrain.training.batching import Collator, EpochSampler, StepPadded, model_inputs, tokenize_split
from routertrain.training.losses import step_loss, with_task_ids
from routertrain.config import Config, ConfigError, flatten, headline_average, to_dict, to_yaml
from routertrain.data import DataError, RoutingData, load_routing_data
from routertrain.data.dataset import column, fingerprint
from routertrain.data.synthetic import bayes_accuracy
from routertrain.model.encoders import cached_snapshot
from routertrain.model.encoders import resolve as resolve_encoder
from routertrain.model.kernels import kernel_backend, padding_multiple
from routertrain.model.modeling import EncoderNotFound, add_task_head, build_router_model, drop_task_head, encoder_fix, init_prior_bias, merged
from routertrain.provenance import DONE, atomic_dir, atomic_write_json, provenance, writing
from routertrain.training.checkpoints import find_checkpoint, load_checkpoint, save_checkpoint
from routertrain.training.preemption import Preempted, StopSignals, stop_requested
from routertrain.training.run_folder import RESUME_HINT, cut_log, finished_results, lock_run_dir, prepare_run_dir, result_settings
from routertrain.hub.push import PushError, push
from routertrain.hub.router import save_router

class Diverged(RuntimeError):
    """A non-finite loss or gradient norm: the run stops, keeping its last good checkpoint."""


def run_name(cfg: Config) -> str:
    """``run.name`` or ``<recipe>-<hash of the settings that change the result>``: the same on every rank."""
    if cfg.run.name:
        return cfg.run.name
    return f"{cfg.recipe or 'default'}-{fingerprint(result_settings(to_dict(cfg)))[:8]}"


def batch_geometry(cfg: Config, num_processes: int) -> tuple[int, int]:
    """(per-device batch, gradient accumulation steps) that realise ``train.global_batch_size``."""
    total = cfg.train.global_batch_size
    per_device = cfg.train.per_device_batch_size or max(1, total // num_processes)
    if total % (per_device * num_processes):
        raise ConfigError(
            f"train.global_batch_size={total} is not a multiple of per-device batch {per_device} x {num_processes} processes; "
            f"choose train.per_device_batch_size so that it divides"
        )
    return per_device, total // (per_device * num_processes)


def observed_labels(dataset, n_models: int) -> np.ndarray:
    """Observed labels per example (the label mask's row sums; every model when there is no mask)."""
    if "label_mask" in dataset.column_names:
        return np.asarray(dataset["label_mask"], dtype=np.float64).sum(axis=1)
    return np.full(len(dataset), float(n_models))


def make_loader(dataset, collate: Collator, batch_size: int, sampler: EpochSampler, workers: int):
    """(loader of ``batch_size`` examples per forward pass in ``sampler``'s order, the sampler)."""
    loader = DataLoader(
        StepPadded(dataset), batch_size=batch_size, sampler=sampler, collate_fn=collate, num_workers=workers,
        pin_memory=torch.cuda.is_available(), persistent_workers=workers > 0,
    )
    return loader, sampler


def train_sampler(dataset, seed: int, group: bool, step: int, batch_size: int) -> EpochSampler:
    """The training order. It orders whole optimizer steps (``step`` = batch x processes x accumulation
    examples), so which examples share a step depends on the global batch only: trading per-device
    batch for accumulation or processes changes memory use, not the training trajectory. A short last
    step is padded (masked copies) when it would be split over processes or micro-batches."""
    return EpochSampler(list(dataset["length"]), seed, shuffle=True, group_size=step * 32 if group else None, step_size=step, pad_last_step=step > batch_size)


@torch.no_grad()
def predict(model, loader, accelerator: Accelerator) -> tuple[np.ndarray, np.ndarray]:  # P(correct), as the exported router gives it
    """Logits and dataset row indices of a whole split, gathered over processes (no duplicates)."""
    model.eval()
    probs, rows = [], []
    for batch in loader:
        out = model(**model_inputs(batch)).logits.float()
        out, row = accelerator.gather_for_metrics((out, batch["row"]))
        probs.append(torch.sigmoid(out).cpu())  # float32 sigmoid, as Router.encode computes it: equal scores tie as they will at inference
        rows.append(row.cpu())
    model.train()
    return torch.cat(probs).numpy(), torch.cat(rows).numpy()


def split_report(scores: np.ndarray, rows: np.ndarray, data: RoutingData, split: str, average: str, missing: str = "complete",
                 choice: np.ndarray | None = None) -> dict:
    """Routing metrics of one split (``evaluation.decision.routing_report``: the evaluator's
    definitions and the routing rule's decisions, ties broken by the data's costs and train means,
    averaged ``average``, missing labels as ``missing`` says); adds the Bayes ceiling when the data
    knows true probabilities. ``scores`` are the router's P(correct) (sigmoid of its logits) in row
    order ``rows``; ``choice``, the router's own decisions where it makes them (a saved setting)."""
    order = np.argsort(rows)
    scores = scores[order]
    labels = data.labels(split)
    report = M.routing_report(scores, labels, data.labels("train"), data.tasks(split), data.tasks("train"), average, data.costs, missing,
                              None if choice is None else np.asarray(choice)[order])
    ds = data.splits[split]
    if "p_correct" in ds.column_names:
        p = np.asarray(ds.with_format("numpy")["p_correct"], dtype=np.float64).reshape(labels.shape)
        report["bayes_acc"] = bayes_accuracy(p, labels)["realized"]
        report["bayes_expected_acc"] = bayes_accuracy(p, labels)["expected"]
    return report


def router_report(router, data: RoutingData, split: str, average: str, missing: str = "complete") -> dict:
    """``split_report`` of a saved router (``Router``, ``EnsembleRouter`` or ``BlendRouter``) on
    ``split``, scoring the decisions ``route()`` makes: how tune, ensembles and blends score the
    folders they ship."""
    probs = router.predict(data.queries(split))
    return split_report(probs, np.arange(len(probs)), data, split, average, missing, router.decide(probs))


def clock() -> float:
    """Wall time, after the GPU has finished queued work (so intervals measure real work)."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter()


def full_weights(accelerator: Accelerator, model) -> dict[str, torch.Tensor]:
    """The whole model's weights under their plain names; every rank takes part (FSDP gathers here).
    torch.compile (accelerate's ``--dynamo_backend``) files them under ``_orig_mod.``, which the best
    weights and the exported router must not carry."""
    return {k.replace("_orig_mod.", ""): v for k, v in accelerator.get_state_dict(model).items()}


def save_best(accelerator: Accelerator, model, run_dir: Path, report: dict, step: int) -> None:
    state = full_weights(accelerator, model)
    if accelerator.is_main_process:
        with writing(run_dir / "best", RESUME_HINT), atomic_dir(run_dir / "best") as tmp:
            save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "state.safetensors"))
            atomic_write_json(tmp / "metrics.json", {"step": step, "validation": report})
    accelerator.wait_for_everyone()


def log(accelerator: Accelerator, run_dir: Path, values: dict, step: int) -> None:
    accelerator.log(values, step=step)
    if accelerator.is_main_process:
        with writing(run_dir / "log.jsonl", RESUME_HINT), open(run_dir / "log.jsonl", "a") as fh:
            fh.write(json.dumps({"step": step, **values}) + "\n")


@dataclass
class Run:
    """What the steps of one training run share: set up once, then advanced step by step."""

    cfg: Config
    accelerator: Accelerator
    run_dir: Path
    data: RoutingData
    tokenizer: Any
    model: Any
    splits: dict  # tokenized train, validation and test
    accum: int  # gradient accumulation steps
    optimizer: Any = None
    scheduler: Any = None
    train_loader: Any = None
    sampler: EpochSampler | None = None
    eval_loaders: dict = field(default_factory=dict)
    steps_per_epoch: int = 0
    total_steps: int = 0
    step: int = 0  # optimizer steps done
    best: dict = field(default_factory=lambda: {"routing_acc": -1.0, "step": 0})
    excluded: float = 0.0  # seconds spent evaluating and checkpointing, left out of the throughput
    running_loss: list = field(default_factory=list)  # each step's part of the loss since the last log
    started: float = 0.0  # clock() when the training steps of this process started
    runtime_before: float = 0.0  # training time spent before the checkpoint this run resumed from
    counts: Any = None  # samples, real tokens, padded tokens (on the device)
    diverged_at: Any = None  # first step with a non-finite loss or gradient norm, inf while none (on the device)
    stopped_at: int | None = None  # the step at which on_evaluate stopped training
    signals: StopSignals = field(default_factory=StopSignals)  # SIGTERM / SIGINT received during training

    @property
    def n_models(self) -> int:
        return len(self.data.models)

    @property
    def average(self) -> str:
        """How this run's accuracies are averaged (and its best checkpoint chosen): micro or macro."""
        return headline_average(self.cfg)


def setup_accelerator(cfg: Config) -> tuple[Accelerator, Path, int, int]:
    """(accelerator, run folder, per-device batch, accumulation steps), refusing fp16 off CUDA first."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        # one process: forget the settings of an earlier train() in this interpreter (tests, notebooks)
        AcceleratorState._reset_state(reset_partial_state=True)
    cpu = not torch.cuda.is_available() or parse_flag_from_env("ACCELERATE_USE_CPU")  # gloo under torchrun on CPU
    state = PartialState(cpu=cpu)
    if cfg.train.mixed_precision == "fp16" and state.device.type != "cuda":
        raise ConfigError(f"train.mixed_precision=fp16 needs a CUDA GPU (on {state.device.type} it runs several times slower than fp32); set train.mixed_precision=bf16 or no")
    per_device, accum = batch_geometry(cfg, state.num_processes)
    run_dir = Path(cfg.run.output_dir) / run_name(cfg)
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=cfg.train.mixed_precision,
        gradient_accumulation_steps=accum,
        log_with=None if cfg.tracking.backend == "none" else cfg.tracking.backend,
        project_config=ProjectConfiguration(project_dir=str(run_dir), logging_dir=str(run_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(non_blocking=True),  # with pinned memory, copy the next batch while the GPU works
    )
    set_seed(cfg.run.seed)
    return accelerator, run_dir, per_device, accum


def check_scored_queries(data: RoutingData, cfg: Config, say) -> None:
    """Before any work: with ``eval.missing=complete`` each evaluated split needs a query with every
    model labelled (a one-line error naming the fix if not); a warning when under half of it is scored."""
    if cfg.eval.missing != "complete":
        return
    for split in ("validation", *[s.strip() for s in cfg.eval.splits.split(",") if s.strip() and s.strip() != "validation"]):
        labels = data.labels(split)
        complete = int(np.isfinite(labels).all(axis=1).sum())
        if complete == 0:
            raise DataError(f"no {split} query has a label for every model, so eval.missing=complete would score none: set eval.missing=wrong "
                            "(a chosen model without a label counts as a failure)")
        if complete < len(labels) / 2:
            say(f"warning: eval.missing=complete scores {complete} of {len(labels)} {split} queries (those with every model labelled); "
                "eval.missing=wrong scores them all")


def setup_data_and_model(cfg: Config, accelerator: Accelerator, run_dir: Path, per_device: int, accum: int) -> Run:
    """Data, tokenizer and model (everything that can fail on bad input), then the run folder."""
    data = load_routing_data(cfg.data)
    check_scored_queries(data, cfg, accelerator.print)
    model_cfg = local_encoder(cfg.model, accelerator)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_cfg.name_or_path)
    except (OSError, ValueError):
        raise EncoderNotFound(f"tokenizer of '{cfg.model.name_or_path}' not found locally; {encoder_fix(cfg.model.name_or_path)}") from None
    model = build_router_model(model_cfg, len(data.models), accelerator.device.type)
    check_max_length(cfg.data.max_length, model.encoder.config, cfg.model.name_or_path)
    if cfg.model.prior_bias:
        init_prior_bias(model, M.model_means(data.labels("train")))
    inputs = dict(data.splits)
    if cfg.train.task_loss_weight > 0:  # the auxiliary task head and its target column (training only)
        inputs["train"], n_tasks = with_task_ids(inputs["train"], cfg.train.task_loss_weight)
        add_task_head(model, n_tasks)
    with writing(data.info.get("cache_path", "the tokenized splits' cache"), RESUME_HINT), accelerator.main_process_first():
        splits = {s: tokenize_split(inputs[s], tokenizer, cfg.data.max_length) for s in ("train", "validation", "test")}
    run = Run(cfg, accelerator, run_dir, data, tokenizer, model, splits, accum)

    prepare_run_dir(cfg, run_dir, accelerator)
    if accelerator.is_main_process:
        with writing(run_dir / "provenance.json", RESUME_HINT):
            atomic_write_json(run_dir / "provenance.json", provenance(data.fingerprint) | {"data": data.meta(), "attention_kernel": kernel_backend(model.encoder), "distributed_type": str(accelerator.distributed_type.value), "dynamo_backend": str(accelerator.state.dynamo_plugin.backend.value), "num_processes": accelerator.num_processes, "per_device_batch_size": per_device, "gradient_accumulation_steps": accum})
    if cfg.tracking.backend != "none":
        config = {k: ("null" if v is None else v) for k, v in flatten(to_dict(cfg)).items()}
        accelerator.init_trackers(cfg.tracking.project, config=config, init_kwargs={"wandb": {"dir": str(run_dir / "logs"), "name": run_dir.name}})

    pad_to = cfg.train.pad_to_multiple_of or padding_multiple(model.encoder)
    collate = Collator(tokenizer, run.n_models, pad_to)
    step_size = per_device * accelerator.num_processes * accum
    run.train_loader, run.sampler = make_loader(splits["train"], collate, per_device, train_sampler(splits["train"], cfg.run.seed, cfg.train.group_by_length, step_size, per_device), cfg.train.num_workers)
    for s in ("validation", "test"):
        by_length = EpochSampler(column(splits[s], "length"), 0, shuffle=False, group_size=cfg.eval.batch_size * 32)
        run.eval_loaders[s] = make_loader(splits[s], collate, cfg.eval.batch_size, by_length, cfg.train.num_workers)[0]
    return run


def local_encoder(model_cfg, accelerator: Accelerator):
    """``model_cfg`` naming the HF cache's snapshot folder when the Hub id is fully cached, so loading
    makes no Hub request (offline, from_pretrained would retry for minutes); said once. Otherwise
    unchanged: transformers resolves it (HF_HUB_OFFLINE=1 keeps that local too)."""
    installed = resolve_encoder(model_cfg.name_or_path)  # routertrain's own encoder cache first
    if installed != model_cfg.name_or_path:
        return replace(model_cfg, name_or_path=installed)
    snapshot = None if Path(model_cfg.name_or_path).is_dir() else cached_snapshot(model_cfg.name_or_path)
    if snapshot is None:
        return model_cfg
    accelerator.print(f"encoder {model_cfg.name_or_path}: loading the local HF cache's copy ({snapshot}), offline: no Hub request")
    return replace(model_cfg, name_or_path=str(snapshot))


def check_max_length(max_length: int, config, name: str) -> None:
    """Refuse ``data.max_length`` beyond an encoder's absolute position embeddings (RoBERTa-style
    models start counting after the padding index); relative-position encoders (DeBERTa) take any length."""
    positions = getattr(config, "max_position_embeddings", None)
    if not positions or not getattr(config, "position_biased_input", True):
        return
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta", "camembert", "mpnet", "longformer"):
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    if max_length > positions:
        raise ConfigError(f"data.max_length={max_length} is more than the {positions} positions of encoder '{name}'; set data.max_length={positions} or less")


def setup_optimizer(run: Run) -> None:
    """AdamW (no decay on biases, norms and the head), the linear schedule, and ``accelerator.prepare``."""
    cfg, accelerator = run.cfg, run.accelerator
    head_lr = cfg.train.head_lr or cfg.train.lr
    no_decay = lambda name: name.endswith("bias") or "norm" in name.lower()  # noqa: E731
    params = [(n, p) for n, p in run.model.named_parameters() if p.requires_grad]
    head = lambda name: name.startswith(("head.", "task_head."))  # noqa: E731
    groups = [
        {"params": [p for n, p in params if not head(n) and not no_decay(n)], "lr": cfg.train.lr, "weight_decay": cfg.train.weight_decay},
        {"params": [p for n, p in params if not head(n) and no_decay(n)], "lr": cfg.train.lr, "weight_decay": 0.0},
        {"params": [p for n, p in params if head(n)], "lr": head_lr, "weight_decay": 0.0},
    ]
    fused = accelerator.device.type in ("cuda", "cpu")  # one kernel for all parameters (as the Trainer's default adamw_torch_fused)
    optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=cfg.train.lr, fused=fused or None)

    run.model, run.optimizer, run.train_loader, *eval_list = accelerator.prepare(run.model, optimizer, run.train_loader, *run.eval_loaders.values())
    run.eval_loaders = dict(zip(run.eval_loaders, eval_list))
    run.steps_per_epoch = math.ceil(len(run.train_loader) / run.accum)
    run.total_steps = cfg.train.max_steps if cfg.train.max_steps > 0 else math.ceil(cfg.train.epochs * run.steps_per_epoch)
    run.scheduler = get_linear_schedule_with_warmup(run.optimizer, int(cfg.train.warmup_ratio * run.total_steps), run.total_steps)
    run.counts = torch.zeros(3, dtype=torch.float64, device=accelerator.device)
    run.diverged_at = torch.tensor(math.inf, dtype=torch.float64, device=accelerator.device)


def resume(run: Run) -> None:
    """Continue from the run's latest checkpoint (or ``train.resume``), when there is one."""
    checkpoint = find_checkpoint(run.run_dir, run.cfg.train.resume, say=lambda _: None)  # prepare_run_dir named the skipped ones
    if checkpoint is None:
        return
    saved = load_checkpoint(run.accelerator, checkpoint, run.scheduler)
    run.step, run.best = saved["step"], saved["best"]
    restore_process_state(run, saved["process"])
    run.accelerator.print(f"resumed from {checkpoint} at step {run.step}")
    if run.accelerator.is_main_process:
        with writing(run.run_dir / "log.jsonl", RESUME_HINT):
            cut_log(run.run_dir, run.step)  # the steps after the checkpoint are logged again as they are redone
    kept = run.run_dir / "best" / "metrics.json"
    if run.best["step"] and not (kept.is_file() and json.loads(kept.read_text()).get("step") == run.best["step"]):
        # e.g. train.resume=<another run's checkpoint>: that run's best weights are not in this folder
        run.accelerator.print(f"the best weights (step {run.best['step']}) are not in {kept.parent}: the best step is chosen again from step {run.step} on")
        run.best = {"routing_acc": -1.0, "step": 0}


def process_state(run: Run) -> dict:
    """This process's statistics at a checkpoint, JSON-ready: the loss parts since the last log (so the
    resumed run's next logged loss is the uninterrupted run's), samples and tokens seen, training time."""
    parts = [t.item() for t in run.running_loss]
    dtype = str(run.running_loss[0].dtype).removeprefix("torch.") if run.running_loss else "float32"
    runtime = run.runtime_before + clock() - run.started - run.excluded
    return {"running_loss": parts, "loss_dtype": dtype, "counts": run.counts.tolist(), "runtime_s": runtime}


def restore_process_state(run: Run, saved: dict) -> None:
    """Undo ``process_state`` (checkpoints written before it was kept restore nothing)."""
    if not saved:
        return
    device, dtype = run.accelerator.device, getattr(torch, saved["loss_dtype"])
    run.running_loss = [torch.tensor(v, dtype=dtype, device=device) for v in saved["running_loss"]]
    run.counts = torch.tensor(saved["counts"], dtype=torch.float64, device=device)
    run.runtime_before = float(saved["runtime_s"])


def train_epoch(run: Run, progress, on_evaluate) -> bool:
    """Optimizer steps until the epoch or the run ends; True when ``on_evaluate`` asked to stop."""
    cfg, accelerator, model = run.cfg, run.accelerator, run.model
    epoch, done_in_epoch = divmod(run.step, run.steps_per_epoch)
    run.sampler.epoch = epoch
    step_labels = run.sampler.step_weights(epoch, observed_labels(run.splits["train"], run.n_models))
    step_queries = run.sampler.step_weights(epoch, np.ones(len(run.splits["train"])))  # the per-query losses' denominator
    # the step's loss is its full batch's mean: each micro-batch's masked sum over the observed labels of the
    # whole step, times the factors that accelerate (1 / accumulation) and DDP/FSDP (1 / processes) divide by
    spread = run.accum * accelerator.num_processes
    loader = accelerator.skip_first_batches(run.train_loader, done_in_epoch * run.accum) if done_in_epoch else run.train_loader
    new_step = True
    for batch in loader:
        if new_step:
            # dropout noise depends only on (seed, step, rank): resuming reproduces it exactly
            torch.manual_seed(cfg.run.seed * 1_000_003 + run.step * 101 + accelerator.process_index)
            new_step = False
        with accelerator.accumulate(model):
            in_epoch = run.step - epoch * run.steps_per_epoch
            loss = step_loss(cfg.train, model, batch, float(step_labels[in_epoch]) / spread, float(step_queries[in_epoch]) / spread)
            accelerator.backward(loss)
            unhealthy = ~torch.isfinite(loss.detach())
            if accelerator.sync_gradients:  # the norm is measured even with clipping off (max_grad_norm=0: no limit)
                norm = accelerator.clip_grad_norm_(model.parameters(), cfg.train.max_grad_norm or math.inf)
                unhealthy |= ~torch.isfinite(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # FSDP2: a DTensor
            # the first step with a non-finite loss or gradient norm, kept on the device (no synchronisation)
            run.diverged_at = torch.where(unhealthy & (run.diverged_at > run.step), float(run.step + 1), run.diverged_at)
            run.optimizer.step()
            if accelerator.sync_gradients:
                run.scheduler.step()
            run.optimizer.zero_grad()
        run.running_loss.append(loss.detach() / spread)  # its part of the step's mean loss
        run.counts[0] += batch["real"].sum()  # stays on the device: no synchronisation per batch
        run.counts[1] += (batch["attention_mask"] * batch["real"][:, None]).sum()  # step padding rows are not real tokens
        run.counts[2] += batch["input_ids"].numel()
        if not accelerator.sync_gradients:
            continue
        run.step += 1
        new_step = True
        progress.update(1)
        if end_of_step(run, progress, on_evaluate) or run.step >= run.total_steps:
            return run.stopped_at is not None
    return False


def end_of_step(run: Run, progress, on_evaluate) -> bool:
    """Log, evaluate and checkpoint as scheduled after optimizer step ``run.step``; True to stop now."""
    cfg, step, last = run.cfg, run.step, run.step == run.total_steps
    logs, evals = step % cfg.tracking.log_every == 0 or last, step % (cfg.train.eval_every or run.steps_per_epoch) == 0 or last
    save_every = cfg.train.save_every or run.steps_per_epoch
    saves = save_every > 0 and (step % save_every == 0 or last)
    preempted = stop_requested(run.accelerator, run.signals)  # SIGTERM / SIGINT on any rank
    if logs or evals or saves or preempted:
        check_finite(run)  # before anything of a diverged model is logged, kept as best or checkpointed
    if logs:
        # mean over the steps since the last log of each step's full-batch loss (parts summed over processes)
        mean_loss = run.accelerator.reduce(torch.stack(run.running_loss).sum(), reduction="sum").item() / (len(run.running_loss) // run.accum)
        log(run.accelerator, run.run_dir, {"train/loss": mean_loss, "train/lr": run.scheduler.get_last_lr()[0], "train/epoch": step / run.steps_per_epoch}, step)
        progress.set_postfix(loss=f"{mean_loss:.4f}")
        run.running_loss = []
    stop = evaluate(run, on_evaluate) if evals else False
    if saves or (stop and save_every > 0) or preempted:
        paused = clock()
        state = {"step": step, "best": run.best, "scheduler": run.scheduler.state_dict()}
        with writing(run.run_dir / "checkpoints" / f"step-{step:06d}", RESUME_HINT):
            checkpoint = save_checkpoint(run.accelerator, run.run_dir, step, state, cfg.train.keep_checkpoints, process_state(run))
        run.excluded += clock() - paused
        if preempted:
            why = run.signals.received or "a stop signal on another process"
            raise Preempted(f"stopped by {why} at step {step}: checkpoint saved in {checkpoint}; run the same command again to resume (train.resume=auto)")
    return stop


def check_finite(run: Run) -> None:
    """Raise ``Diverged`` (on every rank alike) when any step so far had a non-finite loss or gradient norm."""
    at = run.accelerator.gather(run.diverged_at[None]).min().item()
    if math.isfinite(at):
        kept = find_checkpoint(run.run_dir, "auto", say=lambda _: None)
        train = run.cfg.train
        raise Diverged(
            f"training diverged at step {int(at)}: the loss or gradient norm is not finite; lower train.lr (now {train.lr:g}), "
            + ("train with train.mixed_precision=no instead of " + train.mixed_precision + ", " if train.mixed_precision != "no" else "")
            + ("keep clipping on (train.max_grad_norm=1.0), " if not train.max_grad_norm else "")
            + f"then rerun; {'the last good checkpoint is ' + str(kept) if kept else 'no checkpoint was saved'}; no router or metrics were written"
        )


def evaluate(run: Run, on_evaluate) -> bool:
    """Validation metrics, logged; the best weights so far kept; True when ``on_evaluate`` says stop
    (asked on the main process, the answer broadcast so that every rank stops at the same step)."""
    paused = clock()
    probs, rows = predict(run.model, run.eval_loaders["validation"], run.accelerator)
    report = split_report(probs, rows, run.data, "validation", run.average, run.cfg.eval.missing)
    log(run.accelerator, run.run_dir, {f"eval/{k}": v for k, v in flatten(report).items() if isinstance(v, (int, float))}, run.step)
    if report["routing_acc"] > run.best["routing_acc"]:
        run.best = {"routing_acc": report["routing_acc"], "step": run.step}
        save_best(run.accelerator, run.model, run.run_dir, report, run.step)
    stop = False
    if on_evaluate is not None:
        wants = bool(on_evaluate(run.step, report)) if run.accelerator.is_main_process else False
        stop = bool(broadcast(torch.tensor([wants], device=run.accelerator.device)).item())
        if stop:
            run.stopped_at = run.step
    run.excluded += clock() - paused
    return stop


def final_evaluate(run: Run, runtime: float) -> dict:
    """The best validation weights back in the model, scored on ``eval.splits``; throughput figures."""
    accelerator, model = run.accelerator, run.model
    sharded = accelerator.distributed_type == DistributedType.FSDP  # parameters are shards (DTensors) on each rank
    unwrapped = accelerator.unwrap_model(model, keep_torch_compile=False)  # plain names, as the best weights have
    if (run.run_dir / "best" / "state.safetensors").is_file():
        best_state = load_file(str(run.run_dir / "best" / "state.safetensors"))
        if sharded:
            set_model_state_dict(unwrapped, best_state, options=StateDictOptions(full_state_dict=True))
        else:
            unwrapped.load_state_dict(best_state)
    models = run.data.models
    results = {"best_step": run.best["step"], "total_steps": run.total_steps, "models": models, "best_single_model": models[M.best_single_index(run.data.labels("train"), run.data.tasks("train"), run.average, run.data.costs)]}
    if run.stopped_at is not None:
        results["stopped_at"] = run.stopped_at
    # the exported router runs in fp32: score the final splits without the mixed-precision autocast
    # wrapper (training is over), so metrics.json describes the router that ships with it
    final = accelerator.unwrap_model(model, keep_fp32_wrapper=False) if run.cfg.train.mixed_precision != "no" else model
    for split in [s.strip() for s in run.cfg.eval.splits.split(",") if s.strip()]:
        probs, rows = predict(final, run.eval_loaders[split], accelerator)
        results[split] = split_report(probs, rows, run.data, split, run.average, run.cfg.eval.missing)
    samples, real_tokens, padded_tokens = accelerator.reduce(run.counts, reduction="sum").tolist()
    results["train"] = {
        "runtime_s": runtime,
        "samples_seen": int(samples),
        "samples_per_s": samples / max(runtime, 1e-9),
        "real_tokens_per_s": real_tokens / max(runtime, 1e-9),
        "padding_share": 1 - real_tokens / max(padded_tokens, 1),
    }
    if torch.cuda.is_available():
        results["train"]["peak_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return results


def export(run: Run, results: dict) -> None:
    """The router folder (merged, fp32), metrics.json, then ``done.json`` last; then the optional push to the Hub."""
    accelerator, cfg, run_dir = run.accelerator, run.cfg, run.run_dir
    sharded = accelerator.distributed_type == DistributedType.FSDP
    full_state = full_weights(accelerator, run.model) if sharded else None  # every rank takes part in the gather
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        if sharded:  # a whole copy for export, built like the trained one and given the gathered weights
            unwrapped = build_router_model(cfg.model, run.n_models, "cpu")
            unwrapped.load_state_dict({k: v for k, v in full_state.items() if not k.startswith("task_head.")})
        else:
            unwrapped = accelerator.unwrap_model(run.model, keep_torch_compile=False)
        router = merged(drop_task_head(unwrapped)).to(torch.float32)  # the shipped router needs no task label
        with writing(run_dir / "router", RESUME_HINT):
            save_router(
                router, run.tokenizer, run_dir / "router", run.data.models, run.data.costs, cfg.data.max_length, cfg.model.name_or_path,
                train_means=M.model_means(run.data.labels("train"), run.data.tasks("train"), run.average),
                extra_files={
                    "metrics.json": json.dumps(results, indent=2),
                    "training_config.yaml": to_yaml(cfg),
                    "provenance.json": (run_dir / "provenance.json").read_text(),
                },
            )
        with writing(run_dir / "metrics.json", RESUME_HINT):
            atomic_write_json(run_dir / "metrics.json", results)
        with writing(run_dir / DONE, RESUME_HINT):
            atomic_write_json(run_dir / DONE, {"router": "router", "metrics": "metrics.json", "best_step": results["best_step"], "total_steps": run.total_steps})
        if cfg.push.repo_id:
            try:
                results["push"] = {"url": push(run_dir / "router", cfg.push.repo_id, cfg.push.revision, cfg.push.private)}
            except PushError as err:
                results["push"] = {"error": str(err)}
    accelerator.wait_for_everyone()


def finish_trackers(accelerator: Accelerator) -> None:
    """``Accelerator.end_training`` without its ``destroy_process_group``: destroying the gloo group right
    after the last collective, while the DDP reducer still holds it, can deadlock (the group's destructor
    joins its worker threads holding the GIL while a worker waits for the GIL to free the last
    collective's tensors; seen as a rank hanging after ``done.json``). The group lives on (accelerate's
    state is per process, so a later run in the same process reuses it) and goes with the process."""
    for tracker in accelerator.trackers:
        tracker.finish()


def train(cfg: Config, on_evaluate: Callable[[int, dict], bool] | None = None) -> dict:
    """Fine-tune a router as configured; returns the final metrics (also in ``<run>/metrics.json``).

    ``on_evaluate(step, validation_metrics)`` is called on the main process after each validation
    evaluation; when it returns True, training stops at that step (every rank together), a checkpoint
    is saved there, and the run ends as usual with the best weights so far (``stopped_at`` in the
    results). A tuner's pruning hook, for instance.

    Raises ``Diverged`` on a non-finite loss or gradient norm and ``Preempted`` after SIGTERM/SIGINT
    (a checkpoint saved at that step); neither writes a router, metrics.json or done.json."""
    accelerator, run_dir, per_device, accum = setup_accelerator(cfg)
    lock = lock_run_dir(cfg, run_dir, accelerator)
    try:
        results = finished_results(cfg, run_dir)
        if results is not None:
            accelerator.print(f"run {run_dir} already finished ({DONE} is there): nothing to train, the folder is left as it is; "
                              "to train it again set train.resume=never, or run.name=<another name> for a new run")
            return {**results, "run_dir": str(run_dir), "already_finished": True}
        run = setup_data_and_model(cfg, accelerator, run_dir, per_device, accum)
        setup_optimizer(run)
        resume(run)

        progress = tqdm(total=run.total_steps, initial=run.step, disable=not run.accelerator.is_local_main_process, desc="train")
        run.started = clock()
        run.model.train()
        with run.signals, progress:
            while run.step < run.total_steps and not train_epoch(run, progress, on_evaluate):
                pass
        check_finite(run)
        runtime = run.runtime_before + clock() - run.started - run.excluded  # training steps only: evaluation and checkpointing excluded

        results = final_evaluate(run, runtime)
        export(run, results)
        finish_trackers(run.accelerator)
    finally:
        if lock is not None:
            lock.release()
    results["run_dir"] = str(run.run_dir)
    return results
