"""event.bind / unbind / get, event.offline.*, and delivery of CRM and task events to apps.

A change (signal ``crm.event``) is POSTed to every online handler bound by an installed,
finished app: with the acting user's tokens, or with no token fields at all when a robot or
workflow made the change. Offline bindings put a row into the app's offline queue instead,
following the portal's own rules (PROTOCOL.md §6 "Offline queue internals"):

- ``MESSAGE_ID`` = md5(EVENT_NAME + "|" + json(EVENT_DATA)); a change merges into the row of
  the same (MESSAGE_ID, app, connector, PROCESS_ID), PROCESS_ID being "" for a new change. So
  one row per (event, object); a change while the row is reserved makes a second row; a
  change to an object whose row is in error merges into the error row (which stays an error:
  the merge updates only TIMESTAMP_X, EVENT_DATA and EVENT_ADDITIONAL).
- A change is not queued for an offline binding when it is the REST call of that binding's
  app with the binding's ``auth_connector`` ("" = ""; so an app's own connector-less writes
  skip its connector-less bindings: the server code's rule, which the docs contradict).
  Webhook calls, admin actions (the UI), robots and triggers are always queued.
- A queued row sends ONOFFLINEEVENT to the app's online ONOFFLINEEVENT handlers, at most one
  per ``options[minTimeout]`` seconds (default 1) per handler; minTimeout 0: one per hit.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from fakeportal import signals
from fakeportal.api import Call, Page, admin, current_call, current_hit, method
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
from fakeportal.exceptions import (
    AccessDenied,
    CoreError,
    EventNotFound,
    InvalidArgs,
    WrongAuthType,
)
from fakeportal.state import Portal, World

PAGE_SIZE = 50
OFFLINE_LIMIT = 50  # event.offline.get's default ``limit``
MIN_TIMEOUT = 1  # ONOFFLINEEVENT's default ``options[minTimeout]``, seconds
_NOTIFIED = "automation_offline_notified"  # portal.extra: binding id -> (time, hit)


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


def _php_int(value: Any) -> int:
    """PHP's intval() of a parameter: garbage and absence are 0."""
    try:
        return int(float(str(value).strip()))
    except (TypeError, ValueError):
        return 0


def _auth_type(call: Call) -> int:
    return _int(call.get("auth_type"), 0)


def _is_offline(call: Call) -> bool:
    return str(call.get("event_type") or "online").lower() == "offline"


@method("event.bind", validates=True)
def event_bind(call: Call) -> bool:
    """Bind a handler; an offline binding keeps the call's ``auth_connector`` as its connector.

    Two offline bindings of one event differ by connector (UNCONFIRMED: the portal's
    uniqueness check is taken to include CONNECTOR_ID, so an app may queue the same event for
    two connectors).
    """
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
    connector = call.connector if offline else ""
    key = (name, handler, auth_type, offline, connector)
    with call.world.lock:
        for b in inst.bindings:
            if (b.event, b.handler, b.auth_type, b.offline, b.auth_connector) == key:
                raise CoreError("Handler already binded")
        inst.bindings.append(
            EventBinding(
                id=call.portal.next_id("event_handler"),
                event=name,
                handler=handler,
                auth_type=auth_type,
                offline=offline,
                auth_connector=connector,
                options=call.get("options"),
            )
        )
    return True


@method("event.unbind", validates=True)
def event_unbind(call: Call) -> dict[str, int]:
    """Unbind; offline bindings are matched by the call's ``auth_connector`` (UNCONFIRMED)."""
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
                and (not offline or b.auth_connector == call.connector)
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
    """The app's bindings: ``{event, handler, auth_type, offline: 0}`` online,
    ``{event, connector_id, offline: 1}`` offline."""
    client_id = call.require_app()
    inst = app_installation(call.portal, client_id)
    with call.world.lock:
        return [b.as_dict() for b in inst.bindings]


# delivery ----------------------------------------------------------------------------------
def on_crm_event(
    portal: Portal,
    name: str,
    fields: dict[str, Any],
    user_id: int | None = None,
    *,
    data: Any = None,
) -> None:
    """Signal ``crm.event``: deliver to online handlers, queue rows for offline ones."""
    world = outbox.world_of(portal)
    if world is None:
        return
    name = name.upper()
    payload = {"FIELDS": dict(fields)} if data is None else data
    call = current_call()
    with world.lock:
        for inst in list(portal.apps.values()):
            if not isinstance(inst, Installation) or not inst.active:
                continue
            queued = False
            for binding in list(inst.bindings):
                if binding.event != name:
                    continue
                if not binding.offline:
                    deliver(world, portal, inst, binding, payload, user_id)
                elif not own_write(call, inst, binding):
                    _queue_offline(world, portal, inst, binding, name, payload, user_id)
                    queued = True
            if queued:
                _notify_offline(world, portal, inst)


def own_write(call: Call | None, inst: Installation, binding: EventBinding) -> bool:
    """Whether a change is the binding's app writing through REST with the binding's
    connector: then the portal does not queue it (``auth_connector`` "" when absent)."""
    return (
        call is not None
        and call.caller.app_id == inst.client_id
        and call.connector == binding.auth_connector
    )


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
    """Queue one event POST to a bound handler (sent once: a failed POST is not retried)."""
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


def message_id(name: str, data: Any) -> str:
    """The queue's MESSAGE_ID: md5 of ``EVENT_NAME|json(EVENT_DATA)``.

    The JSON is PHP's json_encode as far as it matters here: compact, keys in their order,
    non-ASCII and ``/`` escaped (UNCONFIRMED which Json::encode flags the portal passes; event
    data of ids and Y/N never meets the difference).
    """
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/")
    return hashlib.md5(f"{name}|{text}".encode()).hexdigest()  # noqa: S324


def _queue_offline(
    world: World,
    portal: Portal,
    inst: Installation,
    binding: EventBinding,
    name: str,
    data: Any,
    user_id: int | None,
) -> None:
    """Add the change to the queue, or merge it into its unreserved row."""
    state = automation(portal)
    event_data = copy.deepcopy(data) if data else False
    digest = message_id(name, event_data)
    additional: Any = {"user_id": str(user_id)} if user_id else False
    now = world.timestamp()
    for row in state.offline:
        if (row.message_id, row.client_id, row.auth_connector, row.process_id) == (
            digest,
            inst.client_id,
            binding.auth_connector,
            "",
        ):
            row.at, row.event_data, row.event_additional = now, event_data, additional
            return
    state.offline.append(
        OfflineEvent(
            id=portal.next_id("offline_event"),
            client_id=inst.client_id,
            at=now,
            event_name=name,
            event_data=event_data,
            event_additional=additional,
            message_id=digest,
            auth_connector=binding.auth_connector,
        )
    )


def _min_timeout(options: Any) -> int:
    """``options[minTimeout]`` of an ONOFFLINEEVENT binding: seconds, default 1."""
    if not isinstance(options, dict):
        return MIN_TIMEOUT
    value = {str(k).lower(): v for k, v in options.items()}.get("mintimeout")
    if value is None or value == "":
        return MIN_TIMEOUT
    return max(0, _int(value, MIN_TIMEOUT))


def _notify_offline(world: World, portal: Portal, inst: Installation) -> None:
    """ONOFFLINEEVENT to the app's online handlers of it: ``data`` empty, tokens with
    ``refresh_token``. ``minTimeout`` > 0: the first at once, then none until that many
    seconds (world clock) passed, per handler; 0: at most one per portal hit."""
    now = world.timestamp()
    hit = current_hit()
    notified = portal.extra.setdefault(_NOTIFIED, {})
    for binding in inst.bindings:
        if binding.event != "ONOFFLINEEVENT" or binding.offline:
            continue
        min_timeout = _min_timeout(binding.options)
        last = notified.get(binding.id)
        if last is not None:
            if min_timeout > 0 and now - last[0] < min_timeout:
                continue
            if min_timeout == 0 and hit is not None and last[1] is hit:
                continue
        notified[binding.id] = (now, hit)
        deliver(world, portal, inst, binding, [], inst.user_id, refresh=True)


# event.offline.* ---------------------------------------------------------------------------
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


GET_FIELDS = frozenset({"ID", "TIMESTAMP_X", "EVENT_NAME", "MESSAGE_ID"})
LIST_FIELDS = GET_FIELDS | {"PROCESS_ID", "ERROR"}
_OPS = (">=", "<=", "!=", "!@", "@", ">", "<", "=", "!")


def _value(portal: Portal, row: OfflineEvent, field: str) -> Any:
    return {
        "ID": row.id,
        "TIMESTAMP_X": int(row.at),
        "EVENT_NAME": row.event_name,
        "MESSAGE_ID": row.message_id,
        "PROCESS_ID": row.process_id,
        "ERROR": 1 if row.error else 0,
    }[field]


def _timestamp(value: Any) -> int:
    """A TIMESTAMP_X filter value: ISO-8601, ``DD.MM.YYYY [HH:MM[:SS]]`` or unix seconds."""
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    for fmt in ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y"):
        try:
            return int(datetime.strptime(text, fmt).timestamp())
        except ValueError:
            pass
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0


def _expected(field: str, value: Any) -> Any:
    if isinstance(value, (list, dict)):
        items = value.values() if isinstance(value, dict) else value
        return [_expected(field, v) for v in items]
    if field in ("ID", "ERROR"):
        return _php_int(value)
    if field == "TIMESTAMP_X":
        return _timestamp(value)
    return str(value).upper() if field == "EVENT_NAME" else str(value)


def _filtered(
    portal: Portal, rows: list[OfflineEvent], flt: Any, allowed: frozenset[str]
) -> list[OfflineEvent]:
    """Rows matching ``filter`` (``{">ID": 5, "=EVENT_NAME": "ONCRMDEALADD"}``); fields other
    than ``allowed`` are dropped, as the portal drops them."""
    if not isinstance(flt, dict):
        return rows
    terms = []
    for key, raw in flt.items():
        text = str(key)
        op = next((o for o in _OPS if text.startswith(o)), "")
        field = text[len(op) :].upper()
        if field in allowed:
            terms.append((op or "=", field, _expected(field, raw)))

    def matches(row: OfflineEvent) -> bool:
        for op, field, expected in terms:
            actual = _value(portal, row, field)
            if field == "EVENT_NAME":
                actual = str(actual).upper()
            if isinstance(expected, list):
                inside = actual in expected
                if inside == (op in ("!", "!=", "!@")):
                    return False
                continue
            ok = {
                "=": actual == expected,
                "@": actual == expected,
                "!": actual != expected,
                "!=": actual != expected,
                "!@": actual != expected,
                ">": actual > expected,
                "<": actual < expected,
                ">=": actual >= expected,
                "<=": actual <= expected,
            }[op]
            if not ok:
                return False
        return True

    return [r for r in rows if matches(r)]


def _ordered(
    portal: Portal,
    rows: list[OfflineEvent],
    order: Any,
    default: tuple[str, str],
    allowed: frozenset[str],
) -> list[OfflineEvent]:
    """Rows sorted by ``order`` (``{FIELD: ASC|DESC, ...}``), unknown fields dropped, ties by
    ID; nothing usable left gives ``default``."""
    keys = []
    if isinstance(order, dict):
        for field, direction in order.items():
            if str(field).upper() in allowed:
                keys.append((str(field).upper(), str(direction).upper() == "DESC"))
    if not keys:
        keys = [(default[0], default[1] == "DESC")]
    out = sorted(rows, key=lambda r: r.id)
    for field, desc in reversed(keys):
        out.sort(key=lambda r, f=field: _value(portal, r, f), reverse=desc)
    return out


def _offline_app(call: Call) -> str:
    """event.offline.* run with an app's token of an admin: WRONG_AUTH_TYPE for webhooks,
    ACCESS_DENIED for other users."""
    client_id = call.caller.app_id
    if client_id is None:
        raise WrongAuthType("Application context required")
    app_installation(call.portal, client_id)
    if not call.caller.is_admin:
        raise AccessDenied("Access denied!")
    return client_id


def _queue(call: Call) -> list[OfflineEvent]:
    """The caller app's rows of the call's connector (its ``auth_connector``, "" if none)."""
    client_id = _offline_app(call)
    return [
        r
        for r in automation(call.portal).offline
        if r.client_id == client_id and r.auth_connector == call.connector
    ]


def _drop(call: Call, rows: list[OfflineEvent]) -> None:
    state = automation(call.portal)
    gone = {id(r) for r in rows}
    state.offline = [r for r in state.offline if id(r) not in gone]


@method("event.offline.get", validates=True)
def offline_get(call: Call) -> dict[str, Any]:
    """Reserve up to ``limit`` unreserved rows (error rows with ``error=1`` only) under a new
    process id, or re-read those of ``process_id``; ``clear`` (default 1) deletes what was
    returned and answers ``process_id: null``.

    The ``rest_offline_extended`` plan gate of ``clear=0`` is not emulated (features are on).
    With ``process_id`` the rows are re-read and, unless ``clear=0``, deleted too: the server
    reserves first and clears after in one path (UNCONFIRMED; pass ``clear=0`` to re-read).
    ``limit`` has no upper bound (none in the server code; UNCONFIRMED for the cloud).
    """
    with call.world.lock:
        rows = _queue(call)
        raw_limit = call.get("limit")
        limit = OFFLINE_LIMIT if raw_limit is None else _php_int(raw_limit)
        if limit <= 0:
            raise InvalidArgs("Value must be positive integer")
        raw_clear = call.get("clear")
        clear = raw_clear is None or _php_int(raw_clear) > 0
        flt, order = call.get("filter"), call.get("order")
        process_id = str(call.get("process_id") or "").strip()
        if not process_id:
            error = _php_int(call.get("error")) > 0
            free = [r for r in rows if not r.process_id and r.error == error]
            free = _filtered(call.portal, free, flt, GET_FIELDS)
            process_id = secrets.token_hex(16)
            for r in _ordered(call.portal, free, order, ("TIMESTAMP_X", "ASC"), GET_FIELDS)[:limit]:
                r.process_id = process_id
        mine = _filtered(
            call.portal, [r for r in rows if r.process_id == process_id], flt, GET_FIELDS
        )
        picked = _ordered(call.portal, mine, order, ("TIMESTAMP_X", "ASC"), GET_FIELDS)[:limit]
        events = [_row(call.portal, r) for r in picked]
        if clear:
            _drop(call, picked)
            return {"process_id": None, "events": events}
        return {"process_id": process_id, "events": events}


def _process_id(call: Call) -> str:
    process_id = str(call.get("process_id") or "").strip()
    if not process_id:
        raise InvalidArgs("Argument 'PROCESS_ID' is null or empty")
    return process_id


def _id_list(call: Call, name: str) -> list[Any] | None:
    """``id[]`` / ``message_id[]``: None when absent or empty; not an array -> the
    ArgumentException the portal answers (texts UNCONFIRMED)."""
    raw = call.get(name)
    if raw is None or raw == "" or raw == [] or raw == {}:
        return None
    values = as_list(raw)
    if values is None:
        raise InvalidArgs(f"Argument '{name.upper()}' must be an array")
    return values


@method("event.offline.clear", validates=True)
def offline_clear(call: Call) -> bool:
    """Delete rows of a reserved batch: those of ``message_id[]`` (32-char ids), else of
    ``id[]`` (positive ints), else the whole batch."""
    with call.world.lock:
        rows = _queue(call)
        process_id = _process_id(call)
        batch = [r for r in rows if r.process_id == process_id]
        message_ids = _id_list(call, "message_id")
        ids = _id_list(call, "id")
        if message_ids is not None:
            wanted = {str(v) for v in message_ids}
            if any(len(v) != 32 for v in wanted):
                raise InvalidArgs("Argument 'MESSAGE_ID' must hold 32-character message ids")
            batch = [r for r in batch if r.message_id in wanted]
        elif ids is not None:
            numbers = {_php_int(v) for v in ids}
            if any(n <= 0 for n in numbers) or any(not str(v).strip().isdigit() for v in ids):
                raise InvalidArgs("Argument 'ID' must hold positive integers")
            batch = [r for r in batch if r.id in numbers]
        _drop(call, batch)
    return True


@method("event.offline.error", validates=True)
def offline_error(call: Call) -> bool:
    """Mark rows of a reserved batch as errors and release them (PROCESS_ID ""); newer rows of
    the same MESSAGE_ID (app and connector) are deleted, so one error row remains."""
    with call.world.lock:
        rows = _queue(call)
        process_id = _process_id(call)
        message_ids = _id_list(call, "message_id")
        if message_ids is None:
            raise InvalidArgs("Argument 'MESSAGE_ID' is null or empty")
        wanted = {str(v) for v in message_ids}
        marked = [r for r in rows if r.process_id == process_id and r.message_id in wanted]
        newer = [
            r
            for r in rows
            if any(r.message_id == m.message_id and r.id > m.id for m in marked) and r not in marked
        ]
        _drop(call, newer)
        for r in marked:
            r.error = True
            r.process_id = ""
    return True


@method("event.offline.list", validates=True)
def offline_list(call: Call) -> Page:
    """Read-only, paged by ``start``; rows show PROCESS_ID and ERROR; default order ID ASC."""
    with call.world.lock:
        rows = _filtered(call.portal, _queue(call), call.get("filter"), LIST_FIELDS)
        rows = _ordered(call.portal, rows, call.get("order"), ("ID", "ASC"), LIST_FIELDS)
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
                    out.append({"client_id": inst.client_id, "id": b.id, **b.admin_dict()})
        return out


@admin("event_bindings")
def _admin_event_bindings(world: World, member_id: str, client_id: str | None = None) -> list:
    return event_bindings(world, member_id, client_id)


signals.connect("crm.event", on_crm_event)
