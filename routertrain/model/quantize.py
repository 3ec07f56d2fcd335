"""A faster CPU path for inference: dynamic int8 quantisation of the encoder's linear layers.

Weights are stored in int8 and activations quantised on the fly per batch (``torch.ao`` dynamic
quantisation); the head stays in fp32. It changes some decisions (95.9% agreement with eager fp32 on
MMLU-Pro, BENCHMARKS.md), so it is opt-in (``serve --fast int8``); ``routertrain.hub.onnx`` is
the faster path that routes identically.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from routertrain.model.modeling import RouterModel


def quantize_int8(model: RouterModel) -> RouterModel:
    """``model`` with its encoder's ``nn.Linear`` layers replaced by dynamic int8 ones (in place; CPU only)."""
    with warnings.catch_warnings():
        # torch.ao.quantization and quantised tensors are deprecated in favour of torchao; they still work in torch 2.13
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        model.encoder = torch.ao.quantization.quantize_dynamic(model.encoder.to("cpu"), {nn.Linear}, dtype=torch.qint8)
    return model
