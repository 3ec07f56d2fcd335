"""The claims report: sweep folders -> tables, PNG plots and verdicts; the rules on constructed cases."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from datasets import Dataset, DatasetDict

from routertrain.experiments import report
from routertrain.experiments.claims import NOT_RUN, Result, encoders, finetune, fmt, more_data, plateau, predictability
from routertrain.data import RoutingData, synthetic
from routertrain.evaluation import compare
from routertrain.evaluation.compare import evaluate_routers, to_json

N_BOOT = 200


def tiny_data(seed=0, sizes=(40, 15, 30)) -> RoutingData:
    """Synthetic-benchmark queries (the tiny encoder's vocabulary), random 0/1 labels, tasks and costs."""
    rng = np.random.default_rng(seed)
    queries = synthetic.generate(seed, *sizes, 2)["splits"]
    splits = {
        split: Dataset.from_dict({"query": queries[split]["query"], "labels": (rng.random((n, 3)) < [0.4, 0.5, 0.6]).astype(np.float32).tolist(),
                                  "task": [str(t) for t in rng.integers(0, 3, n)]})
        for split, n in zip(("train", "validation", "test"), sizes)
    }
    return RoutingData(DatasetDict(splits), ["m0", "m1", "m2"], [1.0, 2.0, 5.0], name="hand", fingerprint=f"hand-{seed}")


@pytest.fixture(scope="module")
def evaluated(tiny_encoder, tmp_path_factory) -> dict:
    routers = ["oracle", "best-single", "random", "task-prior", "knn", "logreg", "tfidf"]
    result = evaluate_routers(tiny_data(), routers, encoder=str(tiny_encoder), n_boot=N_BOOT, max_length=16,
                              cache_root=str(tmp_path_factory.mktemp("cache")))
    return json.loads(json.dumps(to_json(result)))


def write_sweep(root, name, claim, groups, outputs: dict):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "sweep.yaml").write_text(yaml.safe_dump({"name": name, "claim": claim, "groups": groups}))
    for point, data in outputs.items():
        (folder / f"{point}.json").write_text(json.dumps(data))
    return folder


def test_report_end_to_end(evaluated, tmp_path):
    scaled = []
    for fraction in (0.5, 1.0):
        for seed in (0, 1):
            one = copy.deepcopy(evaluated)
            for r in one["routers"].values():
                r["accuracy"]["value"] += fraction / 10 + seed / 100  # distinct numbers per point
            scaled.append((f"evaluate-frozen-fraction{fraction}-subsample_seed{seed}", one))
    main = write_sweep(tmp_path, "main", ["plateau", "predictability", "finetune"], [{"kind": "evaluate", "label": "all"}], {"evaluate-all": evaluated})
    scaling = write_sweep(tmp_path, "scaling", "more-data",
                          [{"kind": "evaluate", "label": "frozen", "grid": {"data.fraction": [0.1, 0.5, 1.0], "data.subsample_seed": [0, 1]}}], dict(scaled))
    out, figures = tmp_path / "out" / "REPORT.md", tmp_path / "out" / "figures"
    assert report.main([str(main), str(scaling), str(tmp_path / "encoders"), "--output", str(out), "--figures", str(figures)]) == 0
    text = out.read_text()
    knn = evaluated["routers"]["knn"]
    row = next(line for line in text.splitlines() if line.startswith("| knn |") and "[" in line)
    assert fmt(knn["accuracy"]["value"]) in row and fmt(knn["accuracy"]["low"]) in row and fmt(knn["task_prior_share"]) in row
    assert fmt(knn["vs_best-single"]["value"], sign=True) in row and fmt(knn["aiq"]) in row
    assert f"oracle {fmt(evaluated['reference']['oracle_acc'])}" in text and "30 test queries" in text
    for name in ("hand-main", "hand-fraction"):
        assert (figures / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"figures/{name}.png" in text
    assert not (figures / "hand-encoder.png").exists()
    verdicts = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ") and line.count("|") == 5}
    assert NOT_RUN in verdicts["encoder"] and NOT_RUN in verdicts["finetune"]  # encoders never ran; no finetuned router in main
    assert verdicts["encoder"].count(NOT_RUN) == 3  # hand, and routerdc / mmlu-pro expected by recipes/sweeps/encoders.yaml
    assert "evaluate-frozen-fraction0.1-subsample_seed0" in text  # unfinished points are listed
    assert "python -m routertrain.experiments.sweep recipes/sweeps/encoders.yaml" in text and "python -m routertrain.experiments.report" in text
    assert "1. plateau" in text  # the rules are in the report
    head = text.splitlines()[:40]  # the first screen: the summary, the verdict table and the headline figure
    summary = head[head.index("## Summary") + 2: head.index("## Verdicts") - 1]
    assert 1 <= len(summary) <= 5 and all(line.startswith("- **") for line in summary)
    assert "| plateau |" in "\n".join(head) and any("figures/headline.png" in line for line in head)
    assert (figures / "headline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    appendix = text.index("## Appendix A: unfinished points")
    assert text.index("evaluate-frozen-fraction0.1-subsample_seed0") > appendix  # names only in the appendix; the status table counts
    assert "| scaling | more-data | 4 of 6 |" in text and text.index("1. plateau") > appendix
    for line in text.splitlines():  # every inconclusive verdict states what the data could detect
        if line.startswith(("| plateau |", "| predictability |", "| more-data |", "| encoder |", "| finetune |", "| remedies |")):
            assert all(c.strip() in ("holds", "does not hold", NOT_RUN) or c.strip().startswith("inconclusive: ") for c in line.split("|")[2:-1]), line
    assert "slope per doubling" in text


def test_unreadable_json_fails_in_one_line(tmp_path, capsys):
    folder = write_sweep(tmp_path, "main", "plateau", [{"kind": "evaluate", "label": "all"}], {})
    (folder / "evaluate-all.json").write_text("{not json")
    assert report.main([str(folder), "--output", str(tmp_path / "r.md")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read") and "\n" not in err


def test_evaluate_routers_stores_paired_differences(evaluated, monkeypatch):
    routers = evaluated["routers"]
    assert len(routers["knn"]["accuracy_boot"]) == N_BOOT
    assert np.mean(routers["knn"]["accuracy_boot"]) == pytest.approx(routers["knn"]["accuracy"]["value"], abs=0.05)
    assert routers["task-prior"]["vs_task-prior"]["value"] == 0 and len(evaluated["data"]["split_hash"]) == 16
    monkeypatch.setattr(compare, "PAIRS", (("oracle", "random"),))
    result = evaluate_routers(tiny_data(), ["oracle", "random"], n_boot=50)
    diff = result["paired"]["oracle - random"]
    assert diff["value"] == pytest.approx(result["reference"]["oracle_acc"] - result["reference"]["random_acc"]) and diff["low"] > 0
    assert result["data"]["split_hash"] == evaluated["data"]["split_hash"]


# --- the rules on constructed results ----------------------------------------------------------


def fake(accs: dict, oracle=0.8, single=0.5, random=0.3, half=0.02, noise=0.0, values=None, encoder="enc", **extra) -> Result:
    """A schema-correct evaluate result; with ``noise``, accuracy_boot shares one noise across routers (pairing)."""
    common = np.random.default_rng(0).normal(0, noise, N_BOOT)
    routers = {}
    for name, acc in accs.items():
        routers[name] = {"accuracy": {"value": acc, "low": acc - half, "high": acc + half}, "task_prior_share": None}
        if noise:
            routers[name]["accuracy_boot"] = (acc + common).tolist()
        routers[name].update(extra.get(name, {}))
    data = {"data": {"name": "d", "split_hash": "h" if noise else None, "n_queries": 100}, "encoder": encoder,
            "settings": {"n_boot": N_BOOT, "seed": 0}, "reference": {"oracle_acc": oracle, "best_single_acc": single, "random_acc": random},
            "routers": routers, "overlap": extra.get("overlap", {"routers": [], "jaccard": []}), "paired": extra.get("paired", {})}
    return Result("s", ("plateau",), "p", Path("p.json"), values or {}, data)


def test_plateau_rule():
    assert plateau(fake({"knn": 0.55, "logreg": 0.56, "mlp": 0.57}))[0] == "holds"  # width 0.02 < 25% of 0.3
    status, detail = plateau(fake({"knn": 0.50, "logreg": 0.70}))
    assert status == "does not hold" and "band [0.500, 0.700]" in detail
    assert plateau(fake({"knn": 0.5, "logreg": 0.51}, oracle=0.5))[0] == "inconclusive"  # no gap
    assert plateau(fake({"knn": 0.5}))[0] == "inconclusive"


def test_predictability_rule():
    names = ["task-prior", "knn", "logreg"]

    def case(shares, jac):
        extra = {n: {"task_prior_share": s} for n, s in zip(["knn", "logreg"], shares)}
        return predictability(fake({"knn": 0.5, "logreg": 0.5}, overlap={"routers": names, "jaccard": [[1, jac, jac], [jac, 1, 1], [jac, 1, 1]]}, **extra))

    assert case([0.6, 0.9], 0.8)[0] == "holds"
    assert case([0.2, 0.4], 0.8)[0] == "does not hold"
    assert case([0.6, 0.9], 0.3)[0] == "inconclusive"
    assert "median 0.750 (range 0.600 to 0.900" in case([0.6, 0.9], 0.8)[1]


def test_finetune_rule():
    stored = {"finetuned - frozen": {"value": 0.03, "low": 0.01, "high": 0.05, "p_value": 0.01}}
    assert finetune(fake({"finetuned": 0.6, "frozen": 0.57}, paired=stored))[0] == "holds"
    assert finetune(fake({"finetuned": 0.50, "frozen": 0.57}, noise=0.02))[0] == "does not hold"  # from accuracy_boot
    status, detail = finetune(fake({"finetuned": 0.58, "frozen": 0.57}))  # no pairing: from the two CIs
    assert status == "inconclusive" and "unpaired" in detail


def test_finetune_verdict_comes_from_the_router_best_on_validation_and_never_a_blend(tmp_path):
    import dataclasses

    from routertrain.experiments.claims import judge

    results = []
    for name, val, accs, extra in (("plain", 0.52, {"finetuned": 0.50, "frozen": 0.57}, {}),
                                   ("tuned", 0.55, {"finetuned": 0.60, "frozen": 0.57}, {"paired": {"finetuned - frozen": {"value": 0.03, "low": 0.01, "high": 0.05}}}),
                                   ("blend", 0.58, {"finetuned": 0.49, "frozen": 0.57}, {})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metrics.json").write_text(json.dumps({"train": {"samples_seen": 100}}))
        finetuned = {"validation_acc": val, "info": {"blend": {"k": 5}} if name == "blend" else {}}
        r = dataclasses.replace(fake(accs, noise=0.02, finetuned=finetuned, **extra), claims=("finetune",), path=Path(f"{name}.json"))
        r.data["run"] = str(tmp_path / name)
        results.append(r)
    for order in (results, results[::-1]):
        verdict = next(v for v in judge(order, [], "d")[0] if v.claim == "finetune")
        assert verdict.status == "holds" and verdict.detail.startswith("finetuned - frozen +0.030") and "tuned.json, validation 0.550" in verdict.detail
        assert "other run: finetuned - frozen -0.07" in verdict.detail and "blend: finetuned - frozen -0.08" in verdict.detail


def remedy_result(tmp_path, name, remedies: dict, seed, val, test, noise=0.01):
    import dataclasses

    run = tmp_path / name
    run.mkdir()
    cfg = {"run": {"seed": seed}, "model": {"prior_bias": remedies.get("prior_bias", False)}, "data": {"max_length": remedies.get("max_length", 128)},
           "train": {"task_loss_weight": remedies.get("task", 0.0), "rank_loss": remedies.get("rank", "none"), "rank_loss_weight": 0.5}}
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    (run / "metrics.json").write_text(json.dumps({"train": {"runtime_s": 330.0}}))
    r = dataclasses.replace(fake({"finetuned": test}, noise=noise, finetuned={"validation_acc": val}), claims=("remedies",), path=Path(f"{name}.json"))
    r.data["run"] = str(run)
    return r


def test_remedies_rule_chooses_on_validation_and_compares_with_plain_bce_on_test(tmp_path):
    from routertrain.experiments.claims import remedies

    results = [remedy_result(tmp_path, "none42", {}, 42, 0.55, 0.560), remedy_result(tmp_path, "none1", {}, 1, 0.56, 0.562),
               remedy_result(tmp_path, "task42", {"task": 0.5}, 42, 0.60, 0.600), remedy_result(tmp_path, "task1", {"task": 0.5}, 1, 0.59, 0.604),
               remedy_result(tmp_path, "long", {"max_length": 256, "prior_bias": True}, 42, 0.58, 0.700)]  # best on test, not on validation
    status, detail, rows = remedies(results)
    assert status == "holds" and "chosen on validation: task head 0.5 (0.595 vs 0.555 for plain BCE, 2 and 2 seeds)" in detail
    assert "task head 0.5 - plain BCE +0.041" in detail
    assert [row[0] for row in rows] == ["task head 0.5", "task head 0.5", "prior-anchored head + 256 tokens", "none (BCE)", "none (BCE)"]
    assert rows[0][4] == pytest.approx(5.5)  # training minutes from the run's metrics
    status, detail, _ = remedies(results[:2] + [remedy_result(tmp_path, "worse", {"rank": "listwise"}, 42, 0.50, 0.9)])
    assert status == "does not hold" and "plain BCE is best on validation (0.555; the best remedy, listwise loss 0.5, 0.500)" in detail
    assert remedies(results[2:4])[0] == "inconclusive"  # no plain-BCE run to compare with


def test_the_report_lists_every_remedy_configuration_scored_on_test(tmp_path):
    results = [remedy_result(tmp_path, "none42", {}, 42, 0.55, 0.56), remedy_result(tmp_path, "task42", {"task": 0.5}, 42, 0.60, 0.60)]
    from routertrain.experiments.claims import judge

    verdicts, tables = judge(results, [], "d")
    lines = report.dataset_section("d", results, verdicts, tables, tmp_path, tmp_path)
    text = "\n".join(lines)
    assert "### Remedies: the ablation" in text and "- **remedies**: holds." in text
    assert f"| task head 0.5 | 42 | 0.600 | 0.600 [0.580, 0.620] | 5.5 | {tmp_path / 'task42'} |" in text
    assert f"| none (BCE) | 42 | 0.550 | 0.560 [0.540, 0.580] | 5.5 | {tmp_path / 'none42'} |" in text


def test_a_seed_ensemble_is_its_own_remedy_row_with_its_members_seeds_and_minutes(tmp_path):
    import dataclasses

    from routertrain.experiments.claims import remedies

    members = [remedy_result(tmp_path, f"task{seed}", {"task": 0.5}, seed, val, 0.6) for seed, val in ((42, 0.60), (1, 0.58))]
    folder = tmp_path / "ensemble"
    folder.mkdir()  # what routertrain ensemble writes: each member's source is its run's router folder
    (folder / "ensemble.json").write_text(json.dumps({"members": [{"folder": f"members/{i}", "source": str(tmp_path / f"task{s}" / "router")}
                                                                  for i, s in enumerate((42, 1))]}))
    ens = dataclasses.replace(fake({"finetuned": 0.65}, noise=0.01, finetuned={"validation_acc": 0.62}), claims=("remedies",), path=Path("ens.json"))
    ens.data["run"] = str(folder)
    plain = remedy_result(tmp_path, "none42", {}, 42, 0.55, 0.56)
    status, detail, rows = remedies([*members, ens, plain])
    assert rows[0][:3] == ("mean of 2 seeds: task head 0.5", "42+1", 0.62) and rows[0][4] == pytest.approx(11.0)  # both members' training
    assert "chosen on validation: mean of 2 seeds: task head 0.5 (0.620 vs 0.550 for plain BCE, 1 and 1 seeds)" in detail
    assert [row[0] for row in rows[1:]] == ["task head 0.5", "task head 0.5", "none (BCE)"]
    from routertrain.experiments.claims import samples_trained

    for seed in (42, 1):  # each member saw 100 samples: the ensemble's training is both members'
        (tmp_path / f"task{seed}" / "metrics.json").write_text(json.dumps({"train": {"runtime_s": 330.0, "samples_seen": 100}}))
    assert samples_trained(ens) == 200 and samples_trained(members[0]) == 100


def test_more_data_rule_pairs_resamples_and_adds_seed_spread():
    def sweep(low, high, noise, spread=0.0):
        return [fake({"knn": acc + spread * (s - 1), "logreg": acc}, noise=noise, values={"data.fraction": f, "data.subsample_seed": s})
                for f, acc in ((0.1, low), (1.0, high)) for s in range(3)]

    assert more_data(sweep(0.50, 0.51, noise=0.02))[0] == "holds"  # paired: the shared test noise cancels
    assert more_data(sweep(0.50, 0.51, noise=0.0))[0] == "inconclusive"  # unpaired, from CIs of half-width 0.02
    assert more_data(sweep(0.55, 0.50, noise=0.02))[0] == "does not hold"
    rows = more_data(sweep(0.50, 0.51, noise=0.02, spread=0.05))[2]
    knn = next(d for name, _, d, _ in rows if name == "knn")
    assert "spread over 3 seeds" in knn["method"] and knn["low"] < 0 < knn["high"]  # seeds disagree: inconclusive for knn
    assert more_data([fake({"knn": 0.5}, values={"data.fraction": 1.0})])[0] == "inconclusive"


def test_more_data_reports_the_slope_against_log_training_size_with_a_paired_interval():
    from routertrain.experiments.claims import log_slope

    def point(fraction, acc, seed, noise):
        return (fake({"knn": acc}, noise=noise, values={"data.fraction": fraction, "data.subsample_seed": seed}), "knn")

    # +2 pp per doubling, with seeds 1 pp apart: the paired interval holds the slope and excludes 0
    items = [point(f, 0.5 + 0.02 * np.log2(f / 0.125) + 0.01 * s, s, 0.02) for f in (0.125, 0.25, 0.5, 1.0) for s in (0, 1)]
    slope = log_slope(items)
    assert slope["value"] == pytest.approx(0.02) and 0 < slope["low"] < 0.02 < slope["high"] and slope["method"].startswith("paired bootstrap")
    unpaired = log_slope([point(f, acc, s, 0.0) for f, acc, s in ((0.25, 0.50, 0), (0.5, 0.52, 0), (1.0, 0.53, 0))])
    assert unpaired["value"] == pytest.approx(0.015) and "t interval" in unpaired["method"] and unpaired["low"] < unpaired["value"] < unpaired["high"]
    status, detail, rows = more_data([item[0] for item in items])
    knn = next(d for name, _, d, _ in rows if name == "knn")
    assert knn["slope"]["value"] == pytest.approx(0.02) and "slope +2.0 pp per doubling" in detail


def test_every_inconclusive_verdict_says_what_the_data_could_detect(tmp_path):
    from routertrain.experiments.claims import DETECT, Verdict, judge

    flat = [fake({"knn": 0.50 + 0.001 * f, "logreg": 0.5}, values={"data.fraction": f, "data.subsample_seed": 0}) for f in (0.1, 1.0)]
    status, detail, _ = more_data(flat)
    assert status == "inconclusive" and detail.startswith(DETECT + "no gain larger than +") and "for 2 of 2 learned routers" in detail
    status, detail = finetune(fake({"finetuned": 0.58, "frozen": 0.57}))
    assert status == "inconclusive" and Verdict("finetune", "d", status, detail).bound.startswith("no gain larger than +")
    assert "pp from fine-tuning and no loss larger than" in detail
    assert plateau(fake({"knn": 0.5}))[1].startswith(DETECT + "nothing, 1 frozen baseline(s)")
    verdicts, _ = judge([dataclasses_replace(r, claims=("more-data", "plateau")) for r in flat], [], "d")
    for v in verdicts:
        assert v.status in ("holds", "does not hold") or v.bound, v
    assert next(v for v in verdicts if v.claim == "encoder").bound == "nothing (not run)"


def dataclasses_replace(r, **changes):
    import dataclasses

    return dataclasses.replace(r, **changes)


def test_encoder_rule():
    def ladder(l3, l6, noise=0.02):
        return [fake({"tfidf": 0.40, "knn": l3}, encoder="sentence-transformers/paraphrase-MiniLM-L3-v2", noise=noise),
                fake({"tfidf": 0.40, "knn": l6, "mlp": l6 - 0.01}, encoder="sentence-transformers/all-MiniLM-L6-v2", noise=noise)]

    status, detail, rows = encoders(ladder(0.45, 0.50))
    assert status == "holds" and [r[0] for r in rows] == ["TF-IDF", "MiniLM-L3", "MiniLM-L6"] and "TF-IDF -> MiniLM-L3" in detail
    assert encoders(ladder(0.50, 0.45))[0] == "does not hold"
    status, detail, _ = encoders(ladder(0.45, 0.46, noise=0.0))
    assert status == "inconclusive" and "at MiniLM-L3 -> MiniLM-L6 and no loss larger than" in detail
    assert encoders([fake({"tfidf": 0.4})])[0] == "inconclusive"
    assert "chosen on TEST accuracy" in detail  # these fakes have no validation_acc


def test_encoder_claim_adds_the_finetuned_ladder():
    """Fine-tuned routers form a ladder of their own (rung = their base encoder); a fine-tuned step that
    loses makes the claim fail even when the frozen ladder holds."""
    def tuned(base, acc, val):
        return {"finetuned": {"info": {"base_model": base}, "validation_acc": val}}

    l3 = fake({"tfidf": 0.40, "knn": 0.45, "finetuned": 0.50}, encoder="sentence-transformers/paraphrase-MiniLM-L3-v2", noise=0.02,
              **tuned("sentence-transformers/paraphrase-MiniLM-L3-v2", 0.50, 0.5))
    l6 = fake({"tfidf": 0.40, "knn": 0.50, "finetuned": 0.55}, encoder="sentence-transformers/all-MiniLM-L6-v2", noise=0.02,
              **tuned("sentence-transformers/all-MiniLM-L6-v2", 0.55, 0.5))
    status, detail, rows = encoders([l3, l6])
    assert status == "holds" and "MiniLM-L3 -> MiniLM-L6 (fine-tuned) +0.050" in detail
    assert [r[0] for r in rows] == ["TF-IDF", "MiniLM-L3", "MiniLM-L6", "MiniLM-L3 fine-tuned", "MiniLM-L6 fine-tuned"]
    worse = fake({"tfidf": 0.40, "knn": 0.50, "finetuned": 0.45}, encoder="sentence-transformers/all-MiniLM-L6-v2", noise=0.02,
                 **tuned("sentence-transformers/all-MiniLM-L6-v2", 0.45, 0.5))
    assert encoders([l3, worse])[0] == "does not hold"


def test_encoder_rung_router_is_chosen_on_validation_not_test():
    """knn is better on validation, mlp (by luck) on test: the rung is knn, judged on its test accuracy."""
    l6 = fake({"tfidf": 0.40, "knn": 0.42, "mlp": 0.47}, encoder="sentence-transformers/all-MiniLM-L6-v2", noise=0.02,
              knn={"validation_acc": 0.52}, mlp={"validation_acc": 0.50}, tfidf={"validation_acc": 0.4})
    status, detail, rows = encoders([l6])
    assert [(r[0], r[2]) for r in rows] == [("TF-IDF", "tfidf"), ("MiniLM-L6", "knn")]
    assert "+0.020" in detail and "chosen on validation accuracy" in detail


def test_report_has_per_task_rows_and_the_finetuned_router_against_the_references(evaluated, tmp_path):
    """The main table gains a per-task table and says which average it uses; a fine-tuned router gets
    paired lines against the task prior, best single and the frozen baseline best on validation."""
    one = copy.deepcopy(evaluated)
    one["routers"]["finetuned"] = copy.deepcopy(one["routers"]["knn"])
    one["routers"]["finetuned"]["accuracy_boot"] = [a - 0.5 for a in one["routers"]["knn"]["accuracy_boot"]]  # far below everything
    one["routers"]["finetuned"]["accuracy"] = {k: v - 0.5 for k, v in one["routers"]["knn"]["accuracy"].items()}
    main = write_sweep(tmp_path, "main", ["plateau"], [{"kind": "evaluate", "label": "all"}], {"evaluate-all": one})
    out = tmp_path / "REPORT.md"
    assert report.main([str(main), "--output", str(out), "--figures", str(tmp_path / "fig")]) == 0
    text = out.read_text()
    assert "Accuracies are micro averages (over queries)." in text
    tasks = list(evaluated["reference"]["per_task"]["oracle"])
    assert f"| router | {' | '.join(tasks)} |" in text
    knn_row = next(line for line in text.splitlines() if line.startswith("| knn |") and "[" not in line)
    assert knn_row == "| knn | " + " | ".join(fmt(evaluated["routers"]["knn"]["per_task"][t]) for t in tasks) + " |"
    lines = [line for line in text.splitlines() if line.startswith("- finetuned - ")]
    assert [line.split(":")[0] for line in lines][:2] == ["- finetuned - task-prior", "- finetuned - best-single"]
    assert "best frozen baseline on validation (" in lines[2] and all("(does not hold)" in line for line in lines)


def test_report_links_other_measurements_and_refuses_a_missing_one(evaluated, tmp_path):
    main = write_sweep(tmp_path, "main", ["plateau"], [{"kind": "evaluate", "label": "all"}], {"evaluate-all": evaluated})
    extra = tmp_path / "docs" / "speed.md"
    extra.parent.mkdir()
    extra.write_text("intro\n# Routing speed on CPU\n")
    out = tmp_path / "REPORT.md"
    assert report.main([str(main), "--output", str(out), "--figures", str(tmp_path / "fig"), "--include", str(extra)]) == 0
    assert "## Other measurements\n\n<!-- included from docs/speed.md -->\nintro\n### Routing speed on CPU\n" in out.read_text()
    assert report.main([str(main), "--output", str(out), "--include", str(tmp_path / "nope.md")]) == 2


def test_a_blend_is_named_as_such_against_the_references():
    from routertrain.experiments.claims import finetuned_against_references

    plain = fake({"finetuned": 0.60, "task-prior": 0.58}, noise=0.01)
    blended = fake({"finetuned": 0.60, "task-prior": 0.58}, noise=0.01, finetuned={"info": {"blend": {"k": 20}}})
    assert finetuned_against_references(plain)[0][0] == "finetuned - task-prior"
    what, d, status = finetuned_against_references(blended)[0]
    assert what == "blend (fine-tuned + kNN + soft task prior) - task-prior" and d["value"] == pytest.approx(0.02) and status == "holds"


def test_an_ensemble_and_its_blend_are_named_as_such_against_the_references(tmp_path):
    from routertrain.experiments.claims import finetuned_against_references

    (tmp_path / "ensemble.json").write_text(json.dumps({"members": [{"folder": f"members/{i}", "source": f"run{i}/router"} for i in range(2)]}))
    ensemble = fake({"finetuned": 0.60, "task-prior": 0.58}, noise=0.01)
    blended = fake({"finetuned": 0.60, "task-prior": 0.58}, noise=0.01, finetuned={"info": {"blend": {"k": 20}}})
    for r in (ensemble, blended):
        r.data["run"] = str(tmp_path)  # the folder routertrain ensemble (or a blend of it) wrote
    assert finetuned_against_references(ensemble)[0][0] == "finetuned (mean of 2 fine-tuned routers) - task-prior"
    assert finetuned_against_references(blended)[0][0] == "blend (mean of 2 fine-tuned routers + kNN + soft task prior) - task-prior"


def test_a_study_best_trial_is_named_as_such_against_the_references(tmp_path):
    from routertrain.experiments.claims import finetuned_against_references

    (tmp_path / "study.json").write_text(json.dumps({"study": "tune-cpu", "trials": {"complete": 7, "pruned": 3, "fail": 0, "running": 0}}))
    best = fake({"finetuned": 0.60, "task-prior": 0.58}, noise=0.01)
    best.data["run"] = str(tmp_path)  # the study's exported best/ folder
    assert finetuned_against_references(best)[0][0] == "finetuned (best of 10 Optuna trials) - task-prior"


def test_finished_blend_and_ensemble_points_count_as_finished(tmp_path):
    groups = [{"kind": "ensemble", "label": "e", "args": ["runs=[a,b]"]}, {"kind": "blend", "label": "b", "args": ["run=a"]}]
    folder = write_sweep(tmp_path, "s", "finetune", groups, {})
    (folder / "ensemble-e").mkdir()
    (folder / "ensemble-e" / "ensemble.json").write_text("{}")  # written last by routertrain ensemble
    (folder / "blend-b").mkdir()  # no blend.json: not finished
    sweep, _ = report.read_sweep(folder)
    assert sweep.done == ["ensemble-e"] and sweep.missing == ["blend-b"]
    (folder / "blend-b" / "blend.json").write_text("{}")
    assert report.read_sweep(folder)[0].done == ["ensemble-e", "blend-b"]
