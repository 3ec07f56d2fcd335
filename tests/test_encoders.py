"""Hub ids resolve offline through the standard HF cache filled from pip-shipped weights."""

import torch
from transformers import AutoModel, AutoTokenizer

from routertrain.model.encoders import install, put_in_cache


def _mean_embed(model, tokenizer, texts):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def test_put_in_cache_makes_a_hub_id_resolve(tiny_encoder, tmp_path):
    snapshot = put_in_cache("someorg/tiny-router-encoder", tiny_encoder, cache=tmp_path)
    refs = (tmp_path / "models--someorg--tiny-router-encoder" / "refs" / "main").read_text()
    assert snapshot.name == refs and len(refs) == 40
    model = AutoModel.from_pretrained("someorg/tiny-router-encoder", cache_dir=tmp_path)
    tokenizer = AutoTokenizer.from_pretrained("someorg/tiny-router-encoder", cache_dir=tmp_path)
    assert model.config.hidden_size == 32 and tokenizer("binary search")["input_ids"]
    # installing twice is harmless and keeps the same revision
    assert put_in_cache("someorg/tiny-router-encoder", tiny_encoder, cache=tmp_path) == snapshot


def test_real_minilm_l6_resolves_by_hub_id_and_has_pretrained_weights(tmp_path):
    install("sentence-transformers/all-MiniLM-L6-v2", cache=tmp_path)
    name = "sentence-transformers/all-MiniLM-L6-v2"
    model = AutoModel.from_pretrained(name, cache_dir=tmp_path).eval()
    tokenizer = AutoTokenizer.from_pretrained(name, cache_dir=tmp_path)
    e = _mean_embed(model, tokenizer, ["How do I bake bread at home?", "What is a simple recipe for homemade bread?", "The stock market fell sharply today."])
    paraphrase, unrelated = float(e[0] @ e[1]), float(e[0] @ e[2])
    assert paraphrase > 0.6 and unrelated < 0.3  # random weights give ~0.95 for both
