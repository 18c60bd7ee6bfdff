"""Lost deals: deleted N working days after they were lost, unless they left the stage; a
snapshot of each is kept for a while and can be restored from the settings page.

The drinking-water company: a deal on the lost stage tells the head of the responsible's
department at once (the ``delete_lost`` robot); after "3 working days" in the portal
calendar the deal is deleted if it is still there, in the same stay (its ``STAGE_ID`` and
``MOVED_TIME`` are those recorded when the robot ran). The ``lost_deals`` schedule asks the
database, not the portal, which entries are due; those are claimed in their rows (so a deal
is deleted once whatever the number of workers, retries or restarts), read in one batch
(the deal, its product rows, contacts and timeline comments), kept as snapshots and deleted
in one more. A failed deletion leaves its entry for the next sweep. Snapshots live
``keep_days`` (90 by default) in the app's table; restoring one adds a new deal with the
fields, product rows and contacts, and a timeline comment saying it was restored.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    String,
    Table,
    Text,
    and_,
    delete,
    insert,
    select,
    update,
)

from app.calendar import PortalCalendar
from app.context import Context, JobContext
from app.errors import PortalError, TryAgain
from app.registry import Capability, Schedule, Section
from app.store import DueRows, metadata

log = logging.getLogger(__name__)

BATCH = 12  # deals per claim: 4 reads each, so one batch request reads them all
PAGE = 50  # rows of a list page
CLAIM_SECONDS = 15 * 60  # a claim older than this was a worker that died mid-sweep
DAY = 86400
DEFAULT_KEEP_DAYS = 90
# What crm.deal.add cannot take (read-only, or set apart: contacts through their items; the
# stage, so that a restored deal starts in its funnel's first stage, not in the lost one).
NOT_RESTORED = {
    "ID", "STAGE_ID", "STAGE_SEMANTIC_ID", "IS_NEW", "CLOSED", "DATE_CREATE", "DATE_MODIFY",
    "CREATED_BY_ID", "MODIFY_BY_ID", "MOVED_BY_ID", "MOVED_TIME", "LAST_ACTIVITY_TIME",
    "LAST_ACTIVITY_BY", "CONTACT_ID", "CONTACT_IDS", "IS_RETURN_CUSTOMER",
    "IS_REPEATED_APPROACH", "IS_RECURRING", "QUOTE_ID", "LEAD_ID",
}  # fmt: skip
ROW_FIELDS = (
    "PRODUCT_ID", "PRODUCT_NAME", "PRICE", "PRICE_EXCLUSIVE", "PRICE_NETTO", "PRICE_BRUTTO",
    "QUANTITY", "DISCOUNT_TYPE_ID", "DISCOUNT_RATE", "DISCOUNT_SUM", "TAX_RATE",
    "TAX_INCLUDED", "MEASURE_CODE", "MEASURE_NAME", "SORT",
)  # fmt: skip

lost_entries = Table(
    "lost_deal_entries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(64), nullable=False),
    Column("deal_id", BigInteger, nullable=False),
    Column("stage_id", String(64), nullable=False),
    Column("moved_time", String(64), nullable=False, default=""),  # MOVED_TIME at the robot
    Column("reason", Text, nullable=False, default=""),
    Column("entered_at", Float, nullable=False),
    Column("due_at", Float, nullable=False, index=True),
    Column("keep_days", Integer, nullable=False, default=DEFAULT_KEEP_DAYS),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("claimed_at", Float, nullable=True),
    # waiting, deleted, left (moved out or reopened), missing (deleted by someone), dry_run
    Column("state", String(16), nullable=False, default="waiting"),
)
DUE = DueRows(lost_entries, stale_after=CLAIM_SECONDS)

lost_snapshots = Table(
    "lost_deal_snapshots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(64), nullable=False),
    Column("entry_id", Integer, nullable=False, unique=True),  # one snapshot per entry
    Column("deal_id", BigInteger, nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
    Column("data", Text, nullable=False),  # JSON: deal, product_rows, contacts, comments
    Column("taken_at", Float, nullable=False),
    Column("deleted_at", Float, nullable=True),  # null until the deletion succeeded
    Column("keep_until", Float, nullable=True, index=True),
    Column("restored_at", Float, nullable=True),
    Column("restored_deal_id", BigInteger, nullable=True),
)


@dataclass(frozen=True)
class Entry:
    """One deal's stay in the lost stage, waiting to be deleted."""

    id: int
    deal_id: int
    stage_id: str
    moved_time: str
    reason: str
    keep_days: int
    dry_run: bool


def start(
    ctx: Context,
    deal_id: int,
    stage_id: str,
    moved_time: str,
    *,
    after: str,
    reason: str = "",
    keep_days: int = DEFAULT_KEEP_DAYS,
    dry_run: bool = False,
) -> float:
    """Delete the deal ``after`` from now if it stays in ``stage_id`` (this stay: its
    ``moved_time``); when, as a timestamp. A new entry replaces the deal's waiting one.
    ValueError for a duration the calendar cannot read or a negative retention."""
    if keep_days < 0:
        raise ValueError("keep snapshots for days: give 0 or more days")
    now = ctx.clock.now()
    due = ctx.calendar.add_duration(now, after).timestamp()
    key = and_(
        lost_entries.c.member_id == ctx.member_id,
        lost_entries.c.deal_id == deal_id,
        lost_entries.c.state == "waiting",
    )
    with ctx.store.engine.begin() as db:
        db.execute(delete(lost_entries).where(key))
        db.execute(
            insert(lost_entries).values(
                member_id=ctx.member_id, deal_id=deal_id, stage_id=stage_id,
                moved_time=moved_time or "", reason=reason[:2000], entered_at=now.timestamp(),
                due_at=due, keep_days=keep_days, dry_run=dry_run, state="waiting",
            )
        )  # fmt: skip
    return due


# the sweep -----------------------------------------------------------------------------------


def sweep(ctx: JobContext) -> dict[str, int]:
    """Schedule ``lost_deals``: delete the due deals still lost since their entry, once each."""
    now = ctx.clock.now().timestamp()
    report = {"due": 0, "deleted": 0, "left": 0, "missing": 0, "dry_run": 0, "failed": 0,
              "expired": _expire(ctx, now)}  # fmt: skip
    while True:
        entries = _claim_due(ctx, now)
        if not entries:
            return report
        report["due"] += len(entries)
        try:
            read = _read(ctx, entries)
        except Exception:
            _release(ctx, entries)  # the next sweep takes them again
            raise
        missing = [e for e in entries if e.deal_id not in read]
        _deleted_elsewhere(ctx, missing, now)
        _finish(ctx, missing, "missing")
        report["missing"] += len(missing)
        present = [e for e in entries if e.deal_id in read]
        still = [e for e in present if _still_lost(e, read[e.deal_id]["deal"])]
        left = [e for e in present if e not in still]
        _finish(ctx, left, "left")
        report["left"] += len(left)
        dry = [e for e in still if e.dry_run]
        for e in dry:
            deal = read[e.deal_id]["deal"]
            ctx.log.info(
                "dry run: would delete deal %s %r (lost: %s), %d product row(s), %d contact(s)",
                e.deal_id, deal.get("TITLE", ""), e.reason, len(read[e.deal_id]["product_rows"]),
                len(read[e.deal_id]["contacts"]),
            )  # fmt: skip
        _finish(ctx, dry, "dry_run")
        report["dry_run"] += len(dry)
        doomed = [e for e in still if not e.dry_run]
        if not doomed:
            continue
        try:
            _keep(ctx, doomed, read, now)
            deleted, failed = _delete(ctx, doomed)
        except Exception:
            _release(ctx, doomed)
            raise
        _mark_deleted(ctx, deleted, now)
        _finish(ctx, deleted, "deleted")
        report["deleted"] += len(deleted)
        report["failed"] += len(failed)
        _release(ctx, failed)
        if failed:
            raise TryAgain(f"lost deals: {len(failed)} deal(s) not deleted, retried")


def _claim_due(ctx: JobContext, now: float) -> list[Entry]:
    """Up to a batch of due entries, claimed for this sweep (another sweep skips them)."""
    return [_entry(row) for row in DUE.claim(ctx.store.engine, ctx.member_id, now, BATCH)]


def _entry(row: Any) -> Entry:
    return Entry(
        id=row["id"], deal_id=int(row["deal_id"]), stage_id=row["stage_id"],
        moved_time=row["moved_time"] or "", reason=row["reason"] or "",
        keep_days=int(row["keep_days"]), dry_run=bool(row["dry_run"]),
    )  # fmt: skip


def _still_lost(entry: Entry, deal: Mapping[str, Any]) -> bool:
    """In the lost stage since the robot ran: the same stage and the same stay."""
    if deal.get("STAGE_ID") != entry.stage_id:
        return False
    return not entry.moved_time or str(deal.get("MOVED_TIME") or "") == entry.moved_time


def _not_found(error: PortalError) -> bool:
    text = f"{error.code} {error.description}".lower()
    return "not found" in text or "not_found" in text


def _read(ctx: JobContext, entries: list[Entry]) -> dict[int, dict[str, Any]]:
    """The deals as they are now with their product rows, contacts and timeline comments, in
    one request (a deleted deal is simply missing); any other error raises."""
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    for e in entries:
        d = e.deal_id
        commands[f"d{d}"] = ("crm.deal.get", {"id": d})
        commands[f"p{d}"] = ("crm.deal.productrows.get", {"id": d})
        commands[f"c{d}"] = ("crm.deal.contact.items.get", {"id": d})
        commands[f"t{d}"] = _comments_query(d, 0)
    got = ctx.portal.batch(commands)
    out: dict[int, dict[str, Any]] = {}
    more: dict[int, int] = {}
    for e in entries:
        d = e.deal_id
        error = got.errors.get(f"d{d}")
        if error is not None and _not_found(error):
            continue
        for label in (f"d{d}", f"p{d}", f"c{d}", f"t{d}"):
            if label in got.errors:
                raise got.errors[label]
        if not got.results.get(f"d{d}"):
            continue
        comments = list(got.results.get(f"t{d}") or [])
        if int(got.totals.get(f"t{d}", 0) or 0) > len(comments):
            more[d] = int(got.totals[f"t{d}"])
        out[d] = {
            "deal": got.results[f"d{d}"],
            "product_rows": list(got.results.get(f"p{d}") or []),
            "contacts": list(got.results.get(f"c{d}") or []),
            "comments": comments,
        }
    if more:  # rare: more than a page of comments; the rest in one more request
        pages = {
            f"t{d}_{start}": _comments_query(d, start)
            for d, total in more.items()
            for start in range(PAGE, total, PAGE)
        }
        rest = ctx.portal.batch(pages)
        rest.raise_for_errors()
        for label in sorted(pages, key=lambda k: int(k.rsplit("_", 1)[1])):
            d = int(label[1:].split("_")[0])
            out[d]["comments"].extend(rest.results.get(label) or [])
    return out


def _comments_query(deal_id: int, start: int) -> tuple[str, dict[str, Any]]:
    return (
        "crm.timeline.comment.list",
        {"filter": {"ENTITY_ID": deal_id, "ENTITY_TYPE": "deal"},
         "order": {"ID": "ASC"}, "start": start},
    )  # fmt: skip


def _keep(
    ctx: JobContext, entries: list[Entry], read: dict[int, dict[str, Any]], now: float
) -> None:
    """The snapshots, before anything is deleted (a retried entry replaces its own)."""
    with ctx.store.engine.begin() as db:
        for e in entries:
            snap = read[e.deal_id]
            db.execute(delete(lost_snapshots).where(lost_snapshots.c.entry_id == e.id))
            db.execute(
                insert(lost_snapshots).values(
                    member_id=ctx.member_id, entry_id=e.id, deal_id=e.deal_id,
                    title=str(snap["deal"].get("TITLE") or ""), reason=e.reason,
                    data=json.dumps(snap, ensure_ascii=False, default=str), taken_at=now,
                )
            )  # fmt: skip


def _delete(ctx: JobContext, entries: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    got = ctx.portal.batch(
        {f"x{e.deal_id}": ("crm.deal.delete", {"id": e.deal_id}) for e in entries}
    )
    failed = []
    for e in entries:
        error = got.errors.get(f"x{e.deal_id}")
        if error is None or _not_found(error):
            continue  # deleted now, or by someone in between: either way it is gone
        ctx.log.warning("lost deal %s not deleted: %s", e.deal_id, error.description)
        failed.append(e)
    return [e for e in entries if e not in failed], failed


def _mark_deleted(ctx: Context, entries: list[Entry], now: float) -> None:
    with ctx.store.engine.begin() as db:
        for e in entries:
            db.execute(
                update(lost_snapshots)
                .where(lost_snapshots.c.entry_id == e.id)
                .values(deleted_at=now, keep_until=now + e.keep_days * DAY)
            )
    for e in entries:
        ctx.log.info("lost deal %s deleted; its snapshot is kept %d days", e.deal_id, e.keep_days)


def _deleted_elsewhere(ctx: Context, entries: list[Entry], now: float) -> None:
    """A deal not found whose snapshot was taken: an earlier sweep deleted it and stopped
    before saying so; the snapshot counts as of now."""
    c = lost_snapshots.c
    with ctx.store.engine.begin() as db:
        for e in entries:
            db.execute(
                update(lost_snapshots)
                .where(c.entry_id == e.id, c.deleted_at.is_(None))
                .values(deleted_at=now, keep_until=now + e.keep_days * DAY)
            )


def _expire(ctx: Context, now: float) -> int:
    """Snapshots past their retention are dropped (in the database only)."""
    c = lost_snapshots.c
    with ctx.store.engine.begin() as db:
        return db.execute(
            delete(lost_snapshots).where(c.member_id == ctx.member_id, c.keep_until < now)
        ).rowcount


def _finish(ctx: Context, entries: list[Entry], state: str) -> None:
    DUE.finish(ctx.store.engine, [e.id for e in entries], state)


def _release(ctx: Context, entries: list[Entry]) -> None:
    DUE.release(ctx.store.engine, [e.id for e in entries])


# reading and restoring -----------------------------------------------------------------------


def entries(ctx: Context, deal_id: int) -> list[dict[str, Any]]:
    """The deal's entries, oldest first (for pages and tests)."""
    return DUE.of_deal(ctx.store.engine, ctx.member_id, deal_id)


def snapshots(ctx: Context) -> list[dict[str, Any]]:
    """The portal's kept snapshots of deleted deals, newest first; ``data`` decoded."""
    c = lost_snapshots.c
    with ctx.store.engine.connect() as db:
        rows = db.execute(
            select(lost_snapshots)
            .where(c.member_id == ctx.member_id, c.deleted_at.is_not(None))
            .order_by(c.deleted_at.desc(), c.id.desc())
        ).mappings()
        return [{**dict(r), "data": json.loads(r["data"])} for r in rows]


def restore(ctx: Context, snapshot_id: int) -> int:
    """Add the snapshot's deal again (fields, product rows, contacts, a timeline comment
    saying so) in one request; the new deal's id. LookupError when there is no such kept
    snapshot, ValueError when it was restored already."""
    c = lost_snapshots.c
    now = ctx.clock.now().timestamp()
    mine = and_(c.id == snapshot_id, c.member_id == ctx.member_id, c.deleted_at.is_not(None))
    with ctx.store.engine.begin() as db:
        row = db.execute(select(lost_snapshots).where(mine)).mappings().first()
        if row is None:
            raise LookupError(snapshot_id)
        if row["restored_deal_id"]:
            raise ValueError(int(row["restored_deal_id"]))
        taken = db.execute(
            update(lost_snapshots)
            .where(mine, c.restored_at.is_(None) | (c.restored_at < now - CLAIM_SECONDS))
            .values(restored_at=now)
        ).rowcount
    if not taken:
        raise ValueError(0)  # another admin is restoring it right now
    data = json.loads(row["data"])
    deal = data.get("deal") or {}
    fields = {k: v for k, v in deal.items() if k not in NOT_RESTORED and v not in (None, "", [])}
    rows = [
        {k: r[k] for k in ROW_FIELDS if r.get(k) not in (None, "")}
        for r in data.get("product_rows") or []
    ]
    contacts = [
        {"CONTACT_ID": int(x["CONTACT_ID"]), "IS_PRIMARY": x.get("IS_PRIMARY", "N"),
         "SORT": x.get("SORT", 10)}
        for x in data.get("contacts") or [] if x.get("CONTACT_ID")
    ]  # fmt: skip
    commands: dict[str, tuple[str, dict[str, Any]]] = {
        "deal": ("crm.deal.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "N"}}),
        "rows": ("crm.deal.productrows.set", {"id": "$result[deal]", "rows": rows}),
    }
    if contacts:
        commands["contacts"] = (
            "crm.deal.contact.items.set", {"id": "$result[deal]", "items": contacts},
        )  # fmt: skip
    commands["comment"] = (
        "crm.timeline.comment.add",
        {"fields": {"ENTITY_ID": "$result[deal]", "ENTITY_TYPE": "deal",
                    "COMMENT": restored_comment(ctx, row, data)}},
    )  # fmt: skip
    try:
        got = ctx.portal.batch(commands, halt=True)
    except Exception:
        with ctx.store.engine.begin() as db:  # not known to be added: it may be tried again
            db.execute(update(lost_snapshots).where(mine).values(restored_at=None))
        raise
    new_id = int(got.results.get("deal") or 0)
    with ctx.store.engine.begin() as db:
        values = {"restored_deal_id": new_id} if new_id else {"restored_at": None}
        db.execute(update(lost_snapshots).where(mine).values(values))
    got.raise_for_errors()
    return new_id


def restored_comment(ctx: Context, row: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    """The new deal's timeline comment: where it came from, and the old deal's comments."""
    when = _when(ctx, row["deleted_at"])
    lines = [
        f"Restored from deal #{row['deal_id']} deleted on {when}"
        + (f" (lost: {row['reason']})" if row["reason"] else "")
        + "."
    ]
    for comment in data.get("comments") or []:
        lines.append(f"[{comment.get('CREATED', '')}] {comment.get('COMMENT', '')}")
    return "\n".join(lines)[:60000]


def _when(ctx: Context, timestamp: float | None) -> str:
    if timestamp is None:
        return ""
    try:
        tz = ctx.calendar.tz
    except ValueError:
        tz = PortalCalendar().tz
    return datetime.fromtimestamp(timestamp, UTC).astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


# the settings section ------------------------------------------------------------------------


def view(ctx: Context) -> dict[str, Any]:
    rows = [
        {
            "id": s["id"],
            "deal_id": s["deal_id"],
            "title": s["title"],
            "reason": s["reason"],
            "deleted_at": _when(ctx, s["deleted_at"]),
            "keep_until": _when(ctx, s["keep_until"]),
            "rows": len(s["data"].get("product_rows") or []),
            "contacts": len(s["data"].get("contacts") or []),
            "restored_deal_id": s["restored_deal_id"],
        }
        for s in snapshots(ctx)
    ]
    return {"rows": rows}


def restore_from_form(ctx: Context, form: Mapping[str, str]) -> str:
    raw = str(form.get("snapshot_id", "")).strip()
    if not raw.isdigit():
        raise ValueError(_("Not restored: the snapshot id must be a whole number."))
    try:
        new_id = restore(ctx, int(raw))
    except LookupError:
        raise ValueError(_("Snapshot %(id)s is not there (expired?).", id=raw)) from None
    except ValueError as exc:
        if exc.args and exc.args[0]:
            raise ValueError(
                _("Snapshot %(id)s was restored already as deal %(deal)s.", id=raw,
                  deal=exc.args[0])
            ) from None  # fmt: skip
        raise ValueError(_("Snapshot %(id)s is being restored right now.", id=raw)) from None
    except PortalError as exc:
        raise ValueError(_("Not restored: the portal said %(reason)s.", reason=exc)) from None
    log.info("lost deal snapshot %s restored as deal %s for %s", raw, new_id, ctx.member_id)
    return _("Restored as deal %(deal)s.", deal=new_id)


CAPABILITY = Capability(
    name="lost_deals",
    schedules=(Schedule("lost_deals", "*/15 * * * *", sweep),),
    sections=(
        Section("lost_deals", "lost_deals/section.html", view, {"restore_lost": restore_from_form}),
    ),
    templates=str(Path(__file__).parent / "templates"),
)

__all__ = ["CAPABILITY", "DEFAULT_KEEP_DAYS", "entries", "restore", "snapshots", "start", "sweep"]
