"""event.bind and friends, and CRM event delivery with and without user tokens, over HTTP."""

from __future__ import annotations

import requests
from fast_bitrix24 import Bitrix

from fakeportal import crm
from fakeportal.automation import testing
from fakeportal.automation.testing import InstalledApp
from fakeportal.testing import AdminClient
from tests.support import EXAMPLES

recorder = testing.recorder
installed_app = testing.installed_app

USER_EVENT_KEYS = set(EXAMPLES["event_oncrmcontactadd_sdk_fixture"]["form_fields_derived"])
NO_USER_EVENT_KEYS = set(EXAMPLES["event_oncrmdealadd_outgoing_webhook"]["form_fields_derived"])


def error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"]


def test_bind_get_unbind_and_their_errors(installed_app: InstalledApp, fake_webhook: str) -> None:
    app = installed_app
    handler = f"{app.recorder.url}/events"
    assert app.ok("event.bind", event="ONCRMDEALADD", handler=handler) is True
    assert app.ok("event.bind", event="OnCrmDealUpdate", handler=handler, auth_type=3) is True
    dup = app.rest("event.bind", event="ONCRMDEALADD", handler=handler)
    assert error(dup) == (400, "ERROR_CORE", "Handler already binded")
    unknown = app.rest("event.bind", event="ONCRMDEALEXPLODE", handler=handler)
    assert error(unknown) == (400, "ERROR_EVENT_NOT_FOUND", "Event not found")
    hook = requests.post(
        f"{fake_webhook}event.bind", json={"event": "ONCRMDEALADD", "handler": handler}, timeout=5
    )
    assert error(hook)[:2] == (403, "ACCESS_DENIED")
    assert app.ok("event.get") == [
        {"event": "ONCRMDEALADD", "handler": handler, "auth_type": "0", "offline": 0},
        {"event": "ONCRMDEALUPDATE", "handler": handler, "auth_type": "3", "offline": 0},
    ]
    # auth_type 0 (default) removes only handlers without a user
    assert app.ok("event.unbind", event="ONCRMDEALUPDATE", handler=handler) == {"count": 0}
    assert app.ok("event.unbind", event="ONCRMDEALUPDATE", handler=handler, auth_type=3) == {
        "count": 1
    }
    assert app.ok("event.unbind", event="ONCRMDEALADD", handler=handler) == {"count": 1}
    assert app.ok("event.get") == []


def test_event_from_a_user_carries_that_users_tokens(installed_app: InstalledApp) -> None:
    app = installed_app
    assert app.ok("event.bind", event="ONCRMDEALADD", handler=f"{app.recorder.url}/events")

    async def token() -> str:
        return app.access_token

    client = Bitrix(app.endpoint, token_func=token, verbose=False)
    deal_id = client.call("crm.deal.add", {"fields": {"TITLE": "From REST"}})
    [post] = app.recorder.wait_for("/events")
    assert set(post.form) == USER_EVENT_KEYS
    assert post.form["event"] == "ONCRMDEALADD"
    assert post.form["data[FIELDS][ID]"] == str(deal_id)
    assert post.form["auth[user_id]"] == "1"
    assert post.form["auth[application_token]"] == app.application_token
    assert int(post.form["event_handler_id"]) > 0
    # the token in the event works for the follow-up read
    got = app.rest("crm.deal.get", token=post.form["auth[access_token]"], id=deal_id)
    assert got.json()["result"]["TITLE"] == "From REST"


def test_event_made_by_automation_has_no_tokens(installed_app: InstalledApp) -> None:
    app = installed_app
    handler = f"{app.recorder.url}/events"
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", handler=handler)
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", handler=f"{handler}/as5", auth_type=5)
    with app.world.lock:
        deal_id = crm.create_deal(app.portal, {"TITLE": "x"})
        crm.update_deal(app.portal, deal_id, {"TITLE": "by a robot"}, user_id=None)
    [post] = app.recorder.wait_for("/events")
    assert set(post.form) == NO_USER_EVENT_KEYS
    assert post.form["data[FIELDS][ID]"] == str(deal_id)
    assert post.form["auth[member_id]"] == app.portal.member_id
    [as_user] = app.recorder.wait_for("/events/as5")
    assert set(as_user.form) == USER_EVENT_KEYS
    assert as_user.form["auth[user_id]"] == "5"


def test_move_to_category_event(installed_app: InstalledApp) -> None:
    app = installed_app
    assert app.ok(
        "event.bind", event="ONCRMDEALMOVETOCATEGORY", handler=f"{app.recorder.url}/events"
    )
    with app.world.lock:
        category = crm.create_category(app.portal, "Service")
        deal_id = crm.create_deal(app.portal, {"TITLE": "x"}, user_id=1)
        crm.move_deal(app.portal, deal_id, f"C{category}:NEW", user_id=1)
    [post] = app.recorder.wait_for("/events")
    expected = set(EXAMPLES["event_oncrmdealmovetocategory_docs"]["form_fields_derived"])
    assert set(post.form) == expected - {"auth[refresh_token]"} | {"auth[expires]", "auth[user_id]"}
    assert post.form["data[FIELDS][CATEGORY_ID]"] == str(category)
    assert post.form["data[FIELDS][STAGE_ID]"] == f"C{category}:NEW"


def test_offline_events(installed_app: InstalledApp, fake_admin: AdminClient) -> None:
    app = installed_app
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", event_type="offline") is True
    assert app.ok("event.bind", event="ONOFFLINEEVENT", handler=f"{app.recorder.url}/offline")
    assert fake_admin.event_bindings(member_id=app.portal.member_id)[0]["offline"] == 1
    with app.world.lock:
        first = crm.create_deal(app.portal, {"TITLE": "a"}, user_id=1)
        second = crm.create_deal(app.portal, {"TITLE": "b"}, user_id=1)
        for title in ("a1", "a2", "a3"):
            crm.update_deal(app.portal, first, {"TITLE": title}, user_id=1)
        crm.update_deal(app.portal, second, {"TITLE": "b1"}, user_id=None)
    listed = app.rest("event.offline.list").json()
    assert listed["total"] == 2  # one row per object: the latest change wins
    assert {r["PROCESS_ID"] for r in listed["result"]} == {""}

    reserved = app.ok("event.offline.get", clear=0, limit=1)
    assert len(reserved["process_id"]) == 32
    [row] = reserved["events"]
    assert row["EVENT_NAME"] == "ONCRMDEALUPDATE"
    assert row["EVENT_DATA"] == {"FIELDS": {"ID": str(first)}}
    assert row["EVENT_ADDITIONAL"] == {"user_id": "1"}
    again = app.ok("event.offline.get", process_id=reserved["process_id"], clear=0)
    assert again["events"] == reserved["events"]
    assert app.ok(
        "event.offline.error", process_id=reserved["process_id"], message_id=[row["MESSAGE_ID"]]
    )
    rest = app.ok("event.offline.get")  # clear=1 by default
    assert rest["process_id"] is None
    assert [r["EVENT_DATA"]["FIELDS"]["ID"] for r in rest["events"]] == [str(second)]
    assert rest["events"][0]["EVENT_ADDITIONAL"] is False
    errors = app.ok("event.offline.get", error=1, clear=0)
    assert [r["MESSAGE_ID"] for r in errors["events"]] == [row["MESSAGE_ID"]]
    assert app.ok("event.offline.clear", process_id=errors["process_id"]) is True
    assert app.rest("event.offline.list").json()["total"] == 0
    missing = app.rest("event.offline.clear")
    assert missing.status_code == 400

    notices = app.recorder.wait_for("/offline")
    assert notices[0].form["event"] == "ONOFFLINEEVENT"
    assert "auth[refresh_token]" in notices[0].form
