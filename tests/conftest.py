"""Shared fixtures: offline environment, a tiny local BERT encoder and tokenizer, small configs."""

import os
import re
from pathlib import Path

for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HF_EVALUATE_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ[var] = "1"
os.environ["WANDB_MODE"] = "offline"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def read_weights(file: Path) -> dict:
    """safetensors, or the ``.bin`` state dict accelerate writes for an FSDP checkpoint (tensors only)."""
    import torch
    from safetensors.torch import load_file

    return torch.load(file, weights_only=True) if file.suffix == ".bin" else load_file(str(file))


def assert_same_weights(a: Path, b: Path, atol: float) -> None:
    """The two weight files hold the same tensors under the same names, to ``atol``."""
    import torch

    wa, wb = read_weights(a), read_weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], atol=atol, rtol=0, msg=lambda m: f"{a} vs {b}, {key}: {m}")


def build_tiny_encoder(folder: Path, seed: int = 0, dropout: float = 0.1) -> Path:
    """A 2-layer, 32-wide BERT with random weights and a word-level vocab of the synthetic queries."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from routertrain.data import synthetic

    words = set()
    texts = [t for t in synthetic.TEMPLATES]
    texts += [kw for subs in synthetic.DOMAINS.values() for kws in subs.values() for kw in kws]
    texts += [p for phrases, _ in synthetic.DIFFICULTY for p in phrases]
    for text in texts:
        words.update(re.findall(r"[a-z0-9]+|[^\sa-z0-9]", text.lower()))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(words)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True)  # transformers 5 ignores vocab_file=
    assert len(tokenizer) == len(vocab), "the tiny tokenizer lost its vocabulary: every query would read as [UNK]"
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=128, hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sparse_label_data(folder: Path, n_train: int = 61, seed: int = 0) -> Path:
    """The synthetic benchmark saved to disk (``data.name=disk data.path=<folder>``) with about half of
    its rows keeping one label of six: micro-batches of one step then hold different numbers of
    observed labels. 61 train rows leave a short last step for any global batch of 2 or more."""
    import numpy as np
    from datasets import DatasetDict

    from routertrain.config import load_config
    from routertrain.data import build_synthetic

    data = build_synthetic(load_config([f"data.synthetic.n_train={n_train}", "data.synthetic.n_validation=13", "data.synthetic.n_test=11"]).data)
    rng = np.random.default_rng(seed)
    splits = {}
    for name, ds in data.splits.items():
        mask = np.ones((len(ds), len(data.models)), dtype=np.float32)
        for i in np.flatnonzero(rng.random(len(ds)) < 0.5):
            mask[i] = 0
            mask[i, rng.integers(len(data.models))] = 1
        splits[name] = ds.add_column("label_mask", mask.tolist())
    data.splits = DatasetDict(splits)
    data.save_to_disk(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    return build_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"))


def tiny_args(encoder: Path, output_dir: Path, *extra: str) -> list[str]:
    """Arguments of a run that takes a few seconds on CPU."""
    return [
        "recipe=smoke",
        f"model.name_or_path={encoder}",
        f"run.output_dir={output_dir}",
        "data.synthetic.n_train=64",
        "data.synthetic.n_validation=13",
        "data.synthetic.n_test=11",
        "train.global_batch_size=8",
        "train.lr=1e-3",
        "train.save_every=4",
        "train.eval_every=4",
        "eval.batch_size=8",
        *extra,
    ]


@pytest.fixture(scope="session")
def tiny_run(tiny_encoder, tmp_path_factory) -> Path:
    """A finished tiny training run (folder with router/, metrics.json, ...)."""
    from routertrain.config import load_config
    from routertrain.training.loop import train

    out = tmp_path_factory.mktemp("runs")
    results = train(load_config(tiny_args(tiny_encoder, out, "run.name=tiny", "train.max_steps=4")))
    return Path(results["run_dir"])
