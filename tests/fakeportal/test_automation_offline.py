"""The offline event queue as the portal keeps it (PROTOCOL.md §6): MESSAGE_ID, the merge
rule, reservation, errors, event.offline.* parameters, ``auth_connector`` on writes and
reads, ONOFFLINEEVENT throttling, and an app that is down."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests

from fakeportal import crm
from fakeportal.automation import outbox, testing
from fakeportal.automation.recorder import Recorder
from fakeportal.automation.testing import InstalledApp
from fakeportal.state import Portal, World
from fakeportal.testing import AdminClient

recorder = testing.recorder
installed_app = testing.installed_app
KEY = "our_sync"


def error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"]


def rows(app: InstalledApp, connector: str | None = None, **params: Any) -> list[dict[str, Any]]:
    """Every row of the app's queue (of ``connector``), as event.offline.list shows them."""
    if connector is not None:
        params["auth_connector"] = connector
    return app.ok("event.offline.list", **params)


def ids_of(found: list[dict[str, Any]]) -> list[str]:
    return [r["EVENT_DATA"]["FIELDS"]["ID"] for r in found]


def new_deal(app: InstalledApp, user_id: int | None = 1) -> str:
    with app.world.lock:
        return str(crm.create_deal(app.portal, {"TITLE": "d"}, user_id=user_id))


def touch(app: InstalledApp, deal_id: str, user_id: int | None = 1) -> None:
    with app.world.lock:
        crm.update_deal(app.portal, int(deal_id), {"TITLE": "changed"}, user_id=user_id)


def test_event_get_lists_offline_bindings_with_their_connector(app: InstalledApp) -> None:
    handler = f"{app.recorder.url}/events"
    assert app.ok("event.bind", event="ONCRMDEALADD", handler=handler)
    assert app.ok("event.bind", event="ONCRMDEALADD", event_type="offline")
    assert app.ok("event.bind", event="ONCRMDEALADD", event_type="offline", auth_connector=KEY)
    dup = app.rest("event.bind", event="ONCRMDEALADD", event_type="offline", auth_connector=KEY)
    assert error(dup) == (400, "ERROR_CORE", "Handler already binded")
    assert app.ok("event.get") == [
        {"event": "ONCRMDEALADD", "handler": handler, "auth_type": "0", "offline": 0},
        {"event": "ONCRMDEALADD", "connector_id": "", "offline": 1},
        {"event": "ONCRMDEALADD", "connector_id": KEY, "offline": 1},
    ]
    gone = app.ok("event.unbind", event="ONCRMDEALADD", event_type="offline", auth_connector=KEY)
    assert gone == {"count": 1}
    assert [b.get("connector_id") for b in app.ok("event.get")] == [None, ""]


@pytest.fixture
def app(installed_app: InstalledApp) -> InstalledApp:
    installed_app.world.config["bucket_size"] = 100000
    return installed_app


@pytest.fixture
def queued(app: InstalledApp) -> InstalledApp:
    """The app with ONCRMDEALADD and ONCRMDEALUPDATE bound offline (no connector)."""
    for name in ("ONCRMDEALADD", "ONCRMDEALUPDATE"):
        assert app.ok("event.bind", event=name, event_type="offline")
    return app


def test_message_id_and_one_row_per_event_and_object(queued: InstalledApp) -> None:
    app = queued
    deal = new_deal(app)
    touch(app, deal, user_id=1)
    [added, updated] = rows(app)
    assert (added["EVENT_NAME"], updated["EVENT_NAME"]) == ("ONCRMDEALADD", "ONCRMDEALUPDATE")
    assert updated["EVENT_DATA"] == {"FIELDS": {"ID": deal}}
    raw = f'ONCRMDEALUPDATE|{{"FIELDS":{{"ID":"{deal}"}}}}'
    assert updated["MESSAGE_ID"] == hashlib.md5(raw.encode()).hexdigest()
    assert (updated["PROCESS_ID"], updated["ERROR"]) == ("", "0")
    # a later change of the same deal merges: same row, newer TIMESTAMP_X and user
    app.world.advance(timedelta(seconds=30))
    touch(app, deal, user_id=3)
    [_, merged] = rows(app)
    assert (merged["ID"], merged["MESSAGE_ID"]) == (updated["ID"], updated["MESSAGE_ID"])
    assert merged["TIMESTAMP_X"] > updated["TIMESTAMP_X"]
    assert merged["EVENT_ADDITIONAL"] == {"user_id": "3"}
    touch(app, deal, user_id=None)  # by a robot: no user
    assert rows(app)[1]["EVENT_ADDITIONAL"] is False
    # get's order is TIMESTAMP_X ASC: the oldest last change first
    other = new_deal(app)
    app.world.advance(timedelta(seconds=5))
    touch(app, deal)
    assert [r["ID"] for r in rows(app)] == sorted((r["ID"] for r in rows(app)), key=int)
    got = app.ok("event.offline.get", clear=0)
    assert [(r["EVENT_NAME"], r["EVENT_DATA"]["FIELDS"]["ID"]) for r in got["events"]] == [
        ("ONCRMDEALADD", deal),
        ("ONCRMDEALADD", other),
        ("ONCRMDEALUPDATE", deal),
    ]


def test_reserved_rows_are_hidden_and_a_change_makes_a_second_row(queued: InstalledApp) -> None:
    app = queued
    deal = new_deal(app)
    touch(app, deal)
    only_updates = {"EVENT_NAME": "ONCRMDEALUPDATE"}
    first = app.ok("event.offline.get", clear=0, filter=only_updates)
    assert len(first["process_id"]) == 32 and ids_of(first["events"]) == [deal]
    # reserved rows are not for other get calls
    assert app.ok("event.offline.get", clear=0, filter=only_updates)["events"] == []
    touch(app, deal)  # cannot merge into the reserved row: a second, unreserved one
    updates = rows(app, filter=only_updates)
    assert [r["PROCESS_ID"] for r in updates] == [first["process_id"], ""]
    assert updates[0]["MESSAGE_ID"] == updates[1]["MESSAGE_ID"]
    touch(app, deal)  # ...into which later changes merge
    assert len(rows(app, filter=only_updates)) == 2
    second = app.ok("event.offline.get", clear=0)
    assert second["process_id"] != first["process_id"]
    assert [r["EVENT_NAME"] for r in second["events"]] == ["ONCRMDEALADD", "ONCRMDEALUPDATE"]
    assert {r["ID"] for r in second["events"]}.isdisjoint({r["ID"] for r in first["events"]})
    again = app.ok("event.offline.get", process_id=first["process_id"], clear=0)
    assert again == first
    # re-reading without clear=0 clears, as a first read does
    cleared = app.ok("event.offline.get", process_id=first["process_id"])
    assert cleared == {"process_id": None, "events": first["events"]}
    assert len(rows(app)) == 2


def test_offline_get_parameters(queued: InstalledApp) -> None:
    app = queued
    deals = [new_deal(app) for _ in range(3)]
    for deal in deals:
        touch(app, deal)
    for bad in (0, -1, "abc"):
        answer = app.rest("event.offline.get", limit=bad)
        assert error(answer) == (400, "ERROR_ARGUMENT", "Value must be positive integer")
    adds = app.ok("event.offline.get", clear=0, filter={"=EVENT_NAME": "oncrmdealadd"})
    assert ids_of(adds["events"]) == deals
    app.ok("event.offline.clear", process_id=adds["process_id"])
    first_id = int(rows(app)[0]["ID"])
    newer = app.ok("event.offline.get", clear=0, filter={">ID": first_id}, order={"ID": "DESC"})
    assert ids_of(newer["events"]) == [deals[2], deals[1]]
    app.ok("event.offline.clear", process_id=newer["process_id"])
    # unknown filter fields are dropped; limit cuts; clear=1 (default) deletes what it returns
    got = app.ok("event.offline.get", filter={"USER_ID": 99}, limit=5)
    assert got["process_id"] is None and ids_of(got["events"]) == [deals[0]]
    assert rows(app) == []


def test_offline_error_marks_releases_and_keeps_one_row(queued: InstalledApp) -> None:
    app = queued
    deal, other = new_deal(app), new_deal(app)
    touch(app, deal)
    batch = app.ok("event.offline.get", clear=0, filter={"EVENT_NAME": "ONCRMDEALUPDATE"})
    [row] = batch["events"]
    touch(app, deal)  # arrives while reserved: a second row
    assert len(rows(app, filter={"MESSAGE_ID": row["MESSAGE_ID"]})) == 2
    missing = app.rest("event.offline.error", process_id=batch["process_id"])
    assert error(missing) == (400, "ERROR_ARGUMENT", "Argument 'MESSAGE_ID' is null or empty")
    scalar = app.rest("event.offline.error", process_id=batch["process_id"], message_id="x")
    assert error(scalar)[:2] == (400, "ERROR_ARGUMENT")
    no_process = app.rest("event.offline.error", message_id=[row["MESSAGE_ID"]])
    assert error(no_process) == (400, "ERROR_ARGUMENT", "Argument 'PROCESS_ID' is null or empty")
    assert app.ok(
        "event.offline.error", process_id=batch["process_id"], message_id=[row["MESSAGE_ID"]]
    )
    [marked] = rows(app, filter={"MESSAGE_ID": row["MESSAGE_ID"]})
    assert (marked["ID"], marked["ERROR"], marked["PROCESS_ID"]) == (row["ID"], "1", "")
    assert rows(app, filter={"ERROR": 1}) == [marked]
    plain = app.ok("event.offline.get", clear=0)
    assert [r["EVENT_NAME"] for r in plain["events"]] == ["ONCRMDEALADD", "ONCRMDEALADD"]
    assert ids_of(plain["events"]) == [deal, other]
    # a later change of the deal merges into the error row, which stays an error
    app.world.advance(timedelta(seconds=5))
    touch(app, deal, user_id=2)
    [still] = rows(app, filter={"MESSAGE_ID": row["MESSAGE_ID"]})
    assert (still["ID"], still["ERROR"], still["EVENT_ADDITIONAL"]) == (
        row["ID"],
        "1",
        {"user_id": "2"},
    )
    errors = app.ok("event.offline.get", error=1)
    assert [r["ID"] for r in errors["events"]] == [row["ID"]]
    assert rows(app, filter={"ERROR": 1}) == []


def test_offline_clear_by_message_id_or_id(queued: InstalledApp) -> None:
    app = queued
    deals = [new_deal(app) for _ in range(3)]
    batch = app.ok("event.offline.get", clear=0)
    process = batch["process_id"]
    one, two, three = batch["events"]
    for params, text in [
        ({"message_id": ["short"]}, "Argument 'MESSAGE_ID' must hold 32-character message ids"),
        ({"id": ["x"]}, "Argument 'ID' must hold positive integers"),
        ({"id": [0]}, "Argument 'ID' must hold positive integers"),
        ({"id": 5}, "Argument 'ID' must be an array"),
    ]:
        answer = app.rest("event.offline.clear", process_id=process, **params)
        assert error(answer) == (400, "ERROR_ARGUMENT", text)
    missing = app.rest("event.offline.clear")
    assert error(missing) == (400, "ERROR_ARGUMENT", "Argument 'PROCESS_ID' is null or empty")
    # message_id wins over id
    assert app.ok(
        "event.offline.clear", process_id=process, message_id=[one["MESSAGE_ID"]], id=[two["ID"]]
    )
    assert ids_of(rows(app)) == deals[1:]
    assert app.ok("event.offline.clear", process_id=process, id=[int(three["ID"])])
    assert ids_of(rows(app)) == [deals[1]]
    assert app.ok("event.offline.clear", process_id="not-mine") is True  # nothing of it
    assert app.ok("event.offline.clear", process_id=process) is True  # the rest of the batch
    assert rows(app) == []


def test_offline_methods_need_an_app_admin(queued: InstalledApp, fake_webhook: str) -> None:
    app = queued
    for name in ("event.offline.get", "event.offline.list", "event.offline.clear"):
        hook = requests.post(f"{fake_webhook}{name}", json={"process_id": "x"}, timeout=5)
        assert error(hook) == (403, "WRONG_AUTH_TYPE", "Application context required")
        user = app.rest(name, token=app.token_for(3), process_id="x")
        assert error(user) == (403, "ACCESS_DENIED", "Access denied!")


# auth_connector ---------------------------------------------------------------------------
@pytest.fixture
def two_queues(
    app: InstalledApp, fake_world: World, fake_portal: Portal
) -> Iterator[dict[str, Any]]:
    """The app's ONCRMDEALUPDATE offline without a connector and with KEY, plus online; and a
    second app with a connector-less offline binding."""
    for params in ({}, {"auth_connector": KEY}):
        assert app.ok("event.bind", event="ONCRMDEALUPDATE", event_type="offline", **params)
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", handler=f"{app.recorder.url}/online")
    other_rec = Recorder().start()
    other = testing.install(fake_world, fake_portal, other_rec)
    assert other.ok("event.bind", event="ONCRMDEALUPDATE", event_type="offline")
    yield {"other": other}
    other_rec.stop()


def queues(app: InstalledApp, other: InstalledApp) -> dict[str, list[str]]:
    return {
        "plain": ids_of(rows(app)),
        KEY: ids_of(rows(app, KEY)),
        "other": ids_of(rows(other)),
    }


def test_auth_connector_keeps_an_apps_own_writes_out(
    app: InstalledApp, two_queues: dict[str, Any], fake_webhook: str, fake_admin: AdminClient
) -> None:
    other = two_queues["other"]
    deals = [new_deal(app) for _ in range(6)]
    update = {"fields": {"TITLE": "by the app"}}
    # the app without a connector: skipped for its connector-less binding (server code rule)
    app.ok("crm.deal.update", id=deals[0], **update)
    # the app with its connector: skipped for that connector's binding only
    app.ok("crm.deal.update", id=deals[1], auth_connector=KEY, **update)
    # a batch: every command gets the batch's auth_connector; a command's own is ignored
    app.ok(
        "batch",
        halt=0,
        auth_connector=KEY,
        cmd={"a": f"crm.deal.update?id={deals[2]}&fields[TITLE]=b&auth_connector=other"},
    )
    # a user's webhook, the UI (admin actions) and automation: always queued
    requests.post(
        f"{fake_webhook}crm.deal.update",
        json={"id": deals[3], "auth_connector": KEY, **update},
        timeout=5,
    ).raise_for_status()
    fake_admin.update_deal(member_id=app.portal.member_id, id=int(deals[4]), fields={"TITLE": "u"})
    touch(app, deals[5], user_id=None)
    assert queues(app, other) == {
        "plain": [deals[1], deals[2], deals[3], deals[4], deals[5]],
        KEY: [deals[0], deals[3], deals[4], deals[5]],
        "other": deals,
    }
    # auth_connector is a credential of every request, not an unknown parameter
    assert fake_admin.unknown_params(member_id=app.portal.member_id) == []
    # online deliveries are not affected
    posts = app.recorder.wait_for("/online", 6)
    assert sorted(p.form["data[FIELDS][ID]"] for p in posts) == sorted(deals)


def test_reading_a_connector_queue_needs_its_auth_connector(
    app: InstalledApp, two_queues: dict[str, Any]
) -> None:
    deal = new_deal(app)
    touch(app, deal)
    [plain] = rows(app)
    [keyed] = rows(app, KEY)
    assert plain["ID"] != keyed["ID"] and plain["MESSAGE_ID"] == keyed["MESSAGE_ID"]
    batch = app.ok("event.offline.get", clear=0, auth_connector=KEY)
    assert [r["ID"] for r in batch["events"]] == [keyed["ID"]]
    process = batch["process_id"]
    # without the connector the batch is not the caller's: nothing happens to it
    assert app.ok("event.offline.get", process_id=process, clear=0)["events"] == []
    assert app.ok("event.offline.error", process_id=process, message_id=[keyed["MESSAGE_ID"]])
    assert app.ok("event.offline.clear", process_id=process)
    assert rows(app, KEY)[0]["PROCESS_ID"] == process
    assert app.ok(
        "event.offline.error",
        process_id=process,
        message_id=[keyed["MESSAGE_ID"]],
        auth_connector=KEY,
    )
    assert rows(app, KEY)[0]["ERROR"] == "1" and rows(app)[0]["ERROR"] == "0"
    again = app.ok("event.offline.get", clear=0, error=1, auth_connector=KEY)
    assert app.ok("event.offline.clear", process_id=again["process_id"], auth_connector=KEY)
    assert rows(app, KEY) == [] and [r["ID"] for r in rows(app)] == [plain["ID"]]


def test_a_trigger_move_inside_the_apps_call_is_queued(
    app: InstalledApp, fake_admin: AdminClient
) -> None:
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", event_type="offline")
    assert app.ok("crm.automation.trigger.add", CODE="paid", NAME="Invoice paid")
    fake_admin.add_trigger_rule(
        member_id=app.portal.member_id, category_id=0, stage_id="EXECUTING",
        client_id=app.client_id, trigger_code="paid",
    )  # fmt: skip
    deal = new_deal(app)
    assert app.ok("crm.automation.trigger.execute", CODE="paid", OWNER_TYPE_ID=2, OWNER_ID=deal)
    [row] = rows(app)
    assert ids_of([row]) == [deal] and row["EVENT_ADDITIONAL"] is False


# ONOFFLINEEVENT --------------------------------------------------------------------------
def notices(app: InstalledApp, path: str) -> list[Any]:
    app.idle()
    return app.recorder.received(path)


def test_onofflineevent_is_throttled_per_handler(app: InstalledApp, fake_webhook: str) -> None:
    url = app.recorder.url
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", event_type="offline")
    assert app.ok("event.bind", event="ONOFFLINEEVENT", handler=f"{url}/default")
    assert app.ok(
        "event.bind", event="ONOFFLINEEVENT", handler=f"{url}/slow", options={"minTimeout": 10}
    )
    assert app.ok(
        "event.bind", event="ONOFFLINEEVENT", handler=f"{url}/hit", options={"minTimeout": 0}
    )
    deals = [new_deal(app) for _ in range(3)]
    touch(app, deals[0])
    [first] = notices(app, "/default")
    assert first.form["event"] == "ONOFFLINEEVENT"
    assert not any(k.startswith("data") for k in first.form)  # data is empty
    assert first.form["auth[refresh_token]"] and first.form["auth[access_token]"]
    assert first.form["auth[application_token]"] == app.application_token
    touch(app, deals[1])  # within the second: none
    assert len(notices(app, "/default")) == 1
    app.world.advance(timedelta(seconds=2))
    touch(app, deals[1])
    assert len(notices(app, "/default")) == 2
    assert len(notices(app, "/slow")) == 1
    app.world.advance(timedelta(seconds=11))
    touch(app, deals[2])
    assert len(notices(app, "/slow")) == 2
    # minTimeout 0: at most one per portal hit (a batch of three changes is one hit)
    before = len(notices(app, "/hit"))
    cmd = {str(i): f"crm.deal.update?id={d}&fields[TITLE]=x{i}" for i, d in enumerate(deals)}
    requests.post(f"{fake_webhook}batch", json={"cmd": cmd}, timeout=5).raise_for_status()
    assert len(notices(app, "/hit")) == before + 1
    for deal in deals[:2]:
        requests.post(
            f"{fake_webhook}crm.deal.update", json={"id": deal, "fields": {"TITLE": "y"}}, timeout=5
        ).raise_for_status()
    assert len(notices(app, "/hit")) == before + 3


def test_no_onofflineevent_when_nothing_was_queued(app: InstalledApp) -> None:
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", event_type="offline")
    assert app.ok("event.bind", event="ONOFFLINEEVENT", handler=f"{app.recorder.url}/wake")
    deal = new_deal(app)
    app.ok("crm.deal.update", id=deal, fields={"TITLE": "own write, no row"})
    assert rows(app) == [] and notices(app, "/wake") == []


# the app is down -----------------------------------------------------------------------------
def _refused_url() -> str:
    """A URL on 127.0.0.1 whose port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/events"


def test_app_down_drops_online_deliveries_and_keeps_offline_rows(
    app: InstalledApp, fake_admin: AdminClient
) -> None:
    dead = _refused_url()
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", handler=dead)
    assert app.ok("event.bind", event="ONOFFLINEEVENT", handler=dead)
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", event_type="offline")
    deal = new_deal(app)
    member = app.portal.member_id
    since = len(fake_admin.wire_log(member_id=member))
    touch(app, deal)
    app.idle()
    outbox.runtime(app.world).tick()
    app.idle()
    sent = fake_admin.wire_log(member_id=member, since=since, direction="out", kind="event")
    assert sorted(r["name"] for r in sent) == ["ONCRMDEALUPDATE", "ONOFFLINEEVENT"]  # no retry
    for record in sent:
        assert record["status"] == 0 and "ConnectionError" in record["response"]
        assert record["request"]["url"] == dead
    assert ids_of(rows(app)) == [deal]  # the queue keeps the change for later
