"""The process-wide services a request or a job needs, built once by the composition root:
the settings, the catalogue, the store, Redis and its queues, the portal clients.

A web process reaches them through its Flask app (``app.web``), a job through the runner
(``app.jobs``, which also queues jobs and builds contexts); nothing else reaches for them:
robots and capabilities get a context.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from redis import Redis
from rq import Queue

from app.bitrix import PortalClient, UserToken
from app.calendar import Clock, SystemClock
from app.errors import Unauthorized
from app.payloads import Auth
from app.registry import Catalogue
from app.settings import Settings
from app.store import Installation, Store

# (portal, catalogue, settings, language, fingerprints of the last sync) -> report
Installer = Callable[[PortalClient, Catalogue, Settings, str, dict[str, str]], dict[str, Any]]


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
