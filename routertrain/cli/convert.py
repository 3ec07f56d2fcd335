"""Convert a router folder of format 1 (router_config.json beside the encoder's config.json) to a transformers model folder.

    routertrain convert checkpoints/<run>/router converted-router

``Router.from_pretrained`` still reads format 1; ``AutoModelForSequenceClassification``, ``pipeline``
and ``RouterModel.from_pretrained`` need the converted folder. The weights are copied unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from routertrain.cli.args import Parser, fail
    from routertrain.hub.router import convert_folder
    from routertrain.provenance import writing

    parser = Parser(prog="routertrain convert", description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path, help="router folder (or run folder) written by an earlier routertrain")
    parser.add_argument("new", type=Path, help="folder to write (must not exist)")
    args = parser.parse_args(argv)
    try:
        if args.new.exists():
            raise ValueError(f"{args.new} exists; name a new folder")
        with writing(args.new):
            out = convert_folder(args.old, args.new)
    except (OSError, ValueError) as err:
        return fail(err)
    print(f"converted {args.old} -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
