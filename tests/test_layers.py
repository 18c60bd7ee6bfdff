"""The arrows point one way: robots/, handlers/, installers/ -> app/; the root above them all.

Read from the source (imports and names), so a new module that breaks the layering fails here
before a reader has to find out.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("app", "robots", "handlers", "installers", "fakeportal")


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imports(path: Path) -> set[str]:
    """Every module a file imports (``from x import y`` gives x and x.y), at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def names(path: Path) -> set[str]:
    """Every string constant, identifier and attribute name in a file."""
    tree = ast.parse(path.read_text("utf-8"))
    out = {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }
    out |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    return out | {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def offending(folder: str, banned: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules(folder)
        for name in sorted(imports(path))
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]


def test_app_names_no_robot_no_capability_and_imports_nothing_above_it() -> None:
    assert offending("app", ("robots", "handlers", "installers", "server", "fakeportal")) == []
    dotted = ("robots.", "handlers.", "installers.", "server.", "server:")
    by_string = [
        f"{p.relative_to(ROOT)}: {s}"
        for p in modules("app")
        for s in names(p)
        if s in ("import_module", "__import__") or s.startswith(dotted)
    ]
    assert by_string == []


def test_robots_know_nothing_of_flask_rq_sql_or_capability_tables() -> None:
    banned = ("flask", "rq", "sqlalchemy", "redis", "requests", "app.web", "app.jobs",
              "app.services", "app.store", "app.pages", "server")  # fmt: skip
    assert offending("robots", banned) == []
    # A robot calls a capability's functions (handlers.<capability>), never its modules.
    deep = [
        f"{p.relative_to(ROOT)}: {name}"
        for p in modules("robots")
        for name in imports(p)
        if name.startswith("handlers.") and name.count(".") > 1
    ]
    assert deep == []


def test_capabilities_reach_nothing_but_their_context() -> None:
    banned = ("rq", "app.web", "app.jobs", "app.services", "flask.current_app", "server", "robots")
    assert offending("handlers", banned) == []
    assert offending("installers", ("flask", "rq", "server", "robots", "handlers")) == []


@pytest.mark.parametrize("folder", LAYERS)
def test_only_the_runner_asks_rq_about_the_current_job(folder: str) -> None:
    users = [
        str(p.relative_to(ROOT))
        for p in modules(folder)
        if "get_current_job" in names(p) | {a.split(".")[-1] for a in imports(p)}
    ]
    assert users == (["app/jobs.py"] if folder == "app" else [])


def test_the_emulated_portal_imports_nothing_of_the_app() -> None:
    assert offending("fakeportal", ("app", "robots", "handlers", "installers", "server")) == []
