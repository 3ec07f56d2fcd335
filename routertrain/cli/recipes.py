"""List the packaged recipes, or copy one out for editing (as torchtune's ``tune ls`` / ``tune cp``).

    routertrain recipes ls
    routertrain recipes cp smoke my-recipe.yaml            # then: routertrain train recipe=my-recipe.yaml
    routertrain recipes cp data/routerdc my-data.yaml      # then: routertrain train data=my-data.yaml
    routertrain recipes cp sweeps/smoke my-sweep.yaml      # then: routertrain sweep my-sweep.yaml

Recipes live in ``recipes/`` at the repository root and ship inside the package (``routertrain.recipes``); a copy is a plain YAML file that every
command accepts by path, with or without ``.yaml``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from routertrain.config.schema import RECIPES_DIR, did_you_mean
from routertrain.provenance import atomic_write_text

KINDS = (("", "recipe", "routertrain train recipe={}"), ("data/", "data recipe", "routertrain train data={}"), ("sweeps/", "sweep", "routertrain sweep {}"))


def packaged() -> dict[str, Path]:
    """Every packaged recipe by the name ``recipes cp`` takes: ``smoke``, ``data/routerdc``, ``sweeps/smoke``."""
    return {f"{prefix}{path.stem}": path for prefix, _, _ in KINDS for path in sorted((RECIPES_DIR / prefix).glob("*.yaml"))}


def description(path: Path) -> str:
    """The recipe's leading comment, first line."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
        if line.strip():
            break
    return ""


def list_recipes() -> str:
    rows = []
    for prefix, kind, use in KINDS:
        rows.append(f"{kind}s ({use.format('NAME')}):")
        rows += [f"  {name:<28} {description(path)}" for name, path in packaged().items() if name.startswith(prefix) and "/" not in name[len(prefix):]]
    return "\n".join(rows)


def copy_recipe(name: str, dest: str | Path) -> Path:
    """Copy packaged recipe ``name`` to ``dest`` (a file, ``.yaml`` added when missing, or a folder); never overwrites."""
    found = packaged()
    name = name.removesuffix(".yaml")
    if name not in found:
        raise ValueError(f"no packaged recipe '{name}'{did_you_mean(name, list(found))}; routertrain recipes ls lists them")
    dest = Path(dest)
    target = dest / found[name].name if dest.is_dir() else (dest if dest.suffix in (".yaml", ".yml") else dest.with_name(dest.name + ".yaml"))
    if target.exists():
        raise ValueError(f"{target} exists; choose another destination or remove it first")
    if not target.parent.is_dir():
        raise ValueError(f"folder {target.parent} does not exist; create it first or copy elsewhere")
    atomic_write_text(target, found[name].read_text())
    return target


def main(argv: list[str] | None = None) -> int:
    from routertrain.cli.args import Parser, fail

    parser = Parser(prog="routertrain recipes", description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("ls", help="list the packaged recipes, data recipes and sweeps")
    cp = sub.add_parser("cp", help="copy a packaged recipe to a file or folder for editing")
    cp.add_argument("name", help="smoke, data/routerdc, sweeps/smoke, ... (see ls)")
    cp.add_argument("dest", help="file (.yaml added when missing) or existing folder")
    args = parser.parse_args(argv)
    if args.cmd == "ls":
        print(list_recipes())
        return 0
    try:
        target = copy_recipe(args.name, args.dest)
    except (ValueError, OSError) as err:
        return fail(err)
    prefix = next(p for p, _, _ in reversed(KINDS) if args.name.startswith(p))
    use = next(u for p, _, u in KINDS if p == prefix)
    print(f"copied {args.name} to {target}; use it with: {use.format(target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
