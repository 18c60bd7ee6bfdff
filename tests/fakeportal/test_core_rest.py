"""REST over real HTTP: bodies, method names, replies, errors, paging, auth, schema checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from fast_bitrix24 import Bitrix

from fakeportal import admin
from fakeportal.api import METHODS, ApiError, Call, Page, method
from fakeportal.rest import paginate
from fakeportal.server import Server
from fakeportal.state import Portal, World

ROWS_METHOD = "test.core.rows.list"
ECHO_METHOD = "test.core.echo"

if ROWS_METHOD not in METHODS:

    @method(ROWS_METHOD)
    def _rows(call: Call) -> Page:
        """Rows of the portal's ``test_rows`` table, 50 a page."""
        rows = [dict(r) for _, r in sorted(call.portal.table("test_rows").items())]
        return paginate(rows, call.params)

    @method(ECHO_METHOD)
    def _echo(call: Call) -> dict[str, Any]:
        """The parameters as the method received them, and who called."""
        return {"params": call.params, "user": call.caller.user_id, "app": call.caller.app_id}


@contextmanager
def temporary_method(name: str, handler: Any, **extra: Any) -> Iterator[None]:
    """Register a stand-in for a documented method nobody implements, for one test."""
    assert name not in METHODS, f"{name} is implemented now: pick another schema'd method"
    method(name, **extra)(handler)
    try:
        yield
    finally:
        METHODS.pop(name, None)


def _fill_rows(portal: Portal, n: int) -> None:
    table = portal.table("test_rows")
    for i in range(1, n + 1):
        table[i] = {"ID": str(i), "TITLE": f"Row {i}"}


def test_json_form_and_query_bodies_parse_alike(
    fakeportal_server: Server, oauth_app: dict[str, Any]
) -> None:
    token = oauth_app["tokens"]["access_token"]
    base = f"{fakeportal_server.url}/rest/{ECHO_METHOD}"
    want = {"fields": {"TITLE": "A", "IDS": ["1", "2"]}, "filter": {">ID": "5"}}
    as_json = requests.post(
        base,
        json={"auth": token, "fields": {"TITLE": "A", "IDS": ["1", "2"]}, "filter": {">ID": "5"}},
    )
    form = {
        "auth": token,
        "fields[TITLE]": "A",
        "fields[IDS][0]": "1",
        "fields[IDS][1]": "2",
        "filter[>ID]": "5",
    }
    as_form = requests.post(base, data=form)
    as_multipart = requests.post(base, files={k: (None, v) for k, v in form.items()})
    as_query = requests.get(base, params=form)
    for reply in (as_json, as_form, as_multipart, as_query):
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["result"]["params"] == want
        assert body["result"]["app"] == oauth_app["client_id"]
        assert set(body["time"]) >= {
            "start",
            "finish",
            "duration",
            "processing",
            "date_start",
            "date_finish",
            "operating",
            "operating_reset_at",
        }


def test_method_case_and_json_suffix(fake_webhook: str) -> None:
    for name in ("server.time", "SERVER.TIME", "Server.Time.json", "server.time.json"):
        reply = requests.post(fake_webhook + name)
        assert reply.status_code == 200, name
        assert reply.json()["result"].startswith("20")


def test_auth_in_query_with_json_body(fakeportal_server: Server, oauth_app: dict[str, Any]) -> None:
    token = oauth_app["tokens"]["access_token"]
    reply = requests.post(
        f"{fakeportal_server.url}/rest/{ECHO_METHOD}?auth={token}", json={"x": "1"}
    )
    assert reply.status_code == 200
    assert reply.json()["result"]["params"] == {"x": "1"}


def test_unknown_method_404(fake_webhook: str) -> None:
    reply = requests.post(fake_webhook + "no.such.method")
    assert reply.status_code == 404
    assert reply.json() == {
        "error": "ERROR_METHOD_NOT_FOUND",
        "error_description": "Method not found!",
    }


def test_auth_errors(fakeportal_server: Server, fake_portal: Portal, fake_webhook: str) -> None:
    url = fakeportal_server.url
    none = requests.post(f"{url}/rest/profile")
    assert none.status_code == 401 and none.json()["error"] == "NO_AUTH_FOUND"
    bad = requests.post(f"{url}/rest/profile", json={"auth": "nonsense"})
    assert bad.status_code == 401
    assert bad.json() == {
        "error": "invalid_token",
        "error_description": "Unable to get application by token",
    }
    wrong_code = fake_webhook.replace("/rest/1/", "/rest/1/x").rstrip("/") + "/profile"
    assert requests.post(wrong_code).status_code == 401
    wrong_user = fake_webhook.replace("/rest/1/", "/rest/2/") + "profile"
    assert requests.post(wrong_user).json()["error"] == "NO_AUTH_FOUND"
    assert requests.post(fake_webhook + "profile").status_code == 200


def test_webhook_is_routed_to_its_portal(
    fakeportal_server: Server, fake_world: World, fake_portal: Portal
) -> None:
    other = fake_world.add_portal("other.bitrix24.test")
    hook_a = admin.create_webhook(fake_world, fake_portal.member_id)["url"]
    hook_b = admin.create_webhook(fake_world, other.member_id, user_id=3)["url"]
    assert hook_b.startswith(fakeportal_server.url + "/rest/3/")
    requests.post(hook_a + "server.time")
    requests.post(hook_b + ECHO_METHOD).json()
    assert requests.post(hook_b + ECHO_METHOD).json()["result"]["user"] == 3
    assert fake_portal.requests["server.time"] == 1 and fake_portal.request_total == 1
    assert other.requests[ECHO_METHOD] == 2 and other.request_total == 2


def test_scope_from_schema(fake_world: World, fake_portal: Portal) -> None:
    """A method without its own scope takes its schema's (calendar.resource.delete: calendar)."""
    name = "calendar.resource.delete"
    with temporary_method(name, lambda call: True):
        hook = admin.create_webhook(fake_world, fake_portal.member_id, scope=["crm"])["url"]
        reply = requests.post(hook + name, json={"resourceId": 1})
        assert reply.status_code == 403
        assert reply.json() == {
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the "
            "webhook token",
        }
        assert requests.post(hook + "scope").json()["result"] == ["crm"]
        full = admin.create_webhook(fake_world, fake_portal.member_id)["url"]
        assert requests.post(full + name, json={"resourceId": 1}).json()["result"] is True


def test_token_scope_comes_from_the_app(
    fakeportal_server: Server, oauth_app: dict[str, Any]
) -> None:
    name = "calendar.resource.delete"
    with temporary_method(name, lambda call: True):
        reply = requests.post(
            f"{fakeportal_server.url}/rest/{name}",
            json={"auth": oauth_app["tokens"]["access_token"], "resourceId": 1},
        )
        assert reply.status_code == 403
        assert reply.json()["error_description"] == (
            "The request requires higher privileges than provided by the access token"
        )


def test_paging_total_next_and_start_minus_one(fake_portal: Portal, fake_webhook: str) -> None:
    _fill_rows(fake_portal, 120)
    first = requests.post(fake_webhook + ROWS_METHOD).json()
    assert len(first["result"]) == 50 and first["total"] == 120 and first["next"] == 50
    last = requests.post(fake_webhook + ROWS_METHOD, json={"start": 100}).json()
    assert [r["ID"] for r in last["result"]] == [str(i) for i in range(101, 121)]
    assert last["total"] == 120 and "next" not in last
    fast = requests.post(fake_webhook + ROWS_METHOD, json={"start": -1}).json()
    assert len(fast["result"]) == 50 and fast["total"] == 0 and "next" not in fast


def test_fast_bitrix24_webhook_call_get_all_get_by_id(
    fake_portal: Portal, fake_webhook: str
) -> None:
    _fill_rows(fake_portal, 130)
    client = Bitrix(fake_webhook, verbose=False)
    rows = client.get_all(ROWS_METHOD)
    assert sorted(int(r["ID"]) for r in rows) == list(range(1, 131))
    assert client.call("server.time", {"x": "1"}).startswith("20")
    me = client.call("user.current", raw=True)
    assert me["result"]["ID"] == "1"
    echo = client.call(ECHO_METHOD, {"fields": {"TITLE": "x", "N": 5}})
    # fast_bitrix24 returns a dict result of a single call() keyed by its batch label
    assert echo == {
        "order0000000000": {"params": {"fields": {"TITLE": "x", "N": "5"}}, "user": 1, "app": None}
    }
    by_id = client.get_by_ID(ECHO_METHOD, [7, 8])
    assert set(by_id) == {"7", "8"}
    assert by_id["7"]["params"] == {"ID": "7"}


def test_unknown_params_recorded_and_required_checked(
    fake_world: World, fake_portal: Portal, fake_webhook: str
) -> None:
    name = "calendar.resource.update"  # schema: resourceId and name required
    with temporary_method(name, lambda call: True):
        missing = requests.post(fake_webhook + name, json={"name": "Room", "bogus": 1})
        assert missing.status_code == 400
        assert missing.json() == {
            "error": 100,
            "error_description": "Could not find value for parameter {resourceId}",
        }
        ok = requests.post(
            fake_webhook + name, json={"RESOURCEID": 5, "Name": "Room", "bogus": 1, "__x": 1}
        )
        assert ok.status_code == 200
    assert (name, "bogus") in fake_portal.unknown_params
    assert {param for _, param in fake_portal.unknown_params} == {"bogus"}
    assert [name, "bogus"] in admin.unknown_params(fake_world, fake_portal.member_id)
    assert admin.unknown_params(fake_world, fake_portal.member_id, clear=True)
    assert fake_portal.unknown_params == []


def test_handler_opting_out_of_required_check(fake_webhook: str) -> None:
    name = "calendar.resource.update"

    def own(call: Call) -> Any:
        raise ApiError("ERROR_ARGUMENT", "own validation", 400)

    with temporary_method(name, own, validates=True):
        reply = requests.post(fake_webhook + name)
    assert reply.status_code == 400
    assert reply.json() == {"error": "ERROR_ARGUMENT", "error_description": "own validation"}


def test_unexpected_handler_error_is_500(fake_webhook: str) -> None:
    def boom(call: Call) -> Any:
        raise RuntimeError("bug")

    with temporary_method("test.core.boom", boom):
        reply = requests.post(fake_webhook + "test.core.boom")
    assert reply.status_code == 500
    assert reply.json()["error"] == "INTERNAL_SERVER_ERROR"


def test_system_methods(fake_webhook: str) -> None:
    events = requests.post(fake_webhook + "events").json()["result"]
    assert "ONCRMDEALUPDATE" in events and "ONAPPINSTALL" in events
    names = requests.post(fake_webhook + "methods", json={"full": "true"}).json()["result"]
    assert "batch" in names and "server.time" in names
    profile = requests.post(fake_webhook + "profile").json()["result"]
    assert profile["ID"] == "1" and profile["ADMIN"] is True


def test_app_info_needs_an_app(
    fakeportal_server: Server, oauth_app: dict[str, Any], fake_webhook: str
) -> None:
    info = requests.post(
        f"{fakeportal_server.url}/rest/app.info",
        json={"auth": oauth_app["tokens"]["access_token"]},
    ).json()["result"]
    assert info["CODE"] == oauth_app["client_id"] and info["STATUS"] == "L"
    denied = requests.post(fake_webhook + "app.info")
    assert denied.status_code == 403


def test_wire_log_records_requests_without_auth(
    fake_world: World, fake_portal: Portal, oauth_app: dict[str, Any], fakeportal_server: Server
) -> None:
    token = oauth_app["tokens"]["access_token"]
    requests.post(f"{fakeportal_server.url}/rest/{ECHO_METHOD}", json={"auth": token, "a": "1"})
    log = admin.wire_log(fake_world, fake_portal.member_id, direction="in")
    assert log[-1]["name"] == ECHO_METHOD and log[-1]["status"] == 200
    assert log[-1]["request"] == {"a": "1"}
    assert token not in repr(log)


@pytest.mark.parametrize("path", ["/rest/", "/rest/1/code/", "/nothing"])
def test_odd_paths_answer_json_404(fakeportal_server: Server, path: str) -> None:
    reply = requests.post(fakeportal_server.url + path)
    assert reply.status_code == 404
    assert "error" in reply.json()
