"""Bad input to the route and evaluate command lines and to ``Router.from_pretrained``: one clear line, exit code 2, nothing half-written."""

import json
import shutil
import subprocess
import sys

import pytest
import torch

from routertrain.cli.evaluate import main as evaluate_main
from routertrain.cli.route import main as route_main
from routertrain.hub.router import Router, RouterFolderError, check_device
from tests.conftest import REPO

SMALL_DATA = ["data.synthetic.n_train=40", "data.synthetic.n_validation=10", "data.synthetic.n_test=10"]


def run_cli(main, args, capsys) -> tuple[int, str]:
    """Exit code and stderr of ``main(args)``, whether it returns or argparse exits."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in {err!r}"


@pytest.fixture
def router_copy(tiny_run, tmp_path):
    folder = tmp_path / "router"
    shutil.copytree(tiny_run / "router", folder)
    return folder


def test_route_file_that_is_missing_a_folder_or_blank(tiny_run, tmp_path, capsys):
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n")
    assert_one_line(*run_cli(route_main, [tiny_run, "--file", tmp_path / "nope.txt"], capsys), "does not exist", "one query per line")
    assert_one_line(*run_cli(route_main, [tiny_run, "--file", tmp_path], capsys), "is a folder", "one query per line")
    assert_one_line(*run_cli(route_main, [tiny_run, "--file", blank], capsys), "has no queries", "one query per line")
    assert_one_line(*run_cli(route_main, [tiny_run], capsys), "no queries", "--file")


def test_route_missing_file_exits_2_without_traceback_as_a_command(tiny_run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "routertrain.cli.route", str(tiny_run), "--file", str(tmp_path / "nope.txt")],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert_one_line(proc.returncode, proc.stderr, "does not exist")


def test_route_output_is_checked_before_loading_and_written_atomically(tiny_run, tmp_path, monkeypatch, capsys):
    def no_loading(*args, **kwargs):
        raise AssertionError("the router was loaded before the output path was checked")

    with monkeypatch.context() as patch:
        patch.setattr(Router, "from_pretrained", no_loading)
        assert_one_line(*run_cli(route_main, [tiny_run, "hi", "--output", tmp_path / "nodir" / "x.jsonl"], capsys), "does not exist", "create it")
        assert_one_line(*run_cli(route_main, [tiny_run, "hi", "--output", tmp_path], capsys), "is a folder", "file path")
    assert not (tmp_path / "nodir").exists()
    out = tmp_path / "routes.jsonl"
    assert_one_line(*run_cli(route_main, [tiny_run, "hi", "--max-cost", "1e-9", "--output", out], capsys), "raise the budget")
    assert not out.exists()
    assert route_main([str(tiny_run), "--output", str(out), "hi", "there"]) == 0  # queries may follow the options
    assert [json.loads(line)["query"] for line in out.read_text().splitlines()] == ["hi", "there"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["routes.jsonl"]  # no temporary file left


def test_device_is_checked_up_front(tiny_run, monkeypatch, capsys):
    with pytest.raises(ValueError, match="unknown device 'foo'; use cpu"):
        check_device("foo")
    assert check_device("cpu") == torch.device("cpu") and check_device(None).type in ("cpu", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="use --device cpu"):
        Router.from_pretrained(tiny_run / "router", device="cuda")
    for main, args in ((route_main, [tiny_run, "hi"]), (evaluate_main, ["routers=[oracle]"])):
        assert_one_line(*run_cli(main, [*args, "--device", "cuda"], capsys), "not available", "--device cpu")
        assert_one_line(*run_cli(main, [*args, "--device", "foo"], capsys), "unknown device", "cpu, cuda")


def truncate(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])


def edit_config(folder, **changes):
    path = folder / "config.json"
    config = json.loads(path.read_text())
    path.write_text(json.dumps({**config, **changes}))


def fewer_models(folder):
    config = json.loads((folder / "config.json").read_text())
    edit_config(folder, id2label={"0": config["id2label"]["0"], "1": config["id2label"]["1"]}, label2id=None, costs=config["costs"][:2])


BREAKAGES = {
    "truncated weights": (truncate, ["model.safetensors", "truncated"]),
    "model count differs from the weights": (fewer_models, ["model.safetensors", "(2 models)", "head.weight"]),
    "no weights": (lambda f: (f / "model.safetensors").unlink(), ["lacks model.safetensors"]),
    "invalid config.json": (lambda f: (f / "config.json").write_text("{\n"), ["config.json is not valid JSON"]),
    "config.json with an unknown pooling": (lambda f: edit_config(f, pooling="max"), ["config.json", "pooling"]),
    "config.json with costs for another pool": (lambda f: edit_config(f, costs=[1.0]), ["config.json", "one cost per model"]),
    "config.json without the encoder's config": (lambda f: edit_config(f, encoder=None), ["config.json", "'encoder' config"]),
    "no config.json": (lambda f: (f / "config.json").unlink(), ["lacks config.json"]),
    "no tokenizer.json": (lambda f: (f / "tokenizer.json").unlink(), ["lacks tokenizer.json"]),
    "no tokenizer files": (lambda f: [(f / n).unlink() for n in ("tokenizer.json", "tokenizer_config.json")], ["tokenizer.json, tokenizer_config.json"]),
    "invalid tokenizer.json": (lambda f: (f / "tokenizer.json").write_text("{"), ["tokenizer files", "cannot be loaded"]),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_broken_router_folder_is_refused_in_one_line(router_copy, breakage, tmp_path, capsys):
    breaks, needles = BREAKAGES[breakage]
    breaks(router_copy)
    with pytest.raises(RouterFolderError) as info:
        Router.from_pretrained(router_copy, device="cpu")
    message = str(info.value)
    assert "\n" not in message and "train again" in message and all(n in message for n in needles), message
    out = tmp_path / "routes.jsonl"
    assert_one_line(*run_cli(route_main, [router_copy, "hi", "--device", "cpu", "--output", out], capsys), "train again")
    assert not out.exists()


def test_evaluate_refuses_a_broken_router_and_writes_nothing(router_copy, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ROUTERTRAIN_CACHE", str(tmp_path / "cache"))
    fewer_models(router_copy)
    before = sorted(p.name for p in router_copy.iterdir())
    out = tmp_path / "results.json"
    code, err = run_cli(evaluate_main, [f"run={router_copy}", "routers=[finetuned]", *SMALL_DATA, "--n-boot", "5", "--device", "cpu", "--json", out], capsys)
    assert_one_line(code, err, "model.safetensors", "train again")
    assert not out.exists() and sorted(p.name for p in router_copy.iterdir()) == before


def test_evaluate_split_must_exist(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ROUTERTRAIN_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "results.json"
    code, err = run_cli(evaluate_main, ["routers=[oracle]", *SMALL_DATA, "--split", "foo", "--n-boot", "5", "--json", out], capsys)
    assert_one_line(code, err, "--split foo", "train, validation, test")
    assert not out.exists()


def test_evaluate_json_path_is_checked_before_the_evaluation(tmp_path, monkeypatch, capsys):
    import routertrain.cli.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module, "load_routing_data", lambda *a, **k: pytest.fail("data loaded before --json was checked"))
    (tmp_path / "afile").write_text("x")
    assert_one_line(*run_cli(evaluate_main, ["routers=[oracle]", "--json", tmp_path], capsys), "is a folder", "file path")
    assert_one_line(*run_cli(evaluate_main, ["routers=[oracle]", "--json", tmp_path / "afile" / "r.json"], capsys), "is a file", "another path")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_evaluate_write_failure_after_the_evaluation_is_one_line(tmp_path, monkeypatch, capsys):
    import routertrain.cli.evaluate as evaluate_module

    def full_disk(path, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(evaluate_module, "atomic_write_json", full_disk)
    args = ["routers=[oracle]", "data.synthetic.n_train=64", "data.synthetic.n_validation=13", "data.synthetic.n_test=11", "--n-boot", "10", "--json", tmp_path / "r.json"]
    assert_one_line(*run_cli(evaluate_main, args, capsys), f"could not write {tmp_path / 'r.json'}", "No space left on device", "free space")
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("cli, option, value, valid", [
    ("route", "--cost-weight", "-1", "a number >= 0"),
    ("route", "--cost-weight", "nan", "a number >= 0"),
    ("route", "--batch-size", "0", "an integer >= 1"),
    ("evaluate", "--hard-k", "-1", "an integer >= 1"),
    ("evaluate", "--solved-at", "7", "a number in (0, 1]"),
    ("evaluate", "--solved-at", "0", "a number in (0, 1]"),
    ("evaluate", "--n-boot", "0", "an integer >= 1"),
    ("evaluate", "--batch-size", "0", "an integer >= 1"),
    ("evaluate", "--seed", "-1", "an integer >= 0"),
])
def test_out_of_range_options_name_the_valid_range(tiny_run, cli, option, value, valid, capsys):
    main, args = (route_main, [tiny_run, "hi"]) if cli == "route" else (evaluate_main, ["routers=[oracle]"])
    assert_one_line(*run_cli(main, [*args, option, value], capsys), f"argument {option}", valid)
