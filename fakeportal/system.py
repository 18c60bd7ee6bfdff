"""System methods: profile, user.current, user.admin, app.info, methods, scope, events, time."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fakeportal import spec
from fakeportal.api import METHODS, Call, flag, method
from fakeportal.exceptions import CoreError

# Every scope an app can be granted here (what ``scope`` with full=true lists).
ALL_SCOPES = [
    "bizproc",
    "calendar",
    "catalog",
    "crm",
    "department",
    "entity",
    "im",
    "imopenlines",
    "lists",
    "messageservice",
    "placement",
    "task",
    "telephony",
    "user",
    "user_basic",
    "user_brief",
    "user.userfield",
]


def _user_row(call: Call) -> dict[str, Any]:
    users = call.portal.tables.get("user")
    if users is None:  # a portal without the CRM side: a bare user
        return {"ID": call.caller.user_id, "ACTIVE": True, "NAME": "", "LAST_NAME": ""}
    row = users.get(call.caller.user_id)
    if row is None:
        raise CoreError("User not found")
    return row


def _wire(call: Call, value: Any) -> Any:
    """A stored user value as ``user.*`` methods print it (ids as strings, ISO dates)."""
    if isinstance(value, datetime):
        zone = _zone(call)
        return (value.astimezone(zone) if zone else value).isoformat(timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


@method("user.current")
def user_current(call: Call) -> dict[str, Any]:
    """The calling user, as ``user.get`` shows users."""
    row = _user_row(call)
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "IS_ADMIN":
            continue
        if key == "UF_DEPARTMENT":
            out[key] = [int(v) for v in value or []]
        else:
            out[key] = _wire(call, value)
    return out


@method("user.admin")
def user_admin(call: Call) -> bool:
    """Whether the calling user may manage app settings (a portal administrator)."""
    return bool(call.caller.is_admin)


@method("profile")
def profile(call: Call) -> dict[str, Any]:
    """The calling user's short profile."""
    row = _user_row(call)
    return {
        "ID": str(row.get("ID", call.caller.user_id)),
        "ADMIN": bool(call.caller.is_admin),
        "NAME": row.get("NAME", ""),
        "LAST_NAME": row.get("LAST_NAME", ""),
        "PERSONAL_GENDER": row.get("PERSONAL_GENDER", ""),
        "PERSONAL_PHOTO": row.get("PERSONAL_PHOTO", ""),
        "TIME_ZONE": row.get("TIME_ZONE", ""),
        "TIME_ZONE_OFFSET": _offset(call),
    }


def _offset(call: Call) -> int:
    zone = _zone(call)
    offset = call.world.now().astimezone(zone).utcoffset() if zone else None
    return int(offset.total_seconds()) if offset else 0


def _zone(call: Call) -> Any:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(call.portal.timezone)
    except Exception:
        return None


@method("app.info")
def app_info(call: Call) -> dict[str, Any]:
    """The calling app as this portal has it installed."""
    client_id = call.require_app()
    app = call.world.apps.get(client_id)
    inst = call.portal.apps.get(client_id)
    ids = list(call.portal.apps)
    version = getattr(inst, "version", None) or (app.version if app else 1)
    return {
        "ID": str(ids.index(client_id) + 1) if client_id in ids else "0",
        "CODE": client_id,
        "VERSION": int(version),
        "STATUS": "L" if client_id.startswith("local.") else "F",
        "INSTALLED": bool(inst is not None and getattr(inst, "finished", True)),
        "PAYMENT_EXPIRED": "N",
        "DAYS": None,
        "LICENSE": f"{call.portal.country.lower()}_project",
    }


@method("methods")
def methods(call: Call) -> list[str]:
    """Method names; ``full=true`` lists every method, otherwise those the scope allows."""
    names = sorted(set(METHODS) | {"batch"})
    full = flag(call.get("full"))
    scope_arg = call.get("scope")
    if full or call.scope is None and scope_arg is None:
        return names
    wanted = [str(scope_arg)] if scope_arg is not None else list(call.scope or [])

    def allowed(name: str) -> bool:
        info = METHODS.get(name)
        needed = (info.scope if info else None) or spec.scope_of(name)
        if scope_arg is not None and scope_arg != "":
            return needed == scope_arg
        return needed is None or needed in wanted or needed.split(".")[0] in wanted

    return [n for n in names if allowed(n)]


@method("scope")
def scope(call: Call) -> list[str]:
    """The scopes of the token (or, with ``full=true``, every scope the portal has)."""
    full = flag(call.get("full"))
    if full or call.scope is None:
        return list(ALL_SCOPES)
    return list(call.scope)


@method("events")
def events(call: Call) -> list[str]:
    """Event names the portal can bind handlers to."""
    return spec.event_names()


@method("server.time")
def server_time(call: Call) -> str:
    """The portal's current time, ISO-8601 with the portal's offset."""
    zone = _zone(call)
    now = call.world.now()
    return (now.astimezone(zone) if zone else now).isoformat(timespec="seconds")
