"""watch_stage end to end: "unpaid for three working days: call the client" at the print shop.

The app's clock is fixed and moved by the test; the sweep runs as the clock would run it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.calendar import FixedClock
from fakeportal.crm import deals

AWAITING_PAYMENT = "PREPAYMENT_INVOICE"
# Friday 6 Nov 2026, 10:00 in Warsaw; Wednesday 11 Nov is a public holiday in Poland.
FRIDAY = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)


@pytest.fixture
def stack_clock() -> FixedClock:
    return FixedClock(FRIDAY)


def setup(stack, **properties: str) -> None:
    stack.install()
    stack.services.store.set_setting(
        stack.member_id, "calendar", {"timezone": "Europe/Warsaw", "country": "PL"}
    )
    stack.place_robot(
        "watch_stage", AWAITING_PAYMENT,
        {"after": "3 working days", "message": "Call the client about {title}", **properties},
    )  # fmt: skip


def awaiting_payment(stack, title: str, responsible: int = 2) -> int:
    with stack.world.lock:
        deal_id = deals.create_deal(
            stack.portal, {"TITLE": title, "ASSIGNED_BY_ID": responsible}, 1
        )
        deals.move_deal(stack.portal, deal_id, AWAITING_PAYMENT, user_id=1)
    stack.settle()
    return deal_id


def at(stack, moment: datetime) -> None:
    stack.services.clock.set(moment)


def sweep(stack) -> dict:
    return stack.run_job("schedule", schedule="stage_watch")


def reminders(stack, user_id: int) -> list[str]:
    with stack.world.lock:
        rows = list(stack.portal.table("notification").values())
    return [str(r["MESSAGE"]) for r in rows if int(r.get("USER_ID") or 0) == user_id]


def test_three_working_days_unpaid_reminds_the_manager_once(stack) -> None:
    setup(stack)
    deal_id = awaiting_payment(stack, "1000 mugs")
    [flow] = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    # Fri + 3 working days: Mon, Tue, (Wed is a holiday) Thu, at the hour it entered.
    assert flow["robots"][0]["return_values"]["due_at"] == "2026-11-12T10:00:00+01:00"

    stack.admin.requests(member_id=stack.member_id, reset=True)
    at(stack, datetime(2026, 11, 11, 12, 0, tzinfo=UTC))
    assert sweep(stack) == {"due": 0, "done": 0, "left": 0, "failed": 0}
    assert stack.admin.requests(member_id=stack.member_id)["total"] == 0  # not due: no request

    at(stack, datetime(2026, 11, 12, 9, 10, tzinfo=UTC))
    assert sweep(stack) == {"due": 1, "done": 1, "left": 0, "failed": 0}
    assert sweep(stack)["due"] == 0  # once, however often the clock asks
    assert reminders(stack, 2) == ["Call the client about 1000 mugs"]
    assert stack.admin.requests(member_id=stack.member_id)["total"] == 2  # read, then act


def test_a_deal_that_moved_on_is_left_alone_and_one_that_comes_back_counts_anew(stack) -> None:
    setup(stack)
    paid = awaiting_payment(stack, "Banners")
    back = awaiting_payment(stack, "Pens")
    stack.portal_call("crm.deal.update", {"id": paid, "fields": {"STAGE_ID": "EXECUTING"}})
    stack.portal_call("crm.deal.update", {"id": back, "fields": {"STAGE_ID": "EXECUTING"}})
    at(stack, datetime(2026, 11, 9, 9, 0, tzinfo=UTC))  # Monday: Pens is back, counting anew
    stack.portal_call("crm.deal.update", {"id": back, "fields": {"STAGE_ID": AWAITING_PAYMENT}})
    stack.settle()

    at(stack, datetime(2026, 11, 12, 9, 10, tzinfo=UTC))  # the first count would be due
    assert sweep(stack) == {"due": 1, "done": 0, "left": 1, "failed": 0}
    assert reminders(stack, 2) == []
    at(stack, datetime(2026, 11, 13, 9, 10, tzinfo=UTC))  # Mon + 3 working days = Fri
    assert sweep(stack)["done"] == 1
    assert reminders(stack, 2) == ["Call the client about Pens"]


def test_repeats_every_working_day_until_the_deal_moves(stack) -> None:
    setup(stack, repeat="1 working day", user="user_4")
    deal_id = awaiting_payment(stack, "Caps")
    for day in (12, 13, 16):  # Thu, Fri, then Monday (the weekend skipped)
        at(stack, datetime(2026, 11, day, 9, 30, tzinfo=UTC))
        assert sweep(stack)["done"] == 1
    at(stack, datetime(2026, 11, 16, 18, 0, tzinfo=UTC))
    assert sweep(stack)["due"] == 0
    assert len(reminders(stack, 4)) == 3  # the chosen user, not the responsible
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": "WON"}})
    at(stack, datetime(2026, 11, 17, 9, 30, tzinfo=UTC))
    assert sweep(stack) == {"due": 1, "done": 0, "left": 1, "failed": 0}


def test_the_trigger_moves_the_deal_and_a_bad_duration_is_refused(stack) -> None:
    setup(stack, action="trigger")
    stack.admin.add_trigger_rule(
        member_id=stack.member_id, category_id=0, stage_id="EXECUTING",
        client_id=stack.client_id, trigger_code="stage_overdue",
    )  # fmt: skip
    deal_id = awaiting_payment(stack, "Stickers")
    at(stack, datetime(2026, 11, 12, 9, 10, tzinfo=UTC))
    assert sweep(stack)["done"] == 1
    stack.settle()
    assert stack.portal_call("crm.deal.get", {"id": deal_id})["STAGE_ID"] == "EXECUTING"

    stack.place_robot("watch_stage", "FINAL_INVOICE", {"after": "soon"})
    with stack.world.lock:
        other = deals.create_deal(stack.portal, {"TITLE": "Bags", "STAGE_ID": "FINAL_INVOICE"}, 1)
    stack.settle()
    [flow] = stack.admin.workflows(member_id=stack.member_id, deal_id=other)
    assert any("'soon': write it as '3 working days'" in line for line in flow["log"]), flow


def test_a_portal_error_while_acting_is_retried_and_the_reminder_still_comes_once(stack) -> None:
    setup(stack)
    awaiting_payment(stack, "Flags")
    at(stack, datetime(2026, 11, 12, 9, 10, tzinfo=UTC))
    stack.admin.inject_fault(
        member_id=stack.member_id, status=400, code="ACCESS_DENIED",
        description="Access denied", method="im.notify.system.add",
    )  # fmt: skip
    assert sweep(stack) is None  # the runner recorded the failure
    [run] = stack.services.store.runs(stack.member_id, kind="schedule")
    assert run["status"] == "failed" and "ACCESS_DENIED: Access denied" in run["error"]
    assert reminders(stack, 2) == []
    assert sweep(stack)["done"] == 1  # released, so the next sweep does it
    assert sweep(stack)["due"] == 0
    assert reminders(stack, 2) == ["Call the client about Flags"]
