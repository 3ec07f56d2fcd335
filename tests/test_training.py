"""The training loop end to end on a tiny local encoder: parameters move, artifacts appear, resume is exact."""

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from routertrain.training import loop as training
from routertrain.config import load_config
from routertrain.hub.router import Router
from tests.conftest import assert_same_weights, tiny_args


def test_training_changes_every_trainable_parameter_and_writes_artifacts(tiny_encoder, tmp_path, monkeypatch):
    initial = {}
    build = training.build_router_model

    def capture(model_cfg, n_models, device_type="cpu"):
        model = build(model_cfg, n_models, device_type)
        initial.update({k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad})
        return model

    monkeypatch.setattr(training, "build_router_model", capture)
    cfg = load_config(tiny_args(tiny_encoder, tmp_path, "train.epochs=2"))
    results = training.train(cfg)

    run = tmp_path / training.run_name(cfg)
    assert results["run_dir"] == str(run)
    for name in ("config.yaml", "provenance.json", "metrics.json", "log.jsonl", "router/model.safetensors", "router/config.json", "router/metrics.json", "best/state.safetensors"):
        assert (run / name).is_file(), name
    trained = load_file(str(run / "router" / "model.safetensors"))
    assert initial, "no trainable parameters captured"
    unchanged = [k for k, v in initial.items() if torch.equal(v, trained[k])]
    assert unchanged == []

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["validation"]["n_queries"] == 13 and metrics["test"]["n_queries"] == 11
    for split in ("validation", "test"):
        m = metrics[split]
        assert 0.0 <= m["routing_acc"] <= m["oracle_acc"] <= 1.0
        assert "bayes_acc" in m and "task_prior_acc" in m
    provenance = json.loads((run / "provenance.json").read_text())
    assert provenance["data_fingerprint"] and provenance["packages"]["torch"]
    assert "git_revision" in provenance
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert max(steps) == metrics["total_steps"] == 16  # 64 queries / batch 8 x 2 epochs

    router = Router.from_pretrained(run / "router", device="cpu")
    probs = router.predict(["Explain the binary search briefly.", "Explain the mens rea of theft."])
    assert probs.shape == (2, len(metrics["models"])) and np.all((probs > 0) & (probs < 1))
    assert not np.allclose(probs[0], probs[1])  # the output depends on the query
    assert len(router.tokenizer) > 100  # the saved tokenizer kept its vocabulary (not just the 5 special tokens)


def test_resume_after_interruption_ends_with_the_same_weights(tiny_encoder, tmp_path):
    """Run A uninterrupted; B is A's folder cut back to its step-4 checkpoint (what an interrupted
    run leaves), then resumed. Dropout is on, so equal weights also show the RNG is restored.
    Tolerance: 1e-6 absolute (same arithmetic on the same machine)."""
    common = ["train.epochs=2", "train.eval_every=1000", "train.keep_checkpoints=10", "tracking.log_every=1"]
    first = training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=a", *common)))
    a = tmp_path / "a"
    b = tmp_path / "b"
    shutil.copytree(a, b)
    for stale in ("router", "best", "metrics.json"):
        shutil.rmtree(b / stale) if (b / stale).is_dir() else (b / stale).unlink()
    for ckpt in (b / "checkpoints").iterdir():
        if ckpt.name != "step-000004":
            shutil.rmtree(ckpt)
    (b / "checkpoints" / "step-000012.tmp").mkdir()  # a half-written checkpoint must be ignored
    log = [line for line in (b / "log.jsonl").read_text().splitlines() if json.loads(line)["step"] <= 4]
    (b / "log.jsonl").write_text("\n".join(log) + "\n")
    results = training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=b", *common)))
    # B trained only steps 5..16, each logged once; its statistics are the whole run's (steps 1..4 from the checkpoint)
    assert results["train"]["samples_seen"] == first["train"]["samples_seen"]
    steps = [json.loads(line)["step"] for line in (b / "log.jsonl").read_text().splitlines() if "train/loss" in line]
    assert steps == list(range(1, 17))
    assert_same_weights(a / "router" / "model.safetensors", b / "router" / "model.safetensors", atol=1e-6)
    assert_same_weights(a / "checkpoints" / "step-000016" / "model.safetensors", b / "checkpoints" / "step-000016" / "model.safetensors", atol=1e-6)
    assert results["total_steps"] == 16


def test_resuming_another_runs_checkpoint_does_not_claim_its_best_step(tiny_encoder, tmp_path):
    """train.resume=<checkpoint of run a> in a new folder: a's best weights stay in a's folder, so the
    new run must choose its best among its own evaluations, not report a's best step while exporting
    other weights."""
    common = ["train.epochs=2", "train.eval_every=4", "train.save_every=4", "train.keep_checkpoints=10"]
    training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=a", *common)))
    state = json.loads((tmp_path / "a" / "checkpoints" / "step-000008" / "trainer_state.json").read_text())
    assert state["best"]["step"] in (4, 8)
    results = training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=b", *common, f"train.resume={tmp_path}/a/checkpoints/step-000008")))
    best = json.loads((tmp_path / "b" / "best" / "metrics.json").read_text())
    assert results["best_step"] == best["step"] > 8
    saved = load_file(str(tmp_path / "b" / "best" / "state.safetensors"))
    router = load_file(str(tmp_path / "b" / "router" / "model.safetensors"))
    assert all(torch.equal(saved[k], router[k]) for k in router)


def test_save_every_minus_one_keeps_no_checkpoints_and_a_rerun_starts_clean(tiny_encoder, tmp_path):
    """Without checkpoints, re-running the same command starts from step 0: the old log, best
    weights and router are cleared first, so the folder never mixes two runs."""
    args = tiny_args(tiny_encoder, tmp_path, "run.name=nockpt", "train.save_every=-1", "train.max_steps=4", "tracking.log_every=1")
    for _ in range(2):
        results = training.train(load_config(args))
        run = tmp_path / "nockpt"
        assert not (run / "checkpoints").exists()
        assert (run / "router" / "model.safetensors").is_file() and (run / "metrics.json").is_file()
        steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines() if "train/loss" in line]
        assert steps == [1, 2, 3, 4]
        assert results["train"]["samples_seen"] == 32


def test_fp16_on_cpu_is_refused_before_the_run_folder_exists(tiny_encoder, tmp_path):
    from routertrain.config import ConfigError

    with pytest.raises(ConfigError, match="fp16 needs a CUDA GPU.*bf16 or no"):
        training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=half", "train.mixed_precision=fp16")))
    assert not (tmp_path / "half").exists()


def test_checkpointing_and_loader_workers_change_memory_and_speed_not_the_weights(tiny_encoder, tmp_path, monkeypatch):
    """Activation checkpointing recomputes each block in the backward pass (torch restores the RNG, so
    dropout draws the same masks) and loader workers only move batching to other processes: both
    must end with the default run's router, bit for bit up to 1e-6. The checkpointing run must
    really have checkpointing on, and the workers run must really use workers."""
    built, loaders = [], []
    build, make_loader = training.build_router_model, training.make_loader
    monkeypatch.setattr(training, "build_router_model", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    monkeypatch.setattr(training, "make_loader", lambda *a, **k: loaders.append(make_loader(*a, **k)) or loaders[-1])
    for name, extra in {"plain": [], "checkpointed": ["model.gradient_checkpointing=true"], "workers": ["train.num_workers=2"]}.items():
        training.train(load_config(tiny_args(tiny_encoder, tmp_path, f"run.name={name}", "train.max_steps=4", *extra)))
    assert [any(getattr(m, "gradient_checkpointing", False) for m in model.modules()) for model in built] == [False, True, False]
    assert [loader.num_workers for loader, _ in loaders[::3]] == [0, 0, 2]  # each run: train, validation, test loaders
    for name in ("checkpointed", "workers"):
        assert_same_weights(tmp_path / name / "router" / "model.safetensors", tmp_path / "plain" / "router" / "model.safetensors", atol=1e-6)


def test_per_device_batch_is_a_memory_knob_accumulation_gives_the_same_router(tmp_path):
    """Global batch 8 as 8 x 1, 4 x 2 and 2 x 4 (per-device batch x accumulation steps), with length
    grouping on, on data where rows keep 1 or 6 labels and 61 rows leave a short last step: each
    step's loss is the mean over all its observed labels however it is split, so the routers agree
    up to float summation order (atol 1e-6), and so do the logged losses. Dropout is off, as a
    different number of forward passes draws different masks."""
    from tests.conftest import build_tiny_encoder, sparse_label_data

    encoder = build_tiny_encoder(tmp_path / "encoder", dropout=0.0)
    data = sparse_label_data(tmp_path / "sparse")
    losses = {}
    for per_device in (8, 4, 2):
        run = tmp_path / f"b{per_device}"
        args = tiny_args(encoder, tmp_path, f"run.name={run.name}", "data.name=disk", f"data.path={data}", "train.epochs=2", "model.dropout=0",
                         f"train.per_device_batch_size={per_device}", "train.eval_every=1000", "tracking.log_every=1")
        results = training.train(load_config(args))
        assert json.loads((run / "provenance.json").read_text())["gradient_accumulation_steps"] == 8 // per_device
        assert results["total_steps"] == 16 and results["train"]["samples_seen"] == 122  # padding of the short last step not counted
        losses[per_device] = [line["train/loss"] for line in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "train/loss" in line]
    for per_device in (4, 2):
        assert losses[per_device] == pytest.approx(losses[8], abs=1e-6)
        assert_same_weights(tmp_path / f"b{per_device}" / "router" / "model.safetensors", tmp_path / "b8" / "router" / "model.safetensors", atol=1e-6)


def test_logged_loss_is_the_mean_over_the_steps_since_the_last_log(tiny_encoder, tmp_path):
    every = {}
    for log_every in (1, 4):
        training.train(load_config(tiny_args(tiny_encoder, tmp_path, f"run.name=log{log_every}", "train.max_steps=8", f"tracking.log_every={log_every}")))
        lines = map(json.loads, (tmp_path / f"log{log_every}" / "log.jsonl").read_text().splitlines())
        every[log_every] = {line["step"]: line["train/loss"] for line in lines if "train/loss" in line}
    assert list(every[4]) == [4, 8]
    for end in (4, 8):
        assert every[4][end] == pytest.approx(np.mean([every[1][s] for s in range(end - 3, end + 1)]), rel=1e-6)


def test_compiled_training_exports_a_router_with_plain_weight_names(tiny_encoder, tmp_path, monkeypatch):
    """Under ``accelerate launch --dynamo_backend ...`` the prepared model is torch.compile'd, whose
    state dict files every weight under ``_orig_mod.``; the best weights and the router must not
    (the router would not load). The eager dynamo backend compiles nothing, so the run must also
    give the uncompiled run's weights."""
    args = ("train.max_steps=4",)
    training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=plain", *args)))
    monkeypatch.setenv("ACCELERATE_DYNAMO_BACKEND", "EAGER")
    training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=compiled", *args)))
    run = tmp_path / "compiled"
    assert json.loads((run / "provenance.json").read_text())["dynamo_backend"] == "EAGER"
    assert json.loads((tmp_path / "plain" / "provenance.json").read_text())["dynamo_backend"] == "NO"
    assert_same_weights(run / "router" / "model.safetensors", tmp_path / "plain" / "router" / "model.safetensors", atol=1e-6)
    assert load_file(str(run / "best" / "state.safetensors")).keys() == load_file(str(tmp_path / "plain" / "router" / "model.safetensors")).keys()
    assert Router.from_pretrained(run / "router", device="cpu").predict(["Explain the mens rea briefly."]).shape == (1, 6)


def test_bf16_run_reports_the_metrics_of_the_router_it_exports(tiny_encoder, tmp_path, monkeypatch):
    """The router folder runs in fp32 and ships metrics.json: the final evaluation must score the
    fp32 model, not the bf16-autocast one used during training (bf16 logits differ by ~1e-2, enough
    to flip routing choices). The test split's final logits must be the exported router's."""
    from routertrain.data import load_routing_data

    scored = {}
    report = training.split_report

    def capture(probs, rows, data, split, *rest):
        scored[split] = probs[np.argsort(rows)]  # the last call per split is the final evaluation
        return report(probs, rows, data, split, *rest)

    monkeypatch.setattr(training, "split_report", capture)
    cfg = load_config(tiny_args(tiny_encoder, tmp_path, "run.name=bf16", "train.mixed_precision=bf16", "train.max_steps=4"))
    training.train(cfg)
    queries = list(load_routing_data(cfg.data).splits["test"]["query"])
    probs = Router.from_pretrained(tmp_path / "bf16" / "router", device="cpu").predict(queries)
    np.testing.assert_allclose(scored["test"], probs, atol=1e-5)


def test_lora_trains_adapters_and_saves_a_plain_router(tiny_encoder, tmp_path):
    cfg = load_config(tiny_args(tiny_encoder, tmp_path, "model.lora.r=4", "model.lora.target_modules=query,value", "train.max_steps=4"))
    results = training.train(cfg)
    router = Router.from_pretrained(f"{results['run_dir']}/router", device="cpu")
    assert not any("lora" in name for name in router.model.state_dict())
    assert router.predict(["Explain the mens rea briefly."]).shape == (1, len(results["models"]))


def test_config_mismatch_in_existing_run_folder_is_refused(tiny_encoder, tmp_path):
    from routertrain.config import ConfigError

    training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=x", "train.max_steps=2")))
    with pytest.raises(ConfigError, match="different config"):
        training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=x", "train.max_steps=3")))


def test_batch_geometry_derives_accumulation():
    cfg = load_config(["train.global_batch_size=64"])
    assert training.batch_geometry(cfg, 1) == (64, 1)
    assert training.batch_geometry(cfg, 4) == (16, 1)
    cfg = load_config(["train.global_batch_size=64", "train.per_device_batch_size=8"])
    assert training.batch_geometry(cfg, 2) == (8, 4)
    cfg = load_config(["train.global_batch_size=64", "train.per_device_batch_size=24"])
    with pytest.raises(Exception, match="not a multiple"):
        training.batch_geometry(cfg, 1)


@pytest.mark.parametrize("backend, pattern", [("tensorboard", "logs/routertrain/events.out.tfevents.*"), ("wandb", "logs/wandb/offline-run-*/run-*.wandb")])
def test_trackers_write_their_logs_offline(tiny_encoder, tmp_path, backend, pattern):
    results = training.train(load_config(tiny_args(tiny_encoder, tmp_path, f"run.name={backend}", "train.max_steps=2", f"tracking.backend={backend}", "tracking.log_every=1")))
    run = tmp_path / backend
    assert list(run.glob(pattern)), f"no {backend} log under {run}/logs"
    assert results["validation"]["n_queries"] == 13


def test_deberta_v3_code_path_trains_in_bf16(tmp_path):
    """The deberta-* recipes' encoder family: a tiny DeBERTa-v3-shaped model with the real tokenizer."""
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2Model

    from routertrain.model.encoders import deberta_v3_tokenizer_dir

    folder = tmp_path / "tiny-deberta"
    config = DebertaV2Config(
        vocab_size=128100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, relative_attention=True,
        position_buckets=256, norm_rel_ebd="layer_norm", share_att_key=True, pos_att_type=["p2c", "c2p"], position_biased_input=False, type_vocab_size=0,
    )
    DebertaV2Model(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(deberta_v3_tokenizer_dir()).save_pretrained(folder)
    args = ["recipe=deberta-large", f"model.name_or_path={folder}", f"run.output_dir={tmp_path}", "run.name=deb", "data.synthetic.n_train=32",
            "data.synthetic.n_validation=8", "data.synthetic.n_test=8", "train.global_batch_size=8", "train.max_steps=2", "eval.batch_size=8"]
    cfg = load_config(args)
    assert cfg.train.mixed_precision == "bf16"
    results = training.train(cfg)
    router = Router.from_pretrained(tmp_path / "deb" / "router", device="cpu")
    assert router.predict(["Explain the tort briefly."]).shape == (1, len(results["models"]))


def test_on_evaluate_sees_each_validation_and_its_true_stops_training(tiny_encoder, tmp_path):
    seen = []

    def prune(step, metrics):
        seen.append((step, metrics["routing_acc"]))
        return step >= 8

    results = training.train(load_config(tiny_args(tiny_encoder, tmp_path, "run.name=pruned", "train.max_steps=16")), on_evaluate=prune)
    assert [step for step, _ in seen] == [4, 8]
    assert results["stopped_at"] == 8 and results["total_steps"] == 16
    steps = [json.loads(line)["step"] for line in (tmp_path / "pruned" / "log.jsonl").read_text().splitlines()]
    assert max(steps) == 8
    assert (tmp_path / "pruned" / "checkpoints" / "step-000008").is_dir()  # the stop step can be resumed
    assert (tmp_path / "pruned" / "router" / "model.safetensors").is_file()
