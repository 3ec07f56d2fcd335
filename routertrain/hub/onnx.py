"""A faster CPU path that routes identically: the router's network (encoder, pooling, head) exported to
ONNX and run with ONNX Runtime.

``Router.from_pretrained(folder, backend="onnx")`` and ``serve --fast onnx`` use it. The graph is a plain
``torch.onnx`` export (TorchScript exporter, opset 17, no fusion) with dynamic batch and sequence axes,
so a batch is padded only to its longest query. It is cached in routertrain's cache, keyed on the
weights (``$ROUTERTRAIN_CACHE/onnx/<sha256 of model.safetensors>.onnx``, default ``~/.cache/routertrain``;
not in the router folder, so ``push`` does not upload it), written atomically; changed weights (or
config) get a new file. Measured against eager fp32 in BENCHMARKS.md (``benchmarks/routing_speed.py``).
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from routertrain.hub.folder import CONFIG, WEIGHTS
from routertrain.provenance import atomic_write_bytes, cache_root, file_digest

OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class Scorer(nn.Module):
    """What ``Router.encode`` computes from token ids: P(correct) per model and the pooled query vector."""

    def __init__(self, model: nn.Module, with_token_types: bool):
        super().__init__()
        self.model, self.with_token_types = model, with_token_types

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        vectors = self.model.embed(input_ids, attention_mask, token_type_ids if self.with_token_types else None)
        return torch.sigmoid(self.model.head(vectors.to(self.model.head.weight.dtype)).float()), vectors.float()


def export_bytes(model: nn.Module, with_token_types: bool) -> bytes:
    """The ONNX graph of ``model`` (a RouterModel), exported in eval mode on CPU."""
    scorer = Scorer(model, with_token_types).eval()  # eval *before* export: it restores the wrapper's own flag after
    names = list(INPUTS if with_token_types else INPUTS[:2])
    example = tuple(torch.ones(2, 8, dtype=torch.long) if n != "token_type_ids" else torch.zeros(2, 8, dtype=torch.long) for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"probs": {0: "batch"}, "pooled": {0: "batch"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer warnings about Python control flow on shapes in transformers' masking code
        torch.onnx.export(scorer, example, buffer, input_names=names, output_names=["probs", "pooled"], dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True, dynamo=False)
    model.eval()  # whatever the exporter restored, the router's network stays in eval mode (dropout off)
    return buffer.getvalue()


def cached_graph(model: nn.Module, weights: Path, with_token_types: bool) -> Path:
    """The ONNX file for the network whose weights are ``weights`` (beside its ``config.json``), exported
    the first time, and again after either changed."""
    key = hashlib.sha256(f"{file_digest(weights)} {file_digest(weights.with_name(CONFIG))} {OPSET} {with_token_types}".encode()).hexdigest()
    path = cache_root() / "onnx" / f"{key[:32]}.onnx"
    if not path.is_file():
        try:
            atomic_write_bytes(path, export_bytes(model, with_token_types))
        except OSError as err:
            raise OSError(f"cannot write the ONNX graph to {path.parent} ({err.strerror or err}); make it writable or set ROUTERTRAIN_CACHE") from None
    return path


class OnnxNetwork:
    """An ONNX Runtime session in place of the torch network: same inputs, same (probs, pooled) outputs."""

    def __init__(self, path: Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("the ONNX path needs onnxruntime: pip install 'routertrain[serve]'") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # no busy-waiting between runs: spinning threads took the cores from the server's event loop, the
        # tokenizer and other processes (measured: batch-1 p50 and batch-64 throughput both better without)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def __call__(self, batch: dict) -> tuple[np.ndarray, np.ndarray]:
        feed = {name: np.asarray(batch[name], dtype=np.int64) for name in self.inputs}
        probs, pooled = self.session.run(None, feed)
        return probs, pooled


def leaves(router) -> list:
    """The single routers that run a network: the router itself, an ensemble's members, a blend's inner router's."""
    if hasattr(router, "inner"):
        return leaves(router.inner)
    if hasattr(router, "members"):
        return [leaf for member in router.members for leaf in leaves(member)]
    return [router]


def use_onnx(router, threads: int | None = None):
    """``router`` (one, an ensemble or a blend) with every network run by ONNX Runtime on CPU; returned for chaining."""
    for leaf in leaves(router):
        if leaf.device.type != "cpu":
            raise ValueError(f"the ONNX path runs on CPU; load the router with device='cpu' (got {leaf.device})")
        if leaf.model.head.weight.dtype != torch.float32:
            raise ValueError(f"the ONNX path exports float32 weights; load the router without dtype= (got {leaf.model.head.weight.dtype})")
        with_token_types = "token_type_ids" in leaf.tokenizer.model_input_names
        leaf.onnx = OnnxNetwork(cached_graph(leaf.model, Path(leaf.folder) / WEIGHTS, with_token_types), threads)
    return router


def default_backend() -> str:
    """``onnx`` where onnxruntime is installed (CPU), else ``torch``; ``ROUTERTRAIN_BACKEND`` overrides."""
    chosen = os.environ.get("ROUTERTRAIN_BACKEND")
    if chosen:
        return chosen
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return "torch"
    return "onnx"
