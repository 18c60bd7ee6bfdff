"""The core admin actions (``POST /_admin/<action>``): portals, apps, limits, faults, logs."""

from __future__ import annotations

import dataclasses
import secrets
from datetime import timedelta
from typing import Any

from fakeportal import limits, oauth
from fakeportal.api import admin
from fakeportal.state import AppDef, Portal, World


def find_portal(world: World, member_id: str | None = None, domain: str | None = None) -> Portal:
    """A portal by member_id or domain; the only portal when neither is given."""
    with world.lock:
        if member_id:
            if member_id not in world.portals:
                raise LookupError(f"no portal with member_id {member_id}")
            return world.portals[member_id]
        if domain:
            for portal in world.portals.values():
                if portal.domain == domain:
                    return portal
            raise LookupError(f"no portal with domain {domain}")
        if len(world.portals) == 1:
            return next(iter(world.portals.values()))
        raise LookupError("member_id is required when the world has several portals")


def portal_info(portal: Portal) -> dict[str, Any]:
    return {
        "member_id": portal.member_id,
        "domain": portal.domain,
        "timezone": portal.timezone,
        "language": portal.language,
        "country": portal.country,
        "base_url": portal.base_url,
        "client_endpoint": portal.client_endpoint,
    }


@admin("create_portal")
def create_portal(
    world: World,
    domain: str | None = None,
    member_id: str | None = None,
    timezone: str = "Europe/Moscow",
    language: str = "en",
    country: str = "RU",
) -> dict[str, Any]:
    if member_id and member_id in world.portals:
        raise ValueError(f"portal {member_id} exists")
    portal = world.add_portal(
        domain, member_id, timezone=timezone, language=language, country=country
    )
    return portal_info(portal)


@admin("list_portals")
def list_portals(world: World) -> list[dict[str, Any]]:
    with world.lock:
        return [portal_info(p) for p in world.portals.values()]


@admin("reset")
def reset(world: World) -> bool:
    world.reset()
    return True


@admin("register_app")
def register_app(
    world: World,
    client_id: str | None = None,
    client_secret: str | None = None,
    install_url: str = "",
    scope: list[str] | str | None = None,
    version: int = 1,
) -> dict[str, Any]:
    """Make an app known to the OAuth server (a local app unless the client_id says else)."""
    if isinstance(scope, str):
        scope = [s.strip() for s in scope.split(",") if s.strip()]
    app = AppDef(
        client_id=client_id or f"local.{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}",
        client_secret=client_secret or secrets.token_urlsafe(36),
        install_url=install_url,
        scope=list(scope or ["crm"]),
        version=int(version),
    )
    with world.lock:
        world.apps[app.client_id] = app
    return dataclasses.asdict(app)


@admin("issue_tokens")
def issue_tokens(
    world: World, client_id: str, member_id: str | None = None, user_id: int = 1
) -> dict[str, Any]:
    """A fresh token pair for an app user (as an install would hand out)."""
    if client_id not in world.apps:
        raise LookupError(f"unknown app {client_id}")
    return oauth.issue_tokens(world, find_portal(world, member_id), client_id, int(user_id))


@admin("create_webhook")
def create_webhook(
    world: World,
    member_id: str | None = None,
    user_id: int = 1,
    scope: list[str] | str | None = None,
) -> dict[str, Any]:
    """An incoming webhook for a user; ``scope`` None means every scope."""
    if isinstance(scope, str):
        scope = [s.strip() for s in scope.split(",") if s.strip()]
    url = oauth.create_webhook(world, find_portal(world, member_id), int(user_id), scope)
    return {"url": url, "user_id": int(user_id), "code": url.rstrip("/").rsplit("/", 1)[-1]}


@admin("set_limits")
def set_limits(
    world: World,
    member_id: str | None = None,
    bucket_size: float | None = None,
    drain_per_second: float | None = None,
    operating_limit: float | None = None,
    access_ttl: int | None = None,
    extra_cost: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Change limits for the world (no member_id) or one portal; ``extra_cost`` is seconds
    of operating time added to each call of a method."""
    values = {
        "bucket_size": bucket_size,
        "drain_per_second": drain_per_second,
        "operating_limit": operating_limit,
    }
    values = {k: float(v) for k, v in values.items() if v is not None}
    costs = {k.lower(): float(v) for k, v in (extra_cost or {}).items()}
    with world.lock:
        if access_ttl is not None:
            world.config["access_ttl"] = int(access_ttl)
        if member_id is None:
            world.config.update(values)
            world.config.setdefault("extra_cost", {})
            world.config["extra_cost"] = {**world.config["extra_cost"], **costs}
            return {k: v for k, v in world.config.items()}
        portal = find_portal(world, member_id)
        st = limits.state(portal)
        st.overrides.update(values)
        st.extra_cost.update(costs)
        return {
            **{name: limits.setting(world, portal, name) for name in limits.SETTINGS},
            "extra_cost": dict(st.extra_cost),
        }


@admin("inject_fault")
def inject_fault(
    world: World,
    member_id: str | None = None,
    status: int | None = 503,
    code: str | None = None,
    description: str | None = None,
    count: int = 1,
    method: str | None = None,
    delay: float = 0.0,
) -> dict[str, Any]:
    """The next ``count`` requests (-1: all; of ``method`` when given, also inside a batch)
    answer ``status``/``code`` after ``delay`` seconds; ``status`` null only delays."""
    fault = limits.inject_fault(
        world, find_portal(world, member_id), status, code, description, count, method, delay
    )
    return dataclasses.asdict(fault)


@admin("clear_faults")
def clear_faults(world: World, member_id: str | None = None) -> bool:
    limits.clear_faults(world, find_portal(world, member_id))
    return True


@admin("expire_tokens")
def expire_tokens(world: World, member_id: str | None = None) -> int:
    """Every current access token (of one portal, or all) answers 401 expired_token."""
    return oauth.expire_access_tokens(world, member_id)


@admin("advance_clock")
def advance_clock(world: World, seconds: float) -> dict[str, Any]:
    world.advance(timedelta(seconds=float(seconds)))
    return {"now": world.now().isoformat(), "offset": world.clock_offset.total_seconds()}


@admin("requests")
def requests_(world: World, member_id: str | None = None, reset: bool = False) -> dict[str, Any]:
    """Request counters of a portal; ``reset`` zeroes them after reading."""
    portal = find_portal(world, member_id)
    with world.lock:
        out = {
            "total": portal.request_total,
            "methods": dict(portal.requests),
            "rejected_503": limits.state(portal).rejected_503,
        }
        if reset:
            limits.reset_counters(world, portal)
    return out


def record_dict(index: int, rec: Any) -> dict[str, Any]:
    return {"index": index, **dataclasses.asdict(rec)}


@admin("wire_log")
def wire_log(
    world: World,
    member_id: str | None = None,
    since: int = 0,
    direction: str | None = None,
    kind: str | None = None,
) -> list[dict[str, Any]]:
    """Wire records of a portal from index ``since`` on, optionally of one direction/kind."""
    portal = find_portal(world, member_id)
    with world.lock:
        records = list(enumerate(portal.wire))[int(since) :]
    return [
        record_dict(i, r)
        for i, r in records
        if (direction is None or r.direction == direction) and (kind is None or r.kind == kind)
    ]


@admin("unknown_params")
def unknown_params(
    world: World, member_id: str | None = None, clear: bool = False
) -> list[list[str]]:
    """(method, param) pairs the schemas do not know, as the portal saw them."""
    portal = find_portal(world, member_id)
    with world.lock:
        out = [list(pair) for pair in portal.unknown_params]
        if clear:
            portal.unknown_params.clear()
    return out
