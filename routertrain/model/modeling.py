"""The router network: a pretrained encoder, pooling, and a multi-label head (one logit per model).

``RouterConfig`` / ``RouterModel`` are transformers classes (``model_type`` ``routertrain-router``),
registered with the Auto classes, so a router folder loads with ``AutoModelForSequenceClassification``
and ``pipeline("text-classification", ..., function_to_apply="sigmoid", top_k=None)``.
``sigmoid(logit[m])`` estimates P(model m answers the query correctly). The loss is computed here
too (binary cross-entropy with logits, masked where a label is missing) so that training and tests
share one definition.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PreTrainedConfig, PreTrainedModel
from transformers.configuration_utils import SubConfigSpec
from transformers.modeling_outputs import SequenceClassifierOutput

from routertrain.config.schema import ConfigError
from routertrain.model.encoders import SOURCES, resolve
from routertrain.model.kernels import apply_attention_kernel


class EncoderNotFound(OSError):
    """The encoder named in the config is neither a local folder nor in the local HF cache."""


def load_encoder(name_or_path: str, attn_implementation: str | None = None, dtype: torch.dtype | None = None):
    """``AutoModel.from_pretrained`` (a Hub id installed by ``routertrain encoders install`` is read from
    routertrain's encoder cache) with an actionable error when the files are not available."""
    kwargs = {}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    if dtype is not None:
        kwargs["dtype"] = dtype
    try:
        return AutoModel.from_pretrained(resolve(name_or_path), **kwargs)
    except (OSError, ValueError) as err:
        if isinstance(err, ValueError) and not Path(name_or_path).is_dir():  # a ValueError about a loadable model is not "not found"
            raise
        raise EncoderNotFound(f"encoder '{name_or_path}' not found locally ({str(err).splitlines()[0][:120]}); {encoder_fix(name_or_path)}") from None


def encoder_fix(name_or_path: str) -> str:
    """How to make an encoder that failed to load available offline: the step that can work for it."""
    if Path(name_or_path).is_dir():
        return f"the folder {name_or_path} lacks the files save_pretrained writes (config.json, weights, tokenizer); point model.name_or_path at such a folder"
    if name_or_path in SOURCES:
        return f"install it with routertrain encoders install {name_or_path}"
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


MODEL_TYPE = "routertrain-router"


class RouterConfig(PreTrainedConfig):
    """A router's configuration: the model pool as ``id2label``/``label2id`` (output order), multi-label
    classification, and what inference needs (costs, pooling, max length, calibrated settings), with
    the encoder's own config nested under ``encoder`` (its ``model_type`` picks the encoder class)."""

    model_type = MODEL_TYPE
    sub_configs_defaults = {"encoder": SubConfigSpec(config_class=AutoConfig, model_type="bert")}

    encoder: PreTrainedConfig | dict | None = None  # the encoder's transformers config
    pooling: str = "mean"  # how token states become one query vector: mean or cls
    max_length: int = 128  # tokens per query after truncation, as in training
    costs: list[float] | None = None  # cost per query of each model, in label order; None when unknown
    base_model: str | None = None  # the encoder the router was fine-tuned from (Hub id or folder)
    classifier_dropout: float = 0.1  # dropout before the routing head (training only)
    calibration: dict | None = None  # calibrated routing settings (written by calibration; None = raw probabilities)
    train_means: list[float] | None = None  # each model's mean train label, in label order: the routing rule's tie-break after cost (None: pool order)
    format_version: int = 2  # router folder format (1: router_config.json beside the encoder's config.json)
    problem_type: str | None = "multi_label_classification"  # one sigmoid per model: P(that model answers correctly)

    @property
    def models(self) -> list[str]:
        """The model pool in output order."""
        return [self.id2label[i] for i in range(len(self.id2label or {}))]

    def set_pool(self, models: list[str], costs: list[float] | None = None) -> None:
        """Name the outputs: ``id2label``/``label2id`` from ``models``, and their ``costs``."""
        self.id2label = dict(enumerate(models))
        self.label2id = {m: i for i, m in enumerate(models)}
        self.costs = [float(c) for c in costs] if costs is not None else None


class RouterModel(PreTrainedModel):
    """Encoder + pooling + linear head, a transformers model: ``forward`` returns a
    ``SequenceClassifierOutput`` whose ``logits`` have shape (batch, n_models) (with ``loss``, the
    masked BCE, when ``labels`` are given). ``RouterModel(config)`` builds the encoder from
    ``config.encoder``; ``from_encoder`` wraps a loaded (pretrained, maybe LoRA-wrapped) one."""

    config_class = RouterConfig
    base_model_prefix = "router"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _supports_sdpa = True  # attention runs in the encoder, with its own implementation
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    def __init__(self, config: RouterConfig, encoder: nn.Module | None = None):
        super().__init__(config)
        if config.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be mean or cls, got {config.pooling!r}")
        self.encoder = encoder if encoder is not None else AutoModel.from_config(config.encoder)
        self.pooling = config.pooling
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.head = nn.Linear(config.encoder.hidden_size, config.num_labels)
        self.task_head: nn.Linear | None = None  # optional auxiliary task classifier, training only (add_task_head)
        self._given_encoder = encoder is not None
        if self._given_encoder:  # a fresh head, drawn by torch's default init from the global RNG: keep it
            self.head._is_hf_initialized = True
        self.post_init()
        # FSDP's transformer-based wrap shards each block of these classes separately (accelerate reads it);
        # accelerate's FSDP2 also carves the input embeddings out as their own unit, so a block that
        # holds them (BERT's BertEmbeddings) is left out: sharding them twice is an error
        embeddings = self.get_input_embeddings()
        self._no_split_modules = [
            name for name in block_class_names(self.encoder)
            if not any(type(m).__name__ == name and any(c is embeddings for c in m.modules()) for m in self.encoder.modules())
        ]

    @classmethod
    def from_encoder(cls, encoder: nn.Module, n_models: int, pooling: str = "mean", dropout: float = 0.1, **config) -> RouterModel:
        """A router around a loaded encoder, with a fresh head of ``n_models`` outputs."""
        models = config.pop("models", None) or [f"model_{i}" for i in range(n_models)]  # save_router names them
        router_config = RouterConfig(encoder=copy.deepcopy(encoder.config), pooling=pooling, classifier_dropout=dropout, **config)
        router_config.set_pool(models, router_config.costs)
        return cls(router_config, encoder=encoder)

    def initialize_weights(self):
        """Around a given encoder (pretrained, maybe LoRA-wrapped, whose zero-initialised adapters must stay
        as peft made them) only the head is initialised; an encoder built from the config (``from_pretrained``)
        gets transformers' own initialisation of whatever the checkpoint does not hold (e.g. BERT's
        non-persistent position and token-type buffers)."""
        if not self._given_encoder:
            return super().initialize_weights()
        if not getattr(self.head, "_is_hf_initialized", False):
            self.head.reset_parameters()
            self.head._is_hf_initialized = True

    def get_input_embeddings(self) -> nn.Module:
        """The encoder's token embeddings (FSDP2 shards them as their own unit; resize_token_embeddings uses them)."""
        return self.encoder.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.encoder.set_input_embeddings(value)

    def get_output_embeddings(self) -> None:
        return None  # a routing head, not a language-model head: nothing to tie

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-6)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """The pooled query vector the head reads (before dropout)."""
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return self.pool(self.encoder(**kwargs).last_hidden_state, attention_mask)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        with_task_logits: bool = False,
    ) -> SequenceClassifierOutput | tuple:
        pooled = self.dropout(self.embed(input_ids, attention_mask, token_type_ids)).to(self.head.weight.dtype)
        logits = self.head(pooled)
        if with_task_logits:  # training with the auxiliary task head (routertrain.training.losses)
            return logits, self.task_head(pooled)
        loss = None
        if labels is not None:  # NaN marks a missing label
            observed = ~torch.isnan(labels)
            loss = masked_bce(logits, torch.nan_to_num(labels), observed)
        if return_dict is False:
            return (logits,) if loss is None else (loss, logits)
        return SequenceClassifierOutput(loss=loss, logits=logits)


def register_auto_classes() -> None:
    """Make ``AutoConfig``, ``AutoModel`` and ``AutoModelForSequenceClassification`` (and so
    ``pipeline``) load router folders. Runs when this module is imported; ``routertrain.model.auto``
    imports it as soon as transformers' auto classes are, after ``import routertrain``."""
    AutoConfig.register(MODEL_TYPE, RouterConfig, exist_ok=True)
    AutoModel.register(RouterConfig, RouterModel, exist_ok=True)
    AutoModelForSequenceClassification.register(RouterConfig, RouterModel, exist_ok=True)


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
    freeze_lower_layers(encoder, model_cfg.freeze_layers)
    for name, param in encoder.named_parameters():
        # BERT-style pooler (and LoRA adapters put on it): unused by our pooling, so never trained;
        # DDP also refuses trainable parameters that get no gradient
        if re.search(r"(^|\.)pooler\.", name):
            param.requires_grad_(False)
    return RouterModel.from_encoder(encoder, n_models, model_cfg.pooling, model_cfg.dropout, base_model=model_cfg.name_or_path)


def transformer_blocks(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer blocks (``encoder.layer`` in BERT, MPNet, DeBERTa)."""
    stacks = [m for n, m in encoder.named_modules() if isinstance(m, nn.ModuleList) and n.split(".")[-1] in ("layer", "layers")]
    if not stacks:
        raise ConfigError(f"cannot find the transformer blocks of {type(encoder).__name__} (no 'layer' list); set model.freeze_layers=0")
    return max(stacks, key=len)


def freeze_lower_layers(encoder: nn.Module, n: int) -> None:
    """Keep the embeddings and the lowest ``n`` transformer blocks fixed (``model.freeze_layers``):
    no gradient reaches them, so backward stops above them and training is cheaper."""
    if n <= 0:
        return
    blocks = transformer_blocks(encoder)
    if n > len(blocks):
        raise ConfigError(f"model.freeze_layers={n}, but the encoder has {len(blocks)} transformer blocks; use at most {len(blocks)}")
    frozen = {id(p) for block in blocks[:n] for p in block.parameters()}
    frozen |= {id(p) for name, p in encoder.named_parameters() if re.search(r"(^|\.)embeddings\.", name)}
    for param in encoder.parameters():
        if id(param) in frozen:
            param.requires_grad_(False)


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


register_auto_classes()
