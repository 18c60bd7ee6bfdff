"""Shared helpers of the CRM side: the portal clock, value parsing and the wire renderings.

Records are stored with canonical (upper-case) field names and Python values: ints, floats,
``str``, aware ``datetime`` for date-times, ``date`` for date-only fields, ``None``. The
``crm.deal.*`` generation renders every scalar as a string; ``crm.item.*`` renders real
JSON numbers and camelCase keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fakeportal import signals
from fakeportal.api import Call, flag
from fakeportal.exceptions import Uncoded
from fakeportal.state import Portal

CLOCK_KEY = "crm.clock"


# time -------------------------------------------------------------------------------------
def now(portal: Portal) -> datetime:
    """The portal's current time (the world's clock, so tests can move it)."""
    clock: Callable[[], datetime] | None = portal.extra.get(CLOCK_KEY)
    return clock() if clock else datetime.now(UTC)


def tz(portal: Portal) -> ZoneInfo:
    return ZoneInfo(portal.timezone)


def today(portal: Portal) -> date:
    return now(portal).astimezone(tz(portal)).date()


def iso(portal: Portal, value: datetime | date | None) -> str | None:
    """ISO-8601 with the portal's offset, as the portal prints dates (date-only at 00:00)."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime.combine(value, time(0, 0), tz(portal))
    return value.astimezone(tz(portal)).isoformat(timespec="seconds")


_DMY = re.compile(r"^(\d{2})\.(\d{2})\.(\d{4})(?:\s+(\d{2}):(\d{2})(?::(\d{2}))?)?$")


def parse_datetime(portal: Portal, value: Any) -> datetime | None:
    """A date-time the portal accepts: ISO (offset optional), ``YYYY-MM-DD``, ``DD.MM.YYYY``.

    Values without an offset are in the portal's time zone. Unparseable -> ValueError.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime.combine(value, time(0, 0))
    else:
        text = str(value).strip()
        match = _DMY.match(text)
        if match:
            d, m, y, hh, mm, ss = match.groups()
            result = datetime(int(y), int(m), int(d), int(hh or 0), int(mm or 0), int(ss or 0))
        else:
            if text.endswith("Z"):
                text = text[:-1] + "+00:00"
            result = datetime.fromisoformat(text.replace(" ", "T", 1) if "T" not in text else text)
    if result.tzinfo is None:
        result = result.replace(tzinfo=tz(portal))
    return result


def parse_date(portal: Portal, value: Any) -> date | None:
    """A date-only value; a date-time is taken in the portal's time zone."""
    parsed = parse_datetime(portal, value)
    return None if parsed is None else parsed.astimezone(tz(portal)).date()


# scalars ----------------------------------------------------------------------------------
def to_int(value: Any) -> int | None:
    """An integer from a wire value ("12", 12, "12.0"); empty -> None; garbage -> ValueError."""
    if value is None or value == "" or value is False:
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        return int(float(text))


def to_float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(str(value).replace(",", ".").strip()) if isinstance(value, str) else float(value)


def to_yn(value: Any, default: str | None = None) -> str | None:
    """Bitrix booleans as "Y"/"N" (read by ``api.flag``); ``default`` when unset or unreadable."""
    read = flag(value, None)
    if read is None:
        return default
    return "Y" if read else "N"


def str_scalar(value: Any, kind: str = "str", portal: Portal | None = None) -> Any:
    """The ``crm.deal.*`` string rendering of one stored value."""
    if value is None:
        return None
    if isinstance(value, list):
        return [str_scalar(v, kind, portal) for v in value]
    if isinstance(value, dict):
        return value
    if kind == "money":
        return f"{float(value):.2f}"
    if isinstance(value, (datetime, date)):
        assert portal is not None
        return iso(portal, value)
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, float):
        return repr(value) if not value.is_integer() else str(int(value))
    return str(value)


def json_scalar(value: Any, kind: str = "str", portal: Portal | None = None) -> Any:
    """The ``crm.item.*`` rendering: real numbers, ISO dates, lists kept."""
    if value is None:
        return None
    if isinstance(value, list):
        return [json_scalar(v, kind, portal) for v in value]
    if isinstance(value, (datetime, date)):
        assert portal is not None
        return iso(portal, value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    return value


# identifiers ------------------------------------------------------------------------------
def positive_id(value: Any) -> int | None:
    """A positive integer id, or None when missing or malformed."""
    try:
        result = to_int(value)
    except (TypeError, ValueError):
        return None
    return result if result is not None and result > 0 else None


def require_fields(call: Call, name: str = "fields") -> dict[str, Any]:
    """The ``fields`` object of crm.*.add/update; the portal's error when it is not an array."""
    value = call.get(name)
    if not isinstance(value, dict):
        raise Uncoded(f"Parameter '{name}' must be array.")
    return value


def upper_keys(data: dict[str, Any]) -> dict[str, Any]:
    return {str(k).upper(): v for k, v in data.items()}


def camel(name: str) -> str:
    """``ASSIGNED_BY_ID`` -> ``assignedById``."""
    parts = name.lower().split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


# signals ----------------------------------------------------------------------------------
def crm_event(
    portal: Portal,
    name: str,
    fields: dict[str, Any],
    user_id: int | None,
    data: dict[str, Any] | None = None,
) -> None:
    """Tell event delivery about a change (``{"ID": "12"}`` style fields).

    ``data`` is the event's whole ``data`` when it is not ``{"FIELDS": fields}`` (task events).
    """
    payload = {"FIELDS": dict(fields)} if data is None else data
    signals.send("crm.event", portal, name, fields, user_id, data=payload)


def acting_user(call: Call) -> int | None:
    """The user a REST change is attributed to: the caller."""
    return call.caller.user_id


def midnight_days(portal: Portal, days: int) -> date:
    return today(portal) + timedelta(days=days)
