"""The commands shown in README.md and docs/*.md parse, so the docs cannot drift from the code.

Every line of a fenced shell block that starts with ``routertrain``, ``python -m routertrain...``,
``accelerate launch``, ``torchrun`` or ``make`` is checked in-process, in a fresh folder per page:
its subcommand exists; its options parse with the subcommand's own parser (stopped right after
parsing, so nothing runs); its ``key=value`` arguments load as a config (recipes, data recipes and
keys exist); a sweep runs with ``--dry-run``; ``routertrain recipes`` runs for real (its copies are
what later lines use); a ``make`` target exists. The registry example of docs/architecture.md runs.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import re
import shlex
from pathlib import Path
from unittest import mock

import pytest

from routertrain.cli.main import COMMANDS
from routertrain.config import ConfigError, load_config
from routertrain.evaluation.interface import REGISTRY

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SHELL = ("", "bash", "sh", "shell", "console")
ALIASES = {**{module: name for name, module in COMMANDS.items()}, "routertrain.data": "data", "routertrain.evaluate": "evaluate", "routertrain.tune": "tune"}
CONFIG_ARG = re.compile(r"^\+?(recipe|data|model|train|eval|tracking|push|tune|run\.[\w.]+)(\.[\w.]+)?=")
RUN_FOR_REAL = ("recipes", "sweep")


class Parsed(Exception):
    """Raised right after a subcommand's parser accepted its arguments: the command is not run."""


def blocks(text: str) -> list[tuple[str, str]]:
    """The fenced code blocks of a markdown page: (language, body)."""
    return re.findall(r"^```([\w-]*)\n(.*?)^```", text, flags=re.M | re.S)


def commands(text: str) -> list[str]:
    """The command lines of a page's shell blocks (continuations joined, here-document bodies skipped)."""
    found = []
    for language, body in blocks(text):
        if language not in SHELL:
            continue
        lines, heredoc = body.replace("\\\n", " ").splitlines(), None
        for line in lines:
            line = line.strip().removeprefix("$ ")
            if heredoc:
                heredoc = None if line == heredoc else heredoc
                continue
            match = re.search(r"<<-?'?(\w+)'?", line)
            heredoc = match.group(1) if match else None
            if re.match(r"(routertrain|python -m routertrain|accelerate launch|torchrun|make)\b", line):
                found.append(line)
    return found


@contextlib.contextmanager
def parse_only():
    """argparse parsers raise ``Parsed`` once they accept their arguments, so a subcommand stops before any work."""

    def stopping(original):
        def parse(self, args=None, namespace=None):
            original(self, args, namespace)
            raise Parsed

        return parse

    with mock.patch.object(argparse.ArgumentParser, "parse_args", stopping(argparse.ArgumentParser.parse_args)), \
            mock.patch.object(argparse.ArgumentParser, "parse_intermixed_args", stopping(argparse.ArgumentParser.parse_intermixed_args)):
        yield


def check_config(args: list[str]) -> None:
    load_config([a for a in args if CONFIG_ARG.match(a)])


def check_subcommand(argv: list[str]) -> None:
    """``routertrain NAME ARGS``: the subcommand exists, its arguments parse, its config loads."""
    if not argv or argv[0] in ("-h", "--help"):
        return
    name, rest = argv[0], argv[1:]
    assert name in COMMANDS, f"no subcommand '{name}' (routertrain --help lists them)"
    main = importlib.import_module(COMMANDS[name]).main
    if name in ("train", "tune"):
        check_config(rest)
        return
    if name == "data":
        assert rest and rest[0] in ("summary", "build"), "routertrain data takes summary or build"
        check_config(rest[1:])
        return
    if name in RUN_FOR_REAL:
        args = rest if name == "recipes" or "--dry-run" in rest or "--status" in rest else [*rest, "--dry-run"]
        allowed = (0, 1) if "--status" in args else (0,)  # --status exits 1 while some point is not finished
        assert main(args) in allowed, f"routertrain {shlex.join([name, *args])} failed"
        return
    try:
        with parse_only():
            code = main(rest)
    except Parsed:
        code = 0
    except SystemExit as stop:
        code = stop.code
    assert code == 0, f"the arguments do not parse (exit {code})"
    check_config(rest)
    if name == "evaluate":
        from routertrain.cli.evaluate import parse_routers

        routers = next((a.split("=", 1)[1] for a in rest if a.startswith("routers=")), None)
        parse_routers(routers, None)


def check_line(line: str, makefile: str) -> None:
    argv = shlex.split(line, comments=True)
    head, rest = argv[0], argv[1:]
    if head == "routertrain":
        check_subcommand(rest)
    elif head == "python":
        module = rest[1]
        assert module == "routertrain" or module in ALIASES, f"python -m {module} is not a routertrain command"
        check_subcommand(rest[2:] if module == "routertrain" else [ALIASES[module], *rest[2:]])
    elif head in ("accelerate", "torchrun"):
        config = next((rest[i + 1] for i, a in enumerate(rest) if a == "--config_file"), None)
        assert config is None or (REPO / config).is_file(), f"no accelerate config {config}"
        assert "train.py" in rest or "routertrain.cli.train" in rest, "a launch line should run train.py or -m routertrain.cli.train"
        check_config(rest)
    elif head == "make":
        targets = [a for a in rest if "=" not in a]
        for target in targets:
            assert re.search(rf"^{re.escape(target)}:", makefile, flags=re.M), f"no make target '{target}'"
        variables = dict(a.split("=", 1) for a in rest if "=" in a)
        check_config([f"{k}={v}" for k, v in variables.items() if k in ("recipe", "data")] + shlex.split(variables.get("ARGS", "")))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_command_shown_parses(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # recipes cp writes here; nothing of the repository changes
    makefile = (REPO / "Makefile").read_text()
    failures = []
    for line in commands(page.read_text()):
        try:
            check_line(line, makefile)
        except (AssertionError, ConfigError, ValueError) as err:
            failures.append(f"{page.name}: {line}\n    {str(err).splitlines()[0]}")
    capsys.readouterr()
    assert failures == [], "\n".join(failures)


def test_the_checker_finds_the_commands_and_catches_drift(tmp_path, monkeypatch):
    assert len([line for page in PAGES for line in commands(page.read_text())]) >= 30
    text = "```bash\nroutertrain train recipe=smoke \\\n  train.lr=1e-4\ncat > x.yaml <<'YAML'\nroutertrain nope\nYAML\n```\n"
    assert commands(text) == ["routertrain train recipe=smoke    train.lr=1e-4"]
    monkeypatch.chdir(tmp_path)
    makefile = (REPO / "Makefile").read_text()
    for bad in ("routertrain trian recipe=smoke", "routertrain train train.lrr=1", "routertrain route --cost-weight -1 r q",
                "routertrain evaluate routers=[knn,nope]", "make tarin", "routertrain sweep no-such-sweep", "python -m routertrain.nothing"):
        with pytest.raises((AssertionError, ConfigError, ValueError)):
            check_line(bad, makefile)


def test_the_registry_example_of_the_architecture_page_runs(capsys):
    page = (REPO / "docs" / "architecture.md").read_text()
    example = next(body for language, body in blocks(page) if language == "python" and "register_router" in body)
    try:
        exec(compile(example, "docs/architecture.md", "exec"), {"__name__": "docs_example"})
        out = capsys.readouterr().out
        assert re.fullmatch(r"length router: 0\.\d{3}\n", out), out
        from routertrain.cli.evaluate import parse_routers
        from routertrain.evaluation.compare import default_routers

        assert parse_routers("[length,knn]", None) == ["length", "knn"]  # the CLI knows it
        assert "length" not in default_routers()  # default=False
    finally:
        REGISTRY.pop("length", None)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_points_at_a_file(page):
    links = re.findall(r"\]\(([^)\s]+)\)", page.read_text())
    local = [link.split("#", 1)[0] for link in links if not link.startswith(("http://", "https://", "#", "mailto:"))]
    assert [link for link in local if not (page.parent / link).exists()] == []
