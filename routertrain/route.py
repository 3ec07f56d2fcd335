"""Route queries with a trained router from the command line.

    python -m routertrain.route ROUTER "query one" "query two"
    python -m routertrain.route ROUTER --file queries.txt --output routes.jsonl [--cost-weight 0.01 | --max-cost 2.0]

Writes one JSON object per query: the query, the chosen model, and P(correct) per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from routertrain.router import Router, choose, router_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m routertrain.route", description=__doc__.splitlines()[0])
    parser.add_argument("router", help="router folder, run folder, or Hub repo id")
    parser.add_argument("queries", nargs="*", help="queries to route")
    parser.add_argument("--file", type=Path, help="read queries from this file, one per line")
    parser.add_argument("--output", type=Path, help="write JSONL here instead of standard output")
    parser.add_argument("--cost-weight", type=float, default=0.0, help="maximise P(correct) - weight x cost")
    parser.add_argument("--max-cost", type=float, default=None, help="only models costing at most this")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default=None, help="cpu, cuda, ...; default: cuda when available")
    args = parser.parse_args(argv)

    queries = list(args.queries)
    if args.file:
        queries += [line.rstrip("\n") for line in args.file.read_text().splitlines() if line.strip()]
    if not queries:
        parser.error("give queries as arguments or with --file")
    try:
        location = router_folder(args.router)
    except FileNotFoundError:
        location = args.router  # a Hub repo id, resolved by from_pretrained
    try:
        router = Router.from_pretrained(location, device=args.device)
        probs = router.predict(queries, batch_size=args.batch_size)
        chosen = choose(probs, router.costs, args.cost_weight, args.max_cost)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    lines = [
        json.dumps({"query": q, "model": router.models[c], "probabilities": {m: round(float(p), 6) for m, p in zip(router.models, row)}})
        for q, c, row in zip(queries, chosen, probs)
    ]
    text = "\n".join(lines) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
