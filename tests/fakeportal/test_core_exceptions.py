"""The portal's error classes (fakeportal/exceptions.py): one per code, raised by name."""

from __future__ import annotations

import ast
from pathlib import Path

import requests

import fakeportal
from fakeportal import api, exceptions
from fakeportal.exceptions import ApiError, MethodNotFound, NotFound, ParamError, PortalError

PACKAGE = Path(fakeportal.__file__).parent


def _error_classes() -> list[type[PortalError]]:
    return [
        cls
        for cls in vars(exceptions).values()
        if isinstance(cls, type) and issubclass(cls, PortalError) and cls is not PortalError
    ]


def test_each_class_names_one_code_with_its_status() -> None:
    classes = _error_classes()
    codes = [(cls.code, type(cls.code)) for cls in classes]
    assert len(codes) == len(set(codes))
    assert all(400 <= cls.status < 600 for cls in classes)
    err = NotFound("Item not found")
    assert (err.code, err.description, err.status) == ("NOT_FOUND", "Item not found", 400)
    assert str(err) == "NOT_FOUND: Item not found"
    bare = MethodNotFound()
    assert (bare.code, bare.description, bare.status) == (
        "ERROR_METHOD_NOT_FOUND",
        "Method not found!",
        404,
    )
    assert ParamError("x").code == 100  # the engine sends a JSON number here


def test_api_error_stays_the_base_and_importable_from_api() -> None:
    assert api.ApiError is ApiError is fakeportal.ApiError
    assert all(issubclass(cls, ApiError) for cls in _error_classes())
    fault = ApiError("OVERLOAD_LIMIT", "Portal overloaded", 503)
    assert (fault.code, fault.description, fault.status) == (
        "OVERLOAD_LIMIT",
        "Portal overloaded",
        503,
    )


def test_raise_sites_use_the_classes() -> None:
    """``ApiError(code, ...)`` is called directly only for an injected fault's own code."""
    direct = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "exceptions.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "ApiError"
            ):
                direct.append(f"{path.relative_to(PACKAGE)}: {ast.unparse(node)}")
    assert direct == ["rest.py: ApiError(fault.code, fault.description, fault.status)"]


def test_errors_on_the_wire_keep_code_status_and_text(fake_webhook: str) -> None:
    missing = requests.post(fake_webhook + "no.such.method")
    assert missing.status_code == 404
    assert missing.json() == {
        "error": "ERROR_METHOD_NOT_FOUND",
        "error_description": "Method not found!",
    }
    legacy = requests.post(fake_webhook + "crm.deal.get", json={"id": 999})
    assert legacy.status_code == 400
    assert legacy.json() == {"error": "", "error_description": "Not found"}
    task = requests.post(fake_webhook + "tasks.task.add", json={})
    assert task.status_code == 400
    assert task.json() == {
        "error": 100,
        "error_description": "Could not find value for parameter {fields}",
    }
