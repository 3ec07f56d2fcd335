"""A faster CPU path for inference: dynamic int8 quantisation of the encoder's linear layers.

Weights are stored in int8 and activations quantised on the fly per batch (``torch.ao`` dynamic
quantisation); the head stays in fp32. Measured against eager fp32 in BENCHMARKS.md (speed,
routing agreement, accuracy change), by ``benchmarks/routing_speed.py``.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from routertrain.model.modeling import RouterModel


def quantize_int8(model: RouterModel) -> RouterModel:
    """``model`` with its encoder's ``nn.Linear`` layers replaced by dynamic int8 ones (in place; CPU only)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.ao.quantization points to torchao; the API still works here
        model.encoder = torch.ao.quantization.quantize_dynamic(model.encoder.to("cpu"), {nn.Linear}, dtype=torch.qint8)
    return model
