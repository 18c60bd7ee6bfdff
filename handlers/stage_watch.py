"""Stage watchdogs: a deal that stays in a stage too long gets a reminder, a task, a trigger or
a move — once per time it comes due, and never after it has left the stage.

The print shop: a deal three working days in "Awaiting payment" tells the manager to call the
client. The ``watch_stage`` robot, placed on the stage, records the deal's entry (``start``)
with the moment it comes due in the portal calendar; re-entering the stage starts a new count.
The ``stage_watch`` schedule asks the database, not the portal, which entries are due, so a
thousand watched deals cost nothing until some come due; those are read in one batch (is the
deal still in the stage, since that entry?) and acted on in one more. Each due entry is
claimed in its row before the portal is called, so a reminder happens once whatever the
number of workers, retries or restarts; with ``repeat`` the next one comes that much later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    update,
)

from app.context import Context, EventContext, JobContext
from app.errors import TryAgain
from app.payloads import EventCall
from app.registry import Capability, EventRouter, Schedule, Trigger, localized
from app.store import DueRows, metadata

NOTIFY, TASK, FIRE, MOVE = "notify", "task", "trigger", "move"
ACTIONS = (NOTIFY, TASK, FIRE, MOVE)
DEAL = 2  # OWNER_TYPE_ID of deals
BATCH = 50
CLAIM_SECONDS = 15 * 60  # a claim older than this was a worker that died mid-act
DEFAULT_MESSAGE = {
    "en": 'Deal "{title}" has been in its stage for {after}.',
    "ru": "Сделка «{title}» находится на стадии уже {after}.",
    "pl": "Deal „{title}” jest na etapie od {after}.",
}

STAGE_OVERDUE = Trigger(
    "stage_overdue",
    {"en": "The deal stayed too long in the stage", "ru": "Сделка задержалась на стадии",
     "pl": "Deal zbyt długo na etapie"},
)  # fmt: skip

stage_watches = Table(
    "stage_watches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(64), nullable=False),
    Column("deal_id", BigInteger, nullable=False),
    Column("stage_id", String(64), nullable=False),
    Column("rule", String(64), nullable=False),  # the robot's rule, so two watchdogs coexist
    Column("entered_at", Float, nullable=False),
    Column("due_at", Float, nullable=False, index=True),
    Column("after", String(64), nullable=False),
    Column("repeat", String(64), nullable=False, default=""),
    Column("action", String(16), nullable=False),
    Column("target", String(64), nullable=False, default=""),  # stage | trigger | user id
    Column("message", Text, nullable=False, default=""),
    Column("times", Integer, nullable=False, default=0),  # how many times it came due
    Column("claimed_at", Float, nullable=True),
    Column("state", String(16), nullable=False, default="waiting"),  # waiting, done, left
)
DUE = DueRows(stage_watches, stale_after=CLAIM_SECONDS)


@dataclass(frozen=True)
class Entry:
    """One deal's stay in a watched stage."""

    id: int
    deal_id: int
    stage_id: str
    due_at: float
    after: str
    repeat: str
    action: str
    target: str
    message: str
    times: int


def start(
    ctx: Context,
    deal_id: int,
    stage_id: str,
    *,
    after: str,
    action: str,
    target: str = "",
    message: str = "",
    repeat: str = "",
) -> float:
    """Watch this stay of the deal in the stage (a new entry replaces an earlier one of the
    same rule); when it comes due, as a timestamp. ValueError for a duration or action the
    calendar or the app cannot use."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
    now = ctx.clock.now()
    due = ctx.calendar.add_duration(now, after).timestamp()
    if repeat:
        ctx.calendar.add_duration(now, repeat)  # refused now, not when it comes due
    rule = f"{action}:{target}:{after}"[:64]
    key = and_(
        stage_watches.c.member_id == ctx.member_id,
        stage_watches.c.deal_id == deal_id,
        stage_watches.c.rule == rule,
    )
    with ctx.store.engine.begin() as db:
        db.execute(delete(stage_watches).where(key))
        db.execute(
            insert(stage_watches).values(
                member_id=ctx.member_id, deal_id=deal_id, stage_id=stage_id, rule=rule,
                entered_at=now.timestamp(), due_at=due, after=after, repeat=repeat,
                action=action, target=target, message=message, times=0, state="waiting",
            )
        )  # fmt: skip
    return due


# the sweep -----------------------------------------------------------------------------------


def sweep(ctx: JobContext) -> dict[str, int]:
    """Schedule ``stage_watch``: act on the entries that are due, once each."""
    now = ctx.clock.now().timestamp()
    report = {"due": 0, "done": 0, "left": 0, "failed": 0}
    while True:
        entries = _claim_due(ctx, now)
        if not entries:
            return report
        report["due"] += len(entries)
        try:
            deals = _read_deals(ctx, [e.deal_id for e in entries])
        except Exception:
            _release(ctx, entries)  # the next sweep takes them again
            raise
        still = [e for e in entries if (deals.get(e.deal_id) or {}).get("STAGE_ID") == e.stage_id]
        gone = [e for e in entries if e not in still]
        _finish(ctx, gone, "left")
        report["left"] += len(gone)
        if still:
            try:
                done, failed = _act(ctx, still, deals)
            except Exception:
                _release(ctx, still)
                raise
            report["done"] += len(done)
            report["failed"] += len(failed)
            _after_acting(ctx, done)
            _release(ctx, failed)
            if failed:
                raise TryAgain(f"stage watch: {len(failed)} deal(s) not done, retried")


def _claim_due(ctx: JobContext, now: float) -> list[Entry]:
    """Up to a batch of due entries, claimed for this sweep (another sweep skips them)."""
    return [_entry(row) for row in DUE.claim(ctx.store.engine, ctx.member_id, now, BATCH)]


def _entry(row: Any) -> Entry:
    return Entry(
        id=row["id"], deal_id=int(row["deal_id"]), stage_id=row["stage_id"],
        due_at=row["due_at"], after=row["after"], repeat=row["repeat"] or "",
        action=row["action"], target=row["target"] or "", message=row["message"] or "",
        times=row["times"],
    )  # fmt: skip


def _read_deals(ctx: JobContext, deal_ids: list[int]) -> dict[int, dict[str, Any]]:
    """The deals as they are now, in one request (a deleted one is simply missing)."""
    got = ctx.portal.batch({f"d{d}": ("crm.deal.get", {"id": d}) for d in deal_ids})
    return {d: got.results[f"d{d}"] for d in deal_ids if got.results.get(f"d{d}")}


def _act(
    ctx: JobContext, entries: list[Entry], deals: dict[int, dict[str, Any]]
) -> tuple[list[Entry], list[Entry]]:
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    texts = localized(DEFAULT_MESSAGE)
    default = texts.get(ctx.language) or texts["en"]
    for e in entries:
        deal = deals[e.deal_id]
        text = (e.message or default).format(title=deal.get("TITLE", ""), after=e.after)
        user = int(e.target) if e.target.isdigit() else int(deal.get("ASSIGNED_BY_ID") or 1)
        if e.action == NOTIFY:
            commands[f"e{e.id}"] = ("im.notify.system.add", {"USER_ID": user, "MESSAGE": text})
        elif e.action == TASK:
            commands[f"e{e.id}"] = (
                "tasks.task.add",
                {"fields": {"TITLE": text[:250], "RESPONSIBLE_ID": user,
                            "UF_CRM_TASK": [f"D_{e.deal_id}"]}},
            )  # fmt: skip
        elif e.action == FIRE:
            commands[f"e{e.id}"] = (
                "crm.automation.trigger.execute",
                {"CODE": e.target or STAGE_OVERDUE.code, "OWNER_TYPE_ID": DEAL,
                 "OWNER_ID": e.deal_id},
            )  # fmt: skip
        else:
            commands[f"e{e.id}"] = (
                "crm.deal.update", {"id": e.deal_id, "fields": {"STAGE_ID": e.target}},
            )  # fmt: skip
    got = ctx.portal.batch(commands)
    for label, error in got.errors.items():
        ctx.log.warning("stage watch %s: %s", label, error.description)
    failed = [e for e in entries if f"e{e.id}" in got.errors]
    return [e for e in entries if e not in failed], failed


def _after_acting(ctx: JobContext, done: list[Entry]) -> None:
    """Each acted entry is done, or due again ``repeat`` later (a move ends the stay)."""
    for e in done:
        values: dict[str, Any] = {"times": e.times + 1, "claimed_at": None}
        if e.repeat and e.action != MOVE:
            start = datetime.fromtimestamp(e.due_at, UTC)
            values["due_at"] = ctx.calendar.add_duration(start, e.repeat).timestamp()
        else:
            values["state"] = "done"
        with ctx.store.engine.begin() as db:
            db.execute(update(stage_watches).where(stage_watches.c.id == e.id).values(values))


def _finish(ctx: Context, entries: list[Entry], state: str) -> None:
    DUE.finish(ctx.store.engine, [e.id for e in entries], state)


def _release(ctx: Context, entries: list[Entry]) -> None:
    DUE.release(ctx.store.engine, [e.id for e in entries])


def watched(ctx: Context, deal_id: int) -> list[dict[str, Any]]:
    """The deal's watched stays, oldest first (for pages and tests)."""
    return DUE.of_deal(ctx.store.engine, ctx.member_id, deal_id)


router = EventRouter()


@router.on("ONCRMDEALDELETE")
def deal_deleted(ctx: EventContext, event: EventCall) -> None:
    """The deal is gone: so are its watched stays."""
    deal_id = int(event.fields.get("ID") or 0)
    with ctx.store.engine.begin() as db:
        db.execute(
            delete(stage_watches).where(
                stage_watches.c.member_id == ctx.member_id, stage_watches.c.deal_id == deal_id
            )
        )


CAPABILITY = Capability(
    name="stage_watch",
    triggers=(STAGE_OVERDUE,),
    router=router,
    schedules=(Schedule("stage_watch", "*/10 * * * *", sweep),),
)
