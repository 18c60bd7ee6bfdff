"""Date watches: deals whose date field comes due are moved to a stage or get a trigger fired.

A watch belongs to one portal and one funnel: "deals whose <field> is within N (working) days
move to <stage>" or "... fire trigger <code>". The solar installer watches the warranty end
date of its Service funnel; the same engine serves subsidy settlement dates, rental billing
dates or "the day before the measurement". Watches live in the app's database, so they
survive restarts; the admin records one by placing the "Watch a date field" robot.

Every hour (the ``date_watch`` schedule) ``sweep`` runs for each portal. Time is the
portal's: its time zone, working days and public holidays (``ctx.calendar``). The sweep asks
the portal only for deals that are due (a server-side filter on the date field, ``start=-1``
paging) and writes in batches of 50, so it costs requests in proportion to the due deals:

- the first sweep of a watch asks for every open deal of the funnel dated up to the cutoff
  (deals already past their date are due too);
- later sweeps ask for the dates that came due since the last sweep (no request at all while
  the cutoff stays the same day), plus the due deals modified since the last sweep: a date
  edited to an earlier day, or a deal brought back into the funnel, is honoured.

A deal is acted on once per watch and date value (remembered in ``date_watch_acts``): a
manager who moves it on is not overruled every hour, and a trigger is not fired again; a
later edit of the date makes it due anew. A deal that left the funnel or was won or lost no
longer matches the filter.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    UniqueConstraint,
    and_,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from app.calendar import PortalCalendar
from app.context import Context, JobContext
from app.errors import AppError
from app.payloads import EventCall
from app.registry import EventRouter, Schedule, Trigger, localized
from app.store import Store, metadata

DEAL = 2  # OWNER_TYPE_ID of deals
BATCH = 50  # commands in one batch request
MOVE, FIRE, NOTIFY = "move", "trigger", "notify"
# Reminders wait for the working day: "the day before" and "on the day" come at 9:00.
NOTIFY_FROM = dt_time(9)
REMINDER = {
    "en": 'Reminder: deal "{title}", {date}.',
    "ru": "Напоминание: сделка «{title}», {date}.",
    "pl": "Przypomnienie: deal „{title}”, {date}.",
}
# Overlap between sweeps for "modified since": absorbs skew between our clock and the portal's.
MODIFIED_MARGIN = timedelta(hours=1)
STANDARD_DATE_FIELDS = ("CLOSEDATE", "BEGINDATE")
_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}")

WARRANTY_EXPIRING = Trigger(
    "warranty_expiring",
    {
        "en": "Warranty is expiring",
        "ru": "Гарантия истекает",
        "pl": "Gwarancja wygasa",
    },
)
DATE_DUE = Trigger(
    "date_due",
    {
        "en": "A watched date is due",
        "ru": "Наступает отслеживаемая дата",
        "pl": "Obserwowana data nadchodzi",
    },
)
TRIGGERS = (WARRANTY_EXPIRING, DATE_DUE)

date_watches = Table(
    "date_watches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(64), nullable=False, index=True),
    Column("category_id", Integer, nullable=False),
    Column("field", String(64), nullable=False),
    Column("within_days", Integer, nullable=False),
    Column("working_days", Integer, nullable=False),
    Column("action", String(16), nullable=False),  # move | trigger
    Column("target", String(64), nullable=False),  # stage id | trigger code
    Column("name", String(200), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("swept_cutoff", String(10), nullable=True),  # the last cutoff swept (YYYY-MM-DD)
    Column("swept_at", Float, nullable=True),  # when that sweep started (epoch seconds)
    UniqueConstraint(
        "member_id",
        "category_id",
        "field",
        "within_days",
        "working_days",
        "action",
        "target",
        name="uq_date_watch_rule",
    ),
)

date_watch_acts = Table(
    "date_watch_acts",
    metadata,
    Column("watch_id", Integer, ForeignKey("date_watches.id"), primary_key=True),
    Column("deal_id", Integer, primary_key=True),
    Column("due_date", String(10), primary_key=True),
    Column("acted_at", Float, nullable=False),
)


@dataclass(frozen=True)
class Watch:
    """One watch: which funnel and field, when a deal is due, and what happens then."""

    id: int
    member_id: str
    category_id: int
    field: str
    within_days: int
    working_days: bool
    action: str
    target: str
    name: str = ""
    swept_cutoff: date | None = None
    swept_at: float | None = None

    def when(self) -> str:
        """When a deal is due, relative to its date: "3 working days before", "on"."""
        days = abs(self.within_days)
        unit = ("working " if self.working_days else "") + ("day" if days == 1 else "days")
        if self.within_days > 0:
            return f"{days} {unit} before"
        return f"{days} {unit} after" if self.within_days < 0 else "on"

    def describe(self) -> str:
        what = {MOVE: "move to", FIRE: "fire", NOTIFY: "notify the user in"}[self.action]
        what = f"{what} {self.target}"
        return f"funnel {self.category_id}: {self.when()} {self.field}, {what}"


# The rule ----------------------------------------------------------------------------------


def cutoff(calendar: PortalCalendar, today: date, within_days: int, working_days: bool) -> date:
    """The latest date that is due today: a deal is due when its date is on or before it.

    ``within_days`` N > 0: N days before the date (working days: the N-th working day
    before it, holidays skipped); 0: on the day; N < 0: |N| days after the date.
    """
    if within_days == 0 or not working_days:
        return today + timedelta(days=within_days)
    return calendar.add_working_days(today, within_days)


def validate_rule(
    category_id: int, field: str, within_days: int, action: str, target: str
) -> tuple[str, str]:
    """The field and target in canonical form; AppError with a message for the admin."""
    field = (field or "").strip().upper()
    if not (field.startswith("UF_") or field in STANDARD_DATE_FIELDS):
        raise AppError(f"date field {field[:60]!r} must be a deal user field (UF_...) or CLOSEDATE")
    if category_id < 0:
        raise AppError(f"funnel {category_id} is not a funnel id")
    if abs(within_days) > 3660:
        raise AppError(f"{within_days} days is out of range")
    target = (target or "").strip()
    if action == MOVE:
        if not target:
            raise AppError("a stage to move the deals to is required")
        prefix = f"C{category_id}:" if category_id else ""
        if (category_id and not target.startswith(prefix)) or (
            not category_id and target[:1] == "C" and ":" in target
        ):
            raise AppError(f"stage {target} is not a stage of funnel {category_id}")
    elif action == FIRE:
        codes = {t.code for t in TRIGGERS}
        target = target.lower() or WARRANTY_EXPIRING.code
        if target not in codes:
            raise AppError(f"trigger {target} is not one of {sorted(codes)}")
    elif action == NOTIFY:
        target = target.upper()
        if not (target.startswith("UF_") or target == "ASSIGNED_BY_ID"):
            raise AppError(f"user field {target[:60]!r} must be a deal user field (UF_...)"
                           " or ASSIGNED_BY_ID")  # fmt: skip
    else:
        raise AppError(f"unknown action {action!r} (move, trigger or notify)")
    return field, target


# The store ---------------------------------------------------------------------------------


def _watch(row: Any) -> Watch:
    return Watch(
        id=row["id"],
        member_id=row["member_id"],
        category_id=row["category_id"],
        field=row["field"],
        within_days=row["within_days"],
        working_days=bool(row["working_days"]),
        action=row["action"],
        target=row["target"],
        name=row["name"] or "",
        swept_cutoff=date.fromisoformat(row["swept_cutoff"]) if row["swept_cutoff"] else None,
        swept_at=row["swept_at"],
    )


def record_watch(
    store: Store,
    member_id: str,
    *,
    category_id: int,
    field: str,
    within_days: int,
    working_days: bool = False,
    action: str = MOVE,
    target: str = "",
    name: str = "",
) -> Watch:
    """Record a watch, or return the one with the same funnel, field and rule (idempotent)."""
    field, target = validate_rule(category_id, field, within_days, action, target)
    key = {
        "member_id": member_id,
        "category_id": int(category_id),
        "field": field,
        "within_days": int(within_days),
        "working_days": 1 if working_days else 0,
        "action": action,
        "target": target,
    }
    where = and_(*(date_watches.c[k] == v for k, v in key.items()))
    with store.engine.begin() as db:
        row = db.execute(select(date_watches).where(where)).mappings().first()
        if row is not None:
            return _watch(row)
    try:
        with store.engine.begin() as db:
            db.execute(insert(date_watches).values(**key, name=name, created_at=time.time()))
    except IntegrityError:  # recorded by a concurrent call
        pass
    with store.engine.connect() as db:
        return _watch(db.execute(select(date_watches).where(where)).mappings().one())


def watches(store: Store, member_id: str) -> list[Watch]:
    """The portal's watches, oldest first."""
    with store.engine.connect() as db:
        rows = db.execute(
            select(date_watches)
            .where(date_watches.c.member_id == member_id)
            .order_by(date_watches.c.id)
        ).mappings()
        return [_watch(r) for r in rows]


def remove_watch(store: Store, member_id: str, watch_id: int) -> bool:
    """Forget a watch and what it did; False when the portal has no such watch."""
    with store.engine.begin() as db:
        done = db.execute(
            date_watches.delete().where(
                date_watches.c.id == watch_id, date_watches.c.member_id == member_id
            )
        )
        if not done.rowcount:
            return False
        db.execute(date_watch_acts.delete().where(date_watch_acts.c.watch_id == watch_id))
    return True


def _acted(store: Store, watch_id: int, deal_ids: Iterable[int]) -> set[tuple[int, str]]:
    ids = list(deal_ids)
    if not ids:
        return set()
    with store.engine.connect() as db:
        rows = db.execute(
            select(date_watch_acts.c.deal_id, date_watch_acts.c.due_date).where(
                date_watch_acts.c.watch_id == watch_id, date_watch_acts.c.deal_id.in_(ids)
            )
        )
        return {(r.deal_id, r.due_date) for r in rows}


def _remember(store: Store, watch_id: int, done: Iterable[tuple[int, str]]) -> None:
    now = time.time()
    for deal_id, due in done:
        try:
            with store.engine.begin() as db:
                db.execute(
                    insert(date_watch_acts).values(
                        watch_id=watch_id, deal_id=deal_id, due_date=due, acted_at=now
                    )
                )
        except IntegrityError:  # a concurrent sweep recorded it
            pass


def _mark_swept(store: Store, watch_id: int, swept_cutoff: date, swept_at: float) -> None:
    with store.engine.begin() as db:
        db.execute(
            update(date_watches)
            .where(date_watches.c.id == watch_id)
            .values(swept_cutoff=swept_cutoff.isoformat(), swept_at=swept_at)
        )


# The sweep ---------------------------------------------------------------------------------


def due_filters(watch: Watch, calendar: PortalCalendar, today: date) -> list[dict[str, Any]]:
    """The crm.deal.list filters of one sweep: only deals that are due (see module doc)."""
    last = cutoff(calendar, today, watch.within_days, watch.working_days)
    base: dict[str, Any] = {
        "CATEGORY_ID": watch.category_id,
        "STAGE_SEMANTIC_ID": "P",  # open deals: a won or lost deal is left alone
        f"<={watch.field}": last.isoformat(),
    }
    if watch.action == MOVE:
        base["!STAGE_ID"] = watch.target
    if watch.swept_cutoff is None or watch.swept_at is None:
        return [base]
    filters = []
    if last > watch.swept_cutoff:
        filters.append({**base, f">{watch.field}": watch.swept_cutoff.isoformat()})
    since = datetime.fromtimestamp(watch.swept_at, UTC) - MODIFIED_MARGIN
    filters.append({**base, ">=DATE_MODIFY": calendar.format_datetime(since)})
    return filters


def _chunks(rows: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def sweep_watch(ctx: JobContext, watch: Watch) -> dict[str, int]:
    """Act on the due deals of one watch; a small report of what was done."""
    calendar = ctx.calendar
    started = ctx.clock.now().timestamp()
    today = calendar.today(ctx.clock)
    last = cutoff(calendar, today, watch.within_days, watch.working_days)
    report = {"due": 0, "done": 0, "failed": 0}
    if watch.action == NOTIFY and calendar.now(ctx.clock).time() < NOTIFY_FROM:
        return report  # before the working day: the 9:00 sweep reminds, not this one
    seen: set[int] = set()
    select_ = ["ID", "STAGE_ID", "CATEGORY_ID", "TITLE", watch.field]
    if watch.action == NOTIFY:
        select_.append(watch.target)
    for filter_ in due_filters(watch, calendar, today):
        rows = ctx.portal.list_due("crm.deal.list", {"filter": filter_, "select": select_})
        for chunk in _chunks(rows, BATCH):
            todo: dict[int, str] = {}
            rows_by_id = {int(r["ID"]): r for r in chunk}
            for row in chunk:
                deal_id = int(row["ID"])
                if deal_id in seen:
                    continue
                seen.add(deal_id)
                due = _as_date(calendar, row.get(watch.field))
                if due is None or due > last:
                    continue
                todo[deal_id] = due.isoformat()
            done = _acted(ctx.store, watch.id, todo)
            todo = {d: due for d, due in todo.items() if (d, due) not in done}
            report["due"] += len(todo)
            if todo:
                ok, failed = _act(ctx, watch, todo, rows_by_id)
                _remember(ctx.store, watch.id, ((d, todo[d]) for d in ok))
                report["done"] += len(ok)
                report["failed"] += failed
    _mark_swept(ctx.store, watch.id, last, started)
    return report


def _users(value: Any) -> list[int]:
    """The users an employee field names (``5``, ``"user_5"``, or a list of them)."""
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        text = str(item or "").removeprefix("user_")
        if text.isdigit() and int(text) > 0:
            out.append(int(text))
    return out


def _act(
    ctx: JobContext, watch: Watch, todo: dict[int, str], rows: dict[int, dict[str, Any]]
) -> tuple[list[int], int]:
    """One batch of moves, trigger firings or reminders; (deals done, failures)."""
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    texts = localized(REMINDER)
    reminder = texts.get(ctx.language) or texts["en"] if watch.action == NOTIFY else ""
    for deal_id, due in todo.items():
        if watch.action == NOTIFY:
            row = rows.get(deal_id) or {}
            text = reminder.format(title=row.get("TITLE", ""), date=due)
            for user in _users(row.get(watch.target)):
                commands[f"d{deal_id}_{user}"] = (
                    "im.notify.system.add", {"USER_ID": user, "MESSAGE": text},
                )  # fmt: skip
        elif watch.action == MOVE:
            commands[f"d{deal_id}"] = (
                "crm.deal.update",
                {"id": deal_id, "fields": {"STAGE_ID": watch.target}},
            )
        else:
            commands[f"d{deal_id}"] = (
                "crm.automation.trigger.execute",
                {"CODE": watch.target, "OWNER_TYPE_ID": DEAL, "OWNER_ID": deal_id},
            )
    got = ctx.portal.batch(commands) if commands else None
    errors = got.errors if got is not None else {}
    failed = {int(label[1:].split("_")[0]) for label in errors}
    for label, error in errors.items():
        ctx.log.warning("date watch %s: deal %s: %s", watch.id, label[1:], error.description)
    ok = [d for d in todo if d not in failed]
    return ok, len(failed)


def _as_date(calendar: PortalCalendar, value: Any) -> date | None:
    """The date a deal field shows (the portal prints it in its own offset, so the date
    written in ``2026-11-12T00:00:00+01:00`` is the portal's date, whatever our zone)."""
    if isinstance(value, list):
        value = value[0] if value else None
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if _ISO_DAY.match(text):
        return date.fromisoformat(text[:10])
    try:
        parsed = calendar.parse(text)
    except ValueError:
        return None
    return parsed.date() if isinstance(parsed, datetime) else parsed


def sweep(ctx: JobContext) -> dict[str, Any]:
    """Every watch of the portal, once (the hourly schedule)."""
    report: dict[str, Any] = {"watches": 0, "due": 0, "done": 0, "failed": 0}
    for watch in watches(ctx.store, ctx.member_id):
        one = sweep_watch(ctx, watch)
        report["watches"] += 1
        for key, value in one.items():
            report[key] += value
    if report["due"]:
        ctx.log.info("date watches: %s", report)
    return report


router = EventRouter()


@router.on("ONCRMDEALDELETE")
def deal_deleted(ctx: JobContext, event: EventCall) -> None:
    """The deal is gone: what the watches did with it is forgotten."""
    deal_id = int(event.fields.get("ID") or 0)
    ours = select(date_watches.c.id).where(date_watches.c.member_id == ctx.member_id)
    with ctx.store.engine.begin() as db:
        db.execute(
            date_watch_acts.delete().where(
                date_watch_acts.c.deal_id == deal_id, date_watch_acts.c.watch_id.in_(ours)
            )
        )


def add(ctx: Context, **rule: Any) -> Watch:
    """Record a watch for this portal (``record_watch``'s rule); AppError when invalid."""
    return record_watch(ctx.store, ctx.member_id, **rule)


SCHEDULES = (Schedule("date_watch", "0 * * * *", sweep),)
