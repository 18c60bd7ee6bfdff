"""pytest fixtures for the emulated portal, and a small HTTP client for its admin actions.

Enable with ``pytest_plugins = ["fakeportal.testing"]`` in a ``conftest.py``. Fixtures:

- ``fakeportal_server`` (session): one running server on 127.0.0.1;
- ``fake_world`` (function): that server's World, reset before each test;
- ``fake_portal`` (function): a fresh portal in it;
- ``fake_webhook`` (function): an incoming webhook URL of user 1 on ``fake_portal``;
- ``fake_admin`` (function): an ``AdminClient`` on the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from fakeportal.server import Server, serve
from fakeportal.state import Portal, World


class AdminError(RuntimeError):
    """An admin action answered with an error."""

    def __init__(self, action: str, status: int, body: Any) -> None:
        super().__init__(f"{action}: HTTP {status}: {body}")
        self.status = status
        self.body = body


class AdminClient:
    """Calls ``POST {url}/_admin/<action>``; ``client.create_portal(domain=...)`` works too."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, action: str, **body: Any) -> Any:
        response = self.session.post(f"{self.url}/_admin/{action}", json=body, timeout=self.timeout)
        try:
            data = response.json()
        except ValueError:
            data = response.text
        if response.status_code != 200 or not isinstance(data, dict) or "result" not in data:
            raise AdminError(action, response.status_code, data)
        return data["result"]

    def actions(self) -> list[str]:
        return list(self.session.get(f"{self.url}/_admin/", timeout=self.timeout).json()["actions"])

    def __getattr__(self, action: str) -> Any:
        if action.startswith("_"):
            raise AttributeError(action)
        return lambda **body: self.call(action, **body)


@pytest.fixture(scope="session")
def fakeportal_server() -> Iterator[Server]:
    server = serve(World())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake_world(fakeportal_server: Server) -> World:
    world = fakeportal_server.world
    world.reset()
    return world


@pytest.fixture
def fake_portal(fake_world: World) -> Portal:
    return fake_world.add_portal()


@pytest.fixture
def fake_webhook(fake_world: World, fake_portal: Portal) -> str:
    from fakeportal.oauth import create_webhook

    return create_webhook(fake_world, fake_portal, 1)


@pytest.fixture
def fake_admin(fakeportal_server: Server) -> AdminClient:
    return AdminClient(fakeportal_server.url)
