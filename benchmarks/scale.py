"""How each stage's cost grows with the number of queries: 10k, 100k and 1M training queries.

Data: the embedded demo generator (``data.synthetic``) with ``n_train = N`` and validation and test
splits of N/10 each (so the evaluated splits grow with the data, as they do on a real benchmark).
Every (stage, N) runs in a fresh process, so its peak resident memory (``ru_maxrss``; the import
baseline, measured with psutil before the stage starts, is given beside it) is its own. Results are
appended to ``benchmarks/results/scale.jsonl`` as they come; a rerun skips the (stage, N) pairs
already there, so a long run can be stopped and continued.

Stages:

- ``build``: generate the dataset and write it to routertrain's dataset cache (``cached_build``, as the
  real data sources do; later stages read it back memory-mapped).
- ``tokenize``: the training tokenizer (MiniLM-L6) over the train split (``tokenize_split``).
- ``train``: optimizer steps per second of MiniLM-L6 (batch 32), steps 10 to 30 of a run; its
  validation set is held at 1,000 queries so that only the training data grows.
- ``validation``, ``embedding``: the encoder's forward pass over the validation split (N/10 queries),
  and over every split (frozen embeddings, 1.2 N queries; dominated by the encoder, run to 100k only).
- ``knn-numpy`` (today's search), ``knn`` (FAISS exact), ``knn-hnsw`` (FAISS approximate), ``logreg``,
  ``mlp``, ``kmeans``: each frozen baseline's fit (validation choice included) and its test scores,
  on stored embeddings. The demo data has 11,520 distinct queries; each is embedded once and every
  row takes its query's embedding, so the heads see N real MiniLM-L6 rows.
- ``bootstrap``: the evaluator's bootstrap (1,000 resamples): an accuracy interval and a paired
  difference over N per-query values.
- ``report``: ``evaluate_routers`` with the reference routers on the test split (N/10 queries:
  decisions, metrics, three bootstraps per router) and its table.

    python benchmarks/scale.py                                   # everything (hours on 2 CPU cores)
    python benchmarks/scale.py --sizes 10000,100000 --stages build,knn
    python benchmarks/scale.py --sizes 1000000 --stages build --rerun   # measure again (after a change)
    python benchmarks/scale.py --table                           # the Markdown table of the results so far (the latest of each)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "scale.jsonl"
STAGES = ("build", "tokenize", "train", "validation", "embedding", "knn-numpy", "knn", "knn-hnsw", "logreg", "mlp", "kmeans", "bootstrap", "report")
# every split through the encoder (1.2M queries at 1M: ~40 CPU min), and today's exact numpy kNN (N/10 x N similarities): to 100k
BOUND = {"embedding": 100_000, "knn-numpy": 100_000}
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
SIZES = (10_000, 100_000, 1_000_000)


def config(n: int, *extra: str):
    from routertrain.config import load_config

    return load_config([f"data.synthetic.n_train={n}", f"data.synthetic.n_validation={n // 10}", f"data.synthetic.n_test={n // 10}", *extra])


def data(n: int, *extra: str):
    """The demo data at ``n`` through routertrain's dataset cache (built and saved once, then memory-mapped)."""
    from routertrain.data import build_synthetic
    from routertrain.data.cache import cached_build
    from routertrain.data.dataset import fingerprint

    cfg = config(n, *extra).data
    return cached_build("synthetic", cfg, fingerprint("scale", n, *extra), lambda: build_synthetic(cfg))


def embeddings(n: int, work: Path) -> dict:
    """Each split's MiniLM-L6 rows: every distinct query embedded once (cached in ``work``)."""
    import numpy as np

    from routertrain.data import synthetic
    from routertrain.evaluation.embeddings import embed_queries

    routing = data(n)
    table = work / "distinct.npz"
    if not table.is_file():
        distinct = sorted(set(all_queries(synthetic)))
        np.savez(table, queries=np.array(distinct), vectors=embed_queries(distinct, ENCODER))
    stored = np.load(table)
    row = {q: i for i, q in enumerate(stored["queries"].tolist())}
    return {split: stored["vectors"][[row[q] for q in routing.splits[split]["query"]]] for split in ("train", "validation", "test")}


def all_queries(synthetic) -> list[str]:
    """Every query the demo generator can write (templates x keywords x difficulty phrases)."""
    out = []
    for subs in synthetic.DOMAINS.values():
        for kws in subs.values():
            for kw in kws:
                for phrases, _ in synthetic.DIFFICULTY:
                    out += [t.format(kw=kw, diff=p) for t in synthetic.TEMPLATES for p in phrases]
    return out


def context(n: int, work: Path):
    from routertrain.evaluation.routers import Context

    ctx = Context(data(n), encoder=ENCODER)
    vectors = embeddings(n, work)
    ctx.embeddings = vectors.__getitem__  # stored embeddings, as the evaluator's cache would give them
    return ctx


def run_stage(stage: str, n: int, work: Path) -> dict:
    """Run one stage at size ``n`` in this process; returns what it measured besides time and memory."""
    extra: dict = {}
    if stage == "build":
        shutil.rmtree(work / "cache" / "datasets", ignore_errors=True)
        start = time.perf_counter()
        routing = data(n)
        extra["rows"] = sum(len(s) for s in routing.splits.values())
    elif stage == "tokenize":
        from transformers import AutoTokenizer

        from routertrain.model.encoders import resolve
        from routertrain.training.batching import tokenize_split

        train = data(n).splits["train"]
        for cached in Path(train.cache_files[0]["filename"]).parent.glob("cache-*.arrow"):
            cached.unlink()  # a first tokenization (written beside the cached data), not a cache hit
        tokenizer = AutoTokenizer.from_pretrained(resolve(ENCODER))
        start = time.perf_counter()
        tokenize_split(train, tokenizer, 128)
    elif stage == "train":
        from routertrain.cli.common import main_train
        from routertrain.training import loop

        stamps = {}
        end_of_step = loop.end_of_step

        def timed(run, progress, on_evaluate):
            stamps[run.step] = time.perf_counter()
            return end_of_step(run, progress, on_evaluate)

        loop.end_of_step = timed
        held = ("data.synthetic.n_validation=1000", "data.synthetic.n_test=1000")
        data(n, *held)  # built (cached) outside the timed steps
        args = [f"data.synthetic.n_train={n}", *held, "train.max_steps=30", "train.global_batch_size=32", "train.eval_every=1000",
                "train.save_every=1000", f"run.output_dir={work / 'runs'}", f"run.name=scale-{n}", "train.resume=never"]
        start = time.perf_counter()
        if main_train(args) != 0:
            raise SystemExit("the training run failed (its error is above)")
        extra["steps_per_s"] = round(20 / (stamps[30] - stamps[10]), 3)
    elif stage in ("validation", "embedding"):
        from routertrain.evaluation.embeddings import embed_queries

        routing = data(n)
        splits = ("validation",) if stage == "validation" else ("train", "validation", "test")
        queries = [q for s in splits for q in routing.splits[s]["query"]]
        embed_queries(queries[:64], ENCODER)  # the encoder loaded outside the timed part
        start = time.perf_counter()
        embed_queries(queries, ENCODER)
        extra["queries"] = len(queries)
    elif stage.startswith("knn") or stage in ("logreg", "mlp", "kmeans"):
        from routertrain.evaluation import baselines
        from routertrain.evaluation.routers import make

        ctx = context(n, work)
        if stage == "knn-numpy":
            baselines.neighbours = lambda q, k, kk, index=None: baselines.numpy_neighbours(q, k, kk)
        router = baselines.Knn(index="hnsw") if stage == "knn-hnsw" else make("knn" if stage.startswith("knn") else stage)
        start = time.perf_counter()
        router.fit(ctx)
        extra["test_acc"] = round(ctx.accuracy(router.scores(ctx, "test"), "test"), 4)
        extra["info"] = {k: v for k, v in router.info.items() if k != "validation_acc"}
    elif stage == "bootstrap":
        import numpy as np

        from routertrain.evaluation import bootstrap as bs

        rng = np.random.default_rng(0)
        a, b = (rng.random(n) < 0.6).astype(float), (rng.random(n) < 0.55).astype(float)
        start = time.perf_counter()
        bs.ci(bs.mean_of(a), n)
        bs.paired_difference(bs.mean_of(a), bs.mean_of(b), n)
    elif stage == "report":
        from routertrain.evaluation.compare import evaluate_routers, format_table

        routing = data(n)
        start = time.perf_counter()
        format_table(evaluate_routers(routing, routers=("oracle", "best-single", "random", "task-prior")))
    else:
        raise SystemExit(f"unknown stage {stage}: one of {', '.join(STAGES)}")
    extra["seconds"] = round(time.perf_counter() - start, 2)
    return extra


def child(stage: str, n: int, work: Path) -> None:
    import psutil

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from routertrain.model.encoders import encoders_dir

    os.environ["ROUTERTRAIN_ENCODERS"] = str(encoders_dir())  # the installed encoders, beside the benchmark's own dataset cache
    cache = work / "cache"
    os.environ["ROUTERTRAIN_CACHE"] = str(cache)
    baseline = psutil.Process().memory_info().rss
    result = run_stage(stage, n, work)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print("RESULT " + json.dumps({"stage": stage, "n": n, **result, "peak_gib": round(peak / 2**30, 3), "import_gib": round(baseline / 2**30, 3)}), flush=True)


def done() -> set:
    if not RESULTS.is_file():
        return set()
    return {(r["stage"], r["n"]) for r in map(json.loads, RESULTS.read_text().splitlines()) if "seconds" in r}


def table() -> str:
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines()] if RESULTS.is_file() else []
    sizes = sorted({r["n"] for r in rows})
    by = {(r["stage"], r["n"]): r for r in rows}
    lines = ["| stage | " + " | ".join(f"{n:,} queries" for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
    for stage in STAGES:
        cells = []
        for n in sizes:
            r = by.get((stage, n))
            if r is None:
                cells.append(f"not run (bounded at {BOUND[stage]:,})" if n > BOUND.get(stage, n) else "not run")
            elif "seconds" not in r:
                cells.append(r.get("error", "failed"))
            else:
                rate = f", {r['steps_per_s']} steps/s" if "steps_per_s" in r else ""
                cells.append(f"{r['seconds']:,} s, {r['peak_gib']} GiB{rate}")
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    parser.add_argument("--stages", default=",".join(STAGES))
    parser.add_argument("--work", default=str(REPO / "checkpoints" / "scale"), help="dataset cache, stored embeddings and runs")
    parser.add_argument("--timeout", type=int, default=3 * 3600, help="seconds per (stage, size)")
    parser.add_argument("--table", action="store_true")
    parser.add_argument("--rerun", action="store_true", help="measure again what is in the results (the table shows the latest)")
    parser.add_argument("--child", nargs=2, metavar=("STAGE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    work = Path(args.work)
    if args.child:
        child(args.child[0], int(args.child[1]), work)
        return 0
    if args.table:
        print(table())
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    for n in map(int, args.sizes.split(",")):
        for stage in args.stages.split(","):
            if (not args.rerun and (stage, n) in done()) or n > BOUND.get(stage, n):
                continue
            print(f"[scale] {stage} at {n:,}", flush=True)
            try:
                proc = subprocess.run([sys.executable, __file__, "--child", stage, str(n), "--work", str(work)], capture_output=True, text=True, timeout=args.timeout)
                lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                record = json.loads(lines[-1][7:]) if lines else {"stage": stage, "n": n, "error": f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"}
            except subprocess.TimeoutExpired:
                record = {"stage": stage, "n": n, "error": f"over {args.timeout} s"}
            from routertrain.provenance import git_revision

            record["revision"] = git_revision(REPO)
            print(json.dumps(record), flush=True)
            with open(RESULTS, "a") as f:
                f.write(json.dumps(record) + "\n")
    print(table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
