"""Command line for datasets: ``python -m routertrain.data {summary,build} data=NAME [key=value ...] [--json]``.

- ``summary``: build (or load from the cache) the dataset the config describes and print, per split,
  the queries, each model's mean label, the oracle, the best single model chosen on train and a
  per-task breakdown; ``--json`` prints one JSON object instead.
- ``build``: build and cache it, then print the cache folder.

Build reports go to stderr, so ``--json`` output on stdout stays machine-readable.
"""

from __future__ import annotations

import json
import sys

COMMANDS = ("summary", "build")
USAGE = """usage: python -m routertrain.data summary data=NAME [key=value ...] [--json]
       python -m routertrain.data build data=NAME [key=value ...]

e.g.   python -m routertrain.data summary data=mmlu-pro data.path=../shared/data/mmlu-pro-outputs data.pool=open-weight"""


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if not argv:
        print(USAGE, file=sys.stderr)
        return 2
    from routertrain.config import ConfigError, did_you_mean, headline_average, load_config

    if argv[0] not in COMMANDS:
        print(f"error: unknown command '{argv[0]}'{did_you_mean(argv[0], list(COMMANDS)) or '; use summary or build (see --help)'}", file=sys.stderr)
        return 2
    from routertrain.data import DataError, load_routing_data
    from routertrain.data.summary import format_summary, summarize

    command, rest = argv[0], argv[1:]
    as_json = "--json" in rest
    args = [a for a in rest if a != "--json"]
    try:
        cfg = load_config(args)
        data = load_routing_data(cfg.data)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if command == "build":
        print(data.info.get("cache_path", "(not cached: built in memory)"))
        return 0
    summary = summarize(data, headline_average(cfg))
    print(json.dumps(summary, indent=None if as_json else 2) if as_json else format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
