"""The throughput benchmark's bookkeeping: FLOP counts by hand, MFU, and tables of partial runs."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "throughput.py"


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_flops_match_a_hand_count(throughput):
    preset = {"hidden": 2, "layers": 1, "intermediate": 4}
    # per token: dense 6 x (4*2*2 + 2*2*4) = 192; attention 12*2*n; relative 12*2*min(2n, 512)
    # n=1: 192 + 24 + 48 = 264; n=3: 3*192 + 12*2*3*3 + 12*2*3*6 = 576 + 216 + 432 = 1224
    per_query, per_step = throughput.train_flops(preset, [1, 3])
    assert per_query == pytest.approx((264 + 1224) / 2)
    assert per_step == pytest.approx(12 * 6 * 2 * 2)  # the 6-row relative table through W_q and W_k
    # past 256 tokens every one of the 512 relative slots is needed, and no more
    long_query, long_step = throughput.train_flops(preset, [300])
    assert long_query == pytest.approx(300 * 192 + 12 * 2 * 300 * 300 + 12 * 2 * 300 * 512)
    assert long_step == pytest.approx(12 * 512 * 2 * 2)


def test_mfu_is_trained_flops_per_second_over_the_peak(throughput):
    preset = {"hidden": 2, "layers": 1, "intermediate": 4, "steps": 10}
    result = {"samples_per_s": 4.0, "runtime_s": 5.0}
    expected = (4.0 * (264 + 1224) / 2 + 10 / 5.0 * 12 * 6 * 2 * 2) / 1e4
    assert throughput.mfu(result, preset, [1, 3], 1e4) == pytest.approx(expected)


def test_table_of_a_run_whose_trainer_side_failed_still_lists_the_others(throughput):
    preset = throughput.PRESETS["cpu-small"]
    row = {"impl": "routertrain:hf", "preset": "cpu-small", "device": "CPU", "mean_real_tokens": 150.0, "samples_per_s": 10.0,
           "real_tokens_per_s": 1500.0, "mfu": 0.25, "peak_memory_gb": 2.0, "memory_kind": "process max RSS",
           "validation_routing_acc": 0.5, "padding_share": 0.03, "warmup_s": 12.5}
    text = throughput.table([row], preset, "cmd", {"trainer": "timed out after 100 s"})
    assert "| routertrain, attention hf | 10.00 | 1500 | 25.0% |" in text
    assert "| - | 12.5 |" in text  # no Trainer: no ratio; first calls reported apart
    assert "- trainer failed: timed out after 100 s" in text
