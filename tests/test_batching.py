"""The training sampler: deterministic per epoch, a permutation, length-grouped steps."""

import numpy as np

from routertrain.batching import EpochSampler


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
