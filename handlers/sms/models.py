"""The SMS provider's own tables: every message it was handed, and the portals' callback refs.

``sms_messages`` makes "never sent twice for one message_id" durable: a send job claims its
row atomically (``new`` -> ``sending``) before it calls the gateway, and a row that has left
``new`` is never handed to a gateway again. ``sms_portals`` maps the opaque reference in a
delivery-report URL back to its portal (the URL never shows the member_id).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from app.store import metadata

# Our row states: ``new`` (waiting for a send job), ``sending`` (claimed: a job is handing it
# to the gateway), then the portal's statuses (queued, sent, delivered, undelivered, failed).
NEW, SENDING = "new", "sending"
FINAL = ("delivered", "undelivered", "failed")
RANK = {NEW: 0, SENDING: 1, "queued": 2, "sent": 3, "delivered": 4, "undelivered": 4, "failed": 4}
# Where a message came from: the portal's message service (statuses are reported back to it)
# or the send_sms robot (the portal knows no such message; the robot returns the status).
PORTAL, ROBOT = "portal", "robot"

sms_messages = Table(
    "sms_messages",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(64), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("origin", String(16), nullable=False, default=PORTAL),
    Column("phone", String(64), nullable=False),  # as the portal passed it
    Column("to", String(32), nullable=True),  # E.164, once normalized
    Column("body", Text, nullable=False),
    Column("gateway", String(32), nullable=True),
    Column("provider_id", String(128), nullable=True),
    Column("status", String(16), nullable=False, default=NEW),
    Column("reported", String(16), nullable=True),  # the last status the portal accepted
    Column("attempts", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("member_id", "message_id", name="uq_sms_messages_member_message"),
    Index("ix_sms_messages_provider", "member_id", "gateway", "provider_id"),
    Index("ix_sms_messages_status", "member_id", "status", "created_at"),
)

sms_portals = Table(
    "sms_portals",
    metadata,
    Column("ref", String(64), primary_key=True),
    Column("member_id", String(64), nullable=False, unique=True),
)


@dataclass(frozen=True)
class Message:
    """One row of ``sms_messages``."""

    member_id: str
    message_id: str
    origin: str
    phone: str
    to: str | None
    body: str
    gateway: str | None
    provider_id: str | None
    status: str
    reported: str | None
    attempts: int
    error: str | None
    created_at: float
    updated_at: float

    @property
    def final(self) -> bool:
        return self.status in FINAL


def _message(row: Any) -> Message:
    return Message(**{k: row[k] for k in Message.__dataclass_fields__})


class Messages:
    """Queries on ``sms_messages`` (SQLAlchemy Core, any database the store speaks)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(
        self,
        member_id: str,
        message_id: str,
        phone: str,
        body: str,
        *,
        origin: str = PORTAL,
        now: float,
    ) -> bool:
        """Add a message; False when it is already there (a replayed POST)."""
        try:
            with self.engine.begin() as db:
                db.execute(
                    insert(sms_messages).values(
                        member_id=member_id,
                        message_id=message_id,
                        origin=origin,
                        phone=phone,
                        body=body,
                        status=NEW,
                        attempts=0,
                        created_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    def get(self, member_id: str, message_id: str) -> Message | None:
        query = select(sms_messages).where(
            sms_messages.c.member_id == member_id, sms_messages.c.message_id == message_id
        )
        with self.engine.connect() as db:
            row = db.execute(query).mappings().first()
        return _message(row) if row else None

    def by_provider_id(self, member_id: str, gateway: str, provider_id: str) -> Message | None:
        query = select(sms_messages).where(
            sms_messages.c.member_id == member_id,
            sms_messages.c.gateway == gateway,
            sms_messages.c.provider_id == provider_id,
        )
        with self.engine.connect() as db:
            row = db.execute(query).mappings().first()
        return _message(row) if row else None

    def claim(self, member_id: str, message_id: str, gateway: str, now: float) -> bool:
        """``new`` -> ``sending`` in one statement: True for exactly one caller."""
        with self.engine.begin() as db:
            done = db.execute(
                update(sms_messages)
                .where(
                    sms_messages.c.member_id == member_id,
                    sms_messages.c.message_id == message_id,
                    sms_messages.c.status == NEW,
                )
                .values(
                    status=SENDING,
                    gateway=gateway,
                    attempts=sms_messages.c.attempts + 1,
                    updated_at=now,
                )
            )
        return done.rowcount == 1

    def release(self, member_id: str, message_id: str, error: str, now: float) -> None:
        """``sending`` -> ``new``: the gateway surely did not take it; a retry may send."""
        self._set(member_id, message_id, {"status": NEW, "error": error}, now, only=SENDING)

    def finish(
        self,
        member_id: str,
        message_id: str,
        status: str,
        now: float,
        *,
        to: str | None = None,
        provider_id: str | None = None,
        error: str | None = None,
    ) -> None:
        """The outcome of a send (from ``sending`` or ``new``)."""
        values: dict[str, Any] = {"status": status, "error": error}
        if to is not None:
            values["to"] = to
        if provider_id is not None:
            values["provider_id"] = provider_id
        self._set(member_id, message_id, values, now, only=(NEW, SENDING))

    def advance(
        self, member_id: str, message_id: str, status: str, error: str | None, now: float
    ) -> bool:
        """A later status from the gateway; never goes back (delivered stays delivered)."""
        lower = [s for s, rank in RANK.items() if rank < RANK[status] and s not in (NEW, SENDING)]
        values: dict[str, Any] = {"status": status}
        if error is not None:
            values["error"] = error
        return self._set(member_id, message_id, values, now, only=tuple(lower))

    def mark_reported(self, member_id: str, message_id: str, status: str, now: float) -> None:
        self._set(member_id, message_id, {"reported": status}, now)

    def _set(
        self,
        member_id: str,
        message_id: str,
        values: dict[str, Any],
        now: float,
        only: str | tuple[str, ...] | None = None,
    ) -> bool:
        cond = [sms_messages.c.member_id == member_id, sms_messages.c.message_id == message_id]
        if only is not None:
            states = (only,) if isinstance(only, str) else only
            cond.append(sms_messages.c.status.in_(states))
        with self.engine.begin() as db:
            done = db.execute(
                update(sms_messages).where(and_(*cond)).values(**values, updated_at=now)
            )
        return done.rowcount == 1

    def pending(self, member_id: str, since: float, limit: int) -> list[Message]:
        """Messages the gateway took and has not reported final on, newest first."""
        query = (
            select(sms_messages)
            .where(
                sms_messages.c.member_id == member_id,
                sms_messages.c.status.in_(("queued", "sent")),
                sms_messages.c.provider_id.is_not(None),
                sms_messages.c.created_at >= since,
            )
            .order_by(sms_messages.c.created_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as db:
            return [_message(r) for r in db.execute(query).mappings()]

    def stuck(self, member_id: str, before: float) -> list[Message]:
        """Messages claimed by a job that never finished (its worker died mid-send)."""
        query = select(sms_messages).where(
            sms_messages.c.member_id == member_id,
            sms_messages.c.status == SENDING,
            sms_messages.c.updated_at < before,
        )
        with self.engine.connect() as db:
            return [_message(r) for r in db.execute(query).mappings()]

    def unreported(self, member_id: str, limit: int = 100) -> list[Message]:
        """Portal messages whose last status the portal has not accepted yet."""
        query = (
            select(sms_messages)
            .where(
                sms_messages.c.member_id == member_id,
                sms_messages.c.origin == PORTAL,
                sms_messages.c.status.not_in((NEW, SENDING)),
                or_(
                    sms_messages.c.reported.is_(None),
                    sms_messages.c.reported != sms_messages.c.status,
                ),
            )
            .limit(limit)
        )
        with self.engine.connect() as db:
            return [_message(r) for r in db.execute(query).mappings()]


def portal_ref(engine: Engine, member_id: str, ref: str) -> str:
    """Remember the delivery-report reference of a portal (idempotent); returns it."""
    with engine.begin() as db:
        known = db.execute(
            select(sms_portals.c.ref).where(sms_portals.c.member_id == member_id)
        ).scalar()
        if known == ref:
            return ref
        if known is not None:
            db.execute(
                update(sms_portals).where(sms_portals.c.member_id == member_id).values(ref=ref)
            )
            return ref
    try:
        with engine.begin() as db:
            db.execute(insert(sms_portals).values(ref=ref, member_id=member_id))
    except IntegrityError:
        pass  # another request stored the same pair meanwhile
    return ref


def member_by_ref(engine: Engine, ref: str) -> str | None:
    with engine.connect() as db:
        return db.execute(select(sms_portals.c.member_id).where(sms_portals.c.ref == ref)).scalar()
