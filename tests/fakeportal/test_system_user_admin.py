"""user.admin: whether the token's user may manage app settings (the seeded admin is user 1)."""

from __future__ import annotations

from typing import Any

import requests

from fakeportal import admin
from fakeportal.api import flag
from fakeportal.server import Server
from fakeportal.state import Portal, World
from fakeportal.testing import AdminClient


def test_user_admin_answers_for_the_tokens_user(
    fakeportal_server: Server, fake_world: World, fake_portal: Portal, oauth_app: dict[str, Any]
) -> None:
    url = f"{fakeportal_server.url}/rest/user.admin.json"
    boss = requests.post(url, json={"auth": oauth_app["tokens"]["access_token"]}).json()
    assert boss["result"] is True
    clerk = admin.issue_tokens(fake_world, oauth_app["client_id"], fake_portal.member_id, 2)
    assert requests.post(url, data={"auth": clerk["access_token"]}).json()["result"] is False
    assert requests.post(url, json={"auth": "nope"}).status_code == 401


def test_user_admin_reads_is_admin_of_a_created_user_as_a_y_n_flag(
    fakeportal_server: Server, fake_admin: AdminClient, fake_portal: Portal
) -> None:
    """``create_user`` with ``IS_ADMIN: "N"`` makes a plain user, ``"Y"`` an administrator."""
    app = fake_admin.register_app(scope=["user"])
    url = f"{fakeportal_server.url}/rest/user.admin.json"
    for sent, expected in (("N", False), ("Y", True), ("0", False), ("1", True)):
        user = fake_admin.create_user(fields={"NAME": f"Flag {sent}", "IS_ADMIN": sent})
        tokens = fake_admin.issue_tokens(client_id=app["client_id"], user_id=int(user["ID"]))
        reply = requests.post(url, json={"auth": tokens["access_token"]})
        assert reply.status_code == 200, reply.text
        assert reply.json()["result"] is expected, (sent, reply.json())


def test_flag_reads_bitrix_y_n_values() -> None:
    for value in (True, "Y", "y", "1", 1, "true", " Y "):
        assert flag(value) is True, value
    for value in (False, "N", "n", "0", 0, "false"):
        assert flag(value, True) is False, value
    assert flag(None) is False and flag("", True) is True and flag("maybe", None) is None
