"""REST dispatch: authentication, limits, schema checks, the method call, the reply, batch.

``serve_call`` answers one HTTP request to ``/rest/...``; ``execute`` runs one method (also
for each command of a batch); ``paginate`` cuts a list into the portal's 50-row pages.
"""

from __future__ import annotations

import re
import sys
import time
import traceback
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from fakeportal import limits, oauth, phpform, spec
from fakeportal.api import METHODS, Call, Page, handling, portal_hit
from fakeportal.exceptions import (
    ApiError,
    BatchLengthExceeded,
    BatchMethodNotAllowed,
    InsufficientScope,
    InternalServerError,
    MethodNotFound,
)
from fakeportal.state import Portal, WireRecord, World

PAGE_SIZE = 50
BATCH_MAX = 50

_SCOPE_ERROR_TOKEN = "The request requires higher privileges than provided by the access token"
_SCOPE_ERROR_WEBHOOK = "The request requires higher privileges than provided by the webhook token"


def normalize_method(name: str) -> str:
    """``'CRM.Deal.Get.json'`` -> ``'crm.deal.get'``."""
    name = name.strip().strip("/").lower()
    if name.endswith(".json"):
        name = name[: -len(".json")]
    return name


def php_array(mapping: dict[Any, Any]) -> Any:
    """How PHP's json_encode shows an array: ``[]`` when empty, a list when keys are 0..n-1."""
    if not mapping:
        return []
    if [str(k) for k in mapping] == [str(i) for i in range(len(mapping))]:
        return list(mapping.values())
    return {str(k): v for k, v in mapping.items()}


def paginate(rows: list[Any], params: dict[str, Any], wrap: str | None = None) -> Page:
    """One 50-row page of ``rows`` as ``start`` asks; ``start=-1`` gives total 0 and no next."""
    raw = params.get("start", params.get("START", 0))
    try:
        start = int(raw or 0)
    except (TypeError, ValueError):
        start = 0
    if start == -1:
        return Page(list(rows[:PAGE_SIZE]), 0, None, wrap)
    start = max(start, 0)
    page = list(rows[start : start + PAGE_SIZE])
    nxt = start + PAGE_SIZE if start + PAGE_SIZE < len(rows) else None
    return Page(page, len(rows), nxt, wrap)


def _iso(portal: Portal, ts: float) -> str:
    try:
        tz: Any = ZoneInfo(portal.timezone)
    except Exception:  # unknown zone name: fall back to UTC
        tz = UTC
    return datetime.fromtimestamp(ts, tz).replace(microsecond=0).isoformat()


def time_info(
    portal: Portal,
    start: float,
    finish: float,
    processing: float,
    operating: float | None = None,
    reset_at: int | None = None,
) -> dict[str, Any]:
    """The ``time`` object of a reply (world-clock timestamps, ISO dates in portal time)."""
    out: dict[str, Any] = {
        "start": start,
        "finish": finish,
        "duration": finish - start,
        "processing": processing,
        "date_start": _iso(portal, start),
        "date_finish": _iso(portal, finish),
    }
    if reset_at is not None:
        out["operating_reset_at"] = reset_at
    if operating is not None:
        out["operating"] = operating
    return out


def _error(err: ApiError) -> dict[str, Any]:
    return {"error": err.code, "error_description": err.description}


def _check_scope(auth: oauth.Auth, method: str, needed: str | None, in_batch: bool) -> None:
    if not needed or auth.scope is None:
        return
    granted = set(auth.scope)
    if needed in granted or needed.split(".")[0] in granted:
        return
    text = _SCOPE_ERROR_WEBHOOK if auth.webhook else _SCOPE_ERROR_TOKEN
    raise InsufficientScope("" if in_batch else text)


def execute(
    world: World,
    auth: oauth.Auth,
    method: str,
    params: dict[str, Any],
    *,
    in_batch: bool = False,
    connector: str = "",
) -> tuple[Any, dict[str, Any]]:
    """Run one method as the portal does; returns (result or Page, time object).

    ``connector`` is the request's ``auth_connector`` (a batch passes its own to each command).
    """
    portal = auth.portal
    start = world.timestamp()
    t0 = time.perf_counter()
    if in_batch:
        with world.lock:
            portal.requests[method] += 1
    if method == "batch":
        if in_batch:
            raise BatchMethodNotAllowed()
        result = run_batch(world, auth, params, connector)
        elapsed = time.perf_counter() - t0
        return result, time_info(portal, start, start + elapsed, elapsed)
    info = METHODS.get(method)
    if info is None:
        raise MethodNotFound()
    _check_scope(auth, method, info.scope or spec.scope_of(method), in_batch)
    limits.operating_check(world, portal, auth.key, method)
    unknown = spec.unknown_params(method, params)
    if unknown:
        with world.lock:
            portal.unknown_params.extend((method, name) for name in unknown)
    if not info.extra.get("validates"):
        spec.check_required(method, params)
    call = Call(world, portal, auth.caller, method, params, auth.scope, connector)
    h0 = time.perf_counter()
    try:
        with world.lock, handling(call):
            result = info.handler(call)
    except ApiError:
        raise
    except Exception:
        traceback.print_exc(file=sys.stderr)
        raise InternalServerError() from None
    finally:
        processing = time.perf_counter() - h0
        operating, reset_at = limits.operating_add(world, portal, auth.key, method, processing)
    elapsed = time.perf_counter() - t0
    return result, time_info(portal, start, start + elapsed, processing, operating, reset_at)


# batch -------------------------------------------------------------------------------------
_REF = re.compile(r"\$result\[([^\]]+)\]((?:\[[^\]]*\])*)")
_MISSING = object()


def _lookup(results: dict[str, Any], label: str, path: str) -> Any:
    value: Any = results.get(label, _MISSING)
    for key in re.findall(r"\[([^\]]*)\]", path):
        if isinstance(value, dict):
            value = value.get(key, value.get(int(key), _MISSING) if key.isdigit() else _MISSING)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return _MISSING
        if value is _MISSING:
            return _MISSING
    return value


def _php_string(value: Any) -> str:
    """A value as PHP casts it to a string (``true`` -> ``1``, ``false``/``null`` -> empty)."""
    if isinstance(value, bool):
        return "1" if value else ""
    if value is None or isinstance(value, (dict, list)):
        return "" if value is None else "Array"
    return str(value)


def _substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace ``$result[label][key]...`` in every string of the params (unknown refs stay)."""
    if isinstance(value, dict):
        return {k: _substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, results) for v in value]
    if not isinstance(value, str) or "$result[" not in value:
        return value
    whole = _REF.fullmatch(value)
    if whole:
        found = _lookup(results, whole.group(1), whole.group(2))
        if isinstance(found, (dict, list)):
            return found  # a whole-value reference to an array passes the array
        return value if found is _MISSING else _php_string(found)

    def repl(match: re.Match[str]) -> str:
        found = _lookup(results, match.group(1), match.group(2))
        return match.group(0) if found is _MISSING else _php_string(found)

    return _REF.sub(repl, value)


_AUTH_PARAMS = ("auth", "auth_connector")


def request_connector(params: dict[str, Any]) -> str:
    """The request's top-level ``auth_connector`` ("" when absent or not a scalar)."""
    value = params.get("auth_connector")
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    return str(value).strip()


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "y", "yes")


def run_batch(
    world: World, auth: oauth.Auth, params: dict[str, Any], connector: str = ""
) -> dict[str, Any]:
    """The ``batch`` method: run each ``"method?query"`` command, collecting the five maps.

    Commands run with the batch request's credentials: its ``auth`` and its ``auth_connector``.
    A command's own ``auth``/``auth_connector`` are dropped (UNCONFIRMED for
    ``auth_connector``: the portal reads it with the auth parameters of the HTTP request, so a
    command cannot carry its own; the strict reading).
    """
    cmd = params.get("cmd")
    halt = _truthy(params.get("halt", 0))
    if isinstance(cmd, dict):
        items = [(str(k), v) for k, v in cmd.items()]
    elif isinstance(cmd, list):
        items = [(str(i), v) for i, v in enumerate(cmd)]
    else:
        items = []
    if len(items) > BATCH_MAX:
        raise BatchLengthExceeded()
    results: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    nexts: dict[str, Any] = {}
    times: dict[str, Any] = {}
    for label, command in items:
        name, _, query = str(command).partition("?")
        method = normalize_method(name)
        inner = {
            k: v
            for k, v in phpform.parse_query(query).items()
            if not k.startswith("__") and k.lower() not in _AUTH_PARAMS
        }
        inner = _substitute(inner, results)
        try:
            value, info = execute(world, auth, method, inner, in_batch=True, connector=connector)
        except ApiError as err:
            errors[label] = _error(err)
            if halt:
                break
            continue
        if isinstance(value, Page):
            results[label] = {value.wrap: value.rows} if value.wrap else value.rows
            totals[label] = value.total
            if value.next is not None:
                nexts[label] = value.next
        else:
            results[label] = value
        times[label] = info
    return {
        "result": php_array(results),
        "result_error": php_array(errors),
        "result_total": php_array(totals),
        "result_next": php_array(nexts),
        "result_time": php_array(times),
    }


# one HTTP request --------------------------------------------------------------------------
def _reply(result: Any, info: dict[str, Any]) -> dict[str, Any]:
    if isinstance(result, Page):
        body: dict[str, Any] = {
            "result": {result.wrap: result.rows} if result.wrap else result.rows
        }
        if result.next is not None:
            body["next"] = result.next
        body["total"] = result.total
        body["time"] = info
        return body
    return {"result": result, "time": info}


def _inner_methods(method: str, params: dict[str, Any]) -> list[str]:
    names = [method]
    if method == "batch":
        cmd = params.get("cmd")
        values = cmd.values() if isinstance(cmd, dict) else cmd if isinstance(cmd, list) else []
        names.extend(normalize_method(str(v).partition("?")[0]) for v in values)
    return names


def serve_call(
    world: World,
    raw_method: str,
    params: dict[str, Any],
    webhook: tuple[str, str] | None = None,
) -> tuple[int, dict[str, Any]]:
    """Answer one REST request; returns (HTTP status, JSON body)."""
    method = normalize_method(raw_method)
    try:
        if webhook is not None:
            auth = oauth.authenticate_webhook(world, *webhook)
        else:
            token = params.get("auth")
            auth = oauth.authenticate_token(world, token if isinstance(token, str) else None)
    except ApiError as err:
        public = {k: v for k, v in params.items() if k.lower() != "auth"}
        known = None if webhook else oauth.token_portal(world, params.get("auth"))
        if known is not None:  # rejected, not counted, but on the wire
            _log(world, known, method, err.status, public, _error(err))
        return err.status, _error(err)
    portal = auth.portal
    public = {k: v for k, v in params.items() if k.lower() != "auth"}
    with world.lock:
        portal.request_total += 1
        portal.requests[method] += 1
    status, body = 200, {}
    try:
        fault = limits.take_fault(world, portal, _inner_methods(method, public))
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.status is not None:
                raise ApiError(fault.code, fault.description, fault.status)
        limits.bucket_take(world, portal)
        with portal_hit():
            result, info = execute(world, auth, method, public, connector=request_connector(params))
        body = _reply(result, info)
    except ApiError as err:
        status, body = err.status, _error(err)
    with world.lock:
        if status == 503:
            limits.state(portal).rejected_503 += 1
    _log(world, portal, method, status, public, body)
    return status, body


def _log(
    world: World, portal: Portal, method: str, status: int, request: Any, response: Any
) -> None:
    kind = "batch" if method == "batch" else "rest"
    with world.lock:
        portal.log(WireRecord(world.timestamp(), "in", kind, method, status, request, response))
