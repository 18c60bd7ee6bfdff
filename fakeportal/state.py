"""The emulated portals' state: a World of portals (keyed by member_id) and the apps it knows.

Everything is in memory and guarded by one re-entrant lock per world: the server is
threaded, and a request's changes (and the signals they send) happen under that lock.
Outgoing HTTP (robot calls, event delivery, SMS) never happens under the lock: it is
queued on ``World.outbox`` and sent by the delivery thread.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fakeportal import signals


@dataclass
class AppDef:
    """An application as the OAuth server knows it (a local app or a marketplace app)."""

    client_id: str
    client_secret: str
    install_url: str  # where ONAPPINSTALL / the install POST goes
    scope: list[str]
    version: int = 1


@dataclass
class WireRecord:
    """One thing that crossed the wire, in either direction, for the admin log."""

    at: float
    direction: str  # "in" (app -> portal REST / OAuth) or "out" (portal -> app POST)
    kind: str  # "rest", "batch", "oauth", "robot", "event", "sms", "install", ...
    name: str  # method name, event name, robot code...
    status: int
    request: Any = None
    response: Any = None


@dataclass
class Portal:
    """One Bitrix24 portal: CRM state, users, the apps installed into it, counters."""

    member_id: str
    domain: str
    timezone: str = "Europe/Moscow"
    language: str = "en"
    country: str = "RU"
    base_url: str = ""  # http://127.0.0.1:PORT, set by the server
    tables: dict[str, dict[int, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    _ids: dict[str, itertools.count] = field(default_factory=dict)
    apps: dict[str, Any] = field(default_factory=dict)  # client_id -> installation state
    requests: Counter = field(default_factory=Counter)  # method name -> calls answered
    request_total: int = 0
    wire: list[WireRecord] = field(default_factory=list)
    unknown_params: list[tuple[str, str]] = field(default_factory=list)  # (method, param)
    extra: dict[str, Any] = field(default_factory=dict)  # per-feature state

    @property
    def client_endpoint(self) -> str:
        return f"{self.base_url}/rest/"

    def next_id(self, table: str, start: int = 1) -> int:
        if table not in self._ids:
            self._ids[table] = itertools.count(start)
        return next(self._ids[table])

    def table(self, name: str) -> dict[int, dict[str, Any]]:
        return self.tables[name]

    def log(self, record: WireRecord) -> None:
        self.wire.append(record)


DEFAULT_CONFIG: dict[str, Any] = {
    "bucket_size": 50,  # leaky bucket burst
    "drain_per_second": 2.0,
    "operating_limit": 480.0,  # seconds of method time per 10 minutes
    "access_ttl": 3600,
    "refresh_ttl": 180 * 86400,
}


class World:
    """All portals one emulator serves, the OAuth server's apps, the clock, the outbox."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.portals: dict[str, Portal] = {}
        self.apps: dict[str, AppDef] = {}
        self.clock_offset = timedelta(0)
        self.config: dict[str, Any] = dict(DEFAULT_CONFIG)
        self.base_url = ""
        self.extra: dict[str, Any] = {}  # per-feature world state (tokens, webhooks...)

    # time -------------------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_offset

    def timestamp(self) -> float:
        return time.time() + self.clock_offset.total_seconds()

    def advance(self, delta: timedelta) -> None:
        """Move the portal clock forward (tests and demos; never sleeps)."""
        self.clock_offset += delta

    # portals ------------------------------------------------------------------------------
    def add_portal(
        self, domain: str | None = None, member_id: str | None = None, **kw: Any
    ) -> Portal:
        with self.lock:
            member_id = member_id or secrets.token_hex(16)
            domain = domain or f"portal-{member_id[:6]}.bitrix24.test"
            portal = Portal(member_id=member_id, domain=domain, base_url=self.base_url, **kw)
            self.portals[member_id] = portal
            signals.send("portal.created", self, portal)
            return portal

    def portal(self, member_id: str) -> Portal:
        return self.portals[member_id]

    def reset(self) -> None:
        with self.lock:
            self.portals.clear()
            self.apps.clear()
            self.clock_offset = timedelta(0)
            self.config = dict(DEFAULT_CONFIG)
            self.extra.clear()
            signals.send("world.reset", self)
