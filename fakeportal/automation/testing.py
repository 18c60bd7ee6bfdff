"""pytest fixtures for testing against the portal's automation side.

Use with the core fixtures of ``fakeportal.testing``. Fixtures:

- ``recorder``: a started ``Recorder`` (the stand-in app endpoint), stopped after the test;
- ``installed_app``: an app registered and installed (event mode) on ``fake_portal`` whose
  install URL is the recorder's ``/install``; gives its tokens from ONAPPINSTALL and a
  ``rest(method, **params)`` helper that calls the portal with the app's token.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

from fakeportal import admin, oauth
from fakeportal.automation import lifecycle, outbox
from fakeportal.automation.recorder import Post, Recorder
from fakeportal.state import Portal, World

SCOPE = ["crm", "bizproc", "placement", "messageservice", "user", "app"]


@dataclass
class InstalledApp:
    """An installed app as the tests see it: ids, the install POST, a REST helper."""

    world: World
    portal: Portal
    client_id: str
    client_secret: str
    recorder: Recorder
    install: Post

    @property
    def auth(self) -> dict[str, str]:
        return {k[5:-1]: v for k, v in self.install.pairs if k.startswith("auth[")}

    @property
    def access_token(self) -> str:
        return self.auth["access_token"]

    @property
    def application_token(self) -> str:
        return self.auth["application_token"]

    @property
    def endpoint(self) -> str:
        return self.portal.client_endpoint

    def rest(self, method: str, token: str | None = None, **params: Any) -> requests.Response:
        """POST a JSON REST call with the app's (or the given) access token."""
        body = {**params, "auth": token or self.access_token}
        return requests.post(f"{self.endpoint}{method}", json=body, timeout=10)

    def ok(self, method: str, **params: Any) -> Any:
        """A REST call that must succeed; its ``result``."""
        response = self.rest(method, **params)
        assert response.status_code == 200, response.text
        return response.json()["result"]

    def token_for(self, user_id: int) -> str:
        with self.world.lock:
            return str(
                oauth.issue_tokens(self.world, self.portal, self.client_id, user_id)["access_token"]
            )

    def idle(self, timeout: float = 5.0) -> None:
        result = outbox.wait_idle(self.world, timeout)
        assert result["idle"], result


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder().start()
    try:
        yield rec
    finally:
        rec.stop()


def install(
    world: World, portal: Portal, rec: Recorder, scope: list[str] | None = None
) -> InstalledApp:
    """Register an app whose install URL is the recorder, install it, wait for ONAPPINSTALL."""
    app = admin.register_app(world, install_url=f"{rec.url}/install", scope=scope or SCOPE)
    before = len(rec.received("/install"))
    lifecycle.install_app(world, portal.member_id, app["client_id"])
    post = rec.wait_for("/install", before + 1)[-1]
    return InstalledApp(world, portal, app["client_id"], app["client_secret"], rec, post)


@pytest.fixture
def installed_app(fake_world: World, fake_portal: Portal, recorder: Recorder) -> InstalledApp:
    return install(fake_world, fake_portal, recorder)
