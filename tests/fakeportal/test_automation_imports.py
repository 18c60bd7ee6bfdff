"""Imports inside fakeportal/automation form a DAG, with no function-level import dodging a
cycle: shared pieces live below the modules that use them (models, checks, lifecycle)."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import fakeportal.automation

PACKAGE = Path(fakeportal.automation.__file__).parent
PREFIX = "fakeportal.automation"


def _module(path: Path) -> str:
    return PREFIX if path.stem == "__init__" else f"{PREFIX}.{path.stem}"


def _targets(node: ast.Import | ast.ImportFrom, modules: set[str]) -> list[str]:
    """The automation modules one import statement loads."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    elif node.module and node.level == 0:
        names = [f"{node.module}.{alias.name}" for alias in node.names] + [node.module]
    else:
        names = []
    return [name for name in names if name in modules and name != PREFIX]


def _imports() -> tuple[dict[str, set[str]], list[str]]:
    """The package's import graph (every import, also those inside functions), and the
    function-level ones."""
    paths = sorted(PACKAGE.glob("*.py"))
    modules = {_module(p) for p in paths}
    graph: dict[str, set[str]] = {}
    nested: list[str] = []
    for path in paths:
        name = _module(path)
        graph[name] = set()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[name].update(_targets(node, modules))
        for func in ast.walk(tree):
            if isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for node in ast.walk(func):
                    if isinstance(node, (ast.Import, ast.ImportFrom)) and _targets(node, modules):
                        nested.append(f"{name}.{func.name}: {ast.unparse(node)}")
    return graph, nested


def test_automation_imports_form_a_dag() -> None:
    graph, _ = _imports()
    graph.pop(PREFIX)  # the package imports its modules to register them
    try:
        order = list(TopologicalSorter(graph).static_order())
    except CycleError as exc:  # pragma: no cover - the failure message
        raise AssertionError(f"import cycle: {exc.args[1]}") from None
    assert order.index(f"{PREFIX}.models") < order.index(f"{PREFIX}.rules")
    assert order.index(f"{PREFIX}.messageservice") < order.index(f"{PREFIX}.rules")


def test_no_function_level_imports_between_automation_modules() -> None:
    _, nested = _imports()
    assert nested == []
