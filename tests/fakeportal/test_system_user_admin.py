"""user.admin: whether the token's user may manage app settings (the seeded admin is user 1)."""

from __future__ import annotations

from typing import Any

import requests

from fakeportal import admin
from fakeportal.server import Server
from fakeportal.state import Portal, World


def test_user_admin_answers_for_the_tokens_user(
    fakeportal_server: Server, fake_world: World, fake_portal: Portal, oauth_app: dict[str, Any]
) -> None:
    url = f"{fakeportal_server.url}/rest/user.admin.json"
    boss = requests.post(url, json={"auth": oauth_app["tokens"]["access_token"]}).json()
    assert boss["result"] is True
    clerk = admin.issue_tokens(fake_world, oauth_app["client_id"], fake_portal.member_id, 2)
    assert requests.post(url, data={"auth": clerk["access_token"]}).json()["result"] is False
    assert requests.post(url, json={"auth": "nope"}).status_code == 401
