"""Tasks: tasks.task.add/get/list/update. Replies are camelCase with string values, under
``result.task`` / ``result.tasks``; CRM bindings are ``UF_CRM_TASK`` (``["D_10", "C_3"]``),
shown as ``ufCrmTask`` only when selected.
"""

from __future__ import annotations

import uuid
from typing import Any

from fakeportal.api import Call, Page, method
from fakeportal.exceptions import CodeZero, CoreError, ParamError
from fakeportal.state import Portal

from . import common, query

FIELDS: dict[str, str] = {
    # canonical name -> kind
    "ID": "int",
    "PARENT_ID": "int",
    "TITLE": "str",
    "DESCRIPTION": "str",
    "MARK": "str",
    "PRIORITY": "int",
    "MULTITASK": "str",
    "NOT_VIEWED": "str",
    "REPLICATE": "str",
    "STAGE_ID": "int",
    "CREATED_BY": "int",
    "CREATED_DATE": "datetime",
    "RESPONSIBLE_ID": "int",
    "CHANGED_BY": "int",
    "CHANGED_DATE": "datetime",
    "STATUS_CHANGED_BY": "int",
    "CLOSED_BY": "int",
    "CLOSED_DATE": "datetime",
    "ACTIVITY_DATE": "datetime",
    "DATE_START": "datetime",
    "DEADLINE": "datetime",
    "START_DATE_PLAN": "datetime",
    "END_DATE_PLAN": "datetime",
    "GUID": "str",
    "XML_ID": "str",
    "ALLOW_CHANGE_DEADLINE": "str",
    "ALLOW_TIME_TRACKING": "str",
    "TASK_CONTROL": "str",
    "TIME_ESTIMATE": "int",
    "MATCH_WORK_TIME": "str",
    "SITE_ID": "str",
    "DESCRIPTION_IN_BBCODE": "str",
    "STATUS": "int",
    "STATUS_CHANGED_DATE": "datetime",
    "DURATION_TYPE": "str",
    "GROUP_ID": "int",
    "AUDITORS": "list_int",
    "ACCOMPLICES": "list_int",
    "UF_CRM_TASK": "list_str",
}
DEFAULT_HIDDEN = {"UF_CRM_TASK"}
WRITABLE_STR = (
    "TITLE",
    "DESCRIPTION",
    "MARK",
    "XML_ID",
    "ALLOW_CHANGE_DEADLINE",
    "ALLOW_TIME_TRACKING",
    "TASK_CONTROL",
    "MATCH_WORK_TIME",
    "DURATION_TYPE",
)
WRITABLE_INT = (
    "PARENT_ID",
    "PRIORITY",
    "RESPONSIBLE_ID",
    "GROUP_ID",
    "TIME_ESTIMATE",
    "STATUS",
    "STAGE_ID",
)
WRITABLE_DT = ("DEADLINE", "START_DATE_PLAN", "END_DATE_PLAN", "DATE_START")
STATUSES = {1, 2, 3, 4, 5, 6, 7}


def camel(name: str) -> str:
    return "ufCrmTask" if name == "UF_CRM_TASK" else common.camel(name)


CAMEL_TO_FIELD = {camel(name): name for name in FIELDS}


def table(portal: Portal) -> dict[int, dict[str, Any]]:
    return portal.table("task")


def _ids(value: Any) -> list[int]:
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        value = [value] if value not in (None, "") else []
    return [i for i in (common.positive_id(v) for v in value) if i is not None]


def _apply(portal: Portal, task: dict[str, Any], fields: dict[str, Any]) -> None:
    for key in WRITABLE_STR:
        if key in fields:
            task[key] = "" if fields[key] is None else str(fields[key])
    for key in WRITABLE_INT:
        if key in fields:
            try:
                task[key] = common.to_int(fields[key])
            except (TypeError, ValueError):
                pass
    for key in WRITABLE_DT:
        if key in fields:
            try:
                task[key] = common.parse_datetime(portal, fields[key])
            except (TypeError, ValueError):
                pass
    for key in ("AUDITORS", "ACCOMPLICES"):
        if key in fields:
            task[key] = _ids(fields[key])
    if "UF_CRM_TASK" in fields:
        value = fields["UF_CRM_TASK"]
        if isinstance(value, dict):
            value = list(value.values())
        if not isinstance(value, list):
            value = [value] if value not in (None, "") else []
        task["UF_CRM_TASK"] = [str(v) for v in value if str(v)]


def _validate(portal: Portal, task: dict[str, Any]) -> None:
    if not str(task.get("TITLE") or "").strip():
        raise CoreError("Task title not specified")
    if not task.get("RESPONSIBLE_ID"):
        raise CoreError("Responsible person not specified")
    if task["RESPONSIBLE_ID"] not in portal.table("user"):
        raise CoreError('User specified in the "Responsible" field not found')
    if task.get("STATUS") not in STATUSES:
        raise CoreError("Incorrect status")
    if task.get("PARENT_ID") and task["PARENT_ID"] not in table(portal):
        raise CoreError('Task specified in the "Parent Task" field not found')


def create_task(portal: Portal, fields: dict[str, Any], user_id: int | None = None) -> int:
    """Create a task as tasks.task.add does (upper-case field names); returns its id."""
    fields = common.upper_keys(fields)
    actor = user_id if user_id is not None else 1
    now = common.now(portal)
    task: dict[str, Any] = {name: None for name in FIELDS}
    task.update(
        {
            "TITLE": "",
            "DESCRIPTION": "",
            "PRIORITY": 1,
            "MULTITASK": "N",
            "NOT_VIEWED": "N",
            "REPLICATE": "N",
            "STAGE_ID": 0,
            "CREATED_BY": actor,
            "CREATED_DATE": now,
            "CHANGED_BY": actor,
            "CHANGED_DATE": now,
            "ACTIVITY_DATE": now,
            "GUID": "{" + str(uuid.uuid4()) + "}",
            "ALLOW_CHANGE_DEADLINE": "N",
            "ALLOW_TIME_TRACKING": "N",
            "TASK_CONTROL": "N",
            "TIME_ESTIMATE": 0,
            "MATCH_WORK_TIME": "N",
            "SITE_ID": "s1",
            "DESCRIPTION_IN_BBCODE": "Y",
            "STATUS": 2,
            "STATUS_CHANGED_DATE": now,
            "DURATION_TYPE": "days",
            "GROUP_ID": 0,
            "AUDITORS": [],
            "ACCOMPLICES": [],
            "UF_CRM_TASK": [],
        }
    )
    if "CREATED_BY" in fields:
        task["CREATED_BY"] = common.positive_id(fields["CREATED_BY"]) or actor
    _apply(portal, task, fields)
    _validate(portal, task)
    task_id = portal.next_id("task")
    task["ID"] = task_id
    table(portal)[task_id] = task
    common.crm_event(portal, "ONTASKADD", {"ID": str(task_id)}, user_id)
    return task_id


def update_task(
    portal: Portal, task_id: int, fields: dict[str, Any], user_id: int | None = None
) -> None:
    task = require_task(portal, task_id)
    fields = common.upper_keys(fields)
    updated = dict(task)
    _apply(portal, updated, fields)
    _validate(portal, updated)
    now = common.now(portal)
    if updated["STATUS"] != task["STATUS"]:
        updated["STATUS_CHANGED_DATE"] = now
        updated["STATUS_CHANGED_BY"] = user_id
        if updated["STATUS"] == 5:
            updated["CLOSED_DATE"] = now
            updated["CLOSED_BY"] = user_id
    updated["CHANGED_DATE"] = now
    if user_id is not None:
        updated["CHANGED_BY"] = user_id
    task.update(updated)
    common.crm_event(portal, "ONTASKUPDATE", {"ID": str(task_id)}, user_id)


def require_task(portal: Portal, task_id: Any) -> dict[str, Any]:
    try:
        key = common.to_int(task_id)
    except (TypeError, ValueError) as exc:
        raise CodeZero("wrong task id") from exc
    task = table(portal).get(key) if key else None
    if task is None:
        raise CodeZero("Action on the task is not allowed")
    return task


def task_view(portal: Portal, task: dict[str, Any], select: list[str] | None = None) -> dict:
    """camelCase, every scalar a string (lists of id strings), UF_CRM_TASK only if asked."""
    names = select or [n for n in FIELDS if n not in DEFAULT_HIDDEN]
    view: dict[str, Any] = {}
    for name in names:
        kind = FIELDS.get(name, "str")
        value = task.get(name)
        if kind.startswith("list"):
            view[camel(name)] = [str(v) for v in value or []]
        else:
            view[camel(name)] = common.str_scalar(value, kind, portal)
    return view


def _select(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list) or not value:
        return None
    names: list[str] = []
    for raw in value:
        text = str(raw)
        if text == "*":
            names.extend(n for n in FIELDS if n not in DEFAULT_HIDDEN)
            continue
        name = CAMEL_TO_FIELD.get(text) or text.upper()
        if name in FIELDS:
            names.append(name)
    if "ID" not in names:
        names.insert(0, "ID")
    return list(dict.fromkeys(names))


def _fields_param(call: Call) -> dict[str, Any]:
    fields = call.get("fields")
    if not isinstance(fields, dict) or not fields:
        raise ParamError("Could not find value for parameter {fields}")
    return fields


@method("tasks.task.add", scope="task", validates=True)
def task_add(call: Call) -> dict[str, Any]:
    task_id = create_task(call.portal, _fields_param(call), common.acting_user(call))
    return {"task": task_view(call.portal, table(call.portal)[task_id])}


@method("tasks.task.get", scope="task", validates=True)
def task_get(call: Call) -> dict[str, Any]:
    if call.get("taskId") is None:
        raise ParamError("CTaskItem All parameters in the constructor must have real class type")
    task = require_task(call.portal, call.get("taskId"))
    return {"task": task_view(call.portal, task, _select(call.get("select")))}


@method("tasks.task.update", scope="task", validates=True)
def task_update(call: Call) -> dict[str, Any]:
    if call.get("taskId") is None:
        raise ParamError("CTaskItem All parameters in the constructor must have real class type")
    task = require_task(call.portal, call.get("taskId"))
    update_task(call.portal, task["ID"], _fields_param(call), common.acting_user(call))
    return {"task": task_view(call.portal, task)}


@method("tasks.task.list", scope="task")
def task_list(call: Call) -> Page:
    portal = call.portal

    def resolve(name: str) -> str | None:
        if name in CAMEL_TO_FIELD:
            return CAMEL_TO_FIELD[name]
        upper = name.upper()
        return upper if upper in FIELDS else None

    rows, total, nxt = query.run_list(
        portal,
        table(portal).values(),
        filter_=call.get("filter"),
        order=call.get("order"),
        start=call.get("start"),
        resolve=resolve,
        kinds=lambda f: FIELDS.get(f, "str"),
    )
    select = _select(call.get("select"))
    return Page([task_view(portal, r, select) for r in rows], total, nxt, "tasks")
