"""Convert a router folder of format 1 (router_config.json beside the encoder's config.json) to a transformers model folder.

    routertrain convert checkpoints/<run>/router converted-router

``Router.from_pretrained`` still reads format 1; ``AutoModelForSequenceClassification``, ``pipeline``
and ``RouterModel.from_pretrained`` need the converted folder. The weights are copied unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from routertrain.cli.common import Parser
    from routertrain.hub.router import convert_folder

    parser = Parser(prog="routertrain convert", description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="router folder (or run folder) written by an earlier routertrain")
    parser.add_argument("new", type=Path, help="folder to write (must not exist)")
    args = parser.parse_args(argv)
    if args.new.exists():
        print(f"error: {args.new} exists; name a new folder", file=sys.stderr)
        return 2
    try:
        out = convert_folder(args.old, args.new)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"converted {args.old} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
