"""Old rule vs new rule: the same frozen-baseline evaluation scored by another checkout of routertrain
(e.g. the commit before "one truth") and by this one, side by side, so that every number the rule
change moved is listed with its old and new value.

    python benchmarks/one_truth.py --old /tmp/orig --output benchmarks/one_truth.md [--datasets routerbench,routerdc,mmlu-pro]

Each dataset runs ``routertrain evaluate`` twice (same data, encoder, routers, seed and bootstrap;
embeddings cached once under $ROUTERTRAIN_CACHE and shared), first with ``--old``'s package on the
path, then with this repository's, both writing ``--json``. The old checkout split exact ties evenly,
routed each query among the models with a label and priced decisions at each model's mean cost; the
new one routes over the whole pool with deterministic ties, scores ``eval.missing`` (complete by
default, and wrong as a second column where labels are missing) and spends per-query costs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
ROUTERS = "[oracle,best-single,random,task-prior,knn,logreg,mlp,mf,kmeans,tfidf]"
ENCODER = "sentence-transformers/all-MiniLM-L6-v2"
DATASETS = {
    "routerbench": ["data=routerbench", f"data.path={SHARED / 'routerbench-routerdc-subset'}"],
    "routerdc": ["data=routerdc", f"data.path={SHARED / 'routerdc'}"],
    "mmlu-pro": ["data=mmlu-pro", f"data.path={SHARED / 'mmlu-pro-outputs'}"],
}


def evaluate(package_root: Path, args: list[str], out: Path, n_boot: int) -> dict:
    """``routertrain evaluate`` with ``package_root`` first on the path; the JSON it wrote."""
    env = {**os.environ, "PYTHONPATH": str(package_root), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "routertrain.cli.evaluate", *args, f"routers={ROUTERS}", f"encoder={ENCODER}", "--json", str(out), "--n-boot", str(n_boot)]
    done = subprocess.run(cmd, cwd=package_root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed in {package_root}:\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())


def row(name: str, old: dict, new: dict, wrong: dict | None) -> str:
    o, n = old["routers"].get(name), new["routers"].get(name)
    if o is None or n is None:
        return ""

    def acc(r):
        return r["accuracy"]["value"]

    cells = [name, f"{acc(o):.4f}", f"{acc(n):.4f}", f"{acc(n) - acc(o):+.4f}"]
    cells += [f"{acc(wrong['routers'][name]):.4f}" if wrong else "-", f"{n.get('coverage'):.3f}" if n.get("coverage") is not None else "-"]
    if "cost" in o or "cost" in n:
        cells += [f"{o.get('cost', float('nan')):.5f}", f"{n.get('cost', float('nan')):.5f}", f"{o.get('aiq', float('nan')):.4f}", f"{n.get('aiq', float('nan')):.4f}"]
    return "| " + " | ".join(cells) + " |"


def table(dataset: str, old: dict, new: dict, wrong: dict | None, command: str) -> list[str]:
    costs = any("cost" in r for r in new["routers"].values())
    head = ["router", "old accuracy", "new accuracy (complete)", "new - old", "new accuracy (wrong)", "coverage"]
    head += ["old cost", "new cost", "old AIQ", "new AIQ"] if costs else []
    d = new["data"]
    lines = [f"### {dataset}", "", f"Written by {command}.", "",
             f"{d['n_total']} test queries, {d['n_queries']} with every model labelled; {new['settings']['average']} average; "
             f"old best single {old['reference']['best_single_model']} {old['reference']['best_single_acc']:.4f}, "
             f"new {new['reference']['best_single_model']} {new['reference']['best_single_acc']:.4f}; "
             f"oracle old {old['reference']['oracle_acc']:.4f}, new {new['reference']['oracle_acc']:.4f}"
             + (f"; costs: {d['cost_source']}" if d.get("cost_source") else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [r for r in (row(name, old, new, wrong) for name in new["routers"]) if r]
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="a checkout of the old code (e.g. git worktree add /tmp/orig f4b7602)")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated: " + ", ".join(DATASETS))
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--output", type=Path, default=REPO / "benchmarks" / "one_truth.md")
    args = parser.parse_args()
    old_rev = subprocess.run(["git", "-C", str(args.old), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    new_rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    sections = read_sections(args.output)  # datasets run earlier keep their sections; those run now are replaced
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.datasets.split(","):
            data_args = DATASETS[name]
            old = evaluate(args.old, data_args, Path(tmp) / f"{name}-old.json", args.n_boot)
            new = evaluate(REPO, data_args, Path(tmp) / f"{name}-new.json", args.n_boot)
            partial = new["data"]["n_total"] != new["data"]["n_queries"]
            wrong = evaluate(REPO, [*data_args, "eval.missing=wrong"], Path(tmp) / f"{name}-wrong.json", args.n_boot) if partial else None
            command = (f"`python benchmarks/one_truth.py --old <checkout of {old_rev}> --datasets {name} --n-boot {args.n_boot}` "
                       f"(new: {new_rev} plus the working tree)")
            sections[name] = table(name, old, new, wrong, command)
            head = ["# The rule change in numbers: old vs new evaluator on the frozen baselines", "",
                    f"Encoder {ENCODER}; test split; seed 0. Each section says the command that wrote it.", ""]
            args.output.write_text("\n".join(head + [line for key in DATASETS if key in sections for line in sections[key]]) + "\n")
            print(f"{name}: done", flush=True)


def read_sections(path: Path) -> dict[str, list[str]]:
    """The dataset sections (from their "### name" line) of an earlier output file."""
    sections, current = {}, None
    for line in path.read_text().splitlines() if path.is_file() else []:
        if line.startswith("### "):
            current = line[4:].strip()
            sections[current] = []
        if current is not None:
            sections[current].append(line)
    return sections


if __name__ == "__main__":
    main()
