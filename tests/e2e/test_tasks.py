"""create_task end to end: the print shop's accountant completes "prepare the invoice" and the
deal moves to "Awaiting payment"; the workflow waits for the task and hears how it ended.

The emulated portal, the app over HTTP, Redis and a worker are real; the accountant acts on
the portal (its admin surface, as a user in the task's card would).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.calendar import FixedClock
from fakeportal.crm import deals

ACCOUNTANT = 2
ISSUE_INVOICE, AWAITING_PAYMENT = "PREPARATION", "PREPAYMENT_INVOICE"
# Tuesday 10 Nov 2026, 16:00 in Warsaw; 11 Nov is a public holiday in Poland.
NOW = datetime(2026, 11, 10, 15, 0, tzinfo=UTC)


@pytest.fixture
def stack_clock() -> FixedClock:
    return FixedClock(NOW)


def place(stack, **properties: str) -> None:
    stack.services.store.set_setting(
        stack.member_id, "calendar", {"timezone": "Europe/Warsaw", "country": "PL"}
    )
    stack.place_robot(
        "create_task",
        ISSUE_INVOICE,
        {"title": "Prepare the invoice", "responsible": f"user_{ACCOUNTANT}", **properties},
        timeout_seconds=0,  # the workflow waits as long as the task takes
    )


def new_deal(stack, title: str = "1000 mugs with a logo") -> int:
    with stack.world.lock:
        return deals.create_deal(stack.portal, {"TITLE": title, "STAGE_ID": ISSUE_INVOICE}, 1)


def step(stack, deal_id: int) -> dict:
    [flow] = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    return flow["robots"][0]


def later(stack, seconds: float = 60) -> None:
    """People act minutes apart: the portal's clock moves on (its wake-up throttle too)."""
    stack.admin.advance_clock(seconds=seconds)


def stage(stack, deal_id: int) -> str:
    return stack.portal_call("crm.deal.get", {"id": deal_id})["STAGE_ID"]


def the_task(stack, deal_id: int) -> dict:
    [task] = stack.portal_call(
        "tasks.task.list",
        {"filter": {"UF_CRM_TASK": f"D_{deal_id}"}, "select": ["ID", "TITLE", "UF_CRM_TASK",
                                                              "RESPONSIBLE_ID", "DEADLINE"]},
    )["tasks"]  # fmt: skip
    return task


def test_completing_the_task_answers_the_workflow_and_moves_the_deal_once(stack) -> None:
    stack.install()
    place(stack, wait="Y", done_stage=AWAITING_PAYMENT, deadline_in="4 working hours")
    deal_id = new_deal(stack)
    stack.settle(robots=False)

    task = the_task(stack, deal_id)
    assert task["title"] == "Prepare the invoice" and task["responsibleId"] == str(ACCOUNTANT)
    assert task["ufCrmTask"] == [f"D_{deal_id}"]
    # 16:00 + 4 working hours: 2 today, the holiday skipped, 2 on Thursday from 9:00.
    assert task["deadline"].startswith("2026-11-12T11:00:00")
    assert step(stack, deal_id)["status"] == "waiting"
    assert stage(stack, deal_id) == ISSUE_INVOICE
    [robot_run] = stack.services.store.runs(stack.member_id, kind="robot")
    assert robot_run["status"] == "waiting"

    stack.admin.complete_task(
        member_id=stack.member_id, task_id=int(task["id"]), user_id=ACCOUNTANT
    )
    stack.settle()
    done = step(stack, deal_id)
    assert done["status"] == "completed", done
    values = done["return_values"]
    assert (values["task_id"], values["outcome"]) == (task["id"], "completed")
    assert values["closed_by"] == f"user_{ACCOUNTANT}" and values["closed_date"]
    assert stage(stack, deal_id) == AWAITING_PAYMENT

    # The manager moves the deal on; the task is reopened and completed again: no second move.
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": "EXECUTING"}})
    stack.admin.renew_task(member_id=stack.member_id, task_id=int(task["id"]), user_id=1)
    stack.admin.complete_task(
        member_id=stack.member_id, task_id=int(task["id"]), user_id=ACCOUNTANT
    )
    stack.settle()
    assert stage(stack, deal_id) == "EXECUTING"
    events = stack.services.store.runs(stack.member_id, kind="event")
    assert {r["status"] for r in events} == {"ok"}


def test_a_deferred_or_deleted_task_answers_the_workflow_with_that_outcome(stack) -> None:
    stack.install()
    place(stack, wait="Y", done_stage=AWAITING_PAYMENT)
    deferred, deleted = new_deal(stack, "Banners"), new_deal(stack, "Pens")
    stack.settle(robots=False)
    one, two = the_task(stack, deferred), the_task(stack, deleted)

    later(stack)
    stack.admin.defer_task(member_id=stack.member_id, task_id=int(one["id"]), user_id=ACCOUNTANT)
    stack.admin.delete_task(member_id=stack.member_id, task_id=int(two["id"]), user_id=1)
    stack.settle()
    assert step(stack, deferred)["return_values"]["outcome"] == "deferred"
    assert step(stack, deleted)["return_values"]["outcome"] == "deleted"
    assert stage(stack, deferred) == stage(stack, deleted) == ISSUE_INVOICE

    # Completed after all, the deferred task still moves its deal (its workflow has heard).
    later(stack)
    stack.admin.complete_task(member_id=stack.member_id, task_id=int(one["id"]), user_id=ACCOUNTANT)
    stack.settle()
    assert stage(stack, deferred) == AWAITING_PAYMENT


def test_a_deleted_deal_answers_its_waiting_workflow_and_leaves_nothing_behind(stack) -> None:
    from sqlalchemy import func, select

    from handlers.tasks import task_waits

    stack.install()
    place(stack, wait="Y", done_stage=AWAITING_PAYMENT)
    deal_id = new_deal(stack)
    stack.settle(robots=False)
    later(stack)
    stack.portal_call("crm.deal.delete", {"id": deal_id})
    stack.settle()
    with stack.services.store.engine.connect() as db:
        assert db.execute(select(func.count()).select_from(task_waits)).scalar() == 0
    deleted = [r for r in stack.services.store.runs(stack.member_id, kind="event")
               if r["name"] == "ONCRMDEALDELETE"]  # fmt: skip
    assert [r["status"] for r in deleted] == ["ok"]


def test_without_waiting_the_robot_answers_at_once_and_the_completion_moves_the_deal(stack) -> None:
    stack.install()
    place(stack, done_stage=AWAITING_PAYMENT, deadline="2026-11-13T12:00:00")
    deal_id = new_deal(stack)
    stack.settle()
    answered = step(stack, deal_id)
    assert answered["status"] == "completed"
    assert answered["return_values"]["outcome"] == "created"
    task = the_task(stack, deal_id)
    assert task["deadline"].startswith("2026-11-13T12:00:00+01:00")
    later(stack)
    stack.admin.complete_task(
        member_id=stack.member_id, task_id=int(task["id"]), user_id=ACCOUNTANT
    )
    stack.settle()
    assert stage(stack, deal_id) == AWAITING_PAYMENT


def test_what_the_admin_reads_when_the_task_cannot_be_made(stack) -> None:
    stack.install()
    place(stack, wait="Y", deadline_in="soon")
    deal_id = new_deal(stack)
    stack.settle()
    [flow] = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    assert flow["robots"][0]["status"] == "completed"
    assert any("deadline 'soon': write it as '3 working days'" in line for line in flow["log"])

    stack.admin.inject_fault(
        member_id=stack.member_id, status=400, code="ERROR_CORE",
        description="Task title is not specified", method="tasks.task.add",
    )  # fmt: skip
    place(stack, wait="Y")
    other = new_deal(stack, "Stickers")
    stack.settle()
    [flow] = stack.admin.workflows(member_id=stack.member_id, deal_id=other)
    expected = "the portal answered ERROR_CORE: Task title is not specified"
    assert any(expected in line for line in flow["log"]), flow["log"]


def test_tasks_completed_while_the_app_is_down_are_handled_once_when_it_is_back(stack) -> None:
    stack.install()
    place(stack, wait="Y", done_stage=AWAITING_PAYMENT)
    first, second, gone = new_deal(stack, "Mugs"), new_deal(stack, "Caps"), new_deal(stack, "Bags")
    stack.settle(robots=False)
    tasks = {d: the_task(stack, d) for d in (first, second, gone)}

    stack.stop_web()  # web and workers away: no wake-up reaches the app, no job runs
    later(stack)
    for deal_id in (first, second):
        task_id = int(tasks[deal_id]["id"])
        stack.admin.complete_task(member_id=stack.member_id, task_id=task_id, user_id=ACCOUNTANT)
    stack.portal_call("crm.deal.delete", {"id": gone})
    queue = stack.services.portal(stack.member_id).call(
        "event.offline.list", {"auth_connector": "robot_server"}
    )
    assert sorted(r["EVENT_NAME"] for r in queue) == ["ONCRMDEALDELETE", "ONTASKUPDATE",
                                                       "ONTASKUPDATE"]  # fmt: skip

    stack.start_web()
    assert stack.enqueue("fan_out", {"job": "drain"}, member_id="")  # a worker starts
    stack.settle()
    assert stage(stack, first) == stage(stack, second) == AWAITING_PAYMENT
    assert step(stack, first)["return_values"]["outcome"] == "completed"
    assert step(stack, second)["return_values"]["outcome"] == "completed"
    events = stack.services.store.runs(stack.member_id, kind="event")
    assert sorted((r["name"], r["status"]) for r in events) == [
        ("ONCRMDEALDELETE", "ok"), ("ONTASKUPDATE", "ok"), ("ONTASKUPDATE", "ok"),
    ]  # fmt: skip
    assert (
        stack.services.portal(stack.member_id).call(
            "event.offline.list", {"auth_connector": "robot_server"}
        )
        == []
    )
