"""The process-wide services a request or a job needs, built once from Settings."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from redis import Redis
from rq import Queue, Retry

from app.context import Context, EventContext, PortalSettings
from app.registry import Registry
from app.settings import Settings
from app.store import Installation, Store

log = logging.getLogger(__name__)
C = TypeVar("C", bound=Context)

# Queues in priority order: a workflow is waiting on a robot; events next; bulk work last.
ROBOTS, EVENTS, BULK = "robots", "events", "bulk"
QUEUES = (ROBOTS, EVENTS, BULK)


@dataclass
class Services:
    settings: Settings
    registry: Registry = field(default_factory=Registry.load)
    clock: Any = None  # app.calendar.Clock; SystemClock unless injected

    def __post_init__(self) -> None:
        if self.clock is None:
            from app.calendar import SystemClock

            self.clock = SystemClock()

    @cached_property
    def store(self) -> Store:
        return Store(self.settings.database_url, self.settings.secret_key)

    @cached_property
    def installations(self) -> InstallationCache:
        return InstallationCache(self.store)

    @cached_property
    def redis(self) -> Redis:
        return Redis.from_url(self.settings.redis_url)

    def queue(self, name: str) -> Queue:
        """The RQ queue (kept: a Queue caches the server's version, one round trip less
        for every job queued)."""
        queues = self.__dict__.setdefault("_queues", {})
        if name not in queues:
            queues[name] = Queue(name, connection=self.redis)
        return queues[name]

    def enqueue(
        self,
        queue: str,
        func: Callable[..., Any],
        *args: Any,
        job_id: str | None = None,
        retry: Retry | None = None,
        at: Any = None,
        pipeline: Any = None,
        **kwargs: Any,
    ) -> Any:
        """Queue a job (``at``: a datetime for ``enqueue_at``; ``pipeline``: a Redis pipeline
        the caller executes, so the job is written in one round trip)."""
        q = self.queue(queue)
        options: dict[str, Any] = {
            "job_id": job_id,
            "retry": retry,
            "failure_ttl": 7 * 86400,
            "pipeline": pipeline,
        }
        if at is not None:
            return q.enqueue_at(at, func, *args, **options, **kwargs)
        return q.enqueue(func, *args, **options, **kwargs)

    def context(self, member_id: str, kind: type[C] = EventContext, **fields: Any) -> C:  # type: ignore[assignment]
        """A robot's or handler's context for one portal; ``fields`` name the run in logs
        (``robot=``, ``event=``, ``schedule=``) and fill the kind's own fields."""
        names = {k: v for k, v in fields.items() if k in ("robot", "schedule", "event")}
        logger = logging.LoggerAdapter(log, {"member_id": member_id, **names})
        own = {k: v for k, v in fields.items() if k != "robot" and k != "schedule"}
        return kind(
            member_id=member_id,
            portal=self.portal(member_id),
            settings=PortalSettings(self.store, member_id),
            clock=self.clock,
            log=logger,
            services=self,
            **own,
        )

    def portal(self, member_id: str) -> Any:
        """The REST client of one portal (app.bitrix.PortalClient)."""
        from app.bitrix import PortalClient

        return PortalClient(
            member_id,
            store=self.store,
            settings=self.settings,
            redis=self.redis,
            retry_delays=self.settings.portal_retry_delays,
        )


class InstallationCache:
    """Active installations by member_id for the callback path, kept for a few seconds.

    Only found installations are kept: an unknown portal is looked up every time. A portal
    uninstalled within the last ``ttl`` seconds may still get a callback queued; its job
    finds no installation and drops it.
    """

    def __init__(self, store: Store, ttl: float = 10.0) -> None:
        self._store = store
        self._ttl = ttl
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, Installation]] = {}

    def get(self, member_id: str, *, fresh: bool = False) -> Installation | None:
        """The installation; ``fresh`` reads the store even when a copy is kept (a
        reinstall gives the portal a new application_token)."""
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(member_id)
        if hit is not None and hit[0] > now and not fresh:
            return hit[1]
        installation = self._store.installation(member_id)
        with self._lock:
            if installation is None:
                self._items.pop(member_id, None)
            else:
                self._items[member_id] = (now + self._ttl, installation)
        return installation

    def forget(self, member_id: str) -> None:
        with self._lock:
            self._items.pop(member_id, None)


_current: Services | None = None


def current() -> Services:
    """The services of this process: set by create_app or a test, else built from the env."""
    global _current
    if _current is None:
        _current = Services(Settings.from_env())
    return _current


def use(services: Services | None) -> None:
    global _current
    _current = services
