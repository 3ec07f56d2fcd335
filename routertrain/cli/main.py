"""The ``routertrain`` command: one subcommand per task, each a module with ``main(argv) -> int``.

    routertrain train recipe=smoke                 routertrain recipes ls
    routertrain evaluate run=checkpoints/<run>     routertrain recipes cp smoke my-recipe.yaml
    routertrain route checkpoints/<run> "query"    routertrain sweep routerdc-main

``COMMANDS`` maps a subcommand to the module that implements it; a new subcommand is one line here
(its help line is the first line of that module's docstring, read without importing it, so
``routertrain --help`` stays fast). ``python -m routertrain`` runs the same.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path

COMMANDS = {
    "train": "routertrain.cli.train",
    "evaluate": "routertrain.cli.evaluate",
    "route": "routertrain.cli.route",
    "push": "routertrain.hub.push",
    "data": "routertrain.data.__main__",
    "sweep": "routertrain.experiments.sweep",
    "report": "routertrain.experiments.report",
    "encoders": "routertrain.model.encoders",
    "recipes": "routertrain.cli.recipes",
    "convert": "routertrain.cli.convert",
    "tune": "routertrain.cli.tune",
    "ensemble": "routertrain.cli.ensemble",
    "blend": "routertrain.cli.blend",
    "calibrate": "routertrain.cli.calibrate",
    "serve": "routertrain.cli.serve",
    "add-model": "routertrain.cli.add_model",
}


def summary_line(module: str) -> str:
    """The first line of ``module``'s docstring, from its source."""
    spec = importlib.util.find_spec(module)
    doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) if spec and spec.origin else None
    return (doc or "").strip().splitlines()[0] if doc else ""


def usage() -> str:
    lines = ["usage: routertrain COMMAND [arguments]   (routertrain COMMAND --help for each)", "", "commands:"]
    lines += [f"  {name:<10} {summary_line(module)}" for name, module in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from routertrain import __version__

        print(f"routertrain {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from routertrain.config import did_you_mean

        print(f"error: unknown command '{name}'{did_you_mean(name, list(COMMANDS))} (commands: {', '.join(COMMANDS)})", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[name]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
