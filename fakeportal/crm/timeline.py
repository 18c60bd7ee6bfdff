"""Timeline comments (crm.timeline.comment.add/get/list) and to-do activities
(crm.activity.todo.add, read back with crm.activity.get/list).

crm.timeline.comment.add insists on the lower-case ``fields`` key (since crm 23.100.0).
"""

from __future__ import annotations

from typing import Any

from fakeportal.api import Call, Page, method
from fakeportal.exceptions import (
    InvalidArgValue,
    NotFound,
    OwnerNotFound,
    ParamError,
    Uncoded,
    WrongDatetimeFormat,
)
from fakeportal.state import Portal

from . import common, query

OWNER_TABLES = {"deal": "deal", "contact": "contact", "company": "company", "lead": "lead"}
TYPE_IDS = {1: "lead", 2: "deal", 3: "contact", 4: "company"}


def owner_exists(portal: Portal, entity_type: str, entity_id: int) -> bool:
    table = OWNER_TABLES.get(entity_type)
    return table is not None and entity_id in portal.table(table)


# comments ---------------------------------------------------------------------------------
def add_timeline_comment(
    portal: Portal, entity_type: str, entity_id: int, text: str, user_id: int | None = None
) -> int:
    """Add a comment to a deal's (contact's, company's) timeline; returns its ID."""
    entity_type = entity_type.lower()
    if not owner_exists(portal, entity_type, entity_id):
        raise OwnerNotFound("Owner of the item not found")
    if not str(text or "").strip():
        raise InvalidArgValue("Empty comment")
    comment_id = portal.next_id("timeline_comment")
    portal.table("timeline_comment")[comment_id] = {
        "ID": comment_id,
        "ENTITY_ID": entity_id,
        "ENTITY_TYPE": entity_type,
        "CREATED": common.now(portal),
        "COMMENT": str(text),
        "AUTHOR_ID": user_id if user_id is not None else 1,
        "FILES": [],
    }
    common.crm_event(portal, "ONCRMTIMELINECOMMENTADD", {"ID": str(comment_id)}, user_id)
    return comment_id


COMMENT_KINDS = {"ID": "int", "ENTITY_ID": "int", "AUTHOR_ID": "int", "CREATED": "datetime"}


def _comment_view(portal: Portal, row: dict[str, Any], select: list[str] | None = None) -> dict:
    view = {
        k: (
            row[k]
            if k == "FILES"
            else common.str_scalar(row[k], COMMENT_KINDS.get(k, "str"), portal)
        )
        for k in ("ID", "ENTITY_ID", "ENTITY_TYPE", "CREATED", "COMMENT", "AUTHOR_ID", "FILES")
    }
    if select:
        view = {k: v for k, v in view.items() if k in select or k == "ID"}
    return view


@method("crm.timeline.comment.add", scope="crm")
def comment_add(call: Call) -> int:
    fields = call.params.get("fields")
    if not isinstance(fields, dict):
        raise ParamError("Could not find value for parameter {fields}")
    fields = common.upper_keys(fields)
    entity_id = common.positive_id(fields.get("ENTITY_ID"))
    entity_type = str(fields.get("ENTITY_TYPE") or "").strip().lower()
    if entity_id is None or not entity_type or "COMMENT" not in fields:
        raise ParamError("Required fields are not provided")
    return add_timeline_comment(
        call.portal, entity_type, entity_id, str(fields["COMMENT"]), common.acting_user(call)
    )


@method("crm.timeline.comment.get", scope="crm", validates=True)
def comment_get(call: Call) -> dict[str, Any]:
    comment_id = common.positive_id(call.get("id"))
    if comment_id is None:
        raise Uncoded("ID is not defined or invalid.")
    row = call.portal.table("timeline_comment").get(comment_id)
    if row is None:
        raise Uncoded("Not found.")
    return _comment_view(call.portal, row)


@method("crm.timeline.comment.list", scope="crm")
def comment_list(call: Call) -> Page:
    portal = call.portal
    rows, total, nxt = query.run_list(
        portal,
        portal.table("timeline_comment").values(),
        filter_=call.get("filter"),
        order=call.get("order") or {"CREATED": "DESC", "ID": "DESC"},
        start=call.get("start"),
        resolve=lambda n: (
            n.upper()
            if n.upper() in COMMENT_KINDS or n.upper() in ("ENTITY_TYPE", "COMMENT")
            else None
        ),
        kinds=lambda f: COMMENT_KINDS.get(f, "str"),
    )
    select = call.get("select")
    select = [str(s).upper() for s in select] if isinstance(select, list) else None
    return Page([_comment_view(portal, r, select) for r in rows], total, nxt)


# activities -------------------------------------------------------------------------------
ACTIVITY_FIELDS = (
    "ID",
    "OWNER_ID",
    "OWNER_TYPE_ID",
    "TYPE_ID",
    "PROVIDER_ID",
    "PROVIDER_TYPE_ID",
    "PROVIDER_GROUP_ID",
    "ASSOCIATED_ENTITY_ID",
    "SUBJECT",
    "CREATED",
    "LAST_UPDATED",
    "START_TIME",
    "END_TIME",
    "DEADLINE",
    "COMPLETED",
    "STATUS",
    "RESPONSIBLE_ID",
    "PRIORITY",
    "NOTIFY_TYPE",
    "NOTIFY_VALUE",
    "DESCRIPTION",
    "DESCRIPTION_TYPE",
    "DIRECTION",
    "LOCATION",
    "SETTINGS",
    "ORIGINATOR_ID",
    "ORIGIN_ID",
    "AUTHOR_ID",
    "EDITOR_ID",
    "PROVIDER_PARAMS",
    "PROVIDER_DATA",
    "RESULT_MARK",
    "RESULT_VALUE",
    "RESULT_SUM",
    "RESULT_CURRENCY_ID",
    "RESULT_STATUS",
    "RESULT_STREAM",
    "RESULT_SOURCE_ID",
    "AUTOCOMPLETE_RULE",
)
ACTIVITY_KINDS = {
    "ID": "int",
    "OWNER_ID": "int",
    "OWNER_TYPE_ID": "int",
    "TYPE_ID": "int",
    "RESPONSIBLE_ID": "int",
    "AUTHOR_ID": "int",
    "EDITOR_ID": "int",
    "CREATED": "datetime",
    "LAST_UPDATED": "datetime",
    "START_TIME": "datetime",
    "END_TIME": "datetime",
    "DEADLINE": "datetime",
}


def add_todo(
    portal: Portal,
    owner_type_id: int,
    owner_id: int,
    deadline: Any,
    title: str = "",
    description: str = "",
    responsible_id: int | None = None,
    user_id: int | None = None,
    color_id: str | None = None,
    ping_offsets: list[int] | None = None,
) -> int:
    """A to-do activity on a deal/contact/company, as crm.activity.todo.add; returns its ID."""
    entity = TYPE_IDS.get(owner_type_id)
    if entity is None or not owner_exists(portal, entity, owner_id):
        raise NotFound("CRM object not found")
    try:
        when = common.parse_datetime(portal, deadline)
    except (TypeError, ValueError) as exc:
        raise WrongDatetimeFormat("Incorrect date format") from exc
    if when is None:
        raise WrongDatetimeFormat("Incorrect date format")
    actor = user_id if user_id is not None else 1
    now = common.now(portal)
    activity_id = portal.next_id("activity")
    portal.table("activity")[activity_id] = {
        "ID": activity_id,
        "OWNER_ID": owner_id,
        "OWNER_TYPE_ID": owner_type_id,
        "TYPE_ID": 6,
        "PROVIDER_ID": "CRM_TODO",
        "PROVIDER_TYPE_ID": "TODO",
        "PROVIDER_GROUP_ID": None,
        "ASSOCIATED_ENTITY_ID": 0,
        "SUBJECT": title or "",
        "CREATED": now,
        "LAST_UPDATED": now,
        "START_TIME": when,
        "END_TIME": when,
        "DEADLINE": when,
        "COMPLETED": "N",
        "STATUS": "1",
        "RESPONSIBLE_ID": responsible_id or actor,
        "PRIORITY": "2",
        "NOTIFY_TYPE": "0",
        "NOTIFY_VALUE": "0",
        "DESCRIPTION": description or "",
        "DESCRIPTION_TYPE": "1",
        "DIRECTION": "0",
        "LOCATION": "",
        "SETTINGS": {"COLOR": color_id, "PING_OFFSETS": list(ping_offsets or [])},
        "ORIGINATOR_ID": None,
        "ORIGIN_ID": None,
        "AUTHOR_ID": actor,
        "EDITOR_ID": actor,
        "PROVIDER_PARAMS": [],
        "PROVIDER_DATA": None,
        "RESULT_MARK": "0",
        "RESULT_VALUE": None,
        "RESULT_SUM": None,
        "RESULT_CURRENCY_ID": None,
        "RESULT_STATUS": "0",
        "RESULT_STREAM": "0",
        "RESULT_SOURCE_ID": None,
        "AUTOCOMPLETE_RULE": "0",
    }
    common.crm_event(portal, "ONCRMACTIVITYADD", {"ID": str(activity_id)}, user_id)
    return activity_id


def _activity_view(portal: Portal, row: dict[str, Any], select: list[str] | None = None) -> dict:
    fields = select or list(ACTIVITY_FIELDS)
    view = {}
    for name in fields:
        value = row.get(name)
        view[name] = (
            value
            if name in ("SETTINGS", "PROVIDER_PARAMS")
            else common.str_scalar(value, ACTIVITY_KINDS.get(name, "str"), portal)
        )
    return view


@method("crm.activity.todo.add", scope="crm")
def todo_add(call: Call) -> dict[str, Any]:
    try:
        owner_type = common.to_int(call.get("ownerTypeId"))
        owner_id = common.to_int(call.get("ownerId"))
        responsible = common.to_int(call.get("responsibleId"))
    except (TypeError, ValueError) as exc:
        raise NotFound("CRM object not found") from exc
    offsets = call.get("pingOffsets")
    if isinstance(offsets, dict):
        offsets = list(offsets.values())
    activity_id = add_todo(
        call.portal,
        owner_type or 0,
        owner_id or 0,
        call.get("deadline"),
        str(call.get("title") or ""),
        str(call.get("description") or ""),
        responsible,
        common.acting_user(call),
        call.get("colorId"),
        [common.to_int(o) or 0 for o in offsets] if isinstance(offsets, list) else None,
    )
    return {"id": activity_id}


@method("crm.activity.get", scope="crm", validates=True)
def activity_get(call: Call) -> dict[str, Any]:
    activity_id = common.positive_id(call.get("id"))
    if activity_id is None:
        raise Uncoded("ID is not defined or invalid.")
    row = call.portal.table("activity").get(activity_id)
    if row is None:
        raise Uncoded("Not found")
    return _activity_view(call.portal, row)


@method("crm.activity.list", scope="crm")
def activity_list(call: Call) -> Page:
    portal = call.portal

    def resolve(name: str) -> str | None:
        upper = name.upper()
        return upper if upper in ACTIVITY_FIELDS else None

    rows, total, nxt = query.run_list(
        portal,
        portal.table("activity").values(),
        filter_=call.get("filter"),
        order=call.get("order"),
        start=call.get("start"),
        resolve=resolve,
        kinds=lambda f: ACTIVITY_KINDS.get(f, "str"),
    )
    select = call.get("select")
    chosen = None
    if isinstance(select, list) and select and "*" not in select:
        chosen = query.select_fields(select, ACTIVITY_FIELDS, [], resolve)
    return Page([_activity_view(portal, r, chosen) for r in rows], total, nxt)
