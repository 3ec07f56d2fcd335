"""The optional DeBERTa attention kernel (model.attention_kernel): parity with transformers' attention."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from routertrain.cli.common import check_names
from routertrain.config import ConfigError, load_config
from routertrain.model.kernels import KernelUnavailable, apply_attention_kernel, kernel_backend


def tiny_deberta(dropout: float = 0.0):
    from transformers import DebertaV2Config, DebertaV2Model

    config = DebertaV2Config(
        vocab_size=300, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128, relative_attention=True,
        position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False,
        type_vocab_size=0, max_relative_positions=-1, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout, pad_token_id=0,
    )
    torch.manual_seed(0)
    return DebertaV2Model(config)


def padded_batch():
    torch.manual_seed(1)
    ids = torch.randint(5, 300, (3, 37))
    mask = torch.ones_like(ids)
    mask[1, 20:] = 0
    mask[2, 6:] = 0
    return ids.masked_fill(mask == 0, 0), mask


def forward_backward(model, ids, mask):
    hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
    weights = mask.unsqueeze(-1).float()
    pooled = (hidden * weights).sum(1) / weights.sum(1)
    pooled.pow(2).sum().backward()
    return hidden.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_torch_path_matches_transformers_attention_forward_and_backward():
    reference = tiny_deberta()
    fused = apply_attention_kernel(copy.deepcopy(reference), "disentangled-flash-torch", "cpu")
    assert kernel_backend(fused) == "disentangled-flash/torch" and kernel_backend(reference) == "hf"
    ids, mask = padded_batch()
    h_ref, g_ref = forward_backward(reference, ids, mask)
    h_new, g_new = forward_backward(fused, ids, mask)
    valid = mask.bool()
    assert (h_new - h_ref)[valid].abs().max().item() < 1e-4
    assert g_ref.keys() == g_new.keys() and len(g_ref) > 10
    for name, grad in g_ref.items():
        rel = (g_new[name] - grad).norm() / grad.norm().clamp_min(1e-12)
        assert rel < 1e-3, f"gradient of {name} differs by {rel:.2e}"
    # parameters keep their names, so checkpoints and saved routers are unchanged
    assert list(fused.state_dict()) == list(reference.state_dict())


def test_triton_choice_falls_back_to_torch_path_off_cuda_and_rejects_other_encoders(tiny_encoder):
    assert kernel_backend(apply_attention_kernel(tiny_deberta(), "disentangled-flash", "cpu")) == "disentangled-flash/torch"
    from transformers import AutoModel

    with pytest.raises(KernelUnavailable, match="only applies to DeBERTa-v2/v3 encoders, not bert"):
        apply_attention_kernel(AutoModel.from_pretrained(tiny_encoder), "disentangled-flash", "cpu")
    bert = AutoModel.from_pretrained(tiny_encoder)
    assert apply_attention_kernel(bert, "hf", "cpu") is bert


def test_triton_choice_on_cuda_needs_triton():
    """Asked for on CUDA, the Triton path is used, or a clear error says why not; never a silent fallback."""
    import importlib.util

    if importlib.util.find_spec("triton") is None:
        with pytest.raises(KernelUnavailable, match="could not use Triton"):
            apply_attention_kernel(tiny_deberta(), "disentangled-flash", "cuda")
    else:
        assert kernel_backend(apply_attention_kernel(tiny_deberta(), "disentangled-flash", "cuda")) == "disentangled-flash/triton"


def test_config_rejects_unknown_kernel_and_lora_combination():
    with pytest.raises(ConfigError, match="did you mean 'disentangled-flash'"):
        check_names(load_config(["model.attention_kernel=disentangled-flsh"]))  # the kernel registry checks its own names
    with pytest.raises(ConfigError, match="bypasses the adapters"):
        load_config(["model.attention_kernel=disentangled-flash", "model.lora.r=8"])


def test_training_with_the_kernel_matches_plain_training(tmp_path):
    """Same seed, no dropout: the two routers' saved logits agree; the saved folder is a plain encoder."""
    from transformers import AutoTokenizer

    from routertrain.model.encoders import deberta_v3_tokenizer_dir
    from routertrain.hub.router import Router
    from routertrain.training.loop import train

    folder = tmp_path / "tiny-deberta"
    tokenizer = AutoTokenizer.from_pretrained(deberta_v3_tokenizer_dir())
    model = tiny_deberta()
    model.resize_token_embeddings(len(tokenizer))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    common = [f"model.name_or_path={folder}", f"run.output_dir={tmp_path}", "data.synthetic.n_train=48", "data.synthetic.n_validation=16",
              "data.synthetic.n_test=8", "train.global_batch_size=8", "train.max_steps=4", "train.lr=1e-3", "eval.batch_size=8", "model.dropout=0",
              "data.max_length=48", "train.eval_every=4", "train.save_every=4", "tracking.log_every=1"]
    plain = train(load_config(["recipe=smoke", *common, "run.name=hf"]))
    fused = train(load_config(["recipe=smoke", *common, "run.name=df", "model.attention_kernel=disentangled-flash-torch"]))
    losses = [[json.loads(line)["train/loss"] for line in (tmp_path / name / "log.jsonl").read_text().splitlines() if "train/loss" in line] for name in ("hf", "df")]
    assert len(losses[0]) == 4 and max(abs(a - b) for a, b in zip(*losses)) < 1e-4
    assert plain["validation"]["routing_acc"] == fused["validation"]["routing_acc"]
    queries = ["Prove the chain rule with a rigorous proof of every step.", "Explain the breach of contract briefly."]
    p_plain = Router.from_pretrained(tmp_path / "hf" / "router", device="cpu").predict(queries)
    p_fused = Router.from_pretrained(tmp_path / "df" / "router", device="cpu").predict(queries)
    assert abs(p_plain - p_fused).max() < 1e-4
    assert '"attention_kernel": "disentangled-flash/torch"' in (tmp_path / "df" / "provenance.json").read_text()


def test_triton_attention_pads_batches_to_multiples_of_32_and_others_do_not():
    from types import SimpleNamespace

    from routertrain.model.kernels import padding_multiple

    assert padding_multiple(SimpleNamespace(encoder=SimpleNamespace(backend="triton"))) == 32
    assert padding_multiple(SimpleNamespace(encoder=SimpleNamespace(backend="torch"))) == 1
    assert padding_multiple(SimpleNamespace(encoder=SimpleNamespace())) == 1  # transformers' own attention
