"""find_free_slot end to end: the furniture maker's measurer is booked at the first free time,
or the manager gets the first free slots on the deal to agree with the buyer in one call."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.calendar import FixedClock
from fakeportal.crm import add_user_field, deals
from fakeportal.crm import calendar as fake_calendar

WARSAW = ZoneInfo("Europe/Warsaw")
MEASURER, SECOND = 3, 4
MEASUREMENT = "PREPARATION"
# Tuesday 10 Nov 2026, 09:00 in Warsaw; Wednesday 11 Nov is a public holiday in Poland.
NOW = datetime(2026, 11, 10, 8, 0, tzinfo=UTC)


@pytest.fixture
def stack_clock() -> FixedClock:
    return FixedClock(NOW)


def local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=WARSAW)


def busy(stack, user_id: int, *spans: tuple[datetime, datetime]) -> None:
    with stack.world.lock:
        for start, end in spans:
            fake_calendar.add_event(stack.portal, user_id, "Another client", start, end)


def setup(stack, **properties: Any) -> None:
    stack.install()
    stack.services.store.set_setting(
        stack.member_id, "calendar", {"timezone": "Europe/Warsaw", "country": "PL"}
    )
    with stack.world.lock:
        add_user_field(stack.portal, "DEAL", "MEASUREMENT", "datetime", label="Measurement")
    stack.place_robot("find_free_slot", MEASUREMENT, {"users": [f"user_{MEASURER}"], **properties})


def enter(stack) -> int:
    with stack.world.lock:
        deal_id = deals.create_deal(stack.portal, {"TITLE": "Kitchen, Nowak"}, user_id=1)
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": MEASUREMENT}})
    stack.settle()
    return deal_id


def flow(stack, deal_id: int) -> dict[str, Any]:
    return stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)[-1]


def comments(stack, deal_id: int) -> list[str]:
    rows = stack.portal_call(
        "crm.timeline.comment.list", {"filter": {"ENTITY_TYPE": "deal", "ENTITY_ID": deal_id}}
    )
    return [r["COMMENT"] for r in rows]


def test_the_measurer_is_booked_at_the_first_gap_after_the_holiday(stack) -> None:
    setup(stack, duration="90 minutes", start_field="UF_CRM_MEASUREMENT", book="Y")
    # Tuesday: a one-hour gap only (10:00-11:00) and 17:00-18:00; Wednesday is a holiday.
    busy(stack, MEASURER, (local(10, 9), local(10, 10)), (local(10, 11), local(10, 17)))
    busy(stack, MEASURER, (local(12, 9), local(12, 9, 30)))  # Thursday from 09:30 free
    stack.admin.requests(member_id=stack.member_id, reset=True)
    deal_id = enter(stack)
    step = flow(stack, deal_id)["robots"][0]
    values = step["return_values"]
    assert values["user"] == f"user_{MEASURER}"
    assert values["slot_start"].startswith("2026-11-12T09:30:00")
    assert values["slot_end"].startswith("2026-11-12T11:00:00")
    events = stack.portal_call(
        "calendar.event.get",
        {"type": "user", "ownerId": MEASURER, "from": "2026-11-12", "to": "2026-11-12"},
    )
    booked = [e for e in events if e["NAME"] == "Kitchen, Nowak"]
    assert len(booked) == 1
    assert booked[0]["DATE_FROM_TS_UTC"] == str(int(local(12, 9, 30).timestamp()))
    assert f"/crm/deal/details/{deal_id}/" in booked[0]["DESCRIPTION"]
    deal = stack.portal_call("crm.deal.get", {"id": deal_id})
    assert str(deal["UF_CRM_MEASUREMENT"]).startswith("2026-11-12T09:30:00")
    methods = stack.admin.requests(member_id=stack.member_id)["methods"]
    # One batch reads; the answer and the writes go in one more.
    assert methods["batch"] == 2 and methods["bizproc.event.send"] == 1


def test_finding_only_lists_the_first_slots_skipping_the_weekend(stack) -> None:
    stack.services.clock.set(datetime(2026, 11, 13, 15, 0, tzinfo=UTC))  # Friday 16:00
    setup(stack, duration="2 hours", book="N", count="3")
    deal_id = enter(stack)
    values = flow(stack, deal_id)["robots"][0]["return_values"]
    assert values["slot_start"].startswith("2026-11-13T16:00:00")
    [note] = comments(stack, deal_id)
    lines = note.splitlines()
    assert lines[0] == "Free slots (120 min):"
    assert [line.split(" — ")[0] for line in lines[1:]] == [
        "Fri 2026-11-13 16:00–18:00",
        "Mon 2026-11-16 09:00–11:00",
        "Mon 2026-11-16 11:00–13:00",
    ]
    events = stack.portal_call("calendar.event.get", {"type": "user", "ownerId": MEASURER})
    assert events == []  # nothing booked


def test_the_second_measurer_is_chosen_when_the_first_is_busy(stack) -> None:
    setup(stack, duration="2 hours", users=[f"user_{MEASURER}", f"user_{SECOND}"], days="1")
    busy(stack, MEASURER, (local(10, 9), local(10, 18)))
    deal_id = enter(stack)
    values = flow(stack, deal_id)["robots"][0]["return_values"]
    assert values["user"] == f"user_{SECOND}"
    assert values["slot_start"].startswith("2026-11-10T09:00:00")


def test_the_workflow_log_says_when_no_one_is_free(stack) -> None:
    setup(stack, duration="2 hours", days="2")  # Tuesday and the holiday
    busy(stack, MEASURER, (local(10, 8), local(10, 17)))
    deal_id = enter(stack)
    log = flow(stack, deal_id)["log"]
    assert any("no one is free for 2 hours" in line for line in log), log


def test_an_unreadable_duration_fails_the_robot(stack) -> None:
    setup(stack, duration="a while")
    deal_id = enter(stack)
    log = flow(stack, deal_id)["log"]
    assert any("duration 'a while'" in line for line in log), log
