"""Request limits and fault injection, per portal.

- Leaky bucket: every HTTP request (a batch counts once) adds 1; the level drains at
  ``drain_per_second`` on the real monotonic clock; above ``bucket_size`` the portal answers
  503 ``QUERY_LIMIT_EXCEEDED``.
- Operating time: each method's time (real handler time plus an injectable extra cost) is
  summed per app/webhook and method over the last 10 minutes of the world clock; past
  ``operating_limit`` the next call of that method answers 429 ``OPERATION_TIME_LIMIT``.
- Faults: the next N requests (optionally of one method) answer a given status and code,
  optionally after a delay.

Settings resolve portal override -> world config. State lives in ``portal.extra["limits"]``.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from fakeportal.exceptions import OperationTimeLimit, QueryLimitExceeded
from fakeportal.state import Portal, World

WINDOW = 600.0  # the operating-time window, seconds
SETTINGS = ("bucket_size", "drain_per_second", "operating_limit")


@dataclass
class Fault:
    """One injected fault; ``status`` None means only the delay."""

    status: int | None
    code: str
    description: str
    count: int  # requests left to hit; -1 forever
    method: str | None = None
    delay: float = 0.0

    def matches(self, methods: list[str]) -> bool:
        return self.method is None or self.method in methods


@dataclass
class PortalLimits:
    level: float = 0.0
    level_at: float = field(default_factory=time.monotonic)
    overrides: dict[str, Any] = field(default_factory=dict)
    extra_cost: dict[str, float] = field(default_factory=dict)  # method -> seconds per call
    operating: dict[tuple[str, str], deque[tuple[float, float]]] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    rejected_503: int = 0


def state(portal: Portal) -> PortalLimits:
    st = portal.extra.get("limits")
    if st is None:
        st = portal.extra["limits"] = PortalLimits()
    return st


def setting(world: World, portal: Portal, name: str) -> Any:
    st = state(portal)
    if name in st.overrides:
        return st.overrides[name]
    return world.config[name]


def extra_cost(world: World, portal: Portal, method: str) -> float:
    cost = state(portal).extra_cost.get(method)
    if cost is None:
        cost = world.config.get("extra_cost", {}).get(method, 0.0)
    return float(cost)


# leaky bucket ------------------------------------------------------------------------------
def bucket_take(world: World, portal: Portal) -> None:
    """Add one request to the portal's bucket, or raise 503 when it is full."""
    with world.lock:
        st = state(portal)
        now = time.monotonic()
        drain = float(setting(world, portal, "drain_per_second"))
        st.level = max(0.0, st.level - (now - st.level_at) * drain)
        st.level_at = now
        if st.level + 1 > float(setting(world, portal, "bucket_size")):
            raise QueryLimitExceeded()
        st.level += 1


# operating time ----------------------------------------------------------------------------
def _window(world: World, portal: Portal, key: str, method: str) -> deque[tuple[float, float]]:
    st = state(portal)
    entries = st.operating.setdefault((key, method), deque())
    horizon = world.timestamp() - WINDOW
    while entries and entries[0][0] <= horizon:
        entries.popleft()
    return entries


def operating_check(world: World, portal: Portal, key: str, method: str) -> None:
    """Raise 429 when this app's method time in the window is past the limit."""
    with world.lock:
        used = sum(cost for _, cost in _window(world, portal, key, method))
        if used > float(setting(world, portal, "operating_limit")):
            raise OperationTimeLimit()


def operating_add(
    world: World, portal: Portal, key: str, method: str, seconds: float
) -> tuple[float, int]:
    """Record a call's cost; returns (operating seconds in the window, operating_reset_at)."""
    with world.lock:
        entries = _window(world, portal, key, method)
        now = world.timestamp()
        total = seconds + extra_cost(world, portal, method)
        entries.append((now, total))
        used = sum(cost for _, cost in entries)
        reset_at = int(entries[0][0] + WINDOW)
        return used, reset_at


# faults ------------------------------------------------------------------------------------
def take_fault(world: World, portal: Portal, methods: list[str]) -> Fault | None:
    """The first injected fault matching this request, consuming one of its uses."""
    with world.lock:
        st = state(portal)
        for fault in list(st.faults):
            if fault.matches(methods):
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        st.faults.remove(fault)
                return fault
    return None


def inject_fault(
    world: World,
    portal: Portal,
    status: int | None = 503,
    code: str | None = None,
    description: str | None = None,
    count: int = 1,
    method: str | None = None,
    delay: float = 0.0,
) -> Fault:
    defaults = {
        500: ("INTERNAL_SERVER_ERROR", "Internal server error"),
        502: ("BAD_GATEWAY", "Bad gateway"),
        503: ("QUERY_LIMIT_EXCEEDED", "Too many requests"),
        504: ("GATEWAY_TIMEOUT", "Gateway timeout"),
    }
    default_code, default_desc = defaults.get(status or 0, ("INTERNAL_SERVER_ERROR", "Error"))
    fault = Fault(
        status,
        code or default_code,
        description if description is not None else default_desc,
        int(count),
        method.lower() if method else None,
        float(delay),
    )
    with world.lock:
        state(portal).faults.append(fault)
    return fault


def clear_faults(world: World, portal: Portal) -> None:
    with world.lock:
        state(portal).faults.clear()


def reset_counters(world: World, portal: Portal) -> None:
    """Zero the request counters and the 503 count (the bucket level stays)."""
    with world.lock:
        portal.requests.clear()
        portal.request_total = 0
        state(portal).rejected_503 = 0
