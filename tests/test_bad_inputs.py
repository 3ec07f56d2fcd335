"""A new user's mistakes across train, data, evaluate, route, push, sweep and the Python API.

Each command-line mistake must end with a non-zero exit code and exactly one ``error:`` line (no
traceback), and leave nothing half-written: no run folder, no output file, no sweep folder, an
unchanged router. Each Python API mistake must raise a one-line ``TypeError``/``ValueError``. All in
process (no subprocess), so the whole list runs in seconds once the shared tiny run exists.
"""

import math
import shutil

import pytest
import yaml

from routertrain.cli.add_model import main as add_model_main
from routertrain.cli.blend import main as blend_main
from routertrain.cli.calibrate import main as calibrate_main
from routertrain.cli.common import main_train
from routertrain.cli.convert import main as convert_main
from routertrain.cli.evaluate import main as evaluate_main
from routertrain.cli.route import main as route_main
from routertrain.config import ConfigError, load_config
from routertrain.data import __main__ as data_cli
from routertrain.experiments import sweep
from routertrain.hub import push
from routertrain.hub.router import Router
from routertrain.provenance import DONE
from tests.conftest import tiny_args

# (surface, arguments, fragment of the error line); {files} is a folder of table files, {unfinished}
# a run folder whose training stopped before its end (router/ and metrics.json, no done.json), {corrupt}
# a finished run whose router/config.json is not valid JSON, {out} a folder that must stay empty
TRAIN = [
    (["train.lr=inf"], "'train.lr': must be a positive finite number"),
    (["train.lr=nan"], "'train.lr': must be a positive finite number"),
    (["train.lr=-1e-5"], "'train.lr': must be a positive finite number"),
    (["train.head_lr=-0.1"], "'train.head_lr': must be a positive finite number"),
    (["train.head_lr=nan"], "'train.head_lr'"),
    (["train.weight_decay=-0.01"], "'train.weight_decay': must be 0 (off)"),
    (["train.weight_decay=inf"], "'train.weight_decay'"),
    (["train.max_grad_norm=-1"], "'train.max_grad_norm': must be 0 (no clipping)"),
    (["train.max_grad_norm=nan"], "'train.max_grad_norm'"),
    (["train.max_steps=0"], "'train.max_steps': must be -1 (train.epochs decide) or a positive"),
    (["train.max_steps=-5"], "'train.max_steps'"),
    (["train.epochs=inf"], "'train.epochs': must be positive and finite"),
    (["train.warmup_ratio=nan"], "'train.warmup_ratio'"),
    (["train.global_batch_size=0"], "'train.global_batch_size'"),
    (["train.per_device_batch_size=3"], "not a multiple of per-device batch 3"),
    (["eval.batch_size=0"], "'eval.batch_size'"),
    (["eval.splits=validation,tset"], "'eval.splits': name one or both of validation, test, comma-separated; did you mean 'test'?"),
    (["eval.splits=train"], "'eval.splits'"),
    (["eval.splits=,"], "'eval.splits'"),
    (["data.table.threshold=nan"], "'data.table.threshold': must be a finite number"),
    (["data.table.score_max=nan"], "'data.table.score_max'"),
    (["data.costs={{a: .nan}}"], "bad cost nan for model 'a' in 'data.costs'"),
    (["data.costs={{a: -1}}"], "bad cost -1"),
    (["data.fraction=nan"], "'data.fraction'"),
    (["run.seed=-1"], "'run.seed'"),
    (["model.lora.alpha=0"], "'model.lora.alpha'"),
    (["model.dropout=nan"], "'model.dropout'"),
    (["data.synthetic.n_train=0"], "'data.synthetic.n_train'"),
    (["tracking.log_every=0"], "'tracking.log_every'"),
    (["data.max_length=1000"], "data.max_length=1000 is more than the 128 positions of encoder"),
    (["run.output_dir={files}/a.csv/runs"], "cannot be created because"),
    (["train.resume={files}"], "is neither auto, never nor a checkpoint folder"),
    (["data.name=table", "data.path={files}", "data.table.files=empty.json", "data.table.score_columns=m1,m2"], "empty.json holds no rows"),
    (["recipe="], "'recipe=' is empty: name a recipe"),
    (["data.name=table", "data.path={files}", "data.table.files=nolabel.csv", "data.table.score_columns=m_a,m_b,m_c"],
     "model 'm_a' has no label in the train split"),
    (["data.name=table", "data.path={files}", "data.table.files=a.csv", "data.table.score_columns=m1"], "the pool has one model ('m1')"),
]
DATA = [  # the dataset cache is asked to keep no failed build by tests/test_input_errors.py
    (["data.table.files=empty.json"], "empty.json holds no rows (an empty list, or only a header)"),
    (["data.table.files=header.csv"], "header.csv holds no rows"),
    (["data.table.files=badcost.csv", "data.table.cost_pattern=cost_{{model}}"], "hold a NaN, infinite or negative value"),
    (["data.table.files=a.csv", "data.table.label_map=threshold", "data.table.threshold=nan"], "'data.table.threshold'"),
    (["data.table.files=nolabel.csv", "data.table.score_columns=m_a,m_b,m_c"], "model 'm_a' has no label in the train split"),
    (["data.table.files=nolabel.csv", "data.table.score_columns=", "data.table.score_pattern=^m_"], "model 'm_a' has no label in the train split"),
    (["data.table.files=nancell.csv", "data.table.score_columns=", "data.table.score_pattern=^m\\d$", "data.missing=fail"],
     "nancell.csv row 4 column 'm1': missing score"),
    (["data.table.files=bigcell.csv", "data.table.score_columns=", "data.table.score_pattern=^m\\d$"], "bigcell.csv row 4 column 'm2': score 7.0 is outside the declared range"),
]
EVALUATE = [
    (["run={unfinished}"], "did not finish (no done.json"),
    (["run={files}/missing"], "missing"),
    (["routers=[bogus]", "run=none"], "unknown router(s) bogus"),
    (["run={run}", "--n-boot", "0"], "--n-boot"),
    (["run={corrupt}", "routers=[finetuned]"], "error: {corrupt}/router/config.json is not valid JSON"),
]
ROUTE = [
    (["{unfinished}", "hello"], "did not finish (no done.json"),
    (["{run}", "hello", "--batch-size", "0"], "--batch-size"),
    (["{run}", "hello", "--cost-weight", "nan"], "--cost-weight"),
    (["{run}", "hello", "--max-cost", "nan"], "max_cost must be a finite number >= 0"),
    (["{run}", ""], "queries must be non-empty texts: item 0 is ''"),
    (["{run}", "hello", "  "], "queries must be non-empty texts: item 1"),
    (["{corrupt}", "hello"], "error: {corrupt}/router/config.json is not valid JSON"),
    (["{files}/no/such/router", "hello"], "router folder {files}/no/such/router does not exist"),
]
PUSH = [
    (["{unfinished}", "--repo-id", "me/router"], "did not finish (no done.json"),
    (["{files}/missing", "--repo-id", "me/router"], "holds no router"),
    (["{corrupt}", "--repo-id", "me/router"], "error: {corrupt}/router/config.json is not valid JSON"),
    (["{run}", "--repo-id", "me/my/router"], "--repo-id 'me/my/router' is not a Hub repo id"),
]
OTHER = [  # blend, convert, add-model, calibrate
    (["blend", "{out}/blend", "{corrupt}"], "error: {corrupt}/router/config.json is not valid JSON"),
    (["convert", "{corrupt}", "{out}/converted"], "error: {corrupt}/router/config.json is not valid JSON"),
    (["add-model", "{corrupt}", "--name", "x", "--labels", "{files}/labels.jsonl", "--output", "{out}/added", "--cost", "1"], "error: {corrupt}/router/config.json is not valid JSON"),
    (["add-model", "{run}", "--name", "x", "--labels", "{files}/badline.jsonl", "--output", "{out}/added", "--cost", "1"], "badline.jsonl, line 4: not valid JSON"),
    (["calibrate", "{run}", "--queries", "{files}/blank.txt", "--mean-cost", "0.5"], "--queries {files}/blank.txt has no queries"),
    (["calibrate", "{corrupt}", "--clear"], "error: {corrupt}/router/config.json is not valid JSON"),
]
SWEEP = [
    (["{files}/no-such-sweep.yaml"], "unknown sweep"),
    (["{files}/typo.yaml"], "unknown config key 'train.lrr'"),
]
CASES = [(surface, args, fragment) for surface, cases in
         (("train", TRAIN), ("data", DATA), ("evaluate", EVALUATE), ("route", ROUTE), ("push", PUSH), ("sweep", SWEEP), ("other", OTHER)) for args, fragment in cases]
OTHERS = {"blend": blend_main, "convert": convert_main, "add-model": add_model_main, "calibrate": calibrate_main}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("files")
    rows = "".join(f"question {i},{i % 2},{(i + 1) % 2},-0.5,0.2\n" for i in range(30))
    (folder / "a.csv").write_text("query,m1,m2\n" + "".join(f"question {i},{i % 2},{(i + 1) % 2}\n" for i in range(30)))
    (folder / "badcost.csv").write_text("query,m1,m2,cost_m1,cost_m2\n" + rows)
    (folder / "empty.json").write_text("[]")
    (folder / "header.csv").write_text("query,m1,m2\n")
    (folder / "nolabel.csv").write_text("query,task,m_a,m_b,m_c\n" + "".join(f"question {i},t{i % 3},nan,{i % 2},{(i + 1) % 2}\n" for i in range(30)))
    for name, cell in (("nancell.csv", "nan,0"), ("bigcell.csv", "0,7")):  # row 4: a NaN score, or one out of [0, 1]
        cells = ["1,0", "0,1", "1,1", cell] + ["0,1", "1,0"] * 13
        (folder / name).write_text("query,m1,m2\n" + "".join(f"question {i},{c}\n" for i, c in enumerate(cells)))
    (folder / "labels.jsonl").write_text("".join(f'{{"query": "question {i}", "score": {i % 2}}}\n' for i in range(12)))
    (folder / "badline.jsonl").write_text('{"query": "a", "score": 1}\n\n{"query": "b", "score": 0}\n{"query": "c", score: 1}\n')
    (folder / "blank.txt").write_text("\n  \n")
    (folder / "typo.yaml").write_text(yaml.safe_dump({"name": "t", "claim": "more-data", "groups": [{"kind": "train", "args": ["recipe=smoke", "train.lrr=1"]}]}))
    return folder


@pytest.fixture(scope="module")
def unfinished(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("unfinished") / "run"
    shutil.copytree(tiny_run, run)
    (run / DONE).unlink()
    return run


@pytest.fixture(scope="module")
def corrupt(tiny_run, tmp_path_factory):
    run = tmp_path_factory.mktemp("corrupt") / "run"
    shutil.copytree(tiny_run, run)
    (run / "router" / "config.json").write_text("{\n")
    return run


def snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_mtime_ns) for p in folder.rglob("*"))


@pytest.mark.parametrize("surface, args, fragment", CASES, ids=[f"{s}:{' '.join(a)[:60]}" for s, a, _ in CASES])
def test_a_mistake_ends_in_one_line_and_leaves_nothing_half_written(surface, args, fragment, tiny_encoder, tiny_run, unfinished, corrupt, files, tmp_path, capsys):
    out = tmp_path / "out"
    args = [a.format(files=files, run=tiny_run, unfinished=unfinished, corrupt=corrupt, out=out) for a in args]
    fragment = fragment.format(files=files, corrupt=corrupt)
    before = snapshot(unfinished), snapshot(tiny_run), snapshot(corrupt)
    try:
        if surface == "train":
            code = main_train(tiny_args(tiny_encoder, out, "run.name=bad", *args))
        elif surface == "data":
            code = data_cli.main(["summary", "data.name=table", f"data.path={files}", "data.table.score_columns=m1,m2", f"data.cache_dir={tmp_path / 'cache'}", *args])
        elif surface == "evaluate":
            code = evaluate_main([*args, "--json", str(out / "eval.json")])
        elif surface == "route":
            code = route_main(args)
        elif surface == "push":
            code = push.main(args)
        elif surface == "other":
            code = OTHERS[args[0]](args[1:])
        else:
            code = sweep.main([*args, "--out", str(out)])
    except SystemExit as exit_:  # argparse
        code = exit_.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code != 0 and len(errors) == 1 and "Traceback" not in err, err
    assert fragment in errors[0], errors[0]
    assert not (out / "bad").exists() and not (out / "eval.json").exists() and not list(out.glob("*/"))  # no run, result or sweep folder
    assert (snapshot(unfinished), snapshot(tiny_run), snapshot(corrupt)) == before  # routers untouched (push rewrites no card)


@pytest.fixture(scope="module")
def router(tiny_run):
    return Router.from_pretrained(tiny_run / "router", device="cpu")


API = [
    (lambda r: r.predict([None]), TypeError, "queries must be texts: item 0 is NoneType"),
    (lambda r: r.predict(123), TypeError, "queries must be a text or a list of texts, not int"),
    (lambda r: r.predict(None), TypeError, "not NoneType"),
    (lambda r: r.predict(["a", 7]), TypeError, "item 1 is int"),
    (lambda r: r.predict(["a"], batch_size=0), ValueError, "batch_size must be a positive integer, got 0"),
    (lambda r: r.predict(["a"], batch_size=2.5), ValueError, "batch_size must be a positive integer"),
    (lambda r: r.route(["a"], cost_weight=math.nan), ValueError, "cost_weight must be a finite number >= 0, got nan"),
    (lambda r: r.route(["a"], cost_weight=-1.0), ValueError, "cost_weight must be a finite number >= 0"),
    (lambda r: r.route(["a"], cost_weight="1"), TypeError, "cost_weight must be a number, not str"),
    (lambda r: r.route(["a"], max_cost=math.inf), ValueError, "max_cost must be a finite number"),
    (lambda r: r.route(["a"], batch_size=-3), ValueError, "batch_size"),
    (lambda r: load_config(["recipe=smoke", "train.max_grad_norm=-1"]), ConfigError, "'train.max_grad_norm'"),
    (lambda r: r.route([""]), ValueError, "queries must be non-empty texts: item 0 is ''"),
    (lambda r: r.predict(["a", " \n"]), ValueError, "item 1 is ' \\n', which has nothing to route on"),
    (lambda r: Router.from_pretrained(None), TypeError, "path_or_repo_id must be a router folder or a Hub repo id (ORG/NAME), not NoneType"),
    (lambda r: Router.from_pretrained("/no/such/router"), FileNotFoundError, "router folder /no/such/router does not exist"),
    (lambda r: Router.from_pretrained(r.folder / "config.json"), OSError, "config.json is a file; give its router folder"),
]


@pytest.mark.parametrize("call, error, fragment", API, ids=[f"api-{i}" for i in range(len(API))])
def test_python_api_mistakes_raise_one_line_errors(router, call, error, fragment):
    with pytest.raises(error) as caught:
        call(router)
    message = str(caught.value)
    assert fragment in message and "\n" not in message


def test_the_list_covers_at_least_forty_mistakes():
    assert len(CASES) + len(API) >= 40
