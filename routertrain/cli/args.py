"""Argument helpers of every subcommand, light to import (no torch): one-line argparse errors, bounded numbers, the error exit."""

from __future__ import annotations

import argparse
import math
import sys


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line errors: ``error: ...`` on stderr, exit code 2, no usage block."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def bounded(kind: type, low: float, high: float | None = None, low_open: bool = False):
    """An argparse type: a finite ``kind`` at least ``low`` (above it with ``low_open``) and at most ``high``."""
    what = "an integer" if kind is int else "a number"
    what += f" in {'(' if low_open else '['}{low}, {high}]" if high is not None else f" {'>' if low_open else '>='} {low}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and (value > low if low_open else value >= low) and (high is None or value <= high)):
            raise argparse.ArgumentTypeError(f"got {text!r}; give {what}")
        return value

    return parse


def fail(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2
