"""What the app keeps: installations (tokens encrypted), portal settings, run history.

SQLAlchemy Core on any database it speaks: SQLite by default, PostgreSQL when DATABASE_URL
points at one. Tokens and every setting value are encrypted with SECRET_KEY.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from app.crypto import SecretBox

if TYPE_CHECKING:  # pragma: no cover
    from app.bitrix import Tokens

metadata = MetaData()

installations = Table(
    "installations",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("domain", String(255), nullable=False),
    Column("client_endpoint", String(512), nullable=False),
    Column("server_endpoint", String(512), nullable=False, default=""),
    Column("application_token", Text, nullable=False),  # encrypted
    Column("access_token", Text, nullable=False),  # encrypted
    Column("refresh_token", Text, nullable=False),  # encrypted
    Column("expires_at", Float, nullable=False, default=0),
    Column("scope", Text, nullable=False, default=""),
    Column("status", String(8), nullable=False, default=""),
    Column("language", String(8), nullable=False, default="en"),
    Column("installed_by", Integer, nullable=False, default=0),
    Column("installed_at", Float, nullable=False),
    Column("synced_at", Float, nullable=True),
    Column("active", Integer, nullable=False, default=1),
)

portal_settings = Table(
    "portal_settings",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("key", String(128), primary_key=True),
    Column("value", Text, nullable=False),  # encrypted JSON
    Column("updated_at", Float, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("member_id", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # robot, event, sms, sweep, install
    Column("name", String(128), nullable=False),
    Column("document", String(128), nullable=False, default=""),
    Column("key", String(200), nullable=False, default="", index=True),
    Column("inputs", JSON, nullable=True),
    Column("result", JSON, nullable=True),
    Column("status", String(16), nullable=False),  # ok, failed, retrying
    Column("error", Text, nullable=True),
    Column("attempts", Integer, nullable=False, default=1),
    Column("duration_ms", BigInteger, nullable=False, default=0),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
)


@dataclass(frozen=True)
class Installation:
    """One portal the app is installed into."""

    member_id: str
    domain: str
    client_endpoint: str
    server_endpoint: str
    application_token: str = field(repr=False)
    scope: str
    status: str
    language: str
    installed_by: int
    installed_at: float
    synced_at: float | None
    active: bool

    def token_matches(self, candidate: str) -> bool:
        """Constant-time comparison with the application_token the portal gave at install."""
        return hmac.compare_digest(self.application_token.encode(), candidate.encode())


class Store:
    """The app's database. One instance per process; safe to share between threads."""

    def __init__(self, database_url: str, secret_key: str) -> None:
        self.box = SecretBox(secret_key)
        kwargs: dict[str, Any] = {"future": True}
        if database_url.startswith("sqlite"):
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if database_url in ("sqlite://", "sqlite:///:memory:"):
                kwargs["poolclass"] = StaticPool
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(database_url, **kwargs)
        metadata.create_all(self.engine)

    # installations ---------------------------------------------------------------------
    def save_installation(
        self,
        *,
        member_id: str,
        domain: str,
        client_endpoint: str,
        server_endpoint: str,
        application_token: str,
        access_token: str,
        refresh_token: str,
        expires_at: float,
        scope: str = "",
        status: str = "",
        language: str = "en",
        installed_by: int = 0,
    ) -> None:
        """Create or replace the installation of one portal (install and reinstall)."""
        row = {
            "domain": domain,
            "client_endpoint": client_endpoint,
            "server_endpoint": server_endpoint,
            "application_token": self.box.encrypt(application_token),
            "access_token": self.box.encrypt(access_token),
            "refresh_token": self.box.encrypt(refresh_token),
            "expires_at": expires_at,
            "scope": scope,
            "status": status,
            "language": language,
            "installed_by": installed_by,
            "installed_at": time.time(),
            "synced_at": None,
            "active": 1,
        }
        with self.engine.begin() as db:
            done = db.execute(
                update(installations).where(installations.c.member_id == member_id).values(**row)
            )
            if not done.rowcount:
                db.execute(insert(installations).values(member_id=member_id, **row))

    def installation(self, member_id: str, *, active_only: bool = True) -> Installation | None:
        with self.engine.connect() as db:
            row = (
                db.execute(select(installations).where(installations.c.member_id == member_id))
                .mappings()
                .first()
            )
        if row is None or (active_only and not row["active"]):
            return None
        return self._installation(row)

    def _installation(self, row: Any) -> Installation:
        return Installation(
            member_id=row["member_id"],
            domain=row["domain"],
            client_endpoint=row["client_endpoint"],
            server_endpoint=row["server_endpoint"],
            application_token=self.box.decrypt(row["application_token"]),
            scope=row["scope"],
            status=row["status"],
            language=row["language"],
            installed_by=row["installed_by"],
            installed_at=row["installed_at"],
            synced_at=row["synced_at"],
            active=bool(row["active"]),
        )

    def installations(self, *, active_only: bool = True) -> list[Installation]:
        query = select(installations).order_by(installations.c.installed_at)
        if active_only:
            query = query.where(installations.c.active == 1)
        with self.engine.connect() as db:
            return [self._installation(r) for r in db.execute(query).mappings()]

    def mark_synced(self, member_id: str) -> None:
        with self.engine.begin() as db:
            db.execute(
                update(installations)
                .where(installations.c.member_id == member_id)
                .values(synced_at=time.time())
            )

    def deactivate(self, member_id: str, *, clean: bool = False) -> None:
        """Uninstall: tokens are wiped at once; with ``clean`` every trace of the portal goes."""
        with self.engine.begin() as db:
            db.execute(
                update(installations)
                .where(installations.c.member_id == member_id)
                .values(
                    active=0,
                    access_token=self.box.encrypt(""),
                    refresh_token=self.box.encrypt(""),
                )
            )
            if clean:
                # Dependent rows first: a feature's table either has a member_id column or
                # points (foreign key) at one that has.
                for table in reversed(metadata.sorted_tables):
                    if table is installations:
                        continue
                    if "member_id" in table.c:
                        db.execute(delete(table).where(table.c.member_id == member_id))
                        continue
                    for fk in table.foreign_keys:
                        parent = fk.column.table
                        if "member_id" in parent.c:
                            owned = select(fk.column).where(parent.c.member_id == member_id)
                            db.execute(delete(table).where(fk.parent.in_(owned)))
                db.execute(delete(installations).where(installations.c.member_id == member_id))

    # TokenStore (app.bitrix) -----------------------------------------------------------
    def load_tokens(self, member_id: str) -> Tokens | None:
        from app.bitrix import Tokens

        with self.engine.connect() as db:
            row = db.execute(
                select(
                    installations.c.access_token,
                    installations.c.refresh_token,
                    installations.c.expires_at,
                    installations.c.client_endpoint,
                    installations.c.active,
                ).where(installations.c.member_id == member_id)
            ).first()
        if row is None or not row.active:
            return None
        return Tokens(
            access_token=self.box.decrypt(row.access_token),
            refresh_token=self.box.decrypt(row.refresh_token),
            expires_at=row.expires_at,
            client_endpoint=row.client_endpoint,
        )

    def save_tokens(self, member_id: str, tokens: Tokens) -> None:
        with self.engine.begin() as db:
            db.execute(
                update(installations)
                .where(installations.c.member_id == member_id)
                .where(installations.c.active == 1)
                .values(
                    access_token=self.box.encrypt(tokens.access_token),
                    refresh_token=self.box.encrypt(tokens.refresh_token),
                    expires_at=tokens.expires_at,
                    client_endpoint=tokens.client_endpoint,
                )
            )

    # portal settings -------------------------------------------------------------------
    def get_setting(self, member_id: str, key: str, default: Any = None) -> Any:
        with self.engine.connect() as db:
            value = db.execute(
                select(portal_settings.c.value).where(
                    portal_settings.c.member_id == member_id, portal_settings.c.key == key
                )
            ).scalar()
        return default if value is None else self.box.decrypt_json(value)

    def set_setting(self, member_id: str, key: str, value: Any) -> None:
        encrypted = self.box.encrypt_json(value)
        with self.engine.begin() as db:
            done = db.execute(
                update(portal_settings)
                .where(portal_settings.c.member_id == member_id, portal_settings.c.key == key)
                .values(value=encrypted, updated_at=time.time())
            )
            if not done.rowcount:
                db.execute(
                    insert(portal_settings).values(
                        member_id=member_id, key=key, value=encrypted, updated_at=time.time()
                    )
                )

    # run history -------------------------------------------------------------------------
    def record_run(
        self,
        *,
        member_id: str,
        kind: str,
        name: str,
        document: str = "",
        key: str = "",
        inputs: Any = None,
        result: Any = None,
        status: str,
        error: str | None = None,
        attempts: int = 1,
        started_at: float,
        finished_at: float | None = None,
    ) -> int:
        finished_at = finished_at if finished_at is not None else time.time()
        with self.engine.begin() as db:
            done = db.execute(
                insert(runs).values(
                    member_id=member_id,
                    kind=kind,
                    name=name,
                    document=document,
                    key=key[:200],
                    inputs=_jsonable(inputs),
                    result=_jsonable(result),
                    status=status,
                    error=error,
                    attempts=attempts,
                    duration_ms=int((finished_at - started_at) * 1000),
                    started_at=started_at,
                    finished_at=finished_at,
                )
            )
            return int(done.inserted_primary_key[0])

    def runs(
        self, member_id: str | None = None, *, kind: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        query = select(runs).order_by(runs.c.id.desc()).limit(limit)
        if member_id is not None:
            query = query.where(runs.c.member_id == member_id)
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        with self.engine.connect() as db:
            return [dict(r) for r in db.execute(query).mappings()]

    def run_by_key(self, key: str, status: str = "ok") -> dict[str, Any] | None:
        """The last run recorded under ``key`` with ``status`` (idempotent re-runs)."""
        query = (
            select(runs)
            .where(runs.c.key == key[:200], runs.c.status == status)
            .order_by(runs.c.id.desc())
            .limit(1)
        )
        with self.engine.connect() as db:
            row = db.execute(query).mappings().first()
        return dict(row) if row else None

    def set_run_status(self, run_id: int, status: str) -> None:
        with self.engine.begin() as db:
            db.execute(update(runs).where(runs.c.id == run_id).values(status=status))

    def iter_failed_runs(
        self, member_id: str | None = None, *, kind: str | None = None
    ) -> Iterator[dict[str, Any]]:
        query = select(runs).where(runs.c.status == "failed").order_by(runs.c.id)
        if member_id is not None:
            query = query.where(runs.c.member_id == member_id)
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        with self.engine.connect() as db:
            yield from (dict(r) for r in db.execute(query).mappings())


def _jsonable(value: Any) -> Any:
    if value is None:
        return None
    return json.loads(json.dumps(value, default=str))


class DueRows:
    """Rows of a capability's table that come due, each claimed by one sweep at a time.

    The table has ``id``, ``member_id``, ``due_at`` (epoch seconds), ``claimed_at`` and
    ``state`` ("waiting" while the row is wanted). A claim is a compare-and-set on the row,
    so two sweeps (workers, retries) never act on one row at once; a claim older than
    ``stale_after`` seconds was a worker that died, and the row is claimed again.
    """

    def __init__(self, table: Table, stale_after: float = 15 * 60) -> None:
        self.table = table
        self.stale_after = stale_after

    def claim(self, engine: Engine, member_id: str, now: float, limit: int) -> list[Any]:
        """Up to ``limit`` due rows of the portal, oldest due first, claimed for this sweep."""
        c = self.table.c
        due = (c.member_id == member_id, c.state == "waiting", c.due_at <= now)
        free = c.claimed_at.is_(None) | (c.claimed_at < now - self.stale_after)
        with engine.begin() as db:
            rows = db.execute(
                select(self.table).where(*due, free).order_by(c.due_at).limit(limit)
            ).mappings().all()  # fmt: skip
            claimed = []
            for row in rows:
                same = (
                    c.claimed_at.is_(None)
                    if row["claimed_at"] is None
                    else c.claimed_at == row["claimed_at"]
                )
                taken = db.execute(
                    update(self.table).where(c.id == row["id"], *due, same).values(claimed_at=now)
                ).rowcount
                if taken:
                    claimed.append(row)
        return claimed

    def of_deal(self, engine: Engine, member_id: str, deal_id: int) -> list[dict[str, Any]]:
        """A deal's rows (the table has ``deal_id``), oldest first: for pages and tests."""
        c = self.table.c
        with engine.connect() as db:
            rows = db.execute(
                select(self.table)
                .where(c.member_id == member_id, c.deal_id == deal_id)
                .order_by(c.id)
            ).mappings()
            return [dict(r) for r in rows]

    def release(self, engine: Engine, ids: list[int]) -> None:
        """Give the rows back: the next sweep takes them again."""
        self._set(engine, ids, claimed_at=None)

    def finish(self, engine: Engine, ids: list[int], state: str) -> None:
        """The rows are done with (``state``: "done", "left", "deleted"...)."""
        self._set(engine, ids, state=state, claimed_at=None)

    def _set(self, engine: Engine, ids: list[int], **values: Any) -> None:
        if ids:
            with engine.begin() as db:
                db.execute(update(self.table).where(self.table.c.id.in_(ids)).values(**values))
