"""Every number of REPORT.md that changed between two versions of it, as a Markdown table.

    python benchmarks/report_changes.py --old f4b7602 --new REPORT.md > benchmarks/report_changes.md

A number is identified by where it stands: the section it is in (its headings), the table row's first
cell and the column's header. Cells holding several numbers (``0.583 [0.556, 0.609]``) are compared
number by number; only cells whose numbers differ are listed, with the old and the new text. Rows or
sections present in one version only are counted, not listed (the report's layout also changed).
``--old`` and ``--new`` each take a file or ``REVISION`` (read as ``git show REVISION:REPORT.md``).
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def read(source: str) -> str:
    if Path(source).is_file():
        return Path(source).read_text()
    return subprocess.run(["git", "show", f"{source}:REPORT.md"], capture_output=True, text=True, check=True).stdout


def cells(text: str) -> dict[tuple[str, str, str], str]:
    """(section path, row label, column header) -> cell text, for every Markdown table cell."""
    out: dict[tuple[str, str, str], str] = {}
    headings: list[str] = []
    header: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            headings = headings[: level - 1] + [line.lstrip("#").strip()]
            header = None
            continue
        if not line.startswith("|"):
            header = None
            continue
        row = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None:
            header = row
        elif not set("".join(row)) <= set("-: "):
            for name, value in zip(header[1:], row[1:]):
                out[(" / ".join(headings), row[0], name)] = value
    return out


def changes(old: str, new: str) -> tuple[list[tuple], int, int]:
    a, b = cells(old), cells(new)
    changed = [(key, a[key], b[key]) for key in a.keys() & b.keys() if NUMBER.findall(a[key]) != NUMBER.findall(b[key])]
    return sorted(changed), len(a.keys() - b.keys()), len(b.keys() - a.keys())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True)
    parser.add_argument("--new", default="REPORT.md")
    args = parser.parse_args()
    changed, gone, added = changes(read(args.old), read(args.new))
    print(f"# REPORT.md: numbers that changed ({args.old} -> {args.new})\n")
    print(f"Written by `python benchmarks/report_changes.py --old {args.old} --new {args.new}`. {len(changed)} table cells "
          f"changed; {gone} cells of the old report have no counterpart in the new one and {added} cells are new "
          "(sections, rows or columns that only one version has).\n")
    print("| section | row | column | old | new |\n|---|---|---|---|---|")
    for (section, row, column), before, after in changed:
        print(f"| {section} | {row} | {column} | {before} | {after} |")


if __name__ == "__main__":
    main()
