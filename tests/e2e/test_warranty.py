"""Warranty expiry, end to end: the solar installer's won deal is copied to Service with its
warranty end date, and the hourly date-watch sweep moves it to post-warranty service on the
right day in the portal's calendar (Polish public holidays), once.

The app's clock is a FixedClock and the emulator's clock is moved with it; nothing sleeps.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from app.calendar import FixedClock
from fakeportal import automation, crm
from handlers import date_watch

WARSAW = ZoneInfo("Europe/Warsaw")
FIELD = "UF_CRM_WARRANTY_END"


@pytest.fixture
def stack_clock() -> FixedClock:
    return FixedClock(datetime(2024, 11, 12, 10, 0, tzinfo=WARSAW))


def at(stack: Any, day: date, hour: int = 10) -> None:
    """Move both clocks (the app's and the portal's) to ``day`` at ``hour`` Warsaw time."""
    moment = datetime(day.year, day.month, day.day, hour, tzinfo=WARSAW).astimezone(UTC)
    stack.services.clock.set(moment)
    stack.world.advance(moment - stack.world.now())


def sweep(stack: Any) -> dict[str, Any]:
    """The hourly cron's job, as rq cron enqueues it; returns the portal's sweep report."""
    stack.enqueue("fan_out", {"schedule": "date_watch"}, member_id="")
    stack.settle()
    runs = stack.services.store.runs(stack.member_id)
    last = [r for r in runs if r["kind"] == "schedule" and r["name"] == "date_watch"]
    assert last and last[0]["status"] == "ok", last[:1]
    return last[0]["result"]


def deal(stack: Any, deal_id: int) -> dict[str, Any]:
    with stack.world.lock:
        return crm.get_deal(stack.portal, deal_id)


def service_funnel(stack: Any) -> int:
    with stack.world.lock:
        funnel = crm.create_category(
            stack.portal,
            "Service",
            [
                ("NEW", "Installed", "P"),
                ("WARRANTY", "Under warranty", "P"),
                ("POST", "Post-warranty service", "P"),
                ("WON", "Closed", "S"),
                ("LOSE", "Cancelled", "F"),
            ],
        )
        crm.add_user_field(stack.portal, "DEAL", "WARRANTY_END", "date", label="Warranty end")
    return funnel


@pytest.fixture
def solar(stack: Any) -> dict[str, Any]:
    """The solar installer's portal: Sales (0) and Service, the app installed."""
    at(stack, date(2024, 11, 12))
    stack.install()
    funnel = service_funnel(stack)
    return {"stack": stack, "service": funnel}


def test_won_deal_is_copied_with_warranty_and_moved_when_it_expires(solar) -> None:
    stack, service = solar["stack"], solar["service"]
    with stack.world.lock:
        stack.place_robot(
            "copy_deal",
            "WON",
            {
                "category_id": service,
                "stage_id": f"C{service}:NEW",
                "warranty_field": FIELD,
                "warranty_months": 24,
            },
        )
        stack.place_robot(
            "watch_date",
            f"C{service}:NEW",
            {
                "field": FIELD,
                "within_days": 3,
                "working_days": "Y",
                "action": "move",
                "stage_id": f"C{service}:POST",
                "country": "PL",
                "timezone": "Europe/Warsaw",
            },
            category_id=service,
        )
        sales = [
            crm.create_deal(
                stack.portal,
                {
                    "TITLE": f"Solar 10 kW #{n}",
                    "CATEGORY_ID": 0,
                    "STAGE_ID": "NEW",
                    "CLOSEDATE": "2024-11-12",
                    "OPPORTUNITY": 48000,
                    "CURRENCY_ID": "PLN",
                },
            )
            for n in range(3)
        ]
        for deal_id in sales:
            crm.move_deal(stack.portal, deal_id, "WON")
    stack.settle()

    with stack.world.lock:
        copies = crm.list_deals(stack.portal, filter_={"CATEGORY_ID": service}).rows
    assert len(copies) == 3
    a, b, c = (int(row["ID"]) for row in copies)
    for row in copies:
        assert row[FIELD][:10] == "2026-11-12"  # won 2024-11-12 + 24 months
        assert row["STAGE_ID"] == f"C{service}:NEW"
    watches = date_watch.watches(stack.services.store, stack.member_id)
    assert len(watches) == 1  # three robot runs, one watch
    assert (watches[0].category_id, watches[0].field) == (service, FIELD)
    assert stack.services.store.get_setting(stack.member_id, "calendar") == {
        "country": "PL",
        "timezone": "Europe/Warsaw",
    }

    # Later: b's warranty was extended; c went back to Sales (left the funnel).
    with stack.world.lock:
        crm.update_deal(stack.portal, b, {FIELD: "2026-11-20"})
        crm.move_deal(stack.portal, c, "PREPARATION")
        crm.update_deal(stack.portal, c, {FIELD: "2026-11-12"})
    assert deal(stack, c)["CATEGORY_ID"] == "0"

    # Time passes; hourly sweeps keep the portal in touch and move nothing early.
    for day in (
        date(2025, 3, 1),
        date(2025, 7, 20),
        date(2025, 12, 10),
        date(2026, 5, 1),
        date(2026, 9, 15),
    ):
        at(stack, day)
        assert sweep(stack)["done"] == 0

    # Thursday 5 Nov 2026: 3 working days later is Tue 10 Nov: nothing is due.
    at(stack, date(2026, 11, 5))
    assert sweep(stack) == {"watches": 1, "due": 0, "done": 0, "failed": 0}
    assert deal(stack, a)["STAGE_ID"] == f"C{service}:NEW"

    # Friday 6 Nov: Mon 9, Tue 10, (Wed 11 Nov is Independence Day), Thu 12: a is due.
    at(stack, date(2026, 11, 6))
    assert sweep(stack)["done"] == 1
    assert deal(stack, a)["STAGE_ID"] == f"C{service}:POST"
    assert deal(stack, b)["STAGE_ID"] == f"C{service}:NEW"
    assert deal(stack, c)["STAGE_ID"] == "PREPARATION" and deal(stack, c)["CATEGORY_ID"] == "0"

    # The manager takes a back to "under warranty": the next sweep does not overrule them.
    with stack.world.lock:
        crm.move_deal(stack.portal, a, f"C{service}:WARRANTY")
    at(stack, date(2026, 11, 6), hour=11)
    assert sweep(stack)["done"] == 0
    assert deal(stack, a)["STAGE_ID"] == f"C{service}:WARRANTY"

    # b moves on its new date: Tue 17 Nov (Wed 18, Thu 19, Fri 20), not on Mon 16.
    at(stack, date(2026, 11, 16))
    assert sweep(stack)["done"] == 0
    at(stack, date(2026, 11, 17))
    assert sweep(stack)["done"] == 1
    assert deal(stack, b)["STAGE_ID"] == f"C{service}:POST"
    assert deal(stack, c)["STAGE_ID"] == "PREPARATION"


def test_trigger_mode_fires_once_and_the_portal_moves_the_deal(solar) -> None:
    stack, service = solar["stack"], solar["service"]
    store = stack.services.store
    store.set_setting(stack.member_id, "calendar", {"timezone": "Europe/Warsaw", "country": "PL"})
    watch = date_watch.record_watch(
        store,
        stack.member_id,
        category_id=service,
        field=FIELD,
        within_days=0,
        action="trigger",
        target="warranty_expiring",
    )
    again = date_watch.record_watch(
        store,
        stack.member_id,
        category_id=service,
        field=FIELD.lower(),
        within_days=0,
        action="trigger",
        target="",
    )
    assert again.id == watch.id
    with stack.world.lock:
        automation.add_trigger_rule(
            stack.world,
            stack.member_id,
            service,
            f"C{service}:POST",
            stack.client_id,
            "warranty_expiring",
        )
        due_tomorrow = crm.create_deal(
            stack.portal,
            {
                "TITLE": "Pump",
                "CATEGORY_ID": service,
                "STAGE_ID": f"C{service}:WARRANTY",
                FIELD: "2024-11-13",
            },
        )
        far = crm.create_deal(
            stack.portal,
            {
                "TITLE": "Inverter",
                "CATEGORY_ID": service,
                "STAGE_ID": f"C{service}:WARRANTY",
                FIELD: "2027-01-01",
            },
        )
        lost = crm.create_deal(
            stack.portal,
            {
                "TITLE": "Cancelled",
                "CATEGORY_ID": service,
                "STAGE_ID": f"C{service}:LOSE",
                FIELD: "2024-01-01",
            },
        )

    def firings() -> list[dict[str, Any]]:
        return stack.admin.triggers(member_id=stack.member_id)["firings"]

    assert sweep(stack)["done"] == 0
    at(stack, date(2024, 11, 13), hour=0)  # midnight in Warsaw: the warranty day
    assert sweep(stack)["done"] == 1
    assert [(f["owner_id"], f["moved_to"]) for f in firings()] == [
        (due_tomorrow, f"C{service}:POST")
    ]
    at(stack, date(2024, 11, 13), hour=1)
    assert sweep(stack)["done"] == 0
    assert len(firings()) == 1  # fired once, though the deal is still open and dated

    # An edit to a date already passed is honoured on the next sweep (same cutoff day).
    with stack.world.lock:
        crm.update_deal(stack.portal, far, {FIELD: "2024-11-01"})
    at(stack, date(2024, 11, 13), hour=2)
    assert sweep(stack)["done"] == 1
    assert [f["owner_id"] for f in firings()] == [due_tomorrow, far]
    assert deal(stack, far)["STAGE_ID"] == f"C{service}:POST"
    assert deal(stack, lost)["STAGE_ID"] == f"C{service}:LOSE"
