"""Route queries with a trained router from the command line.

    routertrain route ROUTER "query one" "query two"
    routertrain route ROUTER --file queries.txt --output routes.jsonl [--cost-weight 0.01 | --max-cost 2.0]

Writes one JSON object per query: the query, the chosen model, and P(correct) per model.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from routertrain.cli.args import Parser, bounded
from routertrain.cli.common import device_option
from routertrain.provenance import atomic_write_text, writing
from routertrain.hub.router import Router, check_queries, router_folder


def output_file(text: str) -> Path:
    """An argparse type: a file path in an existing folder, checked before anything loads."""
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a folder; give a file path, e.g. {path / 'routes.jsonl'}")
    if not path.parent.is_dir():
        raise argparse.ArgumentTypeError(f"folder {path.parent} does not exist; create it first or write elsewhere")
    return path


def read_queries(path: Path, option: str = "--file") -> list[str]:
    """The non-blank lines of ``path``, given with ``option`` (named in the errors)."""
    if not path.exists() or path.is_dir():
        raise ValueError(f"{option} {path} {'is a folder' if path.is_dir() else 'does not exist'}; give a text file with one query per line")
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise ValueError(f"{option} {path} is not UTF-8 text; save it as UTF-8, one query per line") from None
    if not lines:
        raise ValueError(f"{option} {path} has no queries (it is empty or all blank lines); put one query per line")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="routertrain route", description=__doc__.splitlines()[0])
    parser.add_argument("router", help="router folder, run folder, or Hub repo id")
    parser.add_argument("queries", nargs="*", default=[], help="queries to route")
    parser.add_argument("--file", type=Path, help="read queries from this file, one per line")
    parser.add_argument("--output", type=output_file, help="write JSONL here instead of standard output")
    parser.add_argument("--cost-weight", type=bounded(float, 0), default=None, help="maximise P(correct) - weight x cost (>= 0); default: the router's calibrated setting, else 0")
    parser.add_argument("--max-cost", type=float, default=None, help="only models costing at most this")
    parser.add_argument("--batch-size", type=bounded(int, 1), default=64)
    parser.add_argument("--device", type=device_option, default=None, help="cpu, cuda, ...; default: cuda when available")
    args = parser.parse_intermixed_args(argv)  # queries may follow the options

    try:
        queries = list(args.queries) + (read_queries(args.file) if args.file else [])
        if not queries:
            raise ValueError("no queries; give them as arguments or with --file (one per line)")
        check_queries(queries)  # before the router loads
        try:
            location = router_folder(args.router)
        except FileNotFoundError:
            location = args.router  # a Hub repo id, resolved by from_pretrained
        router = Router.from_pretrained(location, device=args.device)
        probs = router.predict(queries, batch_size=args.batch_size)
        chosen = router.decide(probs, args.cost_weight, args.max_cost)
        lines = [
            json.dumps({"query": q, "model": router.models[c], "probabilities": {m: round(float(p), 6) for m, p in zip(router.models, row)}})
            for q, c, row in zip(queries, chosen, probs)
        ]
        text = "\n".join(lines) + "\n"
        if args.output:
            with writing(args.output):
                atomic_write_text(args.output, text)
        else:
            sys.stdout.write(text)
    except (OSError, ValueError) as err:
        message = (str(err).strip().splitlines() or [type(err).__name__])[0]  # the Hub's errors run over several lines
        if not Path(args.router).exists() and args.router not in message:
            message = f"{args.router} is not a folder here, and as a Hub repo id it did not load: {message}"
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
