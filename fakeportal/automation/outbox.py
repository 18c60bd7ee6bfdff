"""Everything the portal POSTs to apps, delivered by one background thread per world.

Install events, robot calls, event deliveries and SMS are queued here while the world lock is
held and sent later, outside the lock, in order, form-urlencoded with PHP bracket keys, with
a timeout and no retries (the real queue server does not retry). Each delivery is written to
``portal.wire`` with direction ``"out"``. A ticker in the same runtime fires robot delays and
timeouts against the world clock.
"""

from __future__ import annotations

import collections
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests

from fakeportal.state import WireRecord

if TYPE_CHECKING:  # pragma: no cover
    from fakeportal.state import Portal, World

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
TICK_SECONDS = 0.05
IDLE_EXIT_SECONDS = 5.0
Done = Callable[[int, str], None]  # (http status or 0, response text)


def flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested dicts/lists as PHP bracket form pairs; every value a string.

    ``{"auth": {"a": 1}, "ids": ["x", "y"]}`` -> ``[("auth[a]", "1"), ("ids[0]", "x"), ...]``.
    """
    pairs: list[tuple[str, str]] = []
    if isinstance(data, dict):
        items: Any = data.items()
    elif isinstance(data, (list, tuple)):
        items = enumerate(data)
    else:
        return [(prefix, _scalar(data))]
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list, tuple)):
            if not value:
                continue  # PHP's http_build_query drops empty arrays
            pairs.extend(flatten(value, name))
        else:
            pairs.append((name, _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    return str(value)


SECRET_KEYS = frozenset(
    {
        "auth[access_token]",
        "auth[refresh_token]",
        "auth[application_token]",
        "AUTH_ID",
        "REFRESH_ID",
        "APPLICATION_TOKEN",
    }
)


def redact(pairs: list[tuple[str, str]] | dict[str, str]) -> dict[str, str]:
    """A form for the wire log: tokens replaced (the log is readable over the admin surface)."""
    items = pairs.items() if isinstance(pairs, dict) else pairs
    return {k: ("***" if k in SECRET_KEYS and v else v) for k, v in items}


@dataclass
class Delivery:
    """One POST waiting to go out."""

    portal: Portal
    kind: str  # "install", "event", "robot", "sms", "page"
    name: str  # event name, robot code, sender code
    url: str
    form: list[tuple[str, str]]
    params: dict[str, str] | None = None  # query string (install page)
    on_done: Done | None = None


class Runtime:
    """The per-world machinery: the token secret, the outbox queue and its delivery thread.

    It holds its world weakly, and its delivery thread ends after a few idle seconds, so a
    world that is dropped takes its runtime with it. One ticker thread serves all worlds.
    """

    def __init__(self, world: World) -> None:
        self._world = weakref.ref(world)
        self.secret = secrets.token_bytes(32)
        self.queue: collections.deque[Delivery] = collections.deque()
        self.in_flight = 0
        self.cond = threading.Condition()
        self.timeout = DEFAULT_TIMEOUT
        self.session = requests.Session()
        self.tickers: list[Callable[[World], None]] = []
        self.busy_checks: list[Callable[[World], int]] = []
        self._thread: threading.Thread | None = None

    @property
    def world(self) -> World:
        world = self._world()
        if world is None:
            raise RuntimeError("the world of this runtime is gone")
        return world

    # queue -------------------------------------------------------------------------------
    def put(self, delivery: Delivery) -> None:
        with self.cond:
            self.queue.append(delivery)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._deliver_loop, name="fakeportal-outbox", daemon=True
                )
                self._thread.start()
            self.cond.notify_all()

    def pending(self) -> int:
        with self.cond:
            return len(self.queue) + self.in_flight

    def _deliver_loop(self) -> None:
        while True:
            with self.cond:
                if not self.queue:
                    self.cond.wait(IDLE_EXIT_SECONDS)
                if not self.queue:
                    self._thread = None  # idle: the next put starts a new thread
                    return
                delivery = self.queue.popleft()
                self.in_flight += 1
            try:
                self._deliver(delivery)
            except Exception:  # a broken callback must not kill the delivery thread
                log.exception("outbox delivery of %s %s failed", delivery.kind, delivery.name)
            finally:
                with self.cond:
                    self.in_flight -= 1
                    self.cond.notify_all()

    def _deliver(self, d: Delivery) -> None:
        world = self._world()
        if world is None:
            return
        status, text = 0, ""
        timeout = float(world.config.get("outbox_timeout", self.timeout))
        try:
            resp = self.session.post(d.url, data=d.form, params=d.params, timeout=timeout)
            status, text = resp.status_code, resp.text
        except requests.RequestException as exc:
            text = f"{type(exc).__name__}: {exc}"
        with world.lock:
            d.portal.log(
                WireRecord(
                    at=world.timestamp(),
                    direction="out",
                    kind=d.kind,
                    name=d.name,
                    status=status,
                    request={"url": d.url, "query": d.params, "form": redact(d.form)},
                    response=text[:2000],
                )
            )
            if d.on_done is not None:
                d.on_done(status, text)

    # timers ------------------------------------------------------------------------------
    def tick(self) -> None:
        """Run due timers (robot delays and timeouts) once."""
        world = self._world()
        if world is None:
            return
        with world.lock:
            for ticker in list(self.tickers):
                ticker(world)

    def busy(self) -> int:
        """Robots still waiting for an answer or a timer (not counting the outbox)."""
        world = self.world
        with world.lock:
            return sum(check(world) for check in self.busy_checks)


_runtimes: weakref.WeakKeyDictionary[World, Runtime] = weakref.WeakKeyDictionary()
_worlds: weakref.WeakSet[World] = weakref.WeakSet()
_runtimes_lock = threading.Lock()
_setup: list[Callable[[Runtime], None]] = []
_ticker: threading.Thread | None = None


def on_runtime(setup: Callable[[Runtime], None]) -> None:
    """Register a hook run for every new runtime (tickers, busy checks)."""
    _setup.append(setup)


def _tick_all() -> None:
    while True:
        with _runtimes_lock:
            runtimes = list(_runtimes.values())
        for rt in runtimes:
            try:
                rt.tick()
            except Exception:
                log.exception("automation ticker failed")
        del runtimes
        time.sleep(TICK_SECONDS)


def remember(world: World) -> None:
    """Know a world (its portals' signals can then find it) without starting anything."""
    with _runtimes_lock:
        _worlds.add(world)


def runtime(world: World) -> Runtime:
    """The world's runtime, created on first use."""
    global _ticker
    with _runtimes_lock:
        rt = _runtimes.get(world)
        if rt is None:
            rt = Runtime(world)
            for setup in _setup:
                setup(rt)
            _runtimes[world] = rt
            _worlds.add(world)
        if _ticker is None:
            _ticker = threading.Thread(target=_tick_all, name="fakeportal-ticker", daemon=True)
            _ticker.start()
        return rt


def world_of(portal: Portal) -> World | None:
    """The world a portal belongs to (signals carry only the portal)."""
    with _runtimes_lock:
        worlds = list(_worlds)
    for world in worlds:
        if world.portals.get(portal.member_id) is portal:
            return world
    return None


def enqueue(
    world: World,
    portal: Portal,
    kind: str,
    name: str,
    url: str,
    form: dict[str, Any] | list[tuple[str, str]],
    *,
    params: dict[str, str] | None = None,
    on_done: Done | None = None,
) -> None:
    """Queue a form POST to an app; it is sent later by the delivery thread."""
    pairs = flatten(form) if isinstance(form, dict) else list(form)
    runtime(world).put(Delivery(portal, kind, name, url, pairs, params, on_done))


def wait_idle(world: World, timeout: float = 10.0, robots: bool = True) -> dict[str, Any]:
    """Block until the outbox is empty and (``robots``) no robot is waiting or delayed.

    Returns ``{"idle": bool, "pending": <POSTs not yet sent>, "waiting": <robots busy>}``;
    ``idle`` is False when ``timeout`` (real seconds) ran out first. Pass ``robots=False`` to
    wait for deliveries only (e.g. while the app's own worker has yet to answer a robot).
    """
    rt = runtime(world)
    deadline = time.monotonic() + timeout
    while True:
        rt.tick()
        pending, waiting = rt.pending(), rt.busy()
        if pending == 0 and (waiting == 0 or not robots):
            # a finished delivery may have queued the next robot: re-check once settled
            if rt.pending() == 0:
                return {"idle": True, "pending": 0, "waiting": waiting}
        left = deadline - time.monotonic()
        if left <= 0:
            return {"idle": False, "pending": pending, "waiting": waiting}
        with rt.cond:
            rt.cond.wait(min(left, TICK_SECONDS))
