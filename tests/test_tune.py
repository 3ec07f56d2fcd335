"""The Optuna search on tiny models: pruning through ``train(cfg, on_evaluate=...)``, a killed study
that continues where it stopped, and the best trial exported as a router folder whose card names the
study. Trials train for real; where a test needs a known outcome, it scripts the validation accuracy
the trial reports (the loop, the pruner and the storage are the real ones)."""

import json
import time

import optuna
import pytest

from routertrain.cli.tune import main
from routertrain.config import ConfigError
from routertrain.hub.router import Router
from routertrain.training import tune as tuning
from tests.conftest import tiny_args

SPACE = "train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}\nmodel.prior_bias: {choices: [false, true]}\n"


def tune_args(encoder, tmp_path, *extra):
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    return tiny_args(encoder, tmp_path, "train.max_steps=12", "train.eval_every=4", "train.save_every=4", f"tune.space={space}",
                     "tune.study=s", "tune.startup_trials=1", *extra)


def states(folder):
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{folder / 'study.db'}")
    return [(t.number, t.state.name) for t in study.get_trials()]


def scripted(monkeypatch, accuracy, stop=None):
    """Run the real ``train`` but report ``accuracy(call, step, real)`` to the study; raise SystemExit
    (a killed worker) at ``stop = (call, step)``. Returns the list of each call's results."""
    calls = []

    def fake_train(cfg, on_evaluate=None):
        call = len(calls)
        calls.append(None)

        def hook(step, metrics):
            if stop == (call, step):
                raise SystemExit("killed")
            return on_evaluate(step, {**metrics, "routing_acc": accuracy(call, step, metrics["routing_acc"])})

        calls[call] = real_train(cfg, on_evaluate=hook)
        return calls[call]

    real_train = tuning.train
    monkeypatch.setattr(tuning, "train", fake_train)
    return calls


def test_a_worse_trial_is_pruned_at_an_evaluation_and_the_best_trial_is_exported(tiny_encoder, tmp_path, monkeypatch):
    # trial 0 reports 0.9 at every evaluation, trial 1 0.1: the median pruner stops trial 1 at its first evaluation
    calls = scripted(monkeypatch, lambda call, step, real: 0.9 if call == 0 else 0.1)
    out = tuning.tune(tune_args(tiny_encoder, tmp_path, "tune.trials=2"))
    folder = tmp_path / "s"
    assert states(folder) == [(0, "COMPLETE"), (1, "PRUNED")]
    assert out["trials"] == {"complete": 1, "pruned": 1, "fail": 0}
    assert calls[0]["best_step"] > 0 and calls[1]["total_steps"] == 12
    pruned_log = [json.loads(line) for line in (folder / "trials" / "trial-0001" / "log.jsonl").read_text().splitlines()]
    assert max(r["step"] for r in pruned_log) == 4  # stopped at its first evaluation, not after 12 steps
    # the best trial (0) is exported: a loadable router, scored once on test, its card naming the study
    best = folder / "best"
    assert out["best"] == str(best)
    study = json.loads((best / "study.json").read_text())
    assert study["trial"] == 0 and study["study"] == "s" and study["trials"]["pruned"] == 1
    assert set(study["params"]) == {"train.lr", "model.prior_bias"}
    metrics = json.loads((best / "metrics.json").read_text())
    trial_metrics = json.loads((folder / "trials" / "trial-0000" / "router" / "metrics.json").read_text())
    assert "test" not in trial_metrics  # trials never read the test split
    assert metrics["validation"] == trial_metrics["validation"] and metrics["test"]["n_queries"] == 11
    card = (best / "README.md").read_text()
    assert "## Hyperparameter search" in card and "Optuna study `s`" in card and "`train.lr`" in card and "1 pruned" in card
    assert f'Router.from_pretrained("{best}")' in card  # the final folder, not the temporary one it was written in
    router = Router.from_pretrained(best, device="cpu")
    assert router.predict(["Explain the binary search briefly."]).shape == (1, len(metrics["models"]))


def test_a_killed_study_continues_where_it_stopped(tiny_encoder, tmp_path, monkeypatch):
    """Worker 1 finishes trial 0 and is killed in trial 1 after its step-4 checkpoint (the trial stays
    RUNNING). The same command again fails that stale trial, reruns its parameters in its own run
    folder from the checkpoint, and stops when the study holds 3 finished trials: trial 0 is not redone."""
    args = tune_args(tiny_encoder, tmp_path, "tune.trials=3", "tune.heartbeat_s=1", "tune.startup_trials=10")
    first = scripted(monkeypatch, lambda call, step, real: real, stop=(1, 8))
    with pytest.raises(SystemExit):
        tuning.tune(args)
    folder = tmp_path / "s"
    assert states(folder) == [(0, "COMPLETE"), (1, "RUNNING")]
    assert len(first) == 2 and (folder / "trials" / "trial-0001" / "checkpoints" / "step-000004").is_dir()
    done_before = (folder / "trials" / "trial-0000" / "metrics.json").stat().st_mtime_ns
    time.sleep(2.5)  # the killed trial's heartbeat goes stale (grace period 2 x tune.heartbeat_s)
    second = scripted(monkeypatch, lambda call, step, real: real)
    out = tuning.tune(args)
    assert states(folder) == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE"), (3, "COMPLETE")]
    assert out["trials"]["complete"] == 3 and len(second) == 2  # the retried trial and one new one
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{folder / 'study.db'}")
    assert study.trials[2].params == study.trials[1].params
    assert study.trials[3].params["train.lr"] != study.trials[0].params["train.lr"]  # the continued study does not replay its first proposals
    assert second[0]["run_dir"] == str(folder / "trials" / "trial-0001")
    assert second[0]["train"]["samples_seen"] == 12 * 8  # resumed at step 4: the whole trial's, steps 1..4 from the checkpoint
    assert (folder / "trials" / "trial-0000" / "metrics.json").stat().st_mtime_ns == done_before  # trial 0 not trained again
    # a third run has nothing left to do, and the exported best is not scored on test again
    third = scripted(monkeypatch, lambda call, step, real: real)
    monkeypatch.setattr(tuning, "router_report", lambda *a: pytest.fail("the test split was scored again"))
    again = tuning.tune(args)
    assert again["trials"]["complete"] == 3 and third == [] and again["metrics"]["test"] == out["metrics"]["test"]


def test_search_space_and_study_mistakes_are_one_line(tiny_encoder, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    for text, match in [
        ("train.lrr: {low: 1.0e-5, high: 1.0e-3}", "'train.lrr' is not a config key.*did you mean 'train.lr'"),
        ("train.lr: {low: 1.0e-3, high: 1.0e-5}", "must be \\{low: A, high: B\\} with A < B"),
        ("model.pooling: {choices: [mean, max]}", "model.pooling='max' is not a valid setting"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConfigError, match=match):
            tuning.load_space(str(bad), ["recipe=smoke"])
    with pytest.raises(ConfigError, match="unknown search space tune.space=defualt; did you mean 'default'"):
        tuning.load_space("defualt", [])
    assert set(tuning.load_space("default", ["recipe=smoke"])) >= {"train.lr", "train.head_lr", "train.epochs", "data.max_length", "model.pooling",
                                                                  "train.warmup_ratio", "model.dropout", "model.prior_bias", "train.rank_loss", "train.task_loss_weight"}
    # every packaged space loads (its keys and values checked); the CPU-sized one keeps a trial's cost bounded
    for path in sorted(tuning.SEARCH_DIR.glob("*.yaml")):
        assert tuning.load_space(path.stem, ["recipe=smoke"]), path
    cpu = tuning.load_space("cpu", ["recipe=smoke"])
    assert "data.max_length" not in cpu and max(cpu["train.epochs"]["choices"]) <= 2
    # a study folder holding another search is refused rather than mixed
    folder = tmp_path / "study"
    tuning.check_search(folder, {"space": {"train.lr": {"choices": [1.0]}}})
    with pytest.raises(ConfigError, match="other settings or another space; set tune.study=<new name>"):
        tuning.check_search(folder, {"space": {"train.lr": {"choices": [2.0]}}})
    assert main(tiny_args(tiny_encoder, tmp_path, "tune.space=nope")) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert main(["--help"]) == 0 and "tune.trials" in capsys.readouterr().out


def test_workers_share_a_study_through_its_storage_and_one_with_other_settings_is_refused(tiny_encoder, tmp_path):
    """Two workers (each its own output folder, as on two machines) run the same command against one
    storage URL: the second adds its trial to the first one's study. A worker with other settings
    under the same study name is refused before it trains."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "c").mkdir()
    first = tuning.tune(tune_args(tiny_encoder, tmp_path / "a", f"tune.storage={url}", "tune.trials=1"))
    second = tuning.tune(tune_args(tiny_encoder, tmp_path / "b", f"tune.storage={url}", "tune.trials=2"))
    assert first["trials"]["complete"] == 1 and second["trials"]["complete"] == 2 and second["finished_before"] == 1
    study = optuna.load_study(study_name="s", storage=url)
    assert [t.user_attrs["run_dir"] for t in study.trials] == [str(tmp_path / "a" / "s" / "trials" / "trial-0000"), str(tmp_path / "b" / "s" / "trials" / "trial-0001")]
    assert not (tmp_path / "b" / "s" / "study.db").exists()
    with pytest.raises(ConfigError, match="study s at sqlite:///.*shared.db searches with other settings"):
        tuning.tune(tune_args(tiny_encoder, tmp_path / "c", f"tune.storage={url}", "tune.trials=3", "train.lr=0.5"))
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 2


def test_without_optuna_the_command_names_the_extra_to_install(monkeypatch, capsys):
    import sys

    monkeypatch.delitem(sys.modules, "routertrain.training.tune")
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ModuleNotFoundError
    assert main(["recipe=smoke"]) == 2
    assert capsys.readouterr().err == "error: the search needs optuna: pip install 'routertrain[tune]'\n"
