"""The OAuth server over real HTTP: refresh rotation, its errors, expiry, revocation."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from fast_bitrix24 import Bitrix

from fakeportal import admin, oauth
from fakeportal.server import Server
from fakeportal.state import Portal, World


def _refresh(server: Server, app: dict[str, Any], refresh_token: str | None, **extra: Any):
    params = {
        "grant_type": "refresh_token",
        "client_id": app["client_id"],
        "client_secret": app["client_secret"],
        "refresh_token": refresh_token,
        **extra,
    }
    params = {k: v for k, v in params.items() if v is not None}
    return requests.get(f"{server.url}/oauth/token/", params=params)


def test_refresh_rotates_and_old_token_is_invalid_grant(
    fakeportal_server: Server, fake_portal: Portal, oauth_app: dict[str, Any]
) -> None:
    first = oauth_app["tokens"]["refresh_token"]
    reply = _refresh(fakeportal_server, oauth_app, first)
    assert reply.status_code == 200
    body = reply.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "expires",
        "expires_in",
        "client_endpoint",
        "server_endpoint",
        "domain",
        "member_id",
        "scope",
        "status",
        "user_id",
    }
    assert body["domain"] == "oauth.bitrix.info"
    assert body["member_id"] == fake_portal.member_id
    assert body["client_endpoint"] == f"{fakeportal_server.url}/rest/"
    assert body["refresh_token"] != first and body["expires_in"] == 3600
    assert body["scope"] == "crm,user" and body["user_id"] == 1 and body["status"] == "L"
    again = _refresh(fakeportal_server, oauth_app, first)
    assert again.status_code == 400 and again.json() == {"error": "invalid_grant"}
    # the new pair works, also by POST form
    post = requests.post(
        f"{fakeportal_server.url}/oauth/token/",
        data={
            "grant_type": "refresh_token",
            "client_id": oauth_app["client_id"],
            "client_secret": oauth_app["client_secret"],
            "refresh_token": body["refresh_token"],
        },
    )
    assert post.status_code == 200
    call = requests.post(
        f"{fakeportal_server.url}/rest/profile", json={"auth": post.json()["access_token"]}
    )
    assert call.status_code == 200 and call.json()["result"]["ID"] == "1"


def test_token_endpoint_errors(fakeportal_server: Server, oauth_app: dict[str, Any]) -> None:
    missing = _refresh(fakeportal_server, oauth_app, None)
    assert missing.status_code == 400
    assert missing.json() == {
        "error": "invalid_request",
        "error_description": 'No "refresh_token" parameter found',
    }
    bad_secret = _refresh(fakeportal_server, {**oauth_app, "client_secret": "nope"}, "x")
    assert bad_secret.status_code == 400 and bad_secret.json() == {"error": "invalid_client"}
    unknown = _refresh(fakeportal_server, {**oauth_app, "client_id": "local.nope"}, "x")
    assert unknown.status_code == 200 and unknown.json() == {"error": "wrong_client"}
    garbage = _refresh(fakeportal_server, oauth_app, "not-a-token")
    assert garbage.status_code == 400 and garbage.json() == {"error": "invalid_grant"}


def test_access_token_expires_on_world_clock(
    fakeportal_server: Server, fake_world: World, oauth_app: dict[str, Any]
) -> None:
    url = f"{fakeportal_server.url}/rest/profile"
    token = oauth_app["tokens"]["access_token"]
    assert requests.post(url, json={"auth": token}).status_code == 200
    admin.advance_clock(fake_world, 3601)
    expired = requests.post(url, json={"auth": token})
    assert expired.status_code == 401
    assert expired.json() == {
        "error": "expired_token",
        "error_description": "The access token provided has expired.",
    }


def test_fast_bitrix24_refreshes_on_expired_token(
    fakeportal_server: Server,
    fake_world: World,
    fake_portal: Portal,
    oauth_app: dict[str, Any],
) -> None:
    state = {
        "access": oauth_app["tokens"]["access_token"],
        "refresh": oauth_app["tokens"]["refresh_token"],
    }
    calls: list[str] = []

    async def token_func() -> str:
        # fast_bitrix24 calls this first, then on every 401: refresh, but bounded
        calls.append("token")
        if len(calls) > 3:
            raise RuntimeError("portal keeps rejecting tokens")
        if len(calls) == 1:
            return state["access"]
        reply = _refresh(fakeportal_server, oauth_app, state["refresh"]).json()
        state["access"], state["refresh"] = reply["access_token"], reply["refresh_token"]
        return state["access"]

    client = Bitrix(f"{fakeportal_server.url}/rest/", token_func=token_func, verbose=False)
    assert client.call("profile", raw=True)["result"]["ID"] == "1"
    assert oauth.expire_access_tokens(fake_world, fake_portal.member_id) == 1
    assert client.call("server.time", {"x": 1}).startswith("20")
    assert calls == ["token", "token"]
    statuses = [(r["kind"], r["status"]) for r in admin.wire_log(fake_world, fake_portal.member_id)]
    assert statuses[-3:] == [("batch", 401), ("oauth", 200), ("batch", 200)]


def test_expired_token_rejected_before_counting(
    fakeportal_server: Server, fake_world: World, fake_portal: Portal, oauth_app: dict[str, Any]
) -> None:
    admin.expire_tokens(fake_world)
    reply = requests.post(
        f"{fakeportal_server.url}/rest/profile", json={"auth": oauth_app["tokens"]["access_token"]}
    )
    assert reply.status_code == 401 and reply.json()["error"] == "expired_token"
    assert fake_portal.request_total == 0


def test_revoke_kills_access_and_refresh(
    fakeportal_server: Server, fake_world: World, fake_portal: Portal, oauth_app: dict[str, Any]
) -> None:
    oauth.revoke(fake_world, fake_portal, oauth_app["client_id"])
    reply = requests.post(
        f"{fakeportal_server.url}/rest/profile", json={"auth": oauth_app["tokens"]["access_token"]}
    )
    assert reply.status_code == 401
    assert reply.json() == {
        "error": "ERROR_OAUTH",
        "error_description": "Application not installed",
    }
    refresh = _refresh(fakeportal_server, oauth_app, oauth_app["tokens"]["refresh_token"])
    assert refresh.status_code == 400 and refresh.json()["error"] == "invalid_client"


def test_tokens_of_other_portal_unaffected_by_revoke(
    fakeportal_server: Server, fake_world: World, fake_portal: Portal, oauth_app: dict[str, Any]
) -> None:
    other = fake_world.add_portal("second.bitrix24.test")
    second = oauth.issue_tokens(fake_world, other, oauth_app["client_id"], 2)
    assert second["domain"] == "second.bitrix24.test" and second["member_id"] == other.member_id
    oauth.revoke(fake_world, fake_portal, oauth_app["client_id"])
    reply = requests.post(
        f"{fakeportal_server.url}/rest/user.current", json={"auth": second["access_token"]}
    )
    assert reply.status_code == 200 and reply.json()["result"]["ID"] == "2"
    assert other.request_total == 1 and fake_portal.request_total == 0


@pytest.mark.parametrize("ttl", [60])
def test_access_ttl_from_config(
    fakeportal_server: Server, fake_world: World, fake_portal: Portal, ttl: int
) -> None:
    admin.set_limits(fake_world, access_ttl=ttl)
    app = admin.register_app(fake_world, scope="crm")
    tokens = admin.issue_tokens(fake_world, app["client_id"], fake_portal.member_id)
    assert tokens["expires_in"] == ttl
    admin.advance_clock(fake_world, ttl + 1)
    reply = requests.post(
        f"{fakeportal_server.url}/rest/profile", json={"auth": tokens["access_token"]}
    )
    assert reply.json()["error"] == "expired_token"
