"""Add a model to a trained router's pool: one new head row fitted on its labels, the encoder frozen.

    python -m routertrain.cli.add_model ROUTER --name NEW --labels labels.jsonl --output NEW_ROUTER [--cost 0.4]

``labels.jsonl``: one ``{"query": ..., "score": ...}`` per line (or a CSV with query,score columns),
score 1 where the new model answers correctly. The existing models' rows and the encoder are copied
unchanged; the new router folder is written atomically (see ``routertrain.hub.add_model``).
"""

from __future__ import annotations

import sys
from pathlib import Path

from routertrain.cli.args import Parser, bounded, fail
from routertrain.cli.common import device_option


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m routertrain.cli.add_model", description=__doc__.splitlines()[0])
    parser.add_argument("router", help="router folder or run folder")
    parser.add_argument("--name", required=True, help="the new model's name (as backends and routes will call it)")
    parser.add_argument("--labels", type=Path, required=True, help="JSONL {query, score} or CSV query,score: the new model's correctness")
    parser.add_argument("--output", type=Path, required=True, help="folder for the new router (must not exist yet)")
    parser.add_argument("--cost", type=bounded(float, 0), default=None, help="cost per query of the new model (required when the router has costs)")
    parser.add_argument("--seed", type=bounded(int, 0), default=0)
    parser.add_argument("--batch-size", type=bounded(int, 1), default=64)
    parser.add_argument("--device", type=device_option, default=None, help="cpu, cuda, ...; default: cuda when available")
    args = parser.parse_args(argv)

    from routertrain.hub.router import Router, router_folder
    from routertrain.hub.add_model import add_model, read_labels
    from routertrain.provenance import writing

    try:
        if args.output.exists():
            raise ValueError(f"--output {args.output} already exists; choose a new folder")
        if not args.name.strip():
            raise ValueError("--name is empty; give the new model's name")
        queries, scores = read_labels(args.labels)
        router = Router.from_pretrained(router_folder(args.router), device=args.device)
        with writing(args.output):
            folder = add_model(router, args.name, queries, scores, args.output, cost=args.cost, seed=args.seed, batch_size=args.batch_size)
    except (OSError, ValueError) as err:
        return fail(err)
    print(f"router with {len(router.models) + 1} models ({args.name} added from {len(queries)} labels): {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
