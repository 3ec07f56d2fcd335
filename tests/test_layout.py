"""The package layout the architecture promises, checked on the source with ``ast``: the config layer
imports nothing of the package, no modules import each other in a cycle (imports inside functions
included), no two classes share a name, and ``import routertrain`` loads no torch. The recipes live in
``recipes/`` at the repository root and ``pyproject.toml`` installs them (and every subpackage) into the package."""

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path


PACKAGE = Path(__file__).resolve().parents[1] / "routertrain"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict) -> set[str]:
    """The package's modules that ``name`` imports anywhere in its file; ``from pkg import sub`` counts as
    importing ``pkg.sub`` (the package's ``__init__`` runs first, but it does not import the importer)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            subs = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known]
            out.update(subs)
            if len(subs) < len(node.names):
                out.add(base)
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_imports_and_cycles():
    edges = graph()
    assert "routertrain.evaluation.baselines" in edges["routertrain.evaluation.routers"]  # a function-level or top-level import
    assert "routertrain.model.modeling" in edges["routertrain.hub.router"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_config_imports_nothing_of_the_package():
    edges = graph()
    config = [m for m in edges if m == "routertrain.config" or m.startswith("routertrain.config.")]
    assert config
    outside = {m: sorted(t for t in edges[m] if not t.startswith("routertrain.config")) for m in config}
    assert not any(outside.values()), outside


def test_no_import_cycles():
    assert cycles(graph()) == []


def package_of(module: str, known: dict) -> str:
    """The package a module belongs to: ``routertrain.X`` for a module inside the subpackage X; a
    module directly under ``routertrain`` (and the root package itself) is its own unit."""
    parts = module.split(".")
    if len(parts) >= 2 and f"routertrain.{parts[1]}" in known and known[f"routertrain.{parts[1]}"].name == "__init__.py":
        return f"routertrain.{parts[1]}"
    return module


def package_graph(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    known = modules()
    out: dict[str, set[str]] = {}
    for source, targets in edges.items():
        here = package_of(source, known)
        out.setdefault(here, set()).update(t for t in (package_of(m, known) for m in targets) if t != here)
    return out


def test_the_package_checker_sees_packages():
    packages = package_graph(graph())
    assert "routertrain.model" in packages["routertrain.hub"]  # the Router wraps the network
    assert package_of("routertrain.provenance", modules()) == "routertrain.provenance"
    assert cycles({"p.a": {"p.b"}, "p.b": {"p.a"}}) == [["p.a", "p.b"]]


def test_no_package_cycles():
    """No two packages import each other (function-level imports included): the layers are routing <-
    model <- hub <- evaluation, with data, config and provenance below and the commands on top."""
    assert cycles(package_graph(graph())) == []


def test_routing_core_imports_nothing_else():
    """The routing rule and what shipped routers compute import nothing of routertrain outside routing."""
    edges = graph()
    core = {m: sorted(t for t in edges[m] if not t.startswith("routertrain.routing")) for m in edges if m.startswith("routertrain.routing")}
    assert core and not any(core.values()), core


def test_no_two_classes_share_a_name():
    names = Counter(node.name for path in modules().values() for node in ast.walk(ast.parse(path.read_text())) if isinstance(node, ast.ClassDef))
    assert [n for n, count in names.items() if count > 1] == []


def test_import_routertrain_loads_no_torch():
    code = "import sys, routertrain, routertrain.config; routertrain.load_config(['recipe=smoke']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_recipes_sit_at_the_root_and_every_package_is_installed():
    """``recipes/`` beside ``train.py`` (nothing left in ``routertrain/recipes``), mapped into the package by
    pyproject.toml, whose package list names every folder of ``routertrain/`` that holds an ``__init__.py``."""
    import tomllib  # Python 3.11+, as on every machine of this project
    root = PACKAGE.parent
    assert (root / "recipes" / "smoke.yaml").is_file() and (root / "recipes" / "sweeps").is_dir()
    assert not (PACKAGE / "recipes").exists()
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"routertrain.recipes": "recipes"}
    found = {".".join(p.parent.relative_to(root).parts) for p in PACKAGE.rglob("__init__.py")}
    assert set(setuptools["packages"]) == found | {"routertrain.recipes", *(f"routertrain.recipes.{p.name}" for p in (root / "recipes").iterdir() if p.is_dir() and p.name != "__pycache__")}, "list the new package in pyproject.toml [tool.setuptools] packages"


def test_recipes_are_found_from_a_source_tree_without_an_install():
    """With no install (``python -S``: no ``.pth`` finders) and the source tree on the path, recipes are read beside the package."""
    import sysconfig

    code = (f"import sys; sys.path[:0] = [{str(PACKAGE.parent)!r}]; sys.path.append({sysconfig.get_paths()['purelib']!r}); "
            "import routertrain.config.schema as s; print(s.RECIPES_DIR, sorted(p.stem for p in s.SWEEPS_DIR.glob('*.yaml'))[:1])")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.split()[0] == str(PACKAGE.parent / "recipes") and "encoders" in out.stdout
