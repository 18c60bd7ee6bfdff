"""calendar.event.add / calendar.accessibility.get as PROTOCOL §16 describes them: zones of
from/to, the company calendar, parameter checks, the busy items' fields and errors."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from fakeportal.state import Portal, World
from tests.support import WebhookClient as Client


@pytest.fixture
def client(fake_world: World, fake_portal: Portal, fake_webhook: str) -> Client:
    return Client(fake_world, fake_portal, fake_webhook)


def ts(text: str, zone: str) -> str:
    return str(int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()))


def busy(client: Client, user_id: int, day: str) -> list[dict]:
    return client.ok("calendar.accessibility.get", users=[user_id], **{"from": day, "to": day})[
        str(user_id)
    ]


def test_from_and_to_are_read_in_the_given_zone_unless_they_carry_an_offset(client) -> None:
    client.ok("calendar.event.add", type="user", ownerId=2, name="Warsaw",
              timezone_from="Europe/Warsaw",
              **{"from": "2026-12-01 10:00:00", "to": "2026-12-01 11:00:00"})  # fmt: skip
    offset = {"from": "2026-12-01T13:00:00+01:00", "to": "2026-12-01T14:00:00+01:00"}
    client.ok("calendar.event.add", type="user", ownerId=2, name="Offset",
              timezone_from="Asia/Tokyo", **offset)  # fmt: skip
    items = busy(client, 2, "2026-12-01")
    by_name = {i["NAME"]: i for i in items}
    assert by_name["Warsaw"]["DATE_FROM_TS_UTC"] == ts("2026-12-01T10:00:00", "Europe/Warsaw")
    assert by_name["Warsaw"]["DATE_TO_TS_UTC"] == ts("2026-12-01T11:00:00", "Europe/Warsaw")
    assert by_name["Offset"]["DATE_FROM_TS_UTC"] == ts("2026-12-01T13:00:00", "Europe/Warsaw")
    item = by_name["Warsaw"]
    assert {"ID", "NAME", "DATE_FROM", "DATE_TO", "~USER_OFFSET_FROM", "DT_SKIP_TIME", "TZ_FROM",
            "ACCESSIBILITY", "IMPORTANCE"} <= set(item)  # fmt: skip
    assert isinstance(item["DATE_FROM_TS_UTC"], str) and "T" not in item["DATE_FROM"]


def test_without_a_zone_the_callers_zone_then_the_portals(client) -> None:
    with client.world.lock:
        client.portal.table("user")[1]["TIME_ZONE"] = "America/New_York"
    client.ok("calendar.event.add", type="user", ownerId=2, name="NY",
              **{"from": "2026-12-01 10:00:00", "to": "2026-12-01 11:00:00"})  # fmt: skip
    [item] = busy(client, 2, "2026-12-01")
    assert item["DATE_FROM_TS_UTC"] == ts("2026-12-01T10:00:00", "America/New_York")


def test_the_company_calendar_takes_owner_zero_and_values_are_checked(client) -> None:
    assert client.ok("calendar.event.add", type="company_calendar", ownerId=0, name="Party",
                     **{"from": "2026-12-18", "to": "2026-12-18"}, skip_time="Y") > 0  # fmt: skip
    for bad in ({"type": "team"}, {"accessibility": "away"}, {"importance": "urgent"},
                {"ownerId": "x"}):  # fmt: skip
        params = {"type": "user", "ownerId": 2, "name": "X", "from": "2026-12-01 10:00",
                  "to": "2026-12-01 11:00", **bad}  # fmt: skip
        status, body = client.call("calendar.event.add", **params)
        assert status == 400 and body["error"] == "", bad
        assert "Invalid value for the parameter" in body["error_description"], bad


def test_missing_parameters_of_accessibility_get_are_named(client) -> None:
    for missing in ("users", "from", "to"):
        params = {"users": [2], "from": "2026-12-01", "to": "2026-12-01"}
        params.pop(missing)
        status, body = client.call("calendar.accessibility.get", **params)
        assert (status, body["error"]) == (400, "")
        assert body["error_description"] == (
            f'The required parameter "{missing}" for the method "calendar.accessibility.get"'
            " is not set."
        )
