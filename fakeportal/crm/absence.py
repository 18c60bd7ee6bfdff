"""The absence chart, and the messenger's view of people: im.user.get and im.user.list.get.

Bitrix24 has no REST method that reads the absence chart. What an app can read is the
messenger's user object, whose ``absent`` is the end of the user's current absence (ATOM with
the portal's offset) or ``false`` (PROTOCOL §15; api-reference/chats/users/im-user-get.md,
im-user-list-get.md). So absences are entered here as HR enters them in the chart (the admin
action ``add_absence``: a user, a first and a last day, a type) and show through ``absent``
while one covers the portal's today. A whole-day absence's end prints as that last day at
00:00, as the portal prints dates without a time.

``im.user.list.get {ID: [4, 5]}`` answers ``{"4": {...}, "5": null}``: null for an id that
is no user. ``im.user.get {ID}`` answers one object (the caller without ``ID``) or
``USER_NOT_EXISTS``. User objects are the messenger's: lower-case keys, real ints and
booleans, ``departments`` a list of ints.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fakeportal.api import Call, flag, method
from fakeportal.exceptions import InvalidFormat, UserNotExists
from fakeportal.state import Portal

from . import common

TABLE = "absence"  # the chart's entries; ``ABSENCE_TYPE`` is kept as given (VACATION...)


def add_absence(
    portal: Portal,
    user_id: int,
    first_day: Any,
    last_day: Any,
    *,
    kind: str = "VACATION",
    name: str = "",
) -> int:
    """Record an absence of ``user_id`` from ``first_day`` to ``last_day`` (both included);
    LookupError for an unknown user, ValueError for days that do not make a span."""
    if int(user_id) not in portal.table("user"):
        raise LookupError(f"no user {user_id}")
    start, end = common.parse_date(portal, first_day), common.parse_date(portal, last_day)
    if start is None or end is None or end < start:
        raise ValueError(f"an absence from {first_day!r} to {last_day!r} is not a span of days")
    absence_id = portal.next_id(TABLE, start=1)
    portal.table(TABLE)[absence_id] = {
        "ID": absence_id,
        "USER_ID": int(user_id),
        "DATE_FROM": start,
        "DATE_TO": end,
        "ABSENCE_TYPE": str(kind or "VACATION").upper(),
        "NAME": name or "",
    }
    return absence_id


def absence_view(portal: Portal, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "ID": row["ID"],
        "USER_ID": row["USER_ID"],
        "DATE_FROM": row["DATE_FROM"].isoformat(),
        "DATE_TO": row["DATE_TO"].isoformat(),
        "ABSENCE_TYPE": row["ABSENCE_TYPE"],
        "NAME": row["NAME"],
    }


def absent_until(portal: Portal, user_id: int, today: date | None = None) -> date | None:
    """The last day of the absence covering ``today`` (the portal's), None when at work
    (of several covering it, the one that ends last)."""
    day = today or common.today(portal)
    ends = [
        r["DATE_TO"]
        for r in portal.table(TABLE).values()
        if r["USER_ID"] == int(user_id) and r["DATE_FROM"] <= day <= r["DATE_TO"]
    ]
    return max(ends, default=None)


def im_user(portal: Portal, row: dict[str, Any]) -> dict[str, Any]:
    """A user as the messenger shows one (im.user.get, im.user.list.get)."""
    until = absent_until(portal, row["ID"])
    first, last = row.get("NAME") or "", row.get("LAST_NAME") or ""
    return {
        "id": int(row["ID"]),
        "active": flag(row.get("ACTIVE"), True),
        "name": f"{first} {last}".strip(),
        "first_name": first,
        "last_name": last,
        "work_position": row.get("WORK_POSITION") or "",
        "color": "#df532d",
        "avatar": "",
        "gender": row.get("PERSONAL_GENDER") or "M",
        "birthday": "",
        "extranet": row.get("USER_TYPE") == "extranet",
        "network": False,
        "bot": False,
        "connector": False,
        "external_auth_id": "default",
        "status": "online",
        "idle": False,
        "last_activity_date": common.iso(portal, row.get("LAST_LOGIN")) or False,
        "desktop_last_date": False,
        "mobile_last_date": False,
        "departments": [int(d) for d in row.get("UF_DEPARTMENT") or []],
        "absent": common.iso(portal, until) if until else False,
        "phones": {
            "work_phone": row.get("WORK_PHONE") or "",
            "personal_mobile": row.get("PERSONAL_MOBILE") or "",
            "personal_phone": "",
        },
    }


@method("im.user.get", scope="im")
def im_user_get(call: Call) -> dict[str, Any]:
    raw = call.get("ID")
    user_id = call.caller.user_id if raw in (None, "") else common.positive_id(raw)
    row = portal_user(call.portal, user_id)
    if row is None:
        raise UserNotExists()
    return im_user(call.portal, row)


@method("im.user.list.get", scope="im")
def im_user_list_get(call: Call) -> dict[str, Any]:
    raw = call.get("ID")
    if raw in (None, ""):
        ids: list[Any] = [call.caller.user_id]
    elif isinstance(raw, dict):  # a PHP list that arrived as {"0": .., "1": ..}
        ids = list(raw.values())
    elif isinstance(raw, list):
        ids = raw
    else:
        raise InvalidFormat()
    out: dict[str, Any] = {}
    for value in ids:
        user_id = common.positive_id(value)
        if user_id is None:
            raise InvalidFormat()
        row = portal_user(call.portal, user_id)
        out[str(user_id)] = im_user(call.portal, row) if row is not None else None
    return out


def portal_user(portal: Portal, user_id: int | None) -> dict[str, Any] | None:
    if user_id is None:
        return None
    return portal.table("user").get(int(user_id))
