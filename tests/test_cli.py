"""The ``routertrain`` command: subcommand table, help, typos, ``recipes ls``/``cp``, ``python -m routertrain``."""

import importlib
import subprocess
import sys

import pytest

from routertrain.cli.main import COMMANDS, main
from routertrain.cli.recipes import copy_recipe
from routertrain.config import load_config


def test_every_subcommand_is_a_module_with_main():
    for name, module in COMMANDS.items():
        assert callable(importlib.import_module(module).main), name


def test_help_lists_every_command_and_a_typo_gets_a_suggestion(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name} " in out for name in COMMANDS)
    assert "Fine-tune a router" in out  # help lines are the modules' docstrings
    assert main(["trian"]) == 2
    assert "did you mean 'train'" in capsys.readouterr().err


def test_python_dash_m_routertrain_runs_the_same_command():
    out = subprocess.run([sys.executable, "-m", "routertrain", "recipes", "ls"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "smoke" in out.stdout and "data/routerdc" in out.stdout and "sweeps/routerdc-main" in out.stdout


def test_train_help_and_bad_recipe_are_one_line(capsys):
    assert main(["train", "--help"]) == 0
    assert "routertrain train" in capsys.readouterr().out
    assert main(["train", "recipe=smok"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'smoke'" in err


def test_recipes_cp_copies_a_recipe_that_trains_by_path(tmp_path, capsys):
    assert main(["recipes", "cp", "smoke", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine.yaml").read_text().startswith("# A tiny end-to-end run")
    assert "routertrain train recipe=" in capsys.readouterr().out
    assert load_config([f"recipe={tmp_path / 'mine'}"]).data.max_length == 32
    assert copy_recipe("data/routerdc", tmp_path) == tmp_path / "routerdc.yaml"  # into a folder
    assert main(["recipes", "cp", "smoke", str(tmp_path / "mine.yaml")]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    with pytest.raises(ValueError, match="did you mean 'sweeps/smoke'"):
        copy_recipe("sweeps/smok", tmp_path)


@pytest.mark.parametrize("module, words", [("routertrain.evaluate", "routertrain evaluate"), ("routertrain.data", "routertrain data summary")])
def test_the_older_module_commands_still_run(module, words):
    """python -m routertrain.evaluate and python -m routertrain.data stay as aliases of the subcommands."""
    out = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and words in out.stdout, out.stderr[-1000:]


def test_route_to_a_missing_folder_says_so_with_the_hubs_reason_in_one_line(tmp_path, capsys, monkeypatch):
    assert main(["route", str(tmp_path / "absent" / "router"), "hi", "--device", "cpu"]) == 2
    err = capsys.readouterr().err  # a path that cannot be a Hub repo id
    assert err.count("\n") == 1 and "absent/router does not exist (and it is not a Hub repo id, ORG/NAME)" in err
    monkeypatch.chdir(tmp_path)
    assert main(["route", "absent/router", "hi", "--device", "cpu"]) == 2
    err = capsys.readouterr().err  # ORG/NAME: tried on the Hub too
    assert err.count("\n") == 1 and "is not a folder here, and as a Hub repo id it did not load:" in err
