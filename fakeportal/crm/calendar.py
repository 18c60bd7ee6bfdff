"""Calendar: calendar.event.add/get/delete and calendar.accessibility.get (the events that
make users busy in a period). Dates print in the portal's site format (ru: ``DD.MM.YYYY
HH:MM:SS``, otherwise ``MM/DD/YYYY hh:mm:ss am``), as the real calendar module does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fakeportal.api import Call, method
from fakeportal.exceptions import Uncoded
from fakeportal.state import Portal

from . import common


def _site_format(portal: Portal, value: datetime, skip_time: bool = False) -> str:
    local = value.astimezone(common.tz(portal))
    if portal.language == "ru":
        return local.strftime("%d.%m.%Y") if skip_time else local.strftime("%d.%m.%Y %H:%M:%S")
    if skip_time:
        return local.strftime("%m/%d/%Y")
    return local.strftime("%m/%d/%Y %I:%M:%S ") + local.strftime("%p").lower()


def _required(name: str, method_name: str) -> Uncoded:
    return Uncoded(f'The required parameter "{name}" for the method "{method_name}" is not set.')


def _invalid(name: str) -> Uncoded:
    return Uncoded(f'Invalid value for the parameter "{name}"')


CAL_TYPES = ("user", "group", "company_calendar")
ACCESSIBILITY = ("busy", "absent", "quest", "free")
IMPORTANCE = ("high", "normal", "low")


def _zone(portal: Portal, call: Call, name: str) -> ZoneInfo:
    """The zone of a from/to without an offset: ``timezone_from``/``timezone_to`` (only
    timezone_from: both), else the calling user's zone, else the portal's."""
    for key in (f"timezone_{name}", "timezone_from"):
        value = call.get(key)
        if value not in (None, ""):
            try:
                return ZoneInfo(str(value))
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise _invalid(key) from exc
    user = portal.table("user").get(call.caller.user_id or 0) or {}
    try:
        return ZoneInfo(str(user.get("TIME_ZONE") or portal.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return common.tz(portal)


def add_event(
    portal: Portal,
    owner_id: int,
    name: str,
    start: datetime,
    end: datetime,
    *,
    cal_type: str = "user",
    attendees: list[int] | None = None,
    accessibility: str = "busy",
    description: str = "",
    importance: str = "normal",
    skip_time: bool = False,
    created_by: int | None = None,
    crm_fields: list[str] | None = None,
    section: int | None = None,
    location: str = "",
) -> int:
    """Store a calendar event and return its ID."""
    event_id = portal.next_id("calendar_event", start=1001)
    owners = [owner_id] if cal_type == "user" or not attendees else []
    attendee_ids = [a for a in dict.fromkeys([*owners, *(attendees or [])]) if a]
    portal.table("calendar_event")[event_id] = {
        "ID": event_id,
        "CAL_TYPE": cal_type,
        "OWNER_ID": owner_id,
        "NAME": name,
        "FROM": start,
        "TO": end,
        "SKIP_TIME": skip_time,
        "DESCRIPTION": description,
        "ACCESSIBILITY": accessibility,
        "IMPORTANCE": importance,
        "ATTENDEES": attendee_ids,
        "CREATED_BY": created_by or owner_id,
        "CREATED": common.now(portal),
        "SECTION_ID": section or owner_id,
        "LOCATION": location,
        "UF_CRM_CAL_EVENT": list(crm_fields or []),
    }
    return event_id


def event_view(portal: Portal, row: dict[str, Any]) -> dict[str, Any]:
    zone = portal.timezone
    offset = int(row["FROM"].astimezone(common.tz(portal)).utcoffset().total_seconds())
    return {
        "ID": str(row["ID"]),
        "PARENT_ID": str(row["ID"]),
        "DELETED": "N",
        "CAL_TYPE": row["CAL_TYPE"],
        "OWNER_ID": str(row["OWNER_ID"]),
        "NAME": row["NAME"],
        "DATE_FROM": _site_format(portal, row["FROM"], row["SKIP_TIME"]),
        "DATE_TO": _site_format(portal, row["TO"], row["SKIP_TIME"]),
        "TZ_FROM": zone,
        "TZ_TO": zone,
        "TZ_OFFSET_FROM": str(offset),
        "TZ_OFFSET_TO": str(offset),
        "DATE_FROM_TS_UTC": str(int(row["FROM"].timestamp())),
        "DATE_TO_TS_UTC": str(int(row["TO"].timestamp())),
        "DT_SKIP_TIME": "Y" if row["SKIP_TIME"] else "N",
        "DT_LENGTH": int((row["TO"] - row["FROM"]).total_seconds()),
        "CREATED_BY": str(row["CREATED_BY"]),
        "DATE_CREATE": _site_format(portal, row["CREATED"]),
        "DESCRIPTION": row["DESCRIPTION"],
        "ACCESSIBILITY": row["ACCESSIBILITY"],
        "IMPORTANCE": row["IMPORTANCE"],
        "IS_MEETING": len(row["ATTENDEES"]) > 1,
        "LOCATION": row["LOCATION"],
        "ATTENDEES_CODES": [f"U{a}" for a in row["ATTENDEES"]],
        "SECTION_ID": str(row["SECTION_ID"]),
        "UF_CRM_CAL_EVENT": row["UF_CRM_CAL_EVENT"] or False,
    }


def _when(portal: Portal, call: Call, name: str) -> datetime | None:
    """``from``/``to`` (or ``from_ts``/``to_ts``); a value with an offset or ``Z`` keeps it,
    one without is read in the zone ``_zone`` names."""
    ts = call.get(f"{name}_ts")
    if ts not in (None, ""):
        return datetime.fromtimestamp(int(ts), common.tz(portal))
    value = call.get(name)
    if value in (None, ""):
        return None
    parsed = common.parse_datetime(portal, value)
    text = str(value).strip()
    has_offset = text.endswith(("Z", "z")) or (
        len(text) > 10 and ("+" in text[10:] or "-" in text[10:])
    )
    if parsed is not None and not has_offset and not isinstance(value, datetime):
        parsed = parsed.replace(tzinfo=_zone(portal, call, name))
    return parsed


@method("calendar.event.add", scope="calendar", validates=True)
def event_add(call: Call) -> int:
    portal = call.portal
    for name in ("type", "ownerId", "name"):
        if call.get(name) in (None, ""):
            raise _required(name, "calendar.event.add")
    cal_type = str(call.get("type"))
    if cal_type not in CAL_TYPES:
        raise _invalid("type")
    for name, allowed in (("accessibility", ACCESSIBILITY), ("importance", IMPORTANCE)):
        if call.get(name) not in (None, "") and str(call.get(name)) not in allowed:
            raise _invalid(name)
    try:
        start = _when(portal, call, "from")
        end = _when(portal, call, "to")
    except (TypeError, ValueError) as exc:
        raise Uncoded("An error occurred while creating the event") from exc
    if start is None:
        raise _required("from", "calendar.event.add")
    if end is None:
        raise _required("to", "calendar.event.add")
    skip_time = common.to_yn(call.get("skip_time"), "N") == "Y"
    if skip_time and end <= start:
        end = start + timedelta(days=1)
    owner_id = common.positive_id(call.get("ownerId"))
    if owner_id is None and cal_type == "company_calendar" and str(call.get("ownerId")) == "0":
        owner_id = 0  # the company calendar has no owner
    if owner_id is None:
        raise _invalid("ownerId")
    attendees = call.get("attendees")
    if isinstance(attendees, dict):
        attendees = list(attendees.values())
    crm_fields = call.get("crm_fields")
    if crm_fields is not None and not isinstance(crm_fields, (list, dict)):
        raise Uncoded("The list of event links to CRM must be an array")
    if isinstance(crm_fields, dict):
        crm_fields = list(crm_fields.values())
    return add_event(
        portal,
        owner_id,
        str(call.get("name")),
        start,
        end,
        cal_type=cal_type,
        attendees=[a for a in (common.positive_id(x) for x in attendees or []) if a],
        accessibility=str(call.get("accessibility") or "busy"),
        description=str(call.get("description") or ""),
        importance=str(call.get("importance") or "normal"),
        skip_time=skip_time,
        created_by=call.caller.user_id,
        crm_fields=[str(c) for c in crm_fields or []],
        section=common.positive_id(call.get("section")),
        location=str(call.get("location") or ""),
    )


@method("calendar.event.get", scope="calendar", validates=True)
def event_get(call: Call) -> list[dict[str, Any]]:
    portal = call.portal
    if not call.get("type"):
        raise Uncoded('Required parameter "type" is not specified for method "calendar.event.get"')
    owner_id = common.positive_id(call.get("ownerId"))
    now = common.now(portal)
    try:
        start = common.parse_datetime(portal, call.get("from")) or now - timedelta(days=30)
        end = common.parse_datetime(portal, call.get("to")) or now + timedelta(days=90)
    except (TypeError, ValueError) as exc:
        raise Uncoded("Invalid date") from exc
    if call.get("to") and len(str(call.get("to"))) <= 10:
        end = end + timedelta(days=1)
    rows = [
        r
        for r in portal.table("calendar_event").values()
        if r["CAL_TYPE"] == call.get("type")
        and (owner_id is None or r["OWNER_ID"] == owner_id)
        and r["FROM"] < end
        and r["TO"] > start
    ]
    rows.sort(key=lambda r: (r["FROM"], r["ID"]))
    return [event_view(portal, r) for r in rows]


@method("calendar.event.delete", scope="calendar", validates=True)
def event_delete(call: Call) -> bool:
    event_id = common.positive_id(call.get("id"))
    if event_id is None:
        raise Uncoded(
            'The required parameter "id" for the method "calendar.event.delete" is not set'
        )
    if call.portal.table("calendar_event").pop(event_id, None) is None:
        raise Uncoded("Event not found")
    return True


def busy(portal: Portal, user_id: int, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """A user's events that make them unavailable in [start, end)."""
    rows = [
        r
        for r in portal.table("calendar_event").values()
        if user_id in r["ATTENDEES"]
        and r["ACCESSIBILITY"] != "free"
        and r["FROM"] < end
        and r["TO"] > start
    ]
    return sorted(rows, key=lambda r: (r["FROM"], r["ID"]))


@method("calendar.accessibility.get", scope="calendar", validates=True)
def accessibility_get(call: Call) -> dict[str, Any]:
    portal = call.portal
    users = call.get("users")
    if isinstance(users, dict):
        users = list(users.values())
    if not isinstance(users, list) or not users:
        raise _required("users", "calendar.accessibility.get")
    try:
        start = common.parse_datetime(portal, call.get("from"))
        end = common.parse_datetime(portal, call.get("to"))
    except (TypeError, ValueError) as exc:
        raise Uncoded("Invalid date") from exc
    if start is None or end is None:
        raise _required("from" if start is None else "to", "calendar.accessibility.get")
    end = end + timedelta(days=1)  # "to" is a date: the whole day counts
    result: dict[str, Any] = {}
    for raw in users:
        user_id = common.positive_id(raw)
        if user_id is None:
            continue
        events = []
        for row in busy(portal, user_id, start, end):
            events.append(
                {
                    "ID": str(row["ID"]),
                    "NAME": row["NAME"],
                    "DATE_FROM": _site_format(portal, row["FROM"], row["SKIP_TIME"]),
                    "DATE_TO": _site_format(portal, row["TO"], row["SKIP_TIME"]),
                    "DATE_FROM_TS_UTC": str(int(row["FROM"].timestamp())),
                    "DATE_TO_TS_UTC": str(int(row["TO"].timestamp())),
                    "~USER_OFFSET_FROM": 0,
                    "~USER_OFFSET_TO": 0,
                    "DT_SKIP_TIME": "Y" if row["SKIP_TIME"] else "N",
                    "TZ_FROM": portal.timezone,
                    "TZ_TO": portal.timezone,
                    "ACCESSIBILITY": row["ACCESSIBILITY"],
                    "IMPORTANCE": row["IMPORTANCE"],
                }
            )
        result[str(user_id)] = events
    return result
