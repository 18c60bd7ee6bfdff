"""Tasks that move their deal on: a task made for a deal, whose completion answers the waiting
workflow and moves the deal to the next stage.

The print shop's accountant completes "prepare the invoice" and the deal moves to "Awaiting
payment"; the furniture maker's measurer closes the measurement task and the order moves to
"Contract". The ``create_task`` robot makes the task (``create``); the portal tells the app
when tasks change (ONTASKUPDATE and ONTASKDELETE carry only the task's ID, so the task is read
again) and when deals are deleted. Each task the app made is a row of ``task_waits``: the
workflow's event token (encrypted) when it waits, the stage to move to, and whether the
answer and the move were done — each is done once, claimed in the row before the portal
call, so a task reopened and completed again, or an event handled twice, changes nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)

from app.context import Context, EventContext, RobotContext
from app.errors import PortalError
from app.payloads import EventCall
from app.registry import Capability, EventRouter
from app.store import metadata

log = logging.getLogger(__name__)

COMPLETED, DEFERRED = 5, 6  # tasks' statuses (PROTOCOL §11)
OUTCOMES = {COMPLETED: "completed", DEFERRED: "deferred"}

task_waits = Table(
    "task_waits",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("task_id", BigInteger, primary_key=True),
    Column("deal_id", BigInteger, nullable=False, index=True),
    Column("event_token", Text, nullable=True),  # encrypted; null: the workflow does not wait
    Column("done_stage", String(64), nullable=False, default=""),
    Column("outcome", String(16), nullable=False, default="open"),
    Column("answered", Integer, nullable=False, default=0),
    Column("moved", Integer, nullable=False, default=0),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)


@dataclass(frozen=True)
class Wait:
    """One task the app made for a deal, as stored."""

    member_id: str
    task_id: int
    deal_id: int
    event_token: str
    done_stage: str
    outcome: str
    answered: bool
    moved: bool


# the robot's side ---------------------------------------------------------------------------


def create(ctx: RobotContext, fields: dict[str, Any], *, wait: bool, done_stage: str) -> int:
    """Create the task (linked to the deal), remember it; with ``wait`` the workflow waits
    for the task's completion. The task's id."""
    fields = {**fields, "UF_CRM_TASK": [f"D_{ctx.deal_id}"]}
    created = ctx.portal.call("tasks.task.add", {"fields": fields})
    task_id = int((created or {}).get("task", {}).get("id") or 0)
    if not task_id:
        raise PortalError("", "tasks.task.add answered no task id", 400, "tasks.task.add")
    token = ctx.answer_later() if wait else ""
    now = time.time()
    with ctx.store.engine.begin() as db:
        db.execute(
            insert(task_waits).values(
                member_id=ctx.member_id,
                task_id=task_id,
                deal_id=ctx.deal_id,
                event_token=ctx.store.box.encrypt(token) if token else None,
                done_stage=done_stage,
                outcome="open",
                answered=0 if token else 1,
                moved=0 if done_stage else 1,
                created_at=now,
                updated_at=now,
            )
        )
    ctx.log.info("task %s created for deal %s (wait=%s)", task_id, ctx.deal_id, wait)
    return task_id


# the portal's events -------------------------------------------------------------------------

router = EventRouter()


@router.on("ONTASKUPDATE")
def task_updated(ctx: EventContext, event: EventCall) -> None:
    """A task of ours changed: completed moves the deal and answers; deferred answers."""
    wait = _wait(ctx, _task_id(event, "FIELDS_AFTER"))
    if wait is None or (wait.answered and wait.moved):
        return
    got = ctx.portal.call(
        "tasks.task.get",
        {"taskId": wait.task_id, "select": ["ID", "STATUS", "CLOSED_BY", "CLOSED_DATE"]},
    )
    task = (got or {}).get("task") or {}
    status = int(task.get("status") or 0)
    if status not in OUTCOMES:
        return
    values = {
        "task_id": wait.task_id,
        "outcome": OUTCOMES[status],
        "closed_by": f"user_{task['closedBy']}" if task.get("closedBy") else "",
        "closed_date": task.get("closedDate") or "",
    }
    _settle(ctx, wait, values, move=status == COMPLETED)


@router.on("ONTASKDELETE")
def task_deleted(ctx: EventContext, event: EventCall) -> None:
    """A task of ours was deleted: a waiting workflow hears so instead of hanging."""
    wait = _wait(ctx, _task_id(event, "FIELDS_BEFORE"))
    if wait is not None:
        values = {"task_id": wait.task_id, "outcome": "deleted", "closed_by": "", "closed_date": ""}
        _settle(ctx, wait, values, move=False)
        _forget(ctx, [wait.task_id])


@router.on("ONCRMDEALDELETE")
def deal_deleted(ctx: EventContext, event: EventCall) -> None:
    """The deal is gone: its waiting workflows are answered, and its tasks forgotten."""
    deal_id = int(event.fields.get("ID") or 0)
    with ctx.store.engine.connect() as db:
        rows = db.execute(
            select(task_waits).where(
                task_waits.c.member_id == ctx.member_id, task_waits.c.deal_id == deal_id
            )
        ).mappings()
        waits = [_as_wait(ctx, r) for r in rows]
    for wait in waits:
        values = {"task_id": wait.task_id, "outcome": "deal_deleted", "closed_by": "",
                  "closed_date": ""}  # fmt: skip
        try:
            _settle(ctx, wait, values, move=False)
        except PortalError as exc:  # the workflow went with the deal
            if exc.transient:
                raise
            ctx.log.info("workflow of deleted deal %s not answered: %s", deal_id, exc)
    _forget(ctx, [w.task_id for w in waits])


def _task_id(event: EventCall, side: str) -> int:
    fields = event.data.get(side)
    return int(fields.get("ID") or 0) if isinstance(fields, dict) else 0


def _wait(ctx: Context, task_id: int) -> Wait | None:
    if not task_id:
        return None
    with ctx.store.engine.connect() as db:
        row = (
            db.execute(
                select(task_waits).where(
                    task_waits.c.member_id == ctx.member_id, task_waits.c.task_id == task_id
                )
            )
            .mappings()
            .first()
        )
    return _as_wait(ctx, row) if row else None


def _as_wait(ctx: Context, row: Any) -> Wait:
    token = ctx.store.box.decrypt(row["event_token"]) if row["event_token"] else ""
    return Wait(
        member_id=row["member_id"],
        task_id=int(row["task_id"]),
        deal_id=int(row["deal_id"]),
        event_token=token,
        done_stage=row["done_stage"] or "",
        outcome=row["outcome"],
        answered=bool(row["answered"]),
        moved=bool(row["moved"]),
    )


def _claim(ctx: Context, wait: Wait, flag: str, outcome: str) -> bool:
    """Take the answer or the move for this run; False when another run has it."""
    with ctx.store.engine.begin() as db:
        done = db.execute(
            update(task_waits)
            .where(
                task_waits.c.member_id == ctx.member_id,
                task_waits.c.task_id == wait.task_id,
                task_waits.c[flag] == 0,
            )
            .values({flag: 1, "outcome": outcome, "updated_at": time.time()})
        )
    return bool(done.rowcount)


def _release(ctx: Context, wait: Wait, flags: list[str]) -> None:
    with ctx.store.engine.begin() as db:
        db.execute(
            update(task_waits)
            .where(task_waits.c.member_id == ctx.member_id, task_waits.c.task_id == wait.task_id)
            .values({flag: 0 for flag in flags})
        )


def _settle(ctx: Context, wait: Wait, values: dict[str, Any], *, move: bool) -> None:
    """Answer the waiting workflow and move the deal, each at most once, in one request."""
    claimed: list[str] = []
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    outcome = values["outcome"]
    if not wait.answered and _claim(ctx, wait, "answered", outcome):
        claimed.append("answered")
        message = f"create_task: task {wait.task_id} {outcome}"
        commands["answer"] = (
            "bizproc.event.send",
            {"EVENT_TOKEN": wait.event_token, "RETURN_VALUES": values, "LOG_MESSAGE": message},
        )
    if move and not wait.moved and _claim(ctx, wait, "moved", outcome):
        claimed.append("moved")
        commands["move"] = (
            "crm.deal.update",
            {"id": wait.deal_id, "fields": {"STAGE_ID": wait.done_stage}},
        )
    if not commands:
        return
    try:
        got = ctx.portal.batch(commands)
    except PortalError:
        _release(ctx, wait, claimed)
        raise
    failed = [label for label in commands if label in got.errors]
    if failed:
        _release(ctx, wait, ["answered" if f == "answer" else "moved" for f in failed])
        error = got.errors[failed[0]]
        raise PortalError(error.code, f"task {wait.task_id}: {error.description}", error.status)
    ctx.log.info("task %s %s: %s", wait.task_id, outcome, ", ".join(commands))


def _forget(ctx: Context, task_ids: list[int]) -> None:
    if task_ids:
        with ctx.store.engine.begin() as db:
            db.execute(
                delete(task_waits).where(
                    task_waits.c.member_id == ctx.member_id, task_waits.c.task_id.in_(task_ids)
                )
            )


CAPABILITY = Capability(name="tasks", router=router)
