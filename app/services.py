"""The process-wide services a request or a job needs, built once by the composition root.

A web process reaches them through its Flask app (``app.web``), a job through the runner
(``app.jobs``); nothing else reaches for them: robots and capabilities get a context.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any, TypeVar

from redis import Redis
from redis.exceptions import RedisError
from rq import Queue, Retry

from app.bitrix import PortalClient, UserToken
from app.calendar import Clock, SystemClock
from app.context import Context, JobContext, PortalSettings
from app.errors import Unauthorized
from app.jobs import RUNNER, job_spec
from app.payloads import Auth
from app.registry import Catalogue
from app.settings import Settings
from app.store import Installation, Store

log = logging.getLogger(__name__)
C = TypeVar("C", bound=Context)
DEDUPE_TTL = 7 * 86400
Installer = Callable[[PortalClient, Catalogue, Settings, str], dict[str, Any]]


@dataclass
class Services:
    settings: Settings
    catalogue: Catalogue = field(default_factory=Catalogue)
    clock: Clock = field(default_factory=SystemClock)
    installer: Installer | None = None  # brings a portal's registrations in line

    def __post_init__(self) -> None:
        self._queues: dict[str, Queue] = {}

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
        if name not in self._queues:
            self._queues[name] = Queue(name, connection=self.redis)
        return self._queues[name]

    # queueing -------------------------------------------------------------------------
    def enqueue(
        self,
        job: str,
        member_id: str,
        args: dict[str, Any],
        *,
        key: str = "",
        retry: tuple[int, ...] | None = None,
        description: str = "",
        at: datetime | None = None,
        queue: str | None = None,
    ) -> bool:
        """Queue ``job`` (a name from the catalogue or app.jobs) for one portal.

        With a ``key`` the job is queued once: a key seen before (a portal resending, a
        replayer) queues nothing and answers False. ``retry`` overrides the job's own
        waits. RQ keeps and logs the ``description``, not the arguments (which may hold
        event tokens and personal data).
        """
        spec = job_spec(self.catalogue, job)
        waits = spec.retry if retry is None else retry
        options: dict[str, Any] = {
            "job_id": job_id(job, key) if key else None,
            "retry": Retry(max=len(waits), interval=list(waits)) if waits else None,
            "failure_ttl": 7 * 86400,
            "description": description or f"{job} for {member_id}",
        }
        if key and not self.redis.set(f"seen:{key}", 1, nx=True, ex=DEDUPE_TTL):
            return False
        q = self.queue(queue or spec.queue)
        try:
            with self.redis.pipeline() as pipe:
                if at is not None:
                    q.enqueue_at(at, RUNNER, job, member_id, args, key, pipeline=pipe, **options)
                else:
                    q.enqueue(RUNNER, job, member_id, args, key, pipeline=pipe, **options)
                pipe.execute()
        except RedisError:
            if key:
                self.redis.delete(f"seen:{key}")
            raise
        return True

    def release(self, key: str) -> None:
        """Forget that ``key`` was queued, so that it may be queued again."""
        self.redis.delete(f"seen:{key}")

    # portals --------------------------------------------------------------------------
    def verify(self, auth: Auth) -> Installation:
        """The installation a callback claims to come from, or Unauthorized."""
        installation = self.installations.get(auth.member_id)
        if installation is not None and not installation.token_matches(auth.application_token):
            installation = self.installations.get(auth.member_id, fresh=True)  # reinstalled?
        if installation is None:
            raise Unauthorized("unknown portal")
        if not installation.token_matches(auth.application_token):
            raise Unauthorized("application_token does not match this portal's installation")
        return installation

    def portal(self, member_id: str) -> PortalClient:
        """The REST client of one portal."""
        return PortalClient(
            member_id,
            store=self.store,
            settings=self.settings,
            redis=self.redis,
            retry_delays=self.settings.portal_retry_delays,
        )

    def portal_as_user(self, installation: Installation, access_token: str) -> PortalClient:
        """The portal's REST API with a user's own token (what that user may see and do);
        a refused token is AuthFailed, never refreshed."""
        return PortalClient(
            installation.member_id,
            store=UserToken(access_token, installation.client_endpoint),
            settings=self.settings.with_(max_token_refreshes=0),
            redis=self.redis,
            retry_delays=self.settings.portal_retry_delays[:2],
        )

    def context(self, member_id: str, kind: type[C] = JobContext, **own: Any) -> C:  # type: ignore[assignment]
        """A robot's, job's or page's context for one portal; ``name`` names the run in
        logs, ``own`` fills the kind's own fields."""
        name = own.pop("name", "")
        logger = logging.LoggerAdapter(log, {"member_id": member_id, "run": name})
        return kind(
            member_id=member_id,
            portal=self.portal(member_id),
            settings=PortalSettings(self.store, member_id),
            clock=self.clock,
            log=logger,
            store=self.store,
            _services=self,
            **own,
        )


def job_id(job: str, key: str) -> str:
    """An RQ job id for a key (letters, digits, ``_`` and ``-`` only)."""
    return f"{job.replace('.', '_')}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"


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
