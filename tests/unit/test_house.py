"""The house rules, checked on the source tree: the core never imports a plugin, modules do not import
each other in a cycle, functions fit on a screen, files hold one concern. (Redis calls outside the
store are checked by test_store_boundary.py.)"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"core": "cronium.core", "plugins": "cronium.plugins", "sidecar": "cronium.sidecar"}
MAX_FUNCTION_LINES = 80
MAX_FILE_LINES = 500


def _modules() -> dict[str, tuple[Path, ast.Module]]:
    out = {}
    for top, package in PACKAGES.items():
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT / top).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = (path, ast.parse(path.read_text(encoding="utf-8")))
    return out


MODULES = _modules()


def _imports(name: str, path: Path, tree: ast.Module) -> set[str]:
    """The cronium modules `name` imports (relative imports resolved)."""
    found = set()
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
    return {i for i in found if i in MODULES and i != name}


def test_the_core_never_imports_a_plugin():
    offenders = [name for name, (path, tree) in MODULES.items()
                 if name.startswith("cronium.core") and any(i.startswith("cronium.plugins") for i in
                                                            _imports(name, path, tree) | _raw_imports(tree))]
    assert offenders == []


def test_plugins_use_only_the_public_names_of_other_plugins():
    """`from cronium.plugins.<plugin> import _name` reaches into another plugin's private helpers
    (shared plumbing modules such as `_docker` are private as a whole and not counted)."""
    offenders = []
    for name, (path, tree) in MODULES.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cronium.plugins."):
                if node.module != name and not node.module.rsplit(".", 1)[1].startswith("_"):
                    offenders += [f"{name}: {node.module}.{a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []


def _raw_imports(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_no_import_cycles():
    # A package's __init__ only re-exports: edges into packages are left out (as house-check does).
    packages = {name for name, (path, _) in MODULES.items() if path.name == "__init__.py"}
    edges = {name: {i for i in _imports(name, path, tree) if i not in packages}
             for name, (path, tree) in MODULES.items()}
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for name in sorted(edges):
        if name not in state:
            visit(name, [name])
    assert cycles == []


@pytest.mark.parametrize("top", sorted(PACKAGES))
def test_functions_fit_on_a_screen(top):
    long = [f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for name, (path, tree) in MODULES.items() if path.relative_to(ROOT).parts[0] == top
            for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


@pytest.mark.parametrize("top", sorted(PACKAGES))
def test_files_hold_one_concern(top):
    big = [f"{path.relative_to(ROOT)} ({n} lines)" for path, _ in MODULES.values()
           if path.relative_to(ROOT).parts[0] == top
           and (n := path.read_text(encoding="utf-8").count("\n") + 1) > MAX_FILE_LINES]
    assert big == []


def test_the_checks_see_the_code():
    # Guards the checks above against silently checking nothing (e.g. after a move of the tree).
    assert {"cronium.core.lifecycle", "cronium.core.spec", "cronium.plugins.docker_executor",
            "cronium.sidecar.app"} <= set(MODULES)
    assert "cronium.core.model" in _imports("cronium.core.lifecycle", *MODULES["cronium.core.lifecycle"])


def test_every_package_is_in_the_distribution():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {name for name, (path, _) in MODULES.items() if path.name == "__init__.py"}
    assert found - listed == set()
