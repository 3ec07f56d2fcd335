"""The fine-tuning remedies of issue 13 on their own: routing-aware losses, prior-anchored head bias,
the auxiliary task head, and the verdict a router gets when it does not beat the simple routers."""

import math

import numpy as np
import pytest
import torch

from routertrain.config import ConfigError, load_config
from routertrain.evaluation import decision as M
from routertrain.hub.card import shortfalls
from routertrain.model.modeling import RouterModel, add_task_head, drop_task_head, init_prior_bias
from routertrain.training.batching import UNKNOWN_TASK
from routertrain.training.losses import listwise_loss, pairwise_loss, rank_loss, task_ids, task_loss, task_vocabulary


def test_listwise_loss_is_cross_entropy_toward_the_correct_models_and_ignores_unobserved_ones():
    logits = torch.tensor([[2.0, 0.0, -1.0, 5.0], [0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]], requires_grad=True)
    labels = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])  # model 3 unobserved on query 0
    # query 0: softmax over models 0..2, target (1/2, 0, 1/2); query 1: nobody correct, no loss; query 2: -log(1/4)
    log_p = torch.log_softmax(torch.tensor([2.0, 0.0, -1.0]), 0)
    expected = [-(0.5 * log_p[0] + 0.5 * log_p[2]).item(), 0.0, math.log(4)]
    assert listwise_loss(logits, labels, mask).item() == pytest.approx(sum(expected) / 3, rel=1e-6)
    assert listwise_loss(logits, labels, mask, denominator=6).item() == pytest.approx(sum(expected) / 6, rel=1e-6)
    # gradient = softmax - target over the observed models; the unobserved model and a query nobody answers get none
    listwise_loss(logits, labels, mask).backward()
    p = torch.softmax(torch.tensor([2.0, 0.0, -1.0]), 0)
    assert logits.grad[0, :3].tolist() == pytest.approx(((p - torch.tensor([0.5, 0.0, 0.5])) / 3).tolist(), abs=1e-6)
    assert logits.grad[0, 3] == 0 and torch.all(logits.grad[1] == 0)


def test_pairwise_loss_hinges_only_pairs_in_the_wrong_order_or_inside_the_margin():
    labels = torch.tensor([[1.0, 0.0, 0.5]])
    mask = torch.ones(1, 3)
    # pairs (better, worse): (0,1) gap 1, (0,2) gap 0.5, (2,1) gap 0.5
    far_apart = torch.tensor([[10.0, -10.0, 0.0]])
    assert pairwise_loss(far_apart, labels, mask, margin=1.0).item() == 0.0
    wrong = torch.tensor([[0.0, 1.0, 0.0]])  # s0-s1=-1, s0-s2=0, s2-s1=-1
    expected = (1.0 * 2.0 + 0.5 * 1.0 + 0.5 * 2.0) / 3
    assert pairwise_loss(wrong, labels, mask, margin=1.0).item() == pytest.approx(expected)
    # an unobserved model forms no pair
    assert pairwise_loss(wrong, labels, torch.tensor([[1.0, 0.0, 1.0]]), margin=1.0).item() == pytest.approx(0.5 * 1.0)


def test_rank_loss_dispatches_on_the_config_and_the_config_refuses_unknown_losses():
    cfg = load_config(["train.rank_loss=pairwise", "train.rank_margin=0.5"])
    logits, labels, mask = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.ones(1, 2)
    assert rank_loss(cfg.train, logits, labels, mask).item() == pytest.approx(0.5)
    cfg = load_config(["train.rank_loss=listwise"])
    assert rank_loss(cfg.train, logits, labels, mask).item() == pytest.approx(math.log(2))
    with pytest.raises(ConfigError, match="train.rank_loss.*listwise, pairwise"):
        load_config(["train.rank_loss=softmax"])


def test_task_loss_leaves_out_unknown_tasks_and_the_vocabulary_refuses_data_without_tasks():
    vocab = task_vocabulary(["law", "math", "law", "code"], 0.3)
    assert vocab == ["code", "law", "math"]
    ids = task_ids(["math", "poetry", "code"], vocab)
    assert ids.tolist() == [2, UNKNOWN_TASK, 0]
    logits = torch.tensor([[0.0, 0.0, 3.0], [9.0, -9.0, 0.0], [0.0, 0.0, 0.0]])
    expected = (-torch.log_softmax(logits[0], 0)[2] - torch.log_softmax(logits[2], 0)[0]).item()
    assert task_loss(logits, torch.as_tensor(ids), denominator=2).item() == pytest.approx(expected / 2)
    with pytest.raises(ConfigError, match="needs a task column.*train.task_loss_weight=0"):
        task_vocabulary(None, 0.3)
    with pytest.raises(ConfigError, match="at least 2 tasks"):
        task_vocabulary(["law", "law"], 0.3)


def _encoder():
    """A stand-in encoder: a one-layer BERT of hidden size 8."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    return BertModel(BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))


def test_prior_bias_starts_the_head_at_the_training_means_and_the_task_head_is_not_shipped():
    torch.manual_seed(0)
    model = RouterModel.from_encoder(_encoder(), 3, dropout=0.0)
    means = np.array([0.8, 0.2, np.nan])
    init_prior_bias(model, means)
    assert torch.sigmoid(model.head.bias).tolist() == pytest.approx([0.8, 0.2, 0.5], abs=1e-6)
    with torch.no_grad():
        model.head.weight.zero_()  # with a zero weight the router is the best-single router
    ids = torch.randint(0, 20, (4, 5))
    probs = torch.sigmoid(model(ids, torch.ones_like(ids)).logits)
    assert torch.allclose(probs, torch.tensor([0.8, 0.2, 0.5]).expand(4, 3), atol=1e-6)

    shipped_keys = set(model.state_dict())
    add_task_head(model, n_tasks=4)
    logits, task_logits = model(ids, torch.ones_like(ids), with_task_logits=True)
    assert logits.shape == (4, 3) and task_logits.shape == (4, 4)
    assert torch.equal(model(ids, torch.ones_like(ids)).logits, logits)  # plain calls still return the routing logits
    assert {k for k in model.state_dict() if k.startswith("task_head.")} == {"task_head.weight", "task_head.bias"}
    assert set(drop_task_head(model).state_dict()) == shipped_keys


def test_shortfalls_name_each_reference_router_the_router_does_not_beat():
    report = {"routing_acc": 0.61, "best_single_acc": 0.60, "task_prior_acc": 0.63}
    lines = shortfalls(report)
    assert lines == ["on validation, this router (0.6100) does not beat the task-prior router (0.6300): -0.0200"]
    assert shortfalls({**report, "task_prior_acc": 0.61})[0].endswith("(0.6100): +0.0000")  # a tie is not a win
    assert shortfalls({**report, "task_prior_acc": 0.55}) == []
    assert shortfalls({}) == []


def test_a_losing_router_says_so_in_the_final_lines_and_in_the_card(tmp_path):
    import json

    from routertrain.cli.common import summary
    from routertrain.hub.card import render

    results = {"run_dir": "runs/x", "validation": {"routing_acc": 0.58, "best_single_acc": 0.60, "task_prior_acc": 0.57, "oracle_acc": 0.9}}
    last = summary(results).splitlines()[-1]
    assert last.startswith("warning: on validation, this router (0.5800) does not beat the best single model (0.6000): -0.0200")
    (tmp_path / "metrics.json").write_text(json.dumps(results))
    limitations = render(tmp_path).split("## Limitations")[1]
    assert "does not beat the best single model (0.6000): -0.0200" in limitations
    assert "task-prior" not in limitations  # it beats that one
    results["validation"]["routing_acc"] = 0.65
    (tmp_path / "metrics.json").write_text(json.dumps(results))
    assert "does not beat" not in render(tmp_path) and "warning" not in summary(results)


def test_step_loss_adds_the_weighted_extras_that_are_switched_on():
    from datasets import Dataset

    from routertrain.model.modeling import masked_bce
    from routertrain.training.losses import step_loss, with_task_ids

    torch.manual_seed(0)
    model = RouterModel.from_encoder(_encoder(), 3, dropout=0.0)
    split, n_tasks = with_task_ids(Dataset.from_dict({"task": ["law", "math", "law", "code"]}), 0.5)
    assert n_tasks == 3 and split["task_id"] == [1, 2, 1, 0]
    add_task_head(model, n_tasks)
    ids = torch.randint(0, 20, (4, 5))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 0]]),
             "label_mask": torch.ones(4, 3), "task_id": torch.tensor(split["task_id"])}
    logits, task_logits = model(ids, torch.ones_like(ids), with_task_logits=True)
    bce = masked_bce(logits, batch["labels"], batch["label_mask"], denominator=12)
    base = load_config([])
    assert step_loss(base.train, model, batch, 12, 4).item() == pytest.approx(bce.item(), rel=1e-6)  # defaults: BCE only
    cfg = load_config(["train.rank_loss=listwise", "train.rank_loss_weight=0.5", "train.task_loss_weight=0.25"])
    expected = bce + 0.5 * listwise_loss(logits, batch["labels"], batch["label_mask"], 4) + 0.25 * task_loss(task_logits, batch["task_id"], 4)
    assert step_loss(cfg.train, model, batch, 12, 4).item() == pytest.approx(expected.item(), rel=1e-6)


def _first_losses(run_dir):
    import json

    return [json.loads(line)["train/loss"] for line in (run_dir / "log.jsonl").read_text().splitlines() if "train/loss" in line]


def test_remedies_in_the_training_loop(tiny_encoder, tmp_path):
    """Prior bias starts the head at the training means; the rank and task losses add to BCE from
    the first step; the task head trains but is not shipped."""
    from safetensors.torch import load_file

    from routertrain.hub.router import Router
    from routertrain.training import loop
    from tests.conftest import tiny_args

    common = ["train.max_steps=2", "tracking.log_every=1", "train.eval_every=2", "train.save_every=-1"]
    still = loop.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=prior", "model.prior_bias=true", "train.lr=1e-12", "train.head_lr=1e-12", *common)))
    data = loop.load_routing_data(load_config(tiny_args(tiny_encoder, tmp_path)).data)
    bias = load_file(str(tmp_path / "prior" / "router" / "model.safetensors"))["head.bias"]
    assert torch.sigmoid(bias).numpy() == pytest.approx(M.model_means(data.labels("train")), abs=1e-4)
    assert still["models"] == data.models

    loop.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=bce", *common)))
    extra = loop.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=extra", "train.rank_loss=pairwise", "train.task_loss_weight=0.5", *common)))
    assert _first_losses(tmp_path / "extra")[0] > _first_losses(tmp_path / "bce")[0] + 0.05  # same weights and batch at step 1: the extras add
    best = load_file(str(tmp_path / "extra" / "best" / "state.safetensors"))
    shipped = load_file(str(tmp_path / "extra" / "router" / "model.safetensors"))
    assert {"task_head.weight", "task_head.bias"} <= set(best) and not any(k.startswith("task_head.") for k in shipped)
    assert Router.from_pretrained(tmp_path / "extra" / "router", device="cpu").predict(["Explain the binary search briefly."]).shape == (1, len(extra["models"]))


def test_a_task_loss_on_data_without_tasks_is_refused_in_one_line(tiny_encoder, tmp_path):
    from routertrain.data import build_synthetic
    from routertrain.training import loop
    from tests.conftest import tiny_args

    data = build_synthetic(load_config(["data.synthetic.n_train=40", "data.synthetic.n_validation=8", "data.synthetic.n_test=8"]).data)
    data.splits = data.splits.remove_columns("task")
    data.save_to_disk(tmp_path / "notask")
    cfg = load_config(tiny_args(tiny_encoder, tmp_path, "run.name=t", "data.name=disk", f"data.path={tmp_path / 'notask'}", "train.task_loss_weight=0.3"))
    with pytest.raises(ConfigError, match="needs a task column in the data.*set train.task_loss_weight=0"):
        loop.train(cfg)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("override", ["train.rank_loss_weight=-1", "train.rank_loss_weight=inf", "train.rank_margin=nan", "train.task_loss_weight=-0.5"])
def test_remedy_weights_must_be_finite_and_not_negative(override):
    with pytest.raises(ConfigError, match=f"'{override.split('=')[0]}'.*finite"):
        load_config([override])


def test_freeze_layers_keeps_the_embeddings_and_lower_blocks_and_trains_the_rest(tiny_encoder, tmp_path):
    """model.freeze_layers=1: after training, the embeddings and block 0 equal the base encoder's,
    block 1 and the head have moved; more blocks than the encoder has is refused in one line."""
    from safetensors.torch import load_file

    from routertrain.model.modeling import load_encoder
    from routertrain.training import loop
    from tests.conftest import tiny_args

    loop.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=frozen1", "model.freeze_layers=1", "train.max_steps=3", "train.lr=1e-2")))
    trained = load_file(str(tmp_path / "frozen1" / "router" / "model.safetensors"))
    base = {f"encoder.{k}": v for k, v in load_encoder(str(tiny_encoder)).state_dict().items()}
    moved = {k for k in base if k in trained and not torch.equal(trained[k], base[k])}
    assert moved and all(".layer.1." in k for k in moved)  # nothing below block 1 moved, and block 1 did
    assert not any(k.startswith("encoder.embeddings.") or ".layer.0." in k for k in moved)
    with pytest.raises(ConfigError, match=r"model.freeze_layers=9, but the encoder has 2 transformer blocks; use at most 2"):
        loop.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=frozen9", "model.freeze_layers=9", "train.max_steps=1")))
    assert not (tmp_path / "frozen9").exists()
    with pytest.raises(ConfigError, match="'model.freeze_layers'"):
        load_config(["model.freeze_layers=-1"])
