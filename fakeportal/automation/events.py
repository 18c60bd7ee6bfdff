"""event.bind / unbind / get, event.offline.*, and delivery of CRM events to apps.

A CRM change (signal ``crm.event``) is POSTed to every online handler bound by an installed,
finished app: with the acting user's tokens, or with no token fields at all when a robot or
workflow made the change. Offline bindings put a row into the app's offline queue instead
(one row per object and event, the latest change wins).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from fakeportal import signals
from fakeportal.api import Call, Page, admin, method
from fakeportal.automation import outbox
from fakeportal.automation.checks import as_list, check_handler
from fakeportal.automation.lifecycle import tokenless_auth, user_auth
from fakeportal.automation.models import (
    EventBinding,
    Installation,
    OfflineEvent,
    app_installation,
    automation,
    get_portal,
)
from fakeportal.exceptions import AccessDenied, CoreError, EventNotFound, InvalidArgs
from fakeportal.state import Portal, World

PAGE_SIZE = 50


@cache
def known_events() -> frozenset[str]:
    """Event names the portal offers (fakeportal/spec/events.txt)."""
    text = resources.files("fakeportal").joinpath("spec/events.txt").read_text()
    return frozenset(line.strip().upper() for line in text.splitlines() if line.strip())


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _auth_type(call: Call) -> int:
    return _int(call.get("auth_type"), 0)


def _is_offline(call: Call) -> bool:
    return str(call.get("event_type") or "online").lower() == "offline"


@method("event.bind", validates=True)
def event_bind(call: Call) -> bool:
    client_id = call.require_app()
    inst = app_installation(call.portal, client_id)
    name = str(call.get("event") or "").upper()
    if name not in known_events():
        raise EventNotFound()
    offline = _is_offline(call)
    auth_type = _auth_type(call)
    if (offline or (auth_type and auth_type != call.caller.user_id)) and not call.caller.is_admin:
        raise AccessDenied("Access denied!")
    handler = "" if offline else str(call.get("handler") or "")
    if not offline:
        if not handler:
            raise InvalidArgs("Argument 'HANDLER' is null or empty")
        check_handler(handler)
    with call.world.lock:
        for b in inst.bindings:
            if (b.event, b.handler, b.auth_type, b.offline) == (name, handler, auth_type, offline):
                raise CoreError("Handler already binded")
        inst.bindings.append(
            EventBinding(
                id=call.portal.next_id("event_handler"),
                event=name,
                handler=handler,
                auth_type=auth_type,
                offline=offline,
                auth_connector=str(call.get("auth_connector") or ""),
                options=call.get("options"),
            )
        )
    return True


@method("event.unbind", validates=True)
def event_unbind(call: Call) -> dict[str, int]:
    client_id = call.require_app()
    inst = app_installation(call.portal, client_id)
    name = str(call.get("event") or "").upper()
    if not name:
        raise InvalidArgs("Argument 'EVENT' is null or empty")
    offline = _is_offline(call)
    handler = str(call.get("handler") or "")
    auth_type = _auth_type(call)
    with call.world.lock:
        keep, count = [], 0
        for b in inst.bindings:
            hit = (
                b.event == name
                and b.offline == offline
                and (offline or not handler or b.handler == handler)
                and b.auth_type == auth_type
            )
            if hit:
                count += 1
            else:
                keep.append(b)
        inst.bindings = keep
    return {"count": count}


@method("event.get", validates=True)
def event_get(call: Call) -> list[dict[str, Any]]:
    client_id = call.require_app()
    inst = app_installation(call.portal, client_id)
    with call.world.lock:
        return [b.as_dict() for b in inst.bindings]


# delivery ----------------------------------------------------------------------------------
def on_crm_event(
    portal: Portal, name: str, fields: dict[str, Any], user_id: int | None = None
) -> None:
    """Signal ``crm.event``: deliver to online handlers, queue rows for offline ones."""
    world = outbox.world_of(portal)
    if world is None:
        return
    name = name.upper()
    with world.lock:
        for inst in list(portal.apps.values()):
            if not isinstance(inst, Installation) or not inst.active:
                continue
            for binding in list(inst.bindings):
                if binding.event != name:
                    continue
                if binding.offline:
                    _queue_offline(world, portal, inst, name, fields, user_id)
                else:
                    deliver(world, portal, inst, binding, {"FIELDS": fields}, user_id)


def deliver(
    world: World,
    portal: Portal,
    inst: Installation,
    binding: EventBinding,
    data: Any,
    user_id: int | None,
    *,
    refresh: bool = False,
) -> None:
    """Queue one event POST to a bound handler."""
    acting = binding.auth_type or user_id
    if acting:
        auth = user_auth(world, portal, inst, int(acting), refresh=refresh)
    else:
        auth = tokenless_auth(world, portal, inst)
    form = {
        "event": binding.event,
        "event_handler_id": str(binding.id),
        "data": data,
        "ts": str(int(world.timestamp())),
        "auth": auth,
    }
    outbox.enqueue(world, portal, "event", binding.event, binding.handler, form)


def _queue_offline(
    world: World,
    portal: Portal,
    inst: Installation,
    name: str,
    fields: dict[str, Any],
    user_id: int | None,
) -> None:
    state = automation(portal)
    data = {"FIELDS": {str(k): str(v) for k, v in fields.items()}}
    digest = json.dumps([name, data], sort_keys=True).encode()
    message_id = hashlib.md5(digest + inst.client_id.encode()).hexdigest()  # noqa: S324
    for row in state.offline:
        if row.client_id == inst.client_id and row.message_id == message_id:
            if not row.process_id and not row.error:
                state.offline.remove(row)  # the latest change replaces the queued one
                break
    state.offline.append(
        OfflineEvent(
            id=portal.next_id("offline_event"),
            client_id=inst.client_id,
            at=world.timestamp(),
            event_name=name,
            event_data=data,
            event_additional={"user_id": str(user_id)} if user_id else False,
            message_id=message_id,
        )
    )
    _notify_offline(world, portal, inst)


def _notify_offline(world: World, portal: Portal, inst: Installation) -> None:
    """ONOFFLINEEVENT to online handlers bound to it, throttled by ``options[minTimeout]``."""
    now = world.timestamp()
    for binding in inst.bindings:
        if binding.event != "ONOFFLINEEVENT" or binding.offline:
            continue
        options = binding.options if isinstance(binding.options, dict) else {}
        min_timeout = _int({k.lower(): v for k, v in options.items()}.get("mintimeout"), 0)
        last = portal.extra.setdefault("automation_offline_notified", {}).get(binding.id)
        if last is not None and now - last < min_timeout:
            continue
        portal.extra["automation_offline_notified"][binding.id] = now
        deliver(world, portal, inst, binding, [], inst.user_id, refresh=True)


def _iso(portal: Portal, ts: float) -> str:
    try:
        zone: Any = ZoneInfo(portal.timezone)
    except Exception:
        zone = ZoneInfo("UTC")
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def _row(portal: Portal, row: OfflineEvent, extended: bool = False) -> dict[str, Any]:
    out = {
        "ID": str(row.id),
        "TIMESTAMP_X": _iso(portal, row.at),
        "EVENT_NAME": row.event_name,
        "EVENT_DATA": row.event_data,
        "EVENT_ADDITIONAL": row.event_additional,
        "MESSAGE_ID": row.message_id,
    }
    if extended:
        out["PROCESS_ID"] = row.process_id
        out["ERROR"] = "1" if row.error else "0"
    return out


_OPS = (">=", "<=", "!=", ">", "<", "=", "!")


def _filtered(portal: Portal, rows: list[OfflineEvent], flt: Any) -> list[OfflineEvent]:
    if not isinstance(flt, dict):
        return rows
    out = []
    for row in rows:
        values = {
            "ID": row.id,
            "TIMESTAMP_X": _iso(portal, row.at),
            "EVENT_NAME": row.event_name,
            "MESSAGE_ID": row.message_id,
        }
        ok = True
        for key, expected in flt.items():
            op = next((o for o in _OPS if str(key).startswith(o)), "=")
            field = str(key)[len(op) :] if str(key).startswith(op) else str(key)
            actual = values.get(field.upper())
            if actual is None:
                continue
            if isinstance(actual, int):
                expected = _int(expected)
            elif field.upper() == "EVENT_NAME":
                expected = str(expected).upper()
            ok = {
                "=": actual == expected,
                "!": actual != expected,
                "!=": actual != expected,
                ">": actual > expected,
                "<": actual < expected,
                ">=": actual >= expected,
                "<=": actual <= expected,
            }[op]
            if not ok:
                break
        if ok:
            out.append(row)
    return out


def _ordered(rows: list[OfflineEvent], order: Any, default: tuple[str, str]) -> list:
    key, direction = default
    if isinstance(order, dict) and order:
        key, direction = next(iter(order.items()))
    attr = {"ID": "id", "TIMESTAMP_X": "at", "EVENT_NAME": "event_name"}.get(str(key).upper(), "id")
    return sorted(
        rows,
        key=lambda r: (getattr(r, attr), r.id),
        reverse=str(direction).upper() == "DESC",
    )


def _offline_context(call: Call) -> tuple[Installation, list[OfflineEvent]]:
    client_id = call.require_app()
    call.require_admin()
    inst = app_installation(call.portal, client_id)
    rows = [r for r in automation(call.portal).offline if r.client_id == client_id]
    return inst, rows


@method("event.offline.get", validates=True)
def offline_get(call: Call) -> dict[str, Any]:
    with call.world.lock:
        _, rows = _offline_context(call)
        process_id = str(call.get("process_id") or "")
        if process_id:
            picked = [r for r in rows if r.process_id == process_id]
            return {"process_id": process_id, "events": [_row(call.portal, r) for r in picked]}
        error = _int(call.get("error"), 0) == 1
        connector = str(call.get("auth_connector") or "")
        candidates = [
            r
            for r in rows
            if not r.process_id
            and r.error == error
            and (not connector or r.auth_connector != connector)
        ]
        candidates = _ordered(
            _filtered(call.portal, candidates, call.get("filter")),
            call.get("order"),
            ("TIMESTAMP_X", "ASC"),
        )
        limit = max(1, _int(call.get("limit"), PAGE_SIZE) or PAGE_SIZE)
        picked = candidates[:limit]
        events = [_row(call.portal, r) for r in picked]
        if _int(call.get("clear"), 1) == 1:
            state = automation(call.portal)
            state.offline = [r for r in state.offline if r not in picked]
            return {"process_id": None, "events": events}
        new_process = secrets.token_hex(16)
        for r in picked:
            r.process_id = new_process
        return {"process_id": new_process, "events": events}


def _process_rows(call: Call) -> tuple[str, list[OfflineEvent]]:
    _, rows = _offline_context(call)
    process_id = str(call.get("process_id") or "")
    if not process_id:
        raise InvalidArgs("Argument 'process_id' is null or empty")
    return process_id, [r for r in rows if r.process_id == process_id]


@method("event.offline.clear", validates=True)
def offline_clear(call: Call) -> bool:
    with call.world.lock:
        _, rows = _process_rows(call)
        ids = {str(v) for v in as_list(call.get("id")) or []}
        message_ids = {str(v) for v in as_list(call.get("message_id")) or []}
        if ids:
            rows = [r for r in rows if str(r.id) in ids]
        if message_ids:
            rows = [r for r in rows if r.message_id in message_ids]
        state = automation(call.portal)
        state.offline = [r for r in state.offline if r not in rows]
    return True


@method("event.offline.error", validates=True)
def offline_error(call: Call) -> bool:
    with call.world.lock:
        _, rows = _process_rows(call)
        message_ids = {str(v) for v in as_list(call.get("message_id")) or []}
        for r in rows:
            if not message_ids or r.message_id in message_ids:
                r.error = True
                r.process_id = ""
    return True


@method("event.offline.list", validates=True)
def offline_list(call: Call) -> Page:
    with call.world.lock:
        _, rows = _offline_context(call)
        rows = _ordered(
            _filtered(call.portal, rows, call.get("filter")), call.get("order"), ("ID", "DESC")
        )
        start = _int(call.get("start"), 0)
        if start == -1:
            return Page([_row(call.portal, r, True) for r in rows[:PAGE_SIZE]], 0, None)
        start = max(start, 0)
        page = rows[start : start + PAGE_SIZE]
        nxt = start + PAGE_SIZE if start + PAGE_SIZE < len(rows) else None
        return Page([_row(call.portal, r, True) for r in page], len(rows), nxt)


# admin -------------------------------------------------------------------------------------
def event_bindings(world: World, member_id: str, client_id: str | None = None) -> list[dict]:
    """Every event binding on a portal (with the app and binding id)."""
    with world.lock:
        portal = get_portal(world, member_id)
        out = []
        for inst in portal.apps.values():
            if isinstance(inst, Installation) and (
                client_id is None or inst.client_id == client_id
            ):
                for b in inst.bindings:
                    out.append({"client_id": inst.client_id, "id": b.id, **b.as_dict()})
        return out


@admin("event_bindings")
def _admin_event_bindings(world: World, member_id: str, client_id: str | None = None) -> list:
    return event_bindings(world, member_id, client_id)


signals.connect("crm.event", on_crm_event)
