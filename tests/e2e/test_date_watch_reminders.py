"""The furniture maker's reminders: the installer hears the day before at 9:00 and on the day,
through date watches that remind the user in a deal field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.calendar import FixedClock
from fakeportal.crm import add_user_field, deals
from handlers import date_watch

INSTALLER = 4
# Monday 16 Nov 2026, 07:30 in Warsaw; the installation is on Tuesday.
MONDAY_EARLY = datetime(2026, 11, 16, 6, 30, tzinfo=UTC)


@pytest.fixture
def stack_clock() -> FixedClock:
    return FixedClock(MONDAY_EARLY)


def reminders(stack, user_id: int) -> list[str]:
    with stack.world.lock:
        rows = list(stack.portal.table("notification").values())
    return [str(r["MESSAGE"]) for r in rows if int(r.get("USER_ID") or 0) == user_id]


def sweep(stack) -> dict:
    return stack.run_job("schedule", schedule="date_watch")


def test_the_installer_is_reminded_the_day_before_at_nine_and_on_the_day(stack) -> None:
    stack.install()
    stack.services.store.set_setting(
        stack.member_id, "calendar", {"timezone": "Europe/Warsaw", "country": "PL"}
    )
    with stack.world.lock:
        add_user_field(stack.portal, "DEAL", "INSTALL_DATE", "date", label="Installation date")
        add_user_field(stack.portal, "DEAL", "INSTALLER", "employee", label="Installer")
        deal_id = deals.create_deal(
            stack.portal,
            {"TITLE": "Kitchen, Nowak", "UF_CRM_INSTALL_DATE": "2026-11-17",
             "UF_CRM_INSTALLER": INSTALLER},
            user_id=1,
        )  # fmt: skip
    ctx = stack.context()
    for days in (1, 0):
        date_watch.add(ctx, category_id=0, field="UF_CRM_INSTALL_DATE", within_days=days,
                       action="notify", target="uf_crm_installer")  # fmt: skip

    assert sweep(stack)["done"] == 0  # 7:30: the reminders wait for the working day
    assert reminders(stack, INSTALLER) == []
    stack.services.clock.set(datetime(2026, 11, 16, 8, 5, tzinfo=UTC))  # 9:05 in Warsaw
    assert sweep(stack) == {"watches": 2, "due": 1, "done": 1, "failed": 0}
    assert reminders(stack, INSTALLER) == ['Reminder: deal "Kitchen, Nowak", 2026-11-17.']
    stack.services.clock.set(datetime(2026, 11, 16, 12, 0, tzinfo=UTC))
    assert sweep(stack)["done"] == 0  # once per watch and date

    stack.services.clock.set(datetime(2026, 11, 17, 8, 0, tzinfo=UTC))  # Tuesday 9:00
    assert sweep(stack)["done"] == 1  # on the day
    assert len(reminders(stack, INSTALLER)) == 2
    assert deal_id


def test_a_reminder_needs_a_user_field(stack) -> None:
    stack.install()
    with pytest.raises(Exception, match="must be a deal user field"):
        date_watch.add(stack.context(), category_id=0, field="UF_CRM_INSTALL_DATE",
                       within_days=1, action="notify", target="INSTALLER")  # fmt: skip
