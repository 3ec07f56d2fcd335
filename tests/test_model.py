"""The router network, its loss, and the saved router folder."""

import math

import numpy as np
import pytest
import torch

from routertrain.model.modeling import EncoderNotFound, RouterModel, load_encoder, masked_bce
from routertrain.hub.router import Router, choose, save_router


def test_masked_bce_equals_hand_computation():
    logits = torch.tensor([[0.0, 2.0, -1.0], [1.5, -0.5, 3.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.25]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 1.0]])

    def bce(z, y):
        p = 1 / (1 + math.exp(-z))
        return -(y * math.log(p) + (1 - y) * math.log(1 - p))

    observed = [(0, 0), (0, 1), (1, 0), (1, 2)]
    expected = sum(bce(logits[i, j].item(), labels[i, j].item()) for i, j in observed) / len(observed)
    assert masked_bce(logits, labels, mask).item() == pytest.approx(expected, rel=1e-6)
    full = sum(bce(logits[i, j].item(), labels[i, j].item()) for i in range(2) for j in range(3)) / 6
    assert masked_bce(logits, labels).item() == pytest.approx(full, rel=1e-6)


def test_masked_bce_ignores_values_under_the_mask():
    logits = torch.randn(4, 3)
    labels = torch.rand(4, 3)
    mask = torch.ones(4, 3)
    mask[:, 1] = 0
    other = labels.clone()
    other[:, 1] = 1 - other[:, 1]
    assert masked_bce(logits, labels, mask).item() == pytest.approx(masked_bce(logits, other, mask).item())


def test_pooling(tiny_encoder):
    model = RouterModel.from_encoder(load_encoder(str(tiny_encoder)), n_models=3, pooling="mean", dropout=0.0)
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 5.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert model.pool(hidden, mask).tolist() == [[2.0, 3.0]]
    model.pooling = "cls"
    assert model.pool(hidden, mask).tolist() == [[1.0, 1.0]]


def test_save_load_round_trip_gives_equal_logits(tiny_encoder, tmp_path):
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    model = RouterModel.from_encoder(load_encoder(str(tiny_encoder)), n_models=4, pooling="mean", dropout=0.0).eval()
    models, costs = ["a", "b", "c", "d"], [1.0, 2.0, 3.0, 4.0]
    save_router(model, tokenizer, tmp_path / "router", models, costs, max_length=32, base_model=str(tiny_encoder))
    router = Router.from_pretrained(tmp_path / "router", device="cpu")
    assert router.models == models and router.costs == costs
    queries = ["Explain the binary search briefly.", "Why does the Cold War matter? Reply in detail.", "x"]
    batch = tokenizer(queries, padding=True, truncation=True, max_length=32, return_tensors="pt")
    with torch.no_grad():
        expected = torch.sigmoid(model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits).numpy()
    got = router.predict(queries, batch_size=2)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert router.route(queries) == [models[i] for i in expected.argmax(axis=1)]


def test_router_folder_has_no_pickle(tiny_encoder, tmp_path):
    from transformers import AutoTokenizer

    model = RouterModel.from_encoder(load_encoder(str(tiny_encoder)), n_models=2)
    save_router(model, AutoTokenizer.from_pretrained(tiny_encoder), tmp_path / "r", ["a", "b"], None, 16, "tiny")
    names = {p.name for p in (tmp_path / "r").iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= names and "router_config.json" not in names
    assert not any(n.endswith((".bin", ".pt", ".pkl")) for n in names)
    assert not any(".tmp" in p.name for p in tmp_path.iterdir())


def test_choose_with_cost_weight_and_budget():
    probs = np.array([[0.9, 0.8, 0.3], [0.5, 0.6, 0.55]])
    costs = [10.0, 1.0, 0.1]
    assert choose(probs, costs).tolist() == [0, 1]
    # 0.9-0.05*10=0.4, 0.8-0.05=0.75, 0.3-0.005=0.295 ; 0.0, 0.55, 0.545
    assert choose(probs, costs, cost_weight=0.05).tolist() == [1, 1]
    assert choose(probs, costs, max_cost=0.5).tolist() == [2, 2]
    with pytest.raises(ValueError, match="raise the budget"):
        choose(probs, costs, max_cost=0.01)
    with pytest.raises(ValueError, match="no model costs"):
        choose(probs, None, cost_weight=1.0)


def test_missing_encoder_says_how_to_provide_it_offline(tmp_path):
    with pytest.raises(EncoderNotFound) as info:
        load_encoder("nobody/no-such-encoder")
    message = str(info.value)
    assert "huggingface-cli download nobody/no-such-encoder" in message and "\n" not in message
    assert "encoders install" not in message  # it could not install an encoder no package ships
    with pytest.raises(EncoderNotFound, match="lacks the files save_pretrained writes"):
        load_encoder(str(tmp_path))  # a folder without a model


def test_fsdp_finds_the_transformer_blocks_to_shard(tiny_encoder):
    """accelerate's FSDP wrap reads ``_no_split_modules`` from the prepared model, i.e. the router;
    each named class must exist in it (DeBERTa-v2 declares none, so the repeated layer is found)."""
    from accelerate.utils.dataclasses import get_module_class_from_name
    from transformers import AutoModel, DebertaV2Config, DebertaV2Model

    bert = RouterModel.from_encoder(AutoModel.from_pretrained(tiny_encoder), 3)
    assert "BertLayer" in bert._no_split_modules
    deberta = RouterModel.from_encoder(DebertaV2Model(DebertaV2Config(vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)), 3)
    assert set(deberta._no_split_modules) == {"DebertaV2Layer"}
    for model in (bert, deberta):
        assert all(get_module_class_from_name(model, name) is not None for name in model._no_split_modules)


def test_attention_backend_reaches_the_encoder_and_sdpa_matches_eager(tiny_encoder):
    """``model.attn_implementation`` picks transformers' attention backend; SDPA computes the same
    attention as the eager path (float32 on CPU: 1e-5), with padding masked the same way."""
    from transformers import AutoTokenizer

    from routertrain.config import load_config
    from routertrain.model.modeling import build_router_model

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    batch = tokenizer(["Explain the binary search briefly.", "x"], padding=True, return_tensors="pt")
    logits = {}
    for backend in ("eager", "sdpa"):
        torch.manual_seed(0)  # same head initialisation for both
        cfg = load_config(["recipe=smoke", f"model.name_or_path={tiny_encoder}", f"model.attn_implementation={backend}"])
        model = build_router_model(cfg.model, n_models=3).eval()
        assert model.encoder.config._attn_implementation == backend
        with torch.no_grad():
            logits[backend] = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).logits
    torch.testing.assert_close(logits["sdpa"], logits["eager"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("lora", [[], ["model.lora.r=4"]])
def test_every_trainable_parameter_gets_a_gradient(tiny_encoder, lora):
    """DDP stops at the first step when a trainable parameter gets no gradient; the BERT pooler (and
    the LoRA adapters that all-linear puts on it) is unused by our pooling, so it must be frozen."""
    from routertrain.config import load_config
    from routertrain.model.modeling import build_router_model

    cfg = load_config(["recipe=smoke", f"model.name_or_path={tiny_encoder}", *lora])
    model = build_router_model(cfg.model, n_models=3)
    ids = torch.randint(5, 100, (2, 7))
    model(ids, torch.ones_like(ids)).logits.sum().backward()
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(p.grad is not None for p in trainable.values()), [n for n, p in trainable.items() if p.grad is None]
    assert any("lora_" in name for name in trainable) == bool(lora)
    assert not any("pooler" in name for name in trainable)
