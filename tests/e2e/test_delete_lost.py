"""delete_lost end to end: the drinking-water company deletes lost deals after three working
days, tells the department head at once, and keeps a snapshot an admin can restore.

The robot and its capability are not in the product's lists yet: the test extends the
catalogue. The app's clock is fixed and moved by the test; the sweep runs as the clock would.
"""

from __future__ import annotations

import html
import logging
import re
from datetime import UTC, datetime, timedelta

import pytest
import requests

from app.calendar import FixedClock
from fakeportal.crm import deals
from handlers import lost_deals

LOST = "LOSE"
# Friday 6 Nov 2026, 10:00 in Warsaw; Wednesday 11 Nov is a public holiday in Poland.
FRIDAY = datetime(2026, 11, 6, 9, 0, tzinfo=UTC)
THURSDAY = datetime(2026, 11, 12, 9, 10, tzinfo=UTC)  # Fri + 3 working days, and 10 minutes
RESPONSIBLE, HEAD = 3, 2  # seeded: user 3 works in Sales, whose head is user 2


@pytest.fixture
def stack_clock() -> FixedClock:
    return FixedClock(FRIDAY)


def setup(stack, **properties: str) -> None:
    stack.install()
    stack.services.store.set_setting(
        stack.member_id, "calendar", {"timezone": "Europe/Warsaw", "country": "PL"}
    )
    stack.place_robot("delete_lost", LOST, properties)


def a_deal(stack, title: str) -> int:
    """A deal in progress with two product rows, a contact and a timeline comment."""
    with stack.world.lock:
        deal_id = deals.create_deal(
            stack.portal,
            {"TITLE": title, "ASSIGNED_BY_ID": RESPONSIBLE, "OPPORTUNITY": 120,
             "CURRENCY_ID": "PLN", "COMMENTS": "Office on the 3rd floor"},
            1,
        )  # fmt: skip
    contact = stack.portal_call(
        "crm.contact.add", {"fields": {"NAME": "Anna", "LAST_NAME": "Nowak"}}
    )
    stack.portal_call(
        "crm.deal.productrows.set",
        {"id": deal_id, "rows": [
            {"PRODUCT_NAME": "Water 19 l", "PRICE": 20, "QUANTITY": 5},
            {"PRODUCT_NAME": "Cooler rent", "PRICE": 20, "QUANTITY": 1},
        ]},
    )  # fmt: skip
    stack.portal_call(
        "crm.deal.contact.items.set",
        {"id": deal_id, "items": [{"CONTACT_ID": contact, "IS_PRIMARY": "Y"}]},
    )
    stack.portal_call(
        "crm.timeline.comment.add",
        {"fields": {"ENTITY_ID": deal_id, "ENTITY_TYPE": "deal", "COMMENT": "Wants a cooler"}},
    )
    stack.settle()
    return deal_id


def lose(stack, deal_id: int) -> None:
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": LOST}})
    stack.settle()


def at(stack, moment: datetime) -> None:
    stack.services.clock.set(moment)


def sweep(stack) -> dict:
    return stack.run_job("schedule", schedule="lost_deals")


def exists(stack, deal_id: int) -> bool:
    with stack.world.lock:
        return deal_id in stack.portal.table("deal")


def notices(stack, user_id: int) -> list[str]:
    with stack.world.lock:
        rows = list(stack.portal.table("notification").values())
    return [str(r["MESSAGE"]) for r in rows if int(r.get("USER_ID") or 0) == user_id]


def test_a_lost_deal_tells_the_head_at_once_and_is_deleted_three_working_days_later(
    stack,
) -> None:
    setup(stack)
    deal_id = a_deal(stack, "Office water")
    stack.admin.requests(member_id=stack.member_id, reset=True)
    lose(stack, deal_id)
    [flow] = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    # Fri + 3 working days: Mon, Tue, (Wed is a holiday) Thu, at the hour it was lost.
    assert flow["robots"][0]["return_values"]["delete_at"] == "2026-11-12T10:00:00+01:00"
    [notice] = notices(stack, HEAD)
    assert f"[url=/crm/deal/details/{deal_id}/]Office water[/url]" in notice
    assert "is lost (Deal lost)" in notice  # the stage's name as the reason
    assert "2026-11-12 10:00" in notice
    # The test's own crm.deal.update, then the robot: one batch reads, one call notifies,
    # and the workflow is answered.
    assert stack.admin.requests(member_id=stack.member_id)["total"] == 1 + 3

    stack.admin.requests(member_id=stack.member_id, reset=True)
    at(stack, datetime(2026, 11, 11, 12, 0, tzinfo=UTC))  # the holiday: not due yet
    assert sweep(stack)["due"] == 0
    assert stack.admin.requests(member_id=stack.member_id)["total"] == 0  # no request
    assert exists(stack, deal_id)

    at(stack, THURSDAY)
    report = sweep(stack)
    assert (report["due"], report["deleted"]) == (1, 1), report
    assert stack.admin.requests(member_id=stack.member_id)["total"] == 2  # read, then delete
    assert not exists(stack, deal_id)
    assert sweep(stack)["due"] == 0  # once, however often the clock asks
    [snap] = lost_deals.snapshots(stack.context())
    assert (snap["deal_id"], snap["title"]) == (deal_id, "Office water")
    assert [r["PRODUCT_NAME"] for r in snap["data"]["product_rows"]] == [
        "Water 19 l", "Cooler rent",
    ]  # fmt: skip
    assert len(snap["data"]["contacts"]) == 1
    assert [c["COMMENT"] for c in snap["data"]["comments"]] == ["Wants a cooler"]
    assert snap["keep_until"] - snap["deleted_at"] == 90 * 86400


def test_the_reason_field_names_the_reason(stack) -> None:
    setup(stack, reason_field="COMMENTS")
    deal_id = a_deal(stack, "Cafe")
    lose(stack, deal_id)
    [notice] = notices(stack, HEAD)
    assert "(Office on the 3rd floor)" in notice


def test_a_reopened_deal_is_not_deleted_nor_one_that_came_back_early(stack) -> None:
    setup(stack)
    reopened = a_deal(stack, "School")
    again = a_deal(stack, "Gym")
    lose(stack, reopened)
    lose(stack, again)
    at(stack, datetime(2026, 11, 9, 9, 0, tzinfo=UTC))  # Monday: both reopened
    for deal_id in (reopened, again):
        stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": "EXECUTING"}})
    at(stack, datetime(2026, 11, 10, 9, 0, tzinfo=UTC))  # Tuesday: the gym is lost again
    lose(stack, again)

    at(stack, THURSDAY)
    report = sweep(stack)
    assert (report["due"], report["deleted"], report["left"]) == (1, 0, 1), report
    assert exists(stack, reopened) and exists(stack, again)
    at(stack, datetime(2026, 11, 13, 9, 10, tzinfo=UTC))  # Tue + 3 working days is Monday
    assert sweep(stack)["due"] == 0
    at(stack, datetime(2026, 11, 16, 9, 10, tzinfo=UTC))
    assert sweep(stack)["deleted"] == 1
    assert exists(stack, reopened) and not exists(stack, again)
    assert [s["deal_id"] for s in lost_deals.snapshots(stack.context())] == [again]


def test_a_stage_change_without_the_robot_in_between_is_noticed_by_moved_time(stack) -> None:
    """Reopened and lost again while the robot did not run (it is placed on LOSE only when
    the stage is entered; here the stay is changed behind its back): MOVED_TIME differs."""
    setup(stack)
    deal_id = a_deal(stack, "Hotel")
    lose(stack, deal_id)
    with stack.world.lock:  # MOVED_TIME is read-only: the stay changes in the portal's record
        record = stack.portal.table("deal")[deal_id]
        record["MOVED_TIME"] = record["MOVED_TIME"] + timedelta(days=4)
    at(stack, THURSDAY)
    report = sweep(stack)
    assert (report["left"], report["deleted"]) == (1, 0), report
    assert exists(stack, deal_id)


def test_dry_run_deletes_nothing_and_logs(stack, caplog) -> None:
    setup(stack, dry_run="Y")
    deal_id = a_deal(stack, "Bakery")
    lose(stack, deal_id)
    at(stack, THURSDAY)
    with caplog.at_level(logging.INFO):
        report = sweep(stack)
    assert (report["dry_run"], report["deleted"]) == (1, 0), report
    assert exists(stack, deal_id)
    assert lost_deals.snapshots(stack.context()) == []
    assert any(f"dry run: would delete deal {deal_id} 'Bakery'" in r.getMessage()
               for r in caplog.records)  # fmt: skip
    assert sweep(stack)["due"] == 0


def token_of(body: str) -> str:
    tokens = set(re.findall(r'name="form_token" value="([^"]+)"', body))
    assert len(tokens) == 1, tokens
    return html.unescape(tokens.pop())


def send(stack, token: str, action: str, **fields: str) -> requests.Response:
    data = {"member_id": stack.member_id, "form_token": token, "action": action, **fields}
    return requests.post(f"{stack.app_url}/settings", data=data, timeout=10)


def test_a_snapshot_is_listed_and_restored_from_the_settings_page(stack) -> None:
    setup(stack)
    deal_id = a_deal(stack, "Dentist <b>")
    lose(stack, deal_id)
    assert "No deleted lost deals are kept." in stack.open_settings()["body"]
    at(stack, THURSDAY)
    assert sweep(stack)["deleted"] == 1

    page = stack.open_settings()
    assert page["status"] == 200
    [snap] = lost_deals.snapshots(stack.context())
    row = re.search(rf'<tr id="snapshot-{snap["id"]}">(.*?)</tr>', page["body"], re.S).group(1)
    assert "Dentist &lt;b&gt;" in row and "2026-11-12 10:10 CET" in row
    assert 'name="action" value="restore_lost"' in row

    stack.admin.requests(member_id=stack.member_id, reset=True)
    restored = send(stack, token_of(page["body"]), "restore_lost", snapshot_id=str(snap["id"]))
    assert restored.status_code == 200, restored.text[-1500:]
    assert stack.admin.requests(member_id=stack.member_id)["total"] == 1  # one batch
    new_id = int(re.search(r"Restored as deal (\d+)\.", restored.text).group(1))
    assert new_id != deal_id
    deal = stack.portal_call("crm.deal.get", {"id": new_id})
    assert deal["TITLE"] == "Dentist <b>" and deal["STAGE_ID"] != LOST
    assert float(deal["OPPORTUNITY"]) == 120 and deal["ASSIGNED_BY_ID"] == str(RESPONSIBLE)
    rows = stack.portal_call("crm.deal.productrows.get", {"id": new_id})
    assert [(r["PRODUCT_NAME"], float(r["QUANTITY"])) for r in rows] == [
        ("Water 19 l", 5.0), ("Cooler rent", 1.0),
    ]  # fmt: skip
    contacts = stack.portal_call("crm.deal.contact.items.get", {"id": new_id})
    assert [c["CONTACT_ID"] for c in contacts] == [
        c["CONTACT_ID"] for c in snap["data"]["contacts"]
    ]
    comments = stack.portal_call(
        "crm.timeline.comment.list", {"filter": {"ENTITY_ID": new_id, "ENTITY_TYPE": "deal"}}
    )
    [comment] = [c["COMMENT"] for c in comments]
    assert comment.startswith(f"Restored from deal #{deal_id} deleted on 2026-11-12 10:10")
    assert "Wants a cooler" in comment
    assert f"Restored as deal {new_id}" in restored.text  # the row now says so

    twice = send(stack, token_of(page["body"]), "restore_lost", snapshot_id=str(snap["id"]))
    assert twice.status_code == 400 and "restored already" in twice.text
    gone = send(stack, token_of(page["body"]), "restore_lost", snapshot_id="999")
    assert gone.status_code == 400 and "is not there" in gone.text


def test_a_portal_error_while_deleting_leaves_the_entry_for_the_next_sweep(stack) -> None:
    setup(stack)
    deal_id = a_deal(stack, "Clinic")
    lose(stack, deal_id)
    at(stack, THURSDAY)
    stack.admin.inject_fault(
        member_id=stack.member_id, status=400, code="ACCESS_DENIED",
        description="Access denied", method="crm.deal.delete",
    )  # fmt: skip
    assert sweep(stack) is None  # the runner recorded the failure
    [run] = stack.services.store.runs(stack.member_id, kind="schedule")
    assert run["status"] == "failed"
    assert exists(stack, deal_id)
    assert lost_deals.snapshots(stack.context()) == []  # not listed: nothing was deleted

    stack.admin.inject_fault(
        member_id=stack.member_id, status=400, code="ACCESS_DENIED",
        description="Access denied", method="crm.deal.productrows.get",
    )  # fmt: skip
    assert sweep(stack) is None  # the read fails too: still nothing lost
    assert exists(stack, deal_id)

    report = sweep(stack)
    assert (report["due"], report["deleted"]) == (1, 1), report
    assert not exists(stack, deal_id)
    assert sweep(stack)["due"] == 0
    assert len(lost_deals.snapshots(stack.context())) == 1  # one snapshot, not one per try
    [entry] = lost_deals.entries(stack.context(), deal_id)
    assert entry["state"] == "deleted"


def test_snapshots_expire_after_the_retention(stack) -> None:
    setup(stack, keep_days="2")
    deal_id = a_deal(stack, "Shop")
    lose(stack, deal_id)
    at(stack, THURSDAY)
    assert sweep(stack)["deleted"] == 1
    at(stack, datetime(2026, 11, 14, 9, 0, tzinfo=UTC))
    assert sweep(stack)["expired"] == 0
    at(stack, datetime(2026, 11, 14, 9, 20, tzinfo=UTC))
    assert sweep(stack)["expired"] == 1
    assert lost_deals.snapshots(stack.context()) == []
