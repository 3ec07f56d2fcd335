"""Calibration to a budget: hand-computed switch points on small probability matrices, the saved
default setting, and the calibrate command line."""

import json
import shutil

import numpy as np
import pytest

from routertrain import Router
from routertrain.cli.calibrate import main as calibrate_main
from routertrain.cli.route import main as route_main
from routertrain.hub.calibrate import CalibrationError, decisions, solve, solve_accuracy_share, solve_max_share, solve_mean_cost

MODELS = ["a", "b", "c"]
# Row by row, where the choice changes (worked out by hand):
#   handicap w on {a}:  row 0 leaves a at w > 0.4, row 2 at w > 0.1, row 3 at w > 0.2 (row 1 is b already)
#   costs (1, 0.5, 0), weight w:  row 0 a -> c at 0.5;  row 1 b -> c at 1.2;  row 2 a -> b at 0.2, b -> c at 1.0;
#   row 3 a -> c at 0.2.  Mean cost: 0.875 below 0.2, 0.5 to 0.5, 0.25 to 1.0, 0.125 to 1.2, then 0.
PROBS = np.array([[0.9, 0.5, 0.4], [0.6, 0.7, 0.1], [0.8, 0.7, 0.2], [0.5, 0.2, 0.3]])
COSTS = [1.0, 0.5, 0.0]
LABELS = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0], [1, 0, 1]], dtype=float)


@pytest.mark.parametrize("share, switch", [(0.75, 0.0), (0.5, 0.1), (0.25, 0.2), (0.0, 0.4)])
def test_max_share_of_one_model(share, switch):
    setting = solve_max_share(PROBS, MODELS, ["a"], share)
    assert setting["cost_weight"] == pytest.approx(switch, abs=1e-9)
    chosen = decisions(PROBS, MODELS, None, setting)
    assert (chosen == 0).mean() == setting["reached"]["share"] <= share
    assert setting["penalised"] == ["a"]


def test_max_share_of_a_set_and_of_the_whole_pool():
    setting = solve_max_share(PROBS, MODELS, ["a", "b"], 0.0)  # c must win every row: row 1 needs 0.7 - w < 0.1
    assert setting["cost_weight"] == pytest.approx(0.6, abs=1e-9)
    assert list(decisions(PROBS, MODELS, COSTS, setting)) == [2, 2, 2, 2]
    assert solve(PROBS, MODELS, None, max_share={("a", "b"): 0.5})["cost_weight"] == pytest.approx(0.5, abs=1e-9)  # rows leave at 0.5, 0.6, 0.6, 0.2
    with pytest.raises(CalibrationError, match=r"cannot be reached: a, b, c take at least 100.0% .*name fewer models"):
        solve_max_share(PROBS, MODELS, MODELS, 0.5)
    with pytest.raises(CalibrationError, match="not in this router's pool; choose from a, b, c"):
        solve_max_share(PROBS, MODELS, ["gpt-9"], 0.5)


def test_choosing_only_among_served_models():
    # without c: row 0 leaves a at 0.4 (for b), row 2 at 0.1, row 3 at 0.3 (b's 0.2, not c's 0.3): two rows out at 0.3
    setting = solve(PROBS, MODELS, None, max_share={"a": 0.25}, allowed=["a", "b"])
    assert setting["cost_weight"] == pytest.approx(0.3, abs=1e-9) and setting["models"] == ["a", "b"]
    assert list(decisions(PROBS, MODELS, None, setting)) == [0, 1, 1, 1]  # c is never chosen, now or later
    assert solve(PROBS, MODELS, None, max_share={"a": 0.25})["cost_weight"] == pytest.approx(0.2, abs=1e-9)
    with pytest.raises(CalibrationError, match=r"a take at least 100.0% of these calls"):
        solve(PROBS, MODELS, None, max_share={"a": 0.5}, allowed=["a"])
    # mean cost among a, b: 0.875, then 0.75 from 0.2 (row 2 to b), 0.625 from 0.6 (row 3), 0.5 from 0.8 (row 0)
    cheap = solve(PROBS, MODELS, COSTS, mean_cost=0.7, allowed=["a", "b"])
    assert cheap["cost_weight"] == pytest.approx(0.6, abs=1e-9) and cheap["reached"]["mean_cost"] == pytest.approx(0.625)


@pytest.mark.parametrize("target, switch, reached", [(0.9, 0.0, 0.875), (0.5, 0.2, 0.5), (0.3, 0.5, 0.25), (0.1, 1.2, 0.0), (0.0, 1.2, 0.0)])
def test_mean_cost(target, switch, reached):
    setting = solve_mean_cost(PROBS, MODELS, COSTS, target)
    assert setting["cost_weight"] == pytest.approx(switch, abs=1e-9)
    assert setting["reached"]["mean_cost"] == pytest.approx(reached)
    assert np.asarray(COSTS)[decisions(PROBS, MODELS, COSTS, setting)].mean() == pytest.approx(reached)


def test_unreachable_mean_cost_says_what_can_be_reached():
    with pytest.raises(CalibrationError) as err:
        solve_mean_cost(PROBS, MODELS, [1.0, 0.5, 0.25], 0.1)  # the cheapest model costs 0.25
    message = str(err.value)
    assert "\n" not in message and "between 0.25" in message and "and 0.875" in message and "at least 0.25" in message
    with pytest.raises(CalibrationError, match="needs model costs"):
        solve_mean_cost(PROBS, MODELS, None, 0.5)


# accuracy along the weight: 1.0 up to 0.5 (row 2 moves a -> b, both right), 0.75 to 1.0, 0.5 to 1.2, then 0.25
@pytest.mark.parametrize("share, switch, accuracy", [(1.0, 0.5, 1.0), (0.75, 1.0, 0.75), (0.5, 1.2, 0.5)])
def test_accuracy_share(share, switch, accuracy):
    setting = solve_accuracy_share(PROBS, LABELS, MODELS, COSTS, share)
    assert setting["cost_weight"] == pytest.approx(switch, abs=1e-9) and setting["cost_weight"] <= switch
    assert setting["reached"]["accuracy"] == accuracy and setting["reached"]["accuracy_at_zero"] == 1.0
    chosen = decisions(PROBS, MODELS, COSTS, setting)
    assert LABELS[np.arange(4), chosen].mean() == accuracy


def test_accuracy_share_low_enough_sends_everything_to_the_cheapest_model():
    setting = solve_accuracy_share(PROBS, LABELS, MODELS, COSTS, 0.25)
    assert list(decisions(PROBS, MODELS, COSTS, setting)) == [2, 2, 2, 2] and setting["reached"]["mean_cost"] == 0.0
    with pytest.raises(CalibrationError, match="give a value in"):
        solve_accuracy_share(PROBS, LABELS, MODELS, COSTS, 1.5)
    with pytest.raises(CalibrationError, match="exactly one target"):
        solve(PROBS, MODELS, COSTS, mean_cost=0.3, accuracy_share=0.9, labels=LABELS)


@pytest.fixture
def router_copy(tiny_run, tmp_path):
    return shutil.copytree(tiny_run / "router", tmp_path / "router")


QUERIES = ["Explain the binary search briefly.", "Why does the Cold War matter? Reply in detail.", "Explain the mens rea in one sentence.",
           "Prove the theorem about primes.", "Summarise the history of Rome."]


def test_saved_setting_is_the_default_of_route(router_copy, tmp_path):
    router = Router.from_pretrained(router_copy, device="cpu")
    free = router.route(QUERIES, cost_weight=0.0)
    top = max(set(free), key=free.count)
    setting = router.calibrate(QUERIES, max_share={top: 0.0})
    assert top not in router.route(QUERIES)  # the saved default
    assert router.route(QUERIES, cost_weight=0.0) == free  # an explicit argument overrides it
    reloaded = Router.from_pretrained(router_copy, device="cpu")
    assert reloaded.config.calibration == setting and top not in reloaded.route(QUERIES)
    saved = json.loads((router_copy / "config.json").read_text())["calibration"]
    assert saved["target"] == {"max_share": {"models": [top], "share": 0.0}}
    assert f"at most 0.0% of calls to {top}" in (router_copy / "README.md").read_text()
    routes = tmp_path / "routes.jsonl"
    assert route_main([str(router_copy), *QUERIES, "--output", str(routes)]) == 0  # the route command line uses it too
    assert top not in {json.loads(line)["model"] for line in routes.read_text().splitlines()}
    assert route_main([str(router_copy), *QUERIES, "--output", str(routes), "--cost-weight", "0"]) == 0
    assert [json.loads(line)["model"] for line in routes.read_text().splitlines()] == free


def test_calibrate_command_line(router_copy, tmp_path, capsys):
    queries = tmp_path / "traffic.txt"
    queries.write_text("\n".join(QUERIES) + "\n")
    router = Router.from_pretrained(router_copy, device="cpu")
    cheapest = min(router.costs)
    assert calibrate_main([str(router_copy), "--queries", str(queries), "--mean-cost", str(cheapest / 2)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: mean cost") and "\n" not in err and f"at least {cheapest:g}" in err
    assert json.loads((router_copy / "config.json").read_text()).get("calibration") is None  # nothing written on failure
    assert calibrate_main([str(router_copy), "--queries", str(queries), "--mean-cost", str(cheapest)]) == 0
    assert "cost weight" in capsys.readouterr().out
    assert set(Router.from_pretrained(router_copy, device="cpu").route(QUERIES)) <= {m for m, c in zip(router.models, router.costs) if c == cheapest}
    with pytest.raises(SystemExit) as exit_:
        calibrate_main([str(router_copy), "--queries", str(queries), "--max-share", "nobody"])
    assert exit_.value.code == 2
    assert "MODEL=SHARE" in capsys.readouterr().err
    served = router.models[:2]
    backends = tmp_path / "backends.yaml"
    backends.write_text("backends:\n" + "".join(f"  {m}: {{base_url: 'http://127.0.0.1:9/v1', api_key_env: UNSET_KEY_FOR_CALIBRATION}}\n" for m in served))
    assert calibrate_main([str(router_copy), "--queries", str(queries), "--max-share", f"{served[0]}=0", "--backends", str(backends)]) == 0
    assert f"choosing among {', '.join(served)}" in capsys.readouterr().out
    assert set(Router.from_pretrained(router_copy, device="cpu").route(QUERIES)) == {served[1]}
    assert calibrate_main([str(router_copy), "--clear"]) == 0
    assert json.loads((router_copy / "config.json").read_text()).get("calibration") is None
