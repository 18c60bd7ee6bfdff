"""Tasks: tasks.task.add/get/list/update/delete and the status methods (start, pause, defer,
complete, renew, approve, disapprove). Replies are camelCase with string values, under
``result.task`` / ``result.tasks``; CRM bindings are ``UF_CRM_TASK`` (``["D_10", "C_3"]``),
shown as ``ufCrmTask`` only when selected.

Every change sends ``crm.event`` with the task events' own ``data``: ``FIELDS_BEFORE``,
``FIELDS_AFTER`` (only ``ID`` inside, or the string ``"undefined"``), ``IS_ACCESSIBLE_BEFORE``
and ``IS_ACCESSIBLE_AFTER``. ONTASKUPDATE fires on status changes too.

Status rules (PROTOCOL.md §11; which status each action starts from and who may do it is
UNCONFIRMED in the docs, so they are strict here): ``ACTIONS`` lists the statuses an action
is allowed from; a creator, the responsible person, an accomplice or a portal admin may
start, pause, defer, complete and renew; only the creator or an admin may approve,
disapprove and delete. Anything else answers ``"1048582"`` "Action on the task is not
allowed" (delete: "No access to delete the task").
"""

from __future__ import annotations

import uuid
from typing import Any

from fakeportal.api import Call, Page, flag, method
from fakeportal.exceptions import CodeZero, CoreError, ParamError, TaskActionNotAllowed
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
NEW, PENDING, IN_PROGRESS, SUPPOSEDLY_COMPLETED, COMPLETED, DEFERRED, DECLINED = range(1, 8)

# action -> (statuses it is allowed from, status it gives). ``complete`` gives 4 instead of 5
# for a TASK_CONTROL task completed by anyone but its creator (see ``complete_status``).
ACTIONS: dict[str, tuple[frozenset[int], int]] = {
    "start": (frozenset({NEW, PENDING}), IN_PROGRESS),
    "pause": (frozenset({IN_PROGRESS}), PENDING),
    "defer": (frozenset({NEW, PENDING, IN_PROGRESS}), DEFERRED),
    "complete": (frozenset({NEW, PENDING, IN_PROGRESS, DEFERRED}), COMPLETED),
    "renew": (frozenset({SUPPOSEDLY_COMPLETED, COMPLETED, DEFERRED, DECLINED}), PENDING),
    "approve": (frozenset({SUPPOSEDLY_COMPLETED}), COMPLETED),
    "disapprove": (frozenset({SUPPOSEDLY_COMPLETED}), PENDING),
}
CONTROL_ACTIONS = frozenset({"approve", "disapprove"})  # the creator's (or an admin's)
UNDEFINED = "undefined"  # what task events send where there is nothing to send


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
            "STATUS_CHANGED_BY": actor,
            "STATUS_CHANGED_DATE": now,
            "CLOSED_BY": 0,  # the portal shows "0" until a task is closed
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
    _task_event(portal, "ONTASKADD", task_id, user_id)
    return task_id


def _task_event(portal: Portal, name: str, task_id: int, user_id: int | None) -> None:
    """ONTASKADD / ONTASKUPDATE / ONTASKDELETE with their documented ``data``.

    The values are the docs' examples (api-reference/tasks/events-tasks/*.md): the portal
    sends what it knows without an access check, so ``IS_ACCESSIBLE_*`` is ``N`` on the side
    where the task does not exist and ``"undefined"`` elsewhere. ``ID`` is a number here, as
    the docs' PHP arrays show it (UNCONFIRMED for the offline queue's JSON; the form POST makes
    it a string anyway). The real portal also drops deliveries to users who cannot read the
    task; not emulated.
    """
    ref = {"ID": int(task_id)}
    data: dict[str, Any] = {
        "ONTASKADD": {
            "FIELDS_BEFORE": UNDEFINED,
            "FIELDS_AFTER": ref,
            "IS_ACCESSIBLE_BEFORE": "N",
            "IS_ACCESSIBLE_AFTER": UNDEFINED,
        },
        "ONTASKUPDATE": {
            "FIELDS_BEFORE": ref,
            "FIELDS_AFTER": dict(ref),
            "IS_ACCESSIBLE_BEFORE": UNDEFINED,
            "IS_ACCESSIBLE_AFTER": UNDEFINED,
        },
        "ONTASKDELETE": {
            "FIELDS_BEFORE": ref,
            "FIELDS_AFTER": UNDEFINED,
            "IS_ACCESSIBLE_BEFORE": UNDEFINED,
            "IS_ACCESSIBLE_AFTER": "N",
        },
    }[name]
    common.crm_event(portal, name, {"ID": str(task_id)}, user_id, data=data)


def _set_status(task: dict[str, Any], status: int, user_id: int | None, now: Any) -> None:
    """A status change and what comes with it: closed on 5, reopened otherwise.

    Status 4 (awaiting control) leaves ``closedBy``/``closedDate`` empty: the task is closed
    only when approved (UNCONFIRMED; the approve example shows them set by the approver).
    """
    if status == task["STATUS"]:
        return
    task["STATUS"] = status
    task["STATUS_CHANGED_DATE"] = now
    task["STATUS_CHANGED_BY"] = user_id if user_id is not None else task["STATUS_CHANGED_BY"]
    if status == COMPLETED:
        task["CLOSED_BY"] = user_id if user_id is not None else 0
        task["CLOSED_DATE"] = now
    else:
        task["CLOSED_BY"] = 0
        task["CLOSED_DATE"] = None
    if status == IN_PROGRESS:
        task["DATE_START"] = now


def _touch(task: dict[str, Any], user_id: int | None, now: Any) -> None:
    task["CHANGED_DATE"] = now
    task["ACTIVITY_DATE"] = now
    if user_id is not None:
        task["CHANGED_BY"] = user_id


def update_task(
    portal: Portal, task_id: int, fields: dict[str, Any], user_id: int | None = None
) -> None:
    task = require_task(portal, task_id)
    fields = common.upper_keys(fields)
    updated = dict(task)
    _apply(portal, updated, fields)
    _validate(portal, updated)
    now = common.now(portal)
    status = updated["STATUS"]
    updated["STATUS"] = task["STATUS"]
    _set_status(updated, status, user_id, now)
    _touch(updated, user_id, now)
    task.update(updated)
    _task_event(portal, "ONTASKUPDATE", task_id, user_id)


def _is_admin(portal: Portal, user_id: int) -> bool:
    return flag((portal.table("user").get(user_id) or {}).get("IS_ADMIN"))


def _may_edit(portal: Portal, task: dict[str, Any], user_id: int | None) -> bool:
    """Creator, responsible, accomplice or admin (auditors only watch). None: automation."""
    if user_id is None or _is_admin(portal, user_id):
        return True
    return user_id in (task["CREATED_BY"], task["RESPONSIBLE_ID"]) or user_id in (
        task.get("ACCOMPLICES") or []
    )


def _may_control(portal: Portal, task: dict[str, Any], user_id: int | None) -> bool:
    """The creator or an admin: approve, disapprove, delete. None: automation."""
    return user_id is None or user_id == task["CREATED_BY"] or _is_admin(portal, user_id)


def complete_status(task: dict[str, Any], user_id: int | None) -> int:
    """5, or 4 (awaiting the creator's control) for a TASK_CONTROL task completed by anyone
    but its creator, admins and automation included (UNCONFIRMED: the docs' examples only
    show 5; the strict reading of "task control")."""
    if flag(task.get("TASK_CONTROL")) and user_id != task["CREATED_BY"]:
        return SUPPOSEDLY_COMPLETED
    return COMPLETED


def change_status(portal: Portal, task_id: Any, action: str, user_id: int | None = None) -> int:
    """Do a status action (``"start"``, ``"complete"``, ... as ``ACTIONS`` names them) as
    ``user_id``, as tasks.task.<action> does; fires ONTASKUPDATE; returns the new status."""
    task = require_task(portal, task_id)
    allowed_from, status = ACTIONS[action]
    permitted = (_may_control if action in CONTROL_ACTIONS else _may_edit)(portal, task, user_id)
    if not permitted or task["STATUS"] not in allowed_from:
        raise TaskActionNotAllowed()
    if action == "complete":
        status = complete_status(task, user_id)
    now = common.now(portal)
    _set_status(task, status, user_id, now)
    _touch(task, user_id, now)
    _task_event(portal, "ONTASKUPDATE", task["ID"], user_id)
    return status


def delete_task(portal: Portal, task_id: Any, user_id: int | None = None) -> None:
    """Delete a task as tasks.task.delete does (creator or admin); fires ONTASKDELETE."""
    task = require_task(portal, task_id)
    if not _may_control(portal, task, user_id):
        raise TaskActionNotAllowed("No access to delete the task")
    del table(portal)[task["ID"]]
    _task_event(portal, "ONTASKDELETE", task["ID"], user_id)


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


def select(value: Any) -> list[str] | None:
    """A ``select`` list as field names (camelCase or UPPER; ``*`` = the default set)."""
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
    return {"task": task_view(call.portal, task, select(call.get("select")))}


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
    names = select(call.get("select"))
    return Page([task_view(portal, r, names) for r in rows], total, nxt, "tasks")


def _status_method(action: str) -> None:
    """Register ``tasks.task.<action> {taskId*}`` -> ``result.task`` with its new status."""

    def handler(call: Call) -> dict[str, Any]:
        task = require_task(call.portal, call.get("taskId"))
        change_status(call.portal, task["ID"], action, common.acting_user(call))
        return {"task": task_view(call.portal, task)}

    handler.__name__ = f"task_{action}"
    method(f"tasks.task.{action}", scope="task")(handler)


for _action in ACTIONS:
    _status_method(_action)


@method("tasks.task.delete", scope="task")
def task_delete(call: Call) -> dict[str, bool]:
    delete_task(call.portal, call.get("taskId"), common.acting_user(call))
    return {"task": True}
