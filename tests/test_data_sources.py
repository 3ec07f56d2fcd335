"""Source adapters and the generic table loader, checked against direct readings of the real files.

The real files live in ../shared/data next to the repository (read-only; in CI it always exists,
so a missing folder fails). Builds are cached under pytest's temporary folders.
"""

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from routertrain.config import load_config
from routertrain.data import DataError, load_routing_data
from routertrain.data.dataset import SPLITS, RoutingData
from routertrain.data.sources import mmlu_pro
from routertrain.data.sources.text import parse_prompt_list
from routertrain.data.splits import normalize_query

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MMLU_PRO = SHARED / "mmlu-pro-outputs"
ROUTERBENCH = SHARED / "routerbench-routerdc-subset"
ROUTERDC = SHARED / "routerdc"
ROUTELLM = SHARED / "routellm-evals"
RB_FILES = ROUTERBENCH / "datasets" / "routerbench_zs"


def test_shared_data_is_present():
    assert SHARED.is_dir(), f"{SHARED} is missing: the real data must sit next to the repository"
    for folder in (MMLU_PRO, ROUTERBENCH, ROUTERDC, ROUTELLM):
        assert (folder / "SOURCE.md").is_file()


def cfg_for(*args, cache=None):
    cfg = load_config(list(args))
    if cache is not None:
        cfg.data.cache_dir = str(cache)
    return cfg.data


def build(tmp_path_factory, *args) -> RoutingData:
    return load_routing_data(cfg_for(*args, cache=tmp_path_factory.mktemp("cache")))


def rows_by(data: RoutingData, key: str) -> dict:
    """key value -> (split, labels with NaN for missing, row dict) over all splits."""
    out = {}
    for split in SPLITS:
        ds, labels = data.splits[split], data.labels(split)
        for i, row in enumerate(ds):
            out.setdefault(row[key], []).append((split, labels[i], row))
    return out


def all_queries(data: RoutingData) -> dict:
    return {s: [normalize_query(q) for q in data.splits[s]["query"]] for s in SPLITS}


def assert_no_query_in_two_splits(data: RoutingData):
    q = {s: set(v) for s, v in all_queries(data).items()}
    assert not q["train"] & q["test"] and not q["train"] & q["validation"] and not q["validation"] & q["test"]


def read_zip_records(path: Path) -> list:
    with zipfile.ZipFile(path) as zf:
        out = []
        for name in sorted(zf.namelist()):
            if name.endswith(".json") and not name.endswith("summary.json"):
                out += json.loads(zf.read(name))
        return out


# ---------------------------------------------------------------- MMLU-Pro

MMLU_SLICE = ["Llama-2-7b-hf", "DeepSeek-Coder-V2", "merged"]


@pytest.fixture(scope="module")
def mmlu_slice(tmp_path_factory):
    return build(tmp_path_factory, "data=mmlu-pro", f"data.path={MMLU_PRO}", f"data.models=[{','.join(MMLU_SLICE)}]")


def test_mmlu_pro_slice_matches_a_direct_reading(mmlu_slice):
    data = mmlu_slice
    assert data.models == MMLU_SLICE
    assert sum(len(data.splits[s]) for s in SPLITS) == 12032  # every question id (SOURCE.md)
    build = data.info["build"]
    assert build["issues"]["questions_per_model"] == {"Llama-2-7b-hf": 12032, "DeepSeek-Coder-V2": 10351, "merged": 12030}
    assert build["issues"]["non_record_entries"] == {"DeepSeek-Coder-V2": 43}
    assert build["issues"]["masked_labels"]["per_model"] == {"DeepSeek-Coder-V2": 12032 - 10351, "merged": 2}
    by_id = rows_by(data, "id")
    records = read_zip_records(MMLU_PRO / "eval_results" / "model_outputs_Llama-2-7b-hf_5shots.zip")
    correct = {str(r["question_id"]): float(r["pred"] == r["answer"]) for r in records}
    got = {qid: rows[0][1][0] for qid, rows in by_id.items()}
    assert got == correct
    assert abs(np.mean(list(correct.values())) - 0.183) < 5e-4  # SOURCE.md: strict accuracy 0.183
    merged = [r for r in read_zip_records(next(MMLU_PRO.glob("historical_eval_results_merged_*.zip"))) if isinstance(r, dict)]
    assert abs(np.mean([r["pred"] == r["answer"] for r in merged]) - 0.857) < 5e-4
    r = records[0]
    _, _, row = by_id[str(r["question_id"])][0]
    letters = "ABCDEFGHIJ"
    expected = "\n".join([r["question"].strip()] + [f"{letters[i]}. {o.strip()}" for i, o in enumerate(r["options"])])
    assert row["query"] == expected and row["task"] == r["category"]


def test_mmlu_pro_missing_policies(tmp_path_factory, mmlu_slice):
    args = ["data=mmlu-pro", f"data.path={MMLU_PRO}", "data.models=[Llama-2-7b-hf,DeepSeek-Coder-V2]"]
    dropped = build(tmp_path_factory, *args, "data.missing=drop")
    assert sum(len(dropped.splits[s]) for s in SPLITS) == 10351
    assert dropped.info["build"]["dropped"] == {"missing_score": 12032 - 10351}
    assert "label_mask" not in dropped.splits["train"].column_names
    # dropping rows never moves a query to another split
    masked_test = set(mmlu_slice.splits["test"]["id"])
    assert set(dropped.splits["test"]["id"]) <= masked_test
    with pytest.raises(DataError, match=r"question_id \d+ column 'DeepSeek-Coder-V2': missing score.*data.missing=mask"):
        build(tmp_path_factory, *args, "data.missing=fail")


def test_mmlu_pro_pool_narrowed_by_models_builds_the_same_rows(tmp_path_factory, mmlu_slice):
    """data.pool then data.models (as recipes/data/mmlu-pro.yaml describes) reads only the chosen
    files; the build must not then demand the rest of the pool."""
    both = build(tmp_path_factory, "data=mmlu-pro", f"data.path={MMLU_PRO}", "data.pool=open-weight", "data.models=[Llama-2-7b-hf,DeepSeek-Coder-V2]")
    assert both.models == ["Llama-2-7b-hf", "DeepSeek-Coder-V2"]
    for split in SPLITS:
        assert both.splits[split]["id"] == mmlu_slice.splits[split]["id"]
        np.testing.assert_array_equal(both.labels(split), mmlu_slice.labels(split)[:, :2])


def test_mmlu_pro_pools_select_files():
    cfg = cfg_for("data=mmlu-pro", f"data.path={MMLU_PRO}", "data.pool=open-weight")
    names = [mmlu_pro.model_of(p) for p in mmlu_pro.locate(cfg)]
    assert len(names) == 27
    assert not {"gpt4o", "gemini-1.5-flash-002", "gemini-1.5-pro-002", "jamba-1.5-large", "merged"} & set(names)
    assert len(mmlu_pro.locate(cfg_for("data=mmlu-pro", f"data.path={MMLU_PRO}"))) == 32
    with pytest.raises(DataError, match="unknown pool 'open'.*open-weight"):
        mmlu_pro.locate(cfg_for("data=mmlu-pro", f"data.path={MMLU_PRO}", "data.pool=open"))
    with pytest.raises(DataError, match="'gpt4o', which is not in pool 'open-weight'"):
        mmlu_pro.locate(cfg_for("data=mmlu-pro", f"data.path={MMLU_PRO}", "data.pool=open-weight", "data.models=[gpt4o]"))
    with pytest.raises(DataError, match="data.path is not set"):
        mmlu_pro.locate(cfg_for("data=mmlu-pro"))


def test_mmlu_pro_full_build_and_cache(tmp_path, capsys, mmlu_slice):
    cfg = cfg_for("data=mmlu-pro", f"data.path={MMLU_PRO}", cache=tmp_path)
    data = load_routing_data(cfg)
    assert len(data.models) == 32 and data.models[-3:] == ["gpt4o", "deepseek", "merged"]
    n = {s: len(data.splits[s]) for s in SPLITS}
    assert sum(n.values()) == 12032
    for split in SPLITS:  # a smaller pool holding an original-text model keeps every question in its split
        assert data.splits[split]["id"] == mmlu_slice.splits[split]["id"]
    complete = sum(int(np.isfinite(data.labels(s)).all(axis=1).sum()) for s in SPLITS)
    assert complete == 10298  # question ids present for all 32 models (SOURCE.md)
    assert "cached mmlu-pro" in capsys.readouterr().err
    again = load_routing_data(cfg)
    assert "loaded cached mmlu-pro" in capsys.readouterr().err
    assert again.fingerprint == data.fingerprint and again.info["build"] == data.info["build"]
    reseeded = cfg_for("data=mmlu-pro", f"data.path={MMLU_PRO}", "data.split_seed=1", cache=tmp_path)
    from routertrain.data.cache import source_fingerprint

    files = mmlu_pro.locate(cfg)
    assert source_fingerprint("mmlu-pro", cfg, files, MMLU_PRO) != source_fingerprint("mmlu-pro", reseeded, files, MMLU_PRO)


def test_mmlu_pro_bad_zip_names_file_and_row(tmp_path):
    folder = tmp_path / "eval_results"
    folder.mkdir()
    records = [{"question_id": 1, "question": "q", "options": ["a", "b"], "answer": "A", "category": "math", "pred": "A"},
               {"question_id": 2, "question": "q2", "answer": "B", "category": "math", "pred": "B"}]
    with zipfile.ZipFile(folder / "model_outputs_toy_5shots.zip", "w") as zf:
        zf.writestr("model_outputs_toy_5shots.json", json.dumps(records))
    where = r"eval_results/model_outputs_toy_5shots.zip:model_outputs_toy_5shots.json row 2"
    with pytest.raises(DataError, match=where + r": record has no \['options'\]"):
        load_routing_data(cfg_for("data=mmlu-pro", f"data.path={tmp_path}", cache=tmp_path / "cache"))


# ---------------------------------------------------------------- RouterBench

RB_MODELS = ["WizardLM/WizardLM-13B-V1.2", "claude-instant-v1", "claude-v1", "claude-v2", "gpt-3.5-turbo-1106", "gpt-4-1106-preview",
             "meta/code-llama-instruct-34b-chat", "meta/llama-2-70b-chat", "mistralai/mistral-7b-chat", "mistralai/mixtral-8x7b-chat",
             "zero-one-ai/Yi-34B-Chat"]


@pytest.fixture(scope="module")
def rb(tmp_path_factory):
    return build(tmp_path_factory, "data=routerbench", f"data.path={ROUTERBENCH}")


@pytest.fixture(scope="module")
def rb_frames():
    return {p.name: pd.read_csv(p) for p in sorted(RB_FILES.glob("*.csv"))}


def test_routerbench_counts_and_reports(rb, rb_frames):
    counts = {name: len(df) for name, df in rb_frames.items()}
    assert counts == {"arc_challenge_test.csv": 445, "arc_challenge_train.csv": 1039, "mbpp_test.csv": 128, "mbpp_train.csv": 299,
                      "winograde_test.csv": 380, "winograde_train.csv": 887}  # SOURCE.md
    build = rb.info["build"]
    assert build["rows_read"] == 3178 and rb.models == RB_MODELS
    nan_rows = sum(int(df[RB_MODELS].isna().any(axis=1).sum()) for df in rb_frames.values())
    assert nan_rows == 28  # SOURCE.md: 20 train + 8 test rows with a NaN score
    assert build["issues"]["nan_scores"] == sum(int(df[RB_MODELS].isna().sum().sum()) for df in rb_frames.values())
    within_file = sum(int(df["sample_id"].duplicated().sum()) for df in rb_frames.values())
    assert within_file == 8  # SOURCE.md: 1 test + 7 train
    ids = pd.concat(rb_frames.values())["sample_id"]
    assert build["issues"]["duplicate_ids"]["ids"] == int(ids[ids.duplicated()].nunique())
    # each duplicated id is one question split in two rows (gpt-3.5 alone / the 10 others): folded into one complete row
    assert build["dropped"]["merged_into_duplicate"] == 14
    assert "label_mask" not in rb.splits["train"].column_names  # no label is left missing after folding
    assert build["issues"]["fewshot_prefix_chars_removed"] == {"arc-challenge": 1653, "winogrande": 1221}
    n_source = {"train": 1039 + 299 + 887, "test": 445 + 128 + 380}
    wino = rb.labels("test")[np.asarray(rb.splits["test"]["task"]) == "winogrande"]
    means = dict(zip(RB_MODELS, wino.mean(axis=0)))
    assert len(wino) == 380  # SOURCE.md: winogrande test gpt-4 0.86, Yi-34B 0.74, claude-v2 0.48
    assert round(means["gpt-4-1106-preview"], 2) == 0.86 and round(means["zero-one-ai/Yi-34B-Chat"], 2) == 0.74
    assert round(means["claude-v2"], 2) == 0.48
    kept = build["kept"]
    assert kept["test"] <= n_source["test"] and kept["train"] + kept["validation"] <= n_source["train"]
    assert kept["total"] == 3178 - sum(build["dropped"].values())
    assert_no_query_in_two_splits(rb)


def test_routerbench_labels_and_costs_follow_the_model_order(tmp_path_factory, rb, rb_frames):
    df = pd.concat(rb_frames.values())
    single = df[~df["sample_id"].duplicated(keep=False)]
    by_id = rows_by(rb, "id")
    for _, src in single.sample(200, random_state=0).iterrows():
        if src["sample_id"] not in by_id:  # a cross-split duplicate of a test query (reported)
            continue
        (_, labels, row), = by_id[src["sample_id"]]
        assert labels.tolist() == pytest.approx(src[RB_MODELS].astype(float).tolist())
        assert row["costs"] == pytest.approx([src[f"{m}|total_cost"] for m in RB_MODELS], rel=1e-6)
    train_costs = np.asarray(rb.splits["train"]["costs"], dtype=np.float64)
    assert rb.costs == pytest.approx(train_costs.mean(axis=0).tolist(), rel=1e-6)
    narrowed = build(tmp_path_factory, "data=routerbench", f"data.path={ROUTERBENCH}",
                     "data.models=[gpt-4-1106-preview,mistralai/mistral-7b-chat]")
    full = dict(zip(RB_MODELS, rb.costs))
    assert narrowed.costs == pytest.approx([full["gpt-4-1106-preview"], full["mistralai/mistral-7b-chat"]], rel=1e-4)
    assert narrowed.costs[0] > 10 * narrowed.costs[1]
    full_rows = {row["query"]: row for row in rb.splits["test"]}
    for row in narrowed.splits["test"].select(range(50)):
        assert row["costs"] == pytest.approx([full_rows[row["query"]]["costs"][5], full_rows[row["query"]]["costs"][8]])
    open_pool = build(tmp_path_factory, "data=routerbench", f"data.path={ROUTERBENCH}", "data.pool=open-weight")
    assert len(open_pool.models) == 6 and "gpt-4-1106-preview" not in open_pool.models


def test_routerbench_folds_split_questions(rb, rb_frames):
    df = pd.concat(rb_frames.values())
    by_id = rows_by(rb, "id")
    for sid, group in df[df["sample_id"].duplicated(keep=False)].groupby("sample_id"):
        texts = {normalize_query(parse_prompt_list(p)[0]) for p in group["prompt"]}
        if len(texts) > 1:
            continue
        union = group[RB_MODELS].max(axis=0, skipna=True).astype(float).tolist()
        assert len(by_id[sid]) == 1
        assert by_id[sid][0][1].tolist() == union


def test_generic_table_loader_reproduces_routerbench(tmp_path_factory, rb):
    cfg = cfg_for("data=routerbench-table", f"data.path={ROUTERBENCH}", cache=tmp_path_factory.mktemp("cache"))
    table = load_routing_data(cfg)
    assert table.name == "table" and table.models == rb.models and table.costs == rb.costs
    for split in SPLITS:
        assert table.splits[split].column_names == rb.splits[split].column_names
        assert table.splits[split].to_dict() == rb.splits[split].to_dict()


def test_routerbench_bad_prompt_names_file_row_column(tmp_path, rb_frames):
    folder = tmp_path / "datasets" / "routerbench_zs"
    folder.mkdir(parents=True)
    df = rb_frames["mbpp_test.csv"].head(3).copy()
    df.loc[1, "prompt"] = "['unterminated"
    df.to_csv(folder / "mbpp_test.csv", index=False)
    with pytest.raises(DataError, match=r"datasets/routerbench_zs/mbpp_test.csv row 2 column 'prompt'"):
        load_routing_data(cfg_for("data=routerbench", f"data.path={tmp_path}", cache=tmp_path / "cache"))


# ---------------------------------------------------------------- RouterDC

def test_routerdc_is_the_papers_in_distribution_setting(tmp_path_factory):
    data = build(tmp_path_factory, "data=routerdc", f"data.path={ROUTERDC}")
    b = data.info["build"]
    folder = ROUTERDC / "datasets" / "split2_model7"
    count = {p.stem: len(json.loads(p.read_text())) for p in folder.glob("*.json")}
    n_train = sum(count[f] for f in ("mmlu_train", "gsm8k-train", "cmmlu_train", "arc_challenge_train", "humaneval_train"))
    n_test = sum(count[f] for f in ("mmlu_test", "gsm8k-test", "cmmlu_test", "arc_challenge_test", "humaneval_test"))
    assert (n_train, n_test) == (5935, 9408) and b["rows_read"] == n_train + n_test and len(data.models) == 7
    assert b["kept"]["test"] == n_test
    assert b["kept"]["train"] + b["kept"]["validation"] == n_train - b["dropped"].get("duplicate_of_test_query", 0)
    assert set(b["dropped"]) <= {"duplicate_of_test_query"} and 0.08 < b["kept"]["validation"] / n_train < 0.12
    for split in ("train", "validation", "test"):
        assert set(data.splits[split]["task"]) == {"mmlu", "gsm8k", "cmmlu", "arc_challenge", "humaneval"}
    test = data.splits["test"]
    tasks = np.asarray(test["task"])
    # multiple choice: correctness 1/0 (score > 0); generation: the share of passing samples, as stored
    mmlu = {q: lab for q, lab, t in zip(test["query"], data.labels("test"), tasks) if t == "mmlu"}
    for r in json.loads((folder / "mmlu_test.json").read_text())[:200]:
        assert mmlu[r["question"]].tolist() == [float(r["scores"][m] > 0) for m in data.models]
    assert set(np.unique(data.labels("test")[np.isin(tasks, ["mmlu", "cmmlu", "arc_challenge"])])) == {0.0, 1.0}
    gsm = {q: lab for q, lab, t in zip(test["query"], data.labels("test"), tasks) if t == "gsm8k"}
    records = json.loads((folder / "gsm8k-test.json").read_text())
    assert len(gsm) == 1319
    for r in records[:50]:
        assert gsm[r["question"]].tolist() == pytest.approx([r["scores"][m] for m in data.models])
    means = dict(zip(data.models, np.array([gsm[r["question"]] for r in records]).mean(axis=0)))
    assert abs(means["meta-math/MetaMath-Mistral-7B"] - 0.70) < 0.01 and abs(means["cognitivecomputations/dolphin-2.9-llama3-8b"] - 0.70) < 0.01
    assert_no_query_in_two_splits(data)


def test_routerdc_ood_tests_the_same_routers_on_unseen_tasks(tmp_path_factory):
    ind = build(tmp_path_factory, "data=routerdc", f"data.path={ROUTERDC}")
    ood = build(tmp_path_factory, "data=routerdc-ood", f"data.path={ROUTERDC}")
    assert set(ood.splits["test"]["task"]) == {"MATH_prealgebra", "mbpp", "ceval"} and len(ood.splits["test"]) == 871 + 500 + 1346
    # trained on the in-distribution training files (less any row repeating an OOD test query); the
    # in-distribution build also drops the few that repeat its own test queries
    for split in ("train", "validation"):
        assert set(ood.splits[split]["task"]) == set(ind.splits[split]["task"]) == {"mmlu", "gsm8k", "cmmlu", "arc_challenge", "humaneval"}
    n_ind = len(ind.splits["train"]) + len(ind.splits["validation"])
    assert n_ind <= len(ood.splits["train"]) + len(ood.splits["validation"]) <= 5935
    assert "warning_test_lacks_train_tasks" in ood.info["build"]["issues"]


def test_routerdc_graded_option_and_other_tasks(tmp_path_factory):
    graded = build(tmp_path_factory, "data=routerdc", f"data.path={ROUTERDC}", "data.labels=graded", "data.subset=arc_challenge")
    records = json.loads((ROUTERDC / "datasets" / "split2_model7" / "arc_challenge_test.json").read_text())
    rows = dict(zip(graded.splits["test"]["query"], graded.labels("test")))
    assert [rows[r["question"]].tolist() for r in records[:30]] == [pytest.approx([r["scores"][m] for m in graded.models]) for r in records[:30]]
    subset = build(tmp_path_factory, "data=routerdc", f"data.path={ROUTERDC}", "data.subset=humaneval,mbpp")
    assert set(subset.splits["test"]["task"]) == {"humaneval", "mbpp"} and set(subset.splits["train"]["task"]) == {"humaneval"}
    easy = build(tmp_path_factory, "data=routerdc", f"data.path={ROUTERDC}", "data.subset=arc_easy", "data.test_subset=javascript")
    assert set(easy.splits["train"]["task"]) == {"arc_easy"} and set(easy.splits["test"]["task"]) == {"javascript"}


def test_routerdc_labels_from_hand_made_files(tmp_path):
    """A multiple-choice probability becomes 1, a 0 stays 0, a generation share stays as it is."""
    models = ["m1", "m2"]
    folder = tmp_path / "datasets" / "split2_model7"
    folder.mkdir(parents=True)
    files = {
        "mmlu_train.json": [{"question": f"mc train {i}", "scores": {"m1": 0.35 * (i % 2), "m2": 0.9}} for i in range(20)],
        "mmlu_test.json": [{"question": "mc test", "scores": {"m1": 0.35, "m2": 0.0}}],
        "gsm8k-train.json": [{"question": f"gen train {i}", "scores": {"m1": 0.3, "m2": 1.0}} for i in range(20)],
        "gsm8k-test.json": [{"question": "gen test", "scores": {"m1": 0.3, "m2": 0.0}}],
    }
    for name, rows in files.items():
        (folder / name).write_text(json.dumps(rows))
    args = ["data=routerdc", f"data.path={tmp_path}", "data.subset=mmlu,gsm8k", f"data.cache_dir={tmp_path / 'cache'}"]
    data = load_routing_data(load_config(args).data)
    test = dict(zip(data.splits["test"]["query"], data.labels("test").tolist()))
    assert data.models == models
    assert test["mc test"] == [1.0, 0.0] and test["gen test"] == pytest.approx([0.3, 0.0])
    graded = load_routing_data(load_config([*args, "data.labels=graded"]).data)
    assert dict(zip(graded.splits["test"]["query"], graded.labels("test").tolist()))["mc test"] == pytest.approx([0.35, 0.0])
    with pytest.raises(DataError, match="data.subset names tasks"):
        load_routing_data(load_config([*args[:2], "data.subset=mmlu,gsmk8", f"data.cache_dir={tmp_path / 'cache'}"]).data)


# ---------------------------------------------------------------- RouteLLM

def contaminated(bench: str) -> list:
    path = ROUTELLM / "routellm" / "evals" / bench / "contaminated_prompts.jsonl"
    return [json.loads(line)["eval_prompt"] for line in path.read_text().splitlines() if line.strip()]


def test_routellm_mmlu_excludes_contaminated_prompts(tmp_path_factory):
    data = build(tmp_path_factory, "data=routellm-mmlu", f"data.path={ROUTELLM}")
    b = data.info["build"]
    assert b["rows_read"] == 14042 and b["dropped"] == {"contaminated": 5} and b["kept"]["total"] == 14037
    banned = set(contaminated("mmlu"))
    assert len(banned) == 5 and not banned & {q for s in SPLITS for q in data.splits[s]["query"]}
    y = np.vstack([data.labels(s) for s in SPLITS])
    means = dict(zip(data.models, y.mean(axis=0)))
    assert abs(means["mistralai/Mixtral-8x7B-Instruct-v0.1"] - 0.6808) < 1e-3 and abs(means["gpt-4-1106-preview"] - 0.8058) < 1e-3
    assert len({t for s in SPLITS for t in data.splits[s]["task"]}) == 57
    assert_no_query_in_two_splits(data)


def test_routellm_gsm8k_and_mt_bench(tmp_path_factory):
    gsm = build(tmp_path_factory, "data=routellm-gsm8k", f"data.path={ROUTELLM}")
    assert gsm.info["build"]["kept"]["total"] == 1319 - 12
    assert not set(contaminated("gsm8k")) & {q for s in SPLITS for q in gsm.splits[s]["query"]}
    mt = build(tmp_path_factory, "data=routellm-mtbench", f"data.path={ROUTELLM}")
    assert mt.info["build"]["rows_read"] == 80 and mt.info["build"]["kept"]["total"] == 72
    assert not set(contaminated("mt_bench")) & {q for s in SPLITS for q in mt.splits[s]["query"]}
    evals = ROUTELLM / "routellm" / "evals" / "mt_bench"
    questions = {str(q["question_id"]): q["turns"][0] for q in map(json.loads, (evals / "question.jsonl").read_text().splitlines())}
    judged = {}
    for j in map(json.loads, (evals / "judgements.jsonl").read_text().splitlines()):
        judged.setdefault((questions[str(j["question_id"])], j["model"]), []).append(float(j["score"]))
    for split in SPLITS:
        for q, labels in zip(mt.splits[split]["query"], mt.labels(split)):
            expected = [(np.mean(judged[(q, m)]) - 1) / 9 for m in mt.models]
            assert labels.tolist() == pytest.approx(expected, abs=1e-6)
    assert mt.costs is None
    cfg = cfg_for("data=routellm-mtbench", f"data.path={ROUTELLM}", cache=tmp_path_factory.mktemp("cache"))
    cfg.costs = {"gpt-4-1106-preview": 10.0, "mistralai/Mixtral-8x7B-Instruct-v0.1": 0.6}
    priced = load_routing_data(cfg)
    assert dict(zip(priced.models, priced.costs)) == cfg.costs
    cfg.costs = {"gpt-4-1106-preview": 10.0}
    with pytest.raises(DataError, match="data.costs has no cost for"):
        load_routing_data(cfg)


# ---------------------------------------------------------------- generic table loader on small files

def table_cfg(tmp_path, files: str, **table):
    cfg = cfg_for("data.name=table", f"data.path={tmp_path}", f"data.table.files={files}", cache=tmp_path / "cache")
    for key, value in table.items():
        setattr(cfg.table, key, value)
    return cfg


def test_table_formats_give_the_same_dataset(tmp_path):
    rows = [{"q": f"question number {i}", "m1": i % 2, "m2": (i % 3) / 2, "cat": "ab"[i % 2]} for i in range(40)]
    pd.DataFrame(rows).to_csv(tmp_path / "t.csv", index=False)
    pd.DataFrame(rows).to_parquet(tmp_path / "t.parquet")
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    nested = [{"q": r["q"], "cat": r["cat"], "scores": {"m1": r["m1"], "m2": r["m2"]}} for r in rows]
    (tmp_path / "t.json").write_text(json.dumps(nested))
    built = {}
    for ext in ("csv", "parquet", "jsonl"):
        built[ext] = load_routing_data(table_cfg(tmp_path, f"t.{ext}", query_column="q", score_columns="m1,m2", task_column="cat"))
    built["json"] = load_routing_data(table_cfg(tmp_path, "t.json", query_column="q", score_pattern=r"^scores\.(.+)$", task_column="cat"))
    for ext, data in built.items():
        assert data.models == ["m1", "m2"], ext
        for split in SPLITS:
            assert data.splits[split].to_dict() == built["csv"].splits[split].to_dict(), ext
    assert sum(len(built["csv"].splits[s]) for s in SPLITS) == 40
    by_q = rows_by(built["csv"], "query")
    assert by_q["question number 5"][0][1].tolist() == [1.0, 1.0]


def test_table_bracketed_chat_prompts_are_text_and_lists_are_parts(tmp_path):
    """Cells that all start with "[" and end with "]" are prompt-part lists only if they parse as lists:
    Llama-2-chat prompts ("[INST] ... [/INST]") stay text; a list column with one broken cell is refused."""
    chat = pd.DataFrame({"query": [f"[INST] What is {i} plus {i}? [/INST]" for i in range(30)], "m1": [1] * 30, "m2": [0] * 30})
    chat.to_csv(tmp_path / "chat.csv", index=False)
    data = load_routing_data(table_cfg(tmp_path, "chat.csv", score_columns="m1,m2"))
    assert "[INST] What is 3 plus 3? [/INST]" in [q for s in SPLITS for q in data.splits[s]["query"]]
    parts = pd.DataFrame({"query": [str(["You are helpful.", f"Add {i} and {i}."]) for i in range(30)], "m1": [1] * 30, "m2": [0] * 30})
    parts.to_csv(tmp_path / "parts.csv", index=False)
    queries = [q for s in SPLITS for q in load_routing_data(table_cfg(tmp_path, "parts.csv", score_columns="m1,m2")).splits[s]["query"]]
    assert not any(q.startswith("[") for q in queries) and any("Add 3 and 3." in q for q in queries)
    parts.loc[4, "query"] = "['You are helpful.', 'Add 4 and]"  # unclosed string: not a list
    parts.to_csv(tmp_path / "broken.csv", index=False)
    with pytest.raises(DataError, match=r"broken.csv row 5 column 'query': not a list of strings"):
        load_routing_data(table_cfg(tmp_path, "broken.csv", score_columns="m1,m2"))


def test_table_hub_style_folder_with_named_splits(tmp_path):
    folder = tmp_path / "toy_dataset"
    folder.mkdir()
    for split, n in (("train", 30), ("validation", 5), ("test", 8)):
        frame = pd.DataFrame({"query": [f"{split} query {i}" for i in range(n)], "a": [1.0] * n, "b": [0.0] * n})
        frame.to_csv(folder / f"{split}.csv", index=False)
    cfg = cfg_for("data.name=table", f"data.table.files={folder}", "data.table.score_columns=a,b", cache=tmp_path / "cache")
    data = load_routing_data(cfg)
    assert {s: len(data.splits[s]) for s in SPLITS} == {"train": 30, "validation": 5, "test": 8}
    assert data.info["build"]["split"].startswith("source split")


def test_table_label_maps_and_declared_range(tmp_path):
    frame = pd.DataFrame({"query": [f"q{i}" for i in range(20)], "x": [1 + (i % 10) for i in range(20)], "y": [10] * 20})
    frame.to_csv(tmp_path / "s.csv", index=False)
    rescaled = load_routing_data(table_cfg(tmp_path, "s.csv", score_columns="x,y", label_map="rescale", score_min=1.0, score_max=10.0))
    y = np.vstack([rescaled.labels(s) for s in SPLITS])
    assert y.min() == 0.0 and y.max() == 1.0 and sorted(set(np.round(y[:, 0] * 9 + 1).tolist())) == list(range(1, 11))
    thresholded = load_routing_data(table_cfg(tmp_path, "s.csv", score_columns="x,y", label_map="threshold", threshold=7.0, score_max=10.0))
    t = np.vstack([thresholded.labels(s) for s in SPLITS])
    assert set(t[:, 0].tolist()) == {0.0, 1.0} and t[:, 0].sum() == 8 and t[:, 1].all()
    with pytest.raises(DataError, match=r"s.csv row 1 column 'y': score 10.0 is outside the declared range \[0.0, 1.0\]"):
        load_routing_data(table_cfg(tmp_path, "s.csv", score_columns="x,y"))


def test_table_cleaning_is_reported(tmp_path):
    csv = (
        "query,id,m1,m2\n"
        "What is 2+2?,a,1,0\n"
        "  what IS   2+2?  ,b,1,1\n"
        "   ,c,1,1\n"
        "Name a prime,a,,1\n"
        "Name an even number,d,,\n"
        "caf\xe9 au lait,e,0,1\n"
    ).encode("latin-1")
    (tmp_path / "dirty.csv").write_bytes(csv)
    (tmp_path / "other.csv").write_text("query,id,m1\nlast one,f,1\n" + "".join(f"filler {i},g{i},1\n" for i in range(20)))
    data = load_routing_data(table_cfg(tmp_path, "dirty.csv,other.csv", score_columns="m1,m2", id_column="id"))
    b = data.info["build"]
    assert b["rows_read"] == 27
    assert b["dropped"] == {"empty_query": 1, "no_observed_label": 1}
    assert b["issues"]["duplicate_queries"] == {"groups": 1, "rows": 2, "groups_with_different_labels": 1}
    assert b["issues"]["duplicate_ids"]["examples"] == ["a"]
    assert b["issues"]["undecodable_text_rows"] == 1
    assert b["issues"]["files_missing_models"] == {"other.csv": ["m2"]}
    assert b["issues"]["masked_labels"]["cells"] == 1 + 21
    splits = {normalize_query(q): s for s in SPLITS for q in data.splits[s]["query"]}
    assert "what is 2+2?" in splits  # whitespace/case variants are one query, in one split
    assert sum(1 for s in SPLITS for q in data.splits[s]["query"] if normalize_query(q) == "what is 2+2?") == 2
    strict = table_cfg(tmp_path, "dirty.csv", score_columns="m1,m2")
    strict.missing = "fail"
    with pytest.raises(DataError, match=r"dirty.csv row 4 column 'm1': missing score"):
        load_routing_data(strict)


def test_table_bad_files_name_file_row_column(tmp_path):
    (tmp_path / "bad.csv").write_text("query,m1,m2\nfine,1,0\nbroken,yes,0\n")
    with pytest.raises(DataError, match=r"bad.csv row 2 column 'm1': score 'yes' is not a number"):
        load_routing_data(table_cfg(tmp_path, "bad.csv", score_columns="m1,m2"))
    with pytest.raises(DataError, match=r"bad.csv: no column 'querry'.*did you mean 'query'"):
        load_routing_data(table_cfg(tmp_path, "bad.csv", query_column="querry", score_columns="m1"))
    (tmp_path / "split.csv").write_text("query,m1,part\na,1,train\nb,0,holdout\n")
    with pytest.raises(DataError, match=r"split.csv row 2 column 'part': split 'holdout'"):
        load_routing_data(table_cfg(tmp_path, "split.csv", score_columns="m1", split_column="part"))
    (tmp_path / "broken.jsonl").write_text('{"query": "a", "m1": 1}\n{"query": "b", "m1": \n')
    with pytest.raises(DataError, match=r"broken.jsonl row 2: invalid JSON"):
        load_routing_data(table_cfg(tmp_path, "broken.jsonl", score_columns="m1"))
    with pytest.raises(DataError, match="matches no file"):
        load_routing_data(table_cfg(tmp_path, "nothing*.csv", score_columns="m1"))


def test_table_reads_routerdc_json_and_refuses_mixed_split_names(tmp_path_factory):
    common = ["data.name=table", f"data.path={ROUTERDC}", "data.table.query_column=question", r"data.table.score_pattern=^scores\.(.+)$"]
    cfg = cfg_for(*common, "data.table.files=datasets/split2_model7/humaneval_*.json", cache=tmp_path_factory.mktemp("cache"))
    data = load_routing_data(cfg)
    assert len(data.models) == 7 and data.info["build"]["kept"]["test"] == 49
    dedicated = build(tmp_path_factory, "data=routerdc", f"data.path={ROUTERDC}", "data.subset=humaneval")
    assert dedicated.models == data.models
    assert sorted(dedicated.splits["test"]["query"]) == sorted(data.splits["test"]["query"])
    with pytest.raises(DataError, match="name a split but.*do not.*split_column"):
        load_routing_data(cfg_for(*common, "data.table.files=datasets/split2_model7/*.json", cache=tmp_path_factory.mktemp("c")))
