"""The training sampler: deterministic per epoch, a permutation, length-grouped steps."""

import numpy as np

from routertrain.training.batching import EpochSampler


def test_epoch_order_is_a_seeded_permutation():
    lengths = list(np.random.default_rng(0).integers(5, 200, size=103))
    s = EpochSampler(lengths, seed=3, group_size=32, step_size=8)
    a, b = s.order(0), s.order(1)
    assert sorted(a) == list(range(103)) and sorted(b) == list(range(103))
    assert a == EpochSampler(lengths, seed=3, group_size=32, step_size=8).order(0)
    assert a != b


def test_length_grouping_cuts_padding_and_steps_are_shuffled():
    lengths = np.random.default_rng(1).integers(5, 300, size=4096)
    grouped = EpochSampler(list(lengths), seed=0, group_size=16 * 32, step_size=16).order(0)
    plain = EpochSampler(list(lengths), seed=0).order(0)

    def padded(order):
        return sum(int(lengths[order[i : i + 16]].max()) * 16 for i in range(0, len(order), 16))

    assert padded(grouped) < 0.7 * padded(plain)
    first_steps = [int(lengths[grouped[i : i + 16]].max()) for i in range(0, 16 * 20, 16)]
    assert first_steps != sorted(first_steps, reverse=True)  # not longest-first


def test_evaluation_order_is_by_length():
    s = EpochSampler([3, 9, 1, 7], seed=0, shuffle=False, group_size=4)
    assert s.order(0) == [1, 3, 0, 2]


def test_padding_to_a_multiple_rounds_lengths_and_keeps_the_router_outputs(tiny_encoder, tmp_path):
    import torch
    from transformers import AutoTokenizer

    from routertrain.training.batching import Collator, model_inputs
    from routertrain.config import load_config
    from routertrain.model.modeling import build_router_model
    from tests.conftest import tiny_args

    tokenizer = AutoTokenizer.from_pretrained(tiny_encoder)
    queries = ["Explain the binary search briefly.", "Prove it.", "Explain the mens rea of theft and its elements briefly please."]
    rows = [{**tokenizer(q), "labels": [1.0, 0.0, 1.0], "row": i} for i, q in enumerate(queries)]
    longest = max(len(r["input_ids"]) for r in rows)
    plain, rounded = Collator(tokenizer, 3)(rows), Collator(tokenizer, 3, pad_to_multiple_of=16)(rows)
    assert plain["input_ids"].shape[1] == longest
    assert rounded["input_ids"].shape[1] % 16 == 0 and rounded["input_ids"].shape[1] >= longest
    assert torch.equal(plain["attention_mask"].sum(1), rounded["attention_mask"].sum(1))  # the extra positions are padding

    model = build_router_model(load_config(tiny_args(tiny_encoder, tmp_path)).model, 3).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(**model_inputs(rounded)).logits, model(**model_inputs(plain)).logits, atol=1e-5, rtol=0)
