"""Sweep files: expansion into points, dry runs, running in order and skipping finished points."""

import json

import pytest
import yaml

from routertrain.experiments.sweep import SweepError, expand, launch_env, load_sweep, run_sweep
from tests.conftest import REPO


def write_sweep(path, spec):
    path.write_text(yaml.safe_dump(spec))
    return path


def test_expansion_is_a_cartesian_product_with_stable_names(tmp_path):
    spec = {
        "name": "s", "claim": "more-data", "common": ["data=routerdc"],
        "groups": [
            {"kind": "train", "args": ["recipe=minilm-l3"], "grid": {"data.fraction": [0.1, 1.0], "data.subsample_seed": [0, 1]}},
            {"kind": "evaluate", "args": ["run=@train-fraction1.0-subsample_seed0", "routers=[knn]"]},
        ],
    }
    points = expand(spec, tmp_path)
    assert [p.name for p in points] == [
        "train-fraction0.1-subsample_seed0", "train-fraction0.1-subsample_seed1",
        "train-fraction1.0-subsample_seed0", "train-fraction1.0-subsample_seed1", "evaluate",
    ]
    first = points[0]
    assert first.args[:2] == ["data=routerdc", "recipe=minilm-l3"]
    assert "data.fraction=0.1" in first.args and f"run.output_dir={tmp_path / 's'}" in first.args
    assert first.output == tmp_path / "s" / "train-fraction0.1-subsample_seed0"
    assert f"run={tmp_path / 's' / 'train-fraction1.0-subsample_seed0'}" in points[-1].args
    assert points[-1].command()[-2:] == ["--json", str(tmp_path / "s" / "evaluate.json")]


def test_a_blend_point_blends_a_train_point_of_the_sweep(tmp_path):
    spec = {"name": "s", "claim": "finetune", "common": ["data=routerdc"],
            "groups": [{"kind": "train", "label": "l6", "args": ["recipe=minilm-l6"]}, {"kind": "blend", "label": "l6", "args": ["run=@train-l6"]},
                       {"kind": "evaluate", "label": "blend", "args": ["run=@blend-l6", "routers=[finetuned]"]}]}
    train, blend, evaluate = expand(spec, tmp_path)
    assert blend.output == tmp_path / "s" / "blend-l6" and not blend.done()
    assert blend.command() == ["python", "-m", "routertrain.cli.blend", str(tmp_path / "s" / "blend-l6"), str(tmp_path / "s" / "train-l6")]
    assert f"run={tmp_path / 's' / 'blend-l6'}" in evaluate.args
    (blend.output).mkdir(parents=True)
    assert not blend.done()  # a folder without blend.json is not a finished blend
    (blend.output / "blend.json").write_text("{}")
    assert blend.done()


def test_an_ensemble_point_ensembles_train_points_of_the_sweep(tmp_path):
    spec = {"name": "s", "claim": "remedies", "common": ["data=routerdc"],
            "groups": [{"kind": "train", "args": ["recipe=minilm-l6"], "grid": {"run.seed": [0, 1]}},
                       {"kind": "ensemble", "label": "seeds", "args": ["runs=[@train-seed0, @train-seed1]"]},
                       {"kind": "evaluate", "label": "seeds", "args": ["run=@ensemble-seeds", "routers=[finetuned]"]}]}
    *_, ensemble, evaluate = expand(spec, tmp_path)
    root = tmp_path / "s"
    assert ensemble.command() == ["python", "-m", "routertrain.cli.ensemble", str(root / "ensemble-seeds"), str(root / "train-seed0"), str(root / "train-seed1")]
    assert f"run={root / 'ensemble-seeds'}" in evaluate.args
    ensemble.output.mkdir(parents=True)
    assert not ensemble.done()
    (ensemble.output / "ensemble.json").write_text("{}")
    assert ensemble.done()
    spec["groups"][1]["args"] = ["runs=[@train-seed0]"]
    path = write_sweep(tmp_path / "one.yaml", spec)
    with pytest.raises(SweepError, match="needs runs=.*at least 2"):
        run_sweep(path, tmp_path / "out", dry_run=True)


def test_a_tune_point_runs_a_study_in_the_sweep_folder_and_its_best_router_is_evaluated(tiny_encoder, tmp_path, monkeypatch):
    """kind: tune runs routertrain tune with the study under the sweep folder; it is finished only once the
    study exported its best router, which run=@tune-<label>/best evaluates; a typo in its space fails first."""
    monkeypatch.chdir(REPO)
    space = tmp_path / "space.yaml"
    space.write_text("train.lr: {low: 1.0e-4, high: 1.0e-2, log: true}\n")
    common = [f"model.name_or_path={tiny_encoder}", "data.synthetic.n_train=32", "data.synthetic.n_validation=8", "data.synthetic.n_test=8",
              "train.global_batch_size=8", "train.max_steps=4", "train.eval_every=2"]
    groups = [{"kind": "tune", "label": "lr", "args": ["recipe=smoke", f"tune.space={space}", "tune.trials=2", "tune.startup_trials=1"]},
              {"kind": "evaluate", "label": "best", "args": ["run=@tune-lr/best", "routers=[finetuned,task-prior]"]}]
    path = write_sweep(tmp_path / "s.yaml", {"name": "tiny", "claim": "finetune", "common": common, "groups": groups})
    study, evaluate = run_sweep(path, tmp_path / "out", dry_run=True)
    root = tmp_path / "out" / "tiny"
    assert study.output == root / "tune-lr" and study.command()[:3] == ["python", "-m", "routertrain.cli.tune"]
    assert f"run.output_dir={root}" in study.args and "tune.study=tune-lr" in study.args
    assert f"run={root / 'tune-lr' / 'best'}" in evaluate.args
    run_sweep(path, tmp_path / "out")
    assert study.done() and evaluate.done()
    record = json.loads((study.output / "best" / "study.json").read_text())
    assert record["study"] == "tune-lr" and sum(record["trials"].values()) == 2
    scored = json.loads(evaluate.output.read_text())
    assert scored["run"] == str(root / "tune-lr" / "best") and {"finetuned", "task-prior"} <= set(scored["routers"])
    (study.output / "best" / "study.json").unlink()
    assert not study.done()  # a study without its exported router is not finished
    groups[0]["args"][1] = "tune.space=defualt"
    with pytest.raises(SweepError, match="did you mean 'default'"):
        run_sweep(write_sweep(tmp_path / "typo.yaml", {"name": "typo", "claim": "finetune", "common": common, "groups": groups}), tmp_path / "out", dry_run=True)


def test_every_shipped_sweep_file_expands():
    files = sorted((REPO / "recipes" / "sweeps").glob("*.yaml"))
    assert files, "no sweep files in recipes/sweeps"
    for path in files:
        assert expand(load_sweep(path), "out"), path


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ({"name": "s", "groups": []}, "has no 'claim'"),
        ({"name": "s", "claim": "faster", "groups": []}, "claim 'faster'"),
        ({"name": "s", "claim": "plateau", "groups": [{"kind": "fit"}]}, "kind 'fit'"),
    ],
)
def test_malformed_sweeps_fail_in_one_line(tmp_path, spec, fragment):
    with pytest.raises(SweepError, match=fragment):
        load_sweep(write_sweep(tmp_path / "bad.yaml", spec))


def test_duplicate_point_names_are_refused(tmp_path):
    spec = {"name": "s", "claim": "plateau", "groups": [{"kind": "evaluate"}, {"kind": "evaluate"}]}
    with pytest.raises(SweepError, match="names points twice"):
        expand(spec, tmp_path)


def test_dry_run_prints_commands_and_runs_nothing(tmp_path, capsys):
    path = write_sweep(tmp_path / "s.yaml", {"name": "dry", "claim": "more-data", "groups": [{"kind": "train", "args": ["recipe=smoke"], "grid": {"data.fraction": [0.5, 1.0]}}]})
    run_sweep(path, tmp_path / "out", dry_run=True)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(line.startswith("accelerate launch --quiet --config_file accelerate_config.yaml -m routertrain.cli.train") for line in out)
    assert not (tmp_path / "out").exists()


def test_a_packaged_sweep_runs_by_name_and_a_file_without_yaml(tmp_path, capsys):
    """routertrain sweep routerdc-main: the packaged sweep; a user's file by path with or without .yaml."""
    from routertrain.cli.main import main

    assert main(["sweep", "routerdc-main", "--dry-run", "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "routertrain.cli.train" in out and str(tmp_path / "out" / "routerdc-main") in out
    path = write_sweep(tmp_path / "mine.yaml", {"name": "mine", "claim": "more-data", "groups": [{"kind": "train", "args": ["recipe=smoke"]}]})
    assert load_sweep(path.with_suffix(""))["name"] == "mine"
    assert main(["sweep", "routerdc-mian", "--dry-run"]) == 2
    assert "did you mean 'routerdc-main'" in capsys.readouterr().err


def test_sweep_runs_points_in_order_and_skips_finished_ones(tiny_encoder, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    common = [f"model.name_or_path={tiny_encoder}", "data.synthetic.n_train=32", "data.synthetic.n_validation=8", "data.synthetic.n_test=8", "train.global_batch_size=8", "train.max_steps=2"]
    groups = [{"kind": "train", "args": ["recipe=smoke"], "grid": {"data.fraction": [0.5, 1.0]}}, {"kind": "blend", "args": ["run=@train-fraction1.0"]}]
    path = write_sweep(tmp_path / "s.yaml", {"name": "tiny", "claim": "more-data", "common": common, "groups": groups})
    points = run_sweep(path, tmp_path / "out", accelerate_config=str(REPO / "accelerate_config.yaml"))
    assert all(p.done() for p in points)
    from routertrain.hub.router import BlendRouter, Router

    assert isinstance(Router.from_pretrained(points[-1].output, device="cpu"), BlendRouter)  # the blend point's router folder
    stamps = [(p.output / "metrics.json").stat().st_mtime_ns for p in points]
    capsys.readouterr()
    run_sweep(path, tmp_path / "out", accelerate_config=str(REPO / "accelerate_config.yaml"))
    assert capsys.readouterr().out.count("done already") == 3
    assert [(p.output / "metrics.json").stat().st_mtime_ns for p in points] == stamps
    assert (tmp_path / "out" / "tiny" / "sweep.yaml").is_file()


def test_launched_points_use_every_cpu_thread(tmp_path, monkeypatch):
    """accelerate launch would pin a one-process run to one thread; launch_env gives it every core."""
    import os
    import subprocess
    import sys

    script = tmp_path / "threads.py"
    script.write_text("import torch\nprint('threads', torch.get_num_threads())\n")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "accelerate_config.yaml"), str(script)]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    plain = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), check=True).stdout
    ours = subprocess.run(cmd, capture_output=True, text=True, env=launch_env(), check=True).stdout
    assert "threads 1" in plain  # accelerate's own default, the reason launch_env exists
    assert f"threads {os.cpu_count()}" in ours
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert launch_env()["OMP_NUM_THREADS"] == "3"  # an explicit setting wins


def test_a_run_from_before_done_json_is_adopted_from_its_own_evidence_only(tmp_path, capsys):
    """routertrain sweep NAME --adopt POINT writes done.json for a train point whose router/ and final
    metrics.json are in place (a run that predates done.json), saying so; anything less is refused."""
    from routertrain.cli.main import main
    from routertrain.hub.folder import REQUIRED_FILES

    path = write_sweep(tmp_path / "s.yaml", {"name": "old", "claim": "finetune", "groups": [{"kind": "train", "label": "l6", "args": ["recipe=smoke"]},
                                                                                           {"kind": "evaluate", "args": ["run=@train-l6"]}]})
    out = tmp_path / "out"
    run = out / "old" / "train-l6"
    adopt = ["sweep", str(path), "--out", str(out), "--adopt"]
    assert main([*adopt, "train-l6"]) == 2 and "router lacks config.json, model.safetensors" in capsys.readouterr().err  # nothing trained
    (run / "router").mkdir(parents=True)
    for name in REQUIRED_FILES[:-1]:
        (run / "router" / name).write_text("{}")
    assert main([*adopt, "train-l6"]) == 2 and f"lacks {REQUIRED_FILES[-1]}" in capsys.readouterr().err
    (run / "router" / REQUIRED_FILES[-1]).write_text("{}")
    (run / "metrics.json").write_text(json.dumps({"validation": {"routing_acc": 0.5}}))  # a crash before the test scores
    assert main([*adopt, "train-l6"]) == 2 and "lacks the final test scores" in capsys.readouterr().err
    (run / "metrics.json").write_text(json.dumps({"validation": {"routing_acc": 0.5}, "test": {"routing_acc": 0.5}, "best_step": 7}))
    assert main([*adopt, "evaluate"]) == 2 and "no train point 'evaluate'" in capsys.readouterr().err
    assert main([*adopt, "train-l6"]) == 0
    done = json.loads((run / "done.json").read_text())
    assert done["best_step"] == 7 and "metrics.json: validation, test" in done["adopted"]["evidence"] and "--adopt train-l6" in done["adopted"]["command"]
    assert main([*adopt, "train-l6"]) == 2 and "nothing to adopt" in capsys.readouterr().err  # never twice
