"""The official method schemas (``spec/methods/*.json``) and event names (``spec/events.txt``).

Every call is checked against its method's schema: top-level parameters the schema does not
list are recorded on the portal (``portal.unknown_params``), and a missing parameter marked
``"required": true`` answers the REST engine's generic error (HTTP 400, ``error: 100``,
``Could not find value for parameter {name}``) unless the handler validates itself.
"""

from __future__ import annotations

import json
import threading
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from fakeportal.exceptions import ParamError

SPEC_DIR = Path(__file__).parent / "spec"
_lock = threading.Lock()

# Scope names in the schemas that differ from the scope an app is granted.
_SCOPE_ALIASES = {"tasks": "task", "базовый": None, "basic": None}


@lru_cache(maxsize=1)
def _index() -> dict[str, Path]:
    """Lower-case method name -> schema file."""
    out: dict[str, Path] = {}
    for path in sorted((SPEC_DIR / "methods").glob("*.json")):
        out[path.stem.lower()] = path
    return out


@cache
def schema(method: str) -> dict[str, Any] | None:
    """The schema of a method (any case), or None when the docs have none."""
    path = _index().get(method.lower())
    if path is None:
        return None
    with _lock:
        return json.loads(path.read_text(encoding="utf-8"))


def scope_of(method: str) -> str | None:
    """The scope a method needs according to its schema (None: no scope needed)."""
    spec = schema(method)
    if not spec:
        return None
    scope = spec.get("scope")
    if not scope:
        return None
    return _SCOPE_ALIASES.get(scope, scope)


@lru_cache(maxsize=1)
def event_names() -> list[str]:
    """Every event name the portal knows, upper case, as listed in ``spec/events.txt``."""
    text = (SPEC_DIR / "events.txt").read_text(encoding="utf-8")
    return [line.strip().upper() for line in text.splitlines() if line.strip()]


def _ignored(name: str) -> bool:
    """``auth`` and ``auth_connector`` are the request's credentials, valid on every method."""
    return name.lower() in ("auth", "auth_connector") or name.startswith("__")


def unknown_params(method: str, params: dict[str, Any]) -> list[str]:
    """Top-level parameter names the method's schema does not list (case-insensitive)."""
    spec = schema(method)
    if spec is None:
        return []
    known = {p["name"].lower() for p in spec.get("params", []) if p.get("name")}
    return [name for name in params if not _ignored(name) and name.lower() not in known]


def missing_required(method: str, params: dict[str, Any]) -> list[str]:
    """Names of parameters marked ``required: true`` that the call did not send."""
    spec = schema(method)
    if spec is None:
        return []
    sent = {name.lower() for name in params}
    return [
        p["name"]
        for p in spec.get("params", [])
        if p.get("required") is True and p.get("name") and p["name"].lower() not in sent
    ]


def check_required(method: str, params: dict[str, Any]) -> None:
    """Raise the engine's generic 'parameter missing' error for the first missing one."""
    missing = missing_required(method, params)
    if missing:
        raise ParamError(f"Could not find value for parameter {{{missing[0]}}}")
