"""Runtime code imports only what `pip install crm-health-agent` installs; optional extras are imported lazily.

A fresh `make demo` installs without the dev extra, so a module-level import of a dev-only package
breaks it even though the test suite (with dev installed) passes.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("core", "agent", "connectors", "store", "scoring", "writeback", "sandbox")
FIRST_PARTY = set(RUNTIME_PACKAGES)
# Modules only tests import: the sandbox's pytest fixtures.
TEST_SUPPORT = {"sandbox/testing.py": {"pytest"}}


def _declared() -> tuple[set[str], set[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]

    def names(specs: list[str]) -> set[str]:
        return {re.split(r"[\[<>=!~ ;]", spec, maxsplit=1)[0].lower().replace("_", "-") for spec in specs}

    runtime = names(project["dependencies"])
    extras = set().union(*(names(v) for k, v in project["optional-dependencies"].items() if k != "dev"))
    return runtime, extras


def _imports(tree: ast.Module) -> tuple[set[str], set[str]]:
    """Top-level module names imported at module level, and inside functions."""
    module_level: set[str] = set()
    lazy: set[str] = set()

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                names = {a.name.split(".")[0] for a in child.names}
            elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
                names = {child.module.split(".")[0]}
            else:
                visit(child, inner)
                continue
            (lazy if inner else module_level).update(names)

    visit(tree, False)
    return module_level, lazy


def test_runtime_modules_import_only_declared_dependencies() -> None:
    runtime, extras = _declared()
    dist_of = {k: {d.lower().replace("_", "-") for d in v} for k, v in packages_distributions().items()}
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    problems = []
    for package in RUNTIME_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            module_level, lazy = _imports(ast.parse(path.read_text(encoding="utf-8")))
            for name, is_lazy in [*((n, False) for n in module_level), *((n, True) for n in lazy)]:
                if name in stdlib or name in FIRST_PARTY:
                    continue
                if name in TEST_SUPPORT.get(str(path.relative_to(REPO)), set()):
                    continue
                dists = dist_of.get(name, {name.lower()})
                if dists & runtime:
                    continue
                if is_lazy and dists & extras:
                    continue  # an optional extra, imported where it is used (with a clear error if absent)
                where = "lazily" if is_lazy else "at module level"
                problems.append(f"{path.relative_to(REPO)} imports {name} {where}, but {sorted(dists)} is not a runtime dependency")
    assert problems == [], "\n".join(problems)
