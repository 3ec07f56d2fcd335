"""The router network: a pretrained encoder, pooling, and a multi-label head (one logit per model).

``sigmoid(logit[m])`` estimates P(model m answers the query correctly). The loss is computed here
too (binary cross-entropy with logits, masked where a label is missing) so that training and tests
share one definition.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel

from routertrain.model.kernels import apply_attention_kernel


class EncoderNotFound(OSError):
    """The encoder named in the config is neither a local folder nor in the local HF cache."""


def load_encoder(name_or_path: str, attn_implementation: str | None = None, dtype: torch.dtype | None = None):
    """``AutoModel.from_pretrained`` with an actionable error when the files are not available."""
    kwargs = {}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        return AutoModel.from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError) as err:
        if isinstance(err, ValueError) and not Path(name_or_path).is_dir():  # a ValueError about a loadable model is not "not found"
            raise
        raise EncoderNotFound(f"encoder '{name_or_path}' not found locally ({str(err).splitlines()[0][:120]}); {encoder_fix(name_or_path)}") from None


def encoder_fix(name_or_path: str) -> str:
    """How to make an encoder that failed to load available offline: the step that can work for it."""
    from routertrain.model.encoders import SOURCES

    if Path(name_or_path).is_dir():
        return f"the folder {name_or_path} lacks the files save_pretrained writes (config.json, weights, tokenizer); point model.name_or_path at such a folder"
    if name_or_path in SOURCES:
        return f"install it with python -m routertrain.model.encoders install {name_or_path}"
    return (f"offline, download it on a connected machine (huggingface-cli download {name_or_path}) and copy the HF cache here, "
            f"or set model.name_or_path to a local folder")


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None, denominator: float | None = None) -> torch.Tensor:
    """Mean binary cross-entropy with logits over the observed (query, model) pairs. With
    ``denominator``, the masked sum divided by it instead: the training loop passes the observed pairs
    of the whole optimizer step, so a step split into micro-batches and processes has the gradient of
    its full-batch mean."""
    losses = nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float(), reduction="none")
    if mask is None and denominator is None:
        return losses.mean()
    mask = torch.ones_like(losses) if mask is None else mask.to(losses.dtype)
    return (losses * mask).sum() / (mask.sum().clamp_min(1.0) if denominator is None else max(denominator, 1e-12))


def block_class_names(encoder: nn.Module) -> list[str]:
    """Class names of the encoder's repeated transformer blocks: its ``_no_split_modules`` when the
    model class declares them (BERT does, DeBERTa-v2 does not), else the class of the first list of
    identical modules (``encoder.layer``)."""
    names = list(getattr(encoder, "_no_split_modules", None) or [])
    if not names:
        for module in encoder.modules():
            if isinstance(module, nn.ModuleList) and len(module) > 1 and len({type(m) for m in module}) == 1:
                return [type(module[0]).__name__]
    return names


class RouterModel(nn.Module):
    """Encoder + pooling + linear head. ``forward`` returns logits of shape (batch, n_models)."""

    def __init__(self, encoder: nn.Module, n_models: int, pooling: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be mean or cls, got {pooling!r}")
        self.encoder = encoder
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, n_models)
        self.task_head: nn.Linear | None = None  # optional auxiliary task classifier, training only (add_task_head)
        # FSDP's transformer-based wrap shards each block of these classes separately (accelerate reads it)
        self._no_split_modules = block_class_names(encoder)

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-6)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None, with_task_logits: bool = False):
        """Routing logits; with ``with_task_logits``, ``(logits, task logits)`` of the auxiliary task head."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
        pooled = self.dropout(self.pool(hidden, attention_mask)).to(self.head.weight.dtype)
        if with_task_logits:
            return self.head(pooled), self.task_head(pooled)
        return self.head(pooled)


def build_router_model(model_cfg, n_models: int, device_type: str = "cpu") -> RouterModel:
    """The router as configured: encoder from ``model.name_or_path``, optional LoRA, checkpointing and attention kernel.

    ``device_type`` is where it will train; it picks the attention kernel's backend (Triton needs CUDA).
    """
    encoder = load_encoder(model_cfg.name_or_path, model_cfg.attn_implementation)
    if model_cfg.gradient_checkpointing:
        if hasattr(encoder, "activation_checkpointing_enable"):  # transformers >= 5.x name; the old one warns there
            encoder.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    apply_attention_kernel(encoder, model_cfg.attention_kernel, device_type)  # after checkpointing: the kernel encoder copies that flag
    if model_cfg.lora.r > 0:
        from peft import LoraConfig, get_peft_model

        targets = model_cfg.lora.target_modules
        lora = LoraConfig(
            r=model_cfg.lora.r,
            lora_alpha=model_cfg.lora.alpha,
            lora_dropout=model_cfg.lora.dropout,
            target_modules=targets if targets == "all-linear" else [t.strip() for t in targets.split(",")],
        )
        encoder = get_peft_model(encoder, lora)
    for name, param in encoder.named_parameters():
        # BERT-style pooler (and LoRA adapters put on it): unused by our pooling, so never trained;
        # DDP also refuses trainable parameters that get no gradient
        if re.search(r"(^|\.)pooler\.", name):
            param.requires_grad_(False)
    return RouterModel(encoder, n_models, model_cfg.pooling, model_cfg.dropout)


def init_prior_bias(model: RouterModel, train_means, eps: float = 1e-3) -> None:
    """Set each model's head bias to the logit of its training mean label (clipped to [eps, 1 - eps];
    a model with no training label gets 0), so an untrained head already ranks the models as the
    best-single router does and training learns the deviations."""
    means = torch.as_tensor(train_means, dtype=torch.float64).nan_to_num(0.5).clamp(eps, 1 - eps)
    with torch.no_grad():
        model.head.bias.copy_(torch.logit(means).to(model.head.bias.dtype))


def add_task_head(model: RouterModel, n_tasks: int) -> None:
    """Give the router an auxiliary task classifier on its pooled query (``train.task_loss_weight``)."""
    model.task_head = nn.Linear(model.head.in_features, n_tasks).to(model.head.weight.device, model.head.weight.dtype)


def drop_task_head(model: RouterModel) -> RouterModel:
    """The router without its auxiliary task head: the shipped router needs no task label."""
    model.task_head = None
    return model


def merged(model: RouterModel) -> RouterModel:
    """The same router with LoRA weights folded into the encoder (a plain encoder again)."""
    if hasattr(model.encoder, "merge_and_unload"):
        model.encoder = model.encoder.merge_and_unload()
    return model
