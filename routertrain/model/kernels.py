"""Optional fused attention kernels for DeBERTa-v2/v3 encoders (``model.attention_kernel``).

transformers has no SDPA path for DeBERTa's disentangled attention, so its eager attention builds
the full (batch, heads, length, length) score matrix plus two relative-position score matrices.
``disentangled-flash`` (PyPI, Apache-2.0) replaces the encoder's attention with an exact
implementation: Triton kernels on CUDA, or an optimised PyTorch path elsewhere. Parameter names
and identities are kept, so optimizers, checkpoints and saved routers are unchanged.

- ``hf``: transformers' own attention (the reference, and the fallback);
- ``disentangled-flash``: Triton kernels on CUDA, the package's PyTorch path on other devices;
- ``disentangled-flash-torch``: the package's PyTorch path on every device.

Parity with ``hf`` is checked by tests (CPU, PyTorch path) and by ``benchmarks/deberta_kernels.py``
(every path the machine can run, in fp32 and bf16, with its speed).
"""

from __future__ import annotations

KERNELS = ("hf", "disentangled-flash", "disentangled-flash-torch")
INSTALL_HINT = "pip install 'routertrain[kernels]' (disentangled-flash), or set model.attention_kernel=hf"


class KernelUnavailable(RuntimeError):
    """The requested attention kernel cannot be used with this encoder or environment."""


def check_kernel(name: str) -> None:
    """Refuse a ``model.attention_kernel`` this registry does not know, in one line (before any work starts)."""
    if name not in KERNELS:
        from routertrain.config import ConfigError, did_you_mean

        raise ConfigError(f"bad value '{name}' for 'model.attention_kernel': choose one of {', '.join(KERNELS)}{did_you_mean(name, list(KERNELS))}")


def apply_attention_kernel(encoder, kernel: str, device_type: str):
    """Swap the attention of a DeBERTa-v2/v3 encoder in place; ``hf`` returns the encoder untouched."""
    check_kernel(kernel)
    if kernel == "hf":
        return encoder
    model_type = getattr(encoder.config, "model_type", "")
    if model_type != "deberta-v2":
        raise KernelUnavailable(f"model.attention_kernel={kernel} only applies to DeBERTa-v2/v3 encoders, not {model_type or type(encoder).__name__}; set model.attention_kernel=hf")
    try:
        from disentangled_flash import enable_deberta_training
    except ImportError:
        raise KernelUnavailable(f"model.attention_kernel={kernel} needs the disentangled-flash package: {INSTALL_HINT}") from None
    head_dim = encoder.config.hidden_size // encoder.config.num_attention_heads
    backend = "torch"
    if kernel == "disentangled-flash" and device_type == "cuda":
        if head_dim not in (32, 64, 128):
            raise KernelUnavailable(f"disentangled-flash's Triton kernels need head dimension 32, 64 or 128, this encoder has {head_dim}; set model.attention_kernel=disentangled-flash-torch or hf")
        backend = "triton"
    import torch

    with torch.random.fork_rng(devices=[]):  # the swap builds modules; keep the global RNG stream (head init, data) as with hf
        enable_deberta_training(encoder, backend=backend)
    if kernel_backend(encoder) == "hf":  # the package leaves the encoder alone when Triton cannot run here
        raise KernelUnavailable(f"model.attention_kernel={kernel}: disentangled-flash could not use Triton here (is triton installed with torch?); set model.attention_kernel=disentangled-flash-torch or hf")
    return encoder


def kernel_backend(encoder) -> str:
    """Which attention actually runs: ``hf``, or ``disentangled-flash/<triton|torch>``."""
    backend = getattr(getattr(encoder, "encoder", None), "backend", None)
    return f"disentangled-flash/{backend}" if backend else "hf"


def padding_multiple(encoder) -> int:
    """The batch-length multiple ``train.pad_to_multiple_of=0`` picks: Triton kernels compile once per
    sequence length, so round lengths up to multiples of 32 (at most 8 lengths up to 256 tokens);
    other attention runs on any length, so pad only to the longest query."""
    return 32 if kernel_backend(encoder) == "disentangled-flash/triton" else 1
