"""bizproc.robot.*, bizproc.activity.*, bizproc.event.send and bizproc.activity.log.

Validation follows the portal's bizproc REST service: parameter keys are upper-cased (property
codes and select option keys are kept), then CODE, HANDLER, NAME, PROPERTIES,
RETURN_PROPERTIES, DOCUMENT_TYPE and FILTER are checked in that order.
"""

from __future__ import annotations

import re
from typing import Any

from fakeportal.api import Call, admin, method
from fakeportal.automation import rules
from fakeportal.automation.checks import as_list, check_handler, php_empty
from fakeportal.automation.models import (
    Activity,
    Installation,
    app_installation,
    get_portal,
    installed,
)
from fakeportal.exceptions import (
    ActivityAlreadyInstalled,
    ActivityNotFound,
    ActivityValidationFailure,
    EmptyLogMessage,
)
from fakeportal.state import World

CODE_RE = re.compile(r"^[a-z0-9.\-_]+$", re.IGNORECASE)
PROPERTY_RE = re.compile(r"^[a-z][a-z0-9_]*$", re.IGNORECASE)
KEEP_KEYS = ("PROPERTIES", "RETURN_PROPERTIES", "OPTIONS")


def upper_keys(data: Any, keep: bool = False) -> Any:
    """Upper-case dict keys recursively; keys inside PROPERTIES/RETURN_PROPERTIES/OPTIONS stay."""
    if isinstance(data, list):
        return [upper_keys(v, False) if isinstance(v, (dict, list)) else v for v in data]
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key) if keep else str(key).upper()
        if isinstance(value, (dict, list)):
            value = upper_keys(value, name in KEEP_KEYS)
        out[name] = value
    return out


def _check_code(code: Any) -> str:
    if php_empty(code) or not isinstance(code, (str, int)):
        raise ActivityValidationFailure("Empty activity code!")
    if not CODE_RE.match(str(code)):
        raise ActivityValidationFailure("Wrong activity code!")
    return str(code)


def _check_properties(props: Any) -> dict[str, dict[str, Any]]:
    if isinstance(props, list) and not props:
        return {}
    if isinstance(props, list):
        props = {str(i): v for i, v in enumerate(props)}
    if not isinstance(props, dict):
        raise ActivityValidationFailure("Wrong properties array!")
    out: dict[str, dict[str, Any]] = {}
    for key, prop in props.items():
        if not PROPERTY_RE.match(str(key)):
            raise ActivityValidationFailure(f"Wrong property key ({key})!")
        if not isinstance(prop, dict) or php_empty(prop.get("NAME")):
            raise ActivityValidationFailure(f"Empty property NAME ({key})!")
        if str(prop.get("TYPE", "")).lower() == "select" and php_empty(prop.get("OPTIONS")):
            raise ActivityValidationFailure(f"Empty property OPTIONS ({key})!")
        out[str(key)] = prop
    return out


def _check_document_type(value: Any) -> list[str]:
    items = as_list(value)
    if not items or len(items) != 3 or any(php_empty(v) for v in items):
        raise ActivityValidationFailure("Wrong activity DOCUMENT_TYPE!")
    return [str(v) for v in items]


def _validate(data: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Check fields (all of them, or only those present for an update); return clean values."""
    clean: dict[str, Any] = {}
    if not partial or "HANDLER" in data:
        clean["handler"] = check_handler(data.get("HANDLER"))
    if not partial or "NAME" in data:
        if php_empty(data.get("NAME")):
            raise ActivityValidationFailure("Empty activity NAME!")
        clean["name"] = data["NAME"]
    if data.get("PROPERTIES") is not None:
        clean["properties"] = _check_properties(data["PROPERTIES"])
    if data.get("RETURN_PROPERTIES") is not None:
        clean["return_properties"] = _check_properties(data["RETURN_PROPERTIES"])
    if data.get("DOCUMENT_TYPE") is not None:
        clean["document_type"] = _check_document_type(data["DOCUMENT_TYPE"])
    if data.get("FILTER") is not None:
        if not isinstance(data["FILTER"], (dict, list)):
            raise ActivityValidationFailure("Wrong activity FILTER!")
        clean["filter"] = data["FILTER"]
    if "DESCRIPTION" in data:
        clean["description"] = data["DESCRIPTION"] or ""
    if "AUTH_USER_ID" in data:
        try:
            clean["auth_user_id"] = int(data["AUTH_USER_ID"] or 0)
        except (TypeError, ValueError):
            clean["auth_user_id"] = 0
    if "USE_SUBSCRIPTION" in data:
        clean["use_subscription"] = str(data["USE_SUBSCRIPTION"] or "").upper()
    if "USE_PLACEMENT" in data:
        clean["use_placement"] = "Y" if str(data["USE_PLACEMENT"]).upper() == "Y" else "N"
    if "PLACEMENT_HANDLER" in data:
        clean["placement_handler"] = str(data["PLACEMENT_HANDLER"] or "")
    if clean.get("use_placement") == "Y" and (not partial or "placement_handler" in clean):
        clean["placement_handler"] = check_handler(clean.get("placement_handler"))
    return clean


def _context(call: Call) -> Installation:
    client_id = call.require_app()
    call.require_admin()
    return app_installation(call.portal, client_id)


def _find(inst: Installation, code: str, is_robot: bool) -> Activity:
    activity = inst.activities.get(code)
    if activity is None or activity.is_robot != is_robot:
        raise ActivityNotFound()
    return activity


def add_activity(call: Call, is_robot: bool) -> bool:
    inst = _context(call)
    data = upper_keys(call.params)
    data.pop("AUTH", None)
    if not data:
        raise ActivityValidationFailure("Empty data!")
    code = _check_code(data.get("CODE"))
    clean = _validate(data)
    with call.world.lock:
        if code in inst.activities:
            raise ActivityAlreadyInstalled()
        inst.activities[code] = Activity(code=code, is_robot=is_robot, **clean)
    return True


def update_activity(call: Call, is_robot: bool) -> bool:
    inst = _context(call)
    data = upper_keys(call.params)
    code = _check_code(data.get("CODE"))
    with call.world.lock:
        activity = _find(inst, code, is_robot)
        fields = data.get("FIELDS")
        if not isinstance(fields, dict) or not fields:
            raise ActivityValidationFailure("No fields to update")
        clean = _validate(fields, partial=True)
        if clean.get("use_placement", activity.use_placement) == "Y" and not (
            clean.get("placement_handler") or activity.placement_handler
        ):
            check_handler("")
        for key, value in clean.items():
            setattr(activity, key, value)
    return True


def delete_activity(call: Call, is_robot: bool) -> bool:
    inst = _context(call)
    code = _check_code(upper_keys(call.params).get("CODE"))
    with call.world.lock:
        _find(inst, code, is_robot)
        del inst.activities[code]
    return True


def list_activities(call: Call, is_robot: bool) -> list[str]:
    inst = _context(call)
    with call.world.lock:
        return [a.code for a in inst.activities.values() if a.is_robot == is_robot]


@method("bizproc.robot.add", scope="bizproc", validates=True)
def robot_add(call: Call) -> bool:
    return add_activity(call, True)


@method("bizproc.robot.update", scope="bizproc", validates=True)
def robot_update(call: Call) -> bool:
    return update_activity(call, True)


@method("bizproc.robot.delete", scope="bizproc", validates=True)
def robot_delete(call: Call) -> bool:
    return delete_activity(call, True)


@method("bizproc.robot.list", scope="bizproc", validates=True)
def robot_list(call: Call) -> list[str]:
    return list_activities(call, True)


@method("bizproc.activity.add", scope="bizproc", validates=True)
def activity_add(call: Call) -> bool:
    return add_activity(call, False)


@method("bizproc.activity.update", scope="bizproc", validates=True)
def activity_update(call: Call) -> bool:
    return update_activity(call, False)


@method("bizproc.activity.delete", scope="bizproc", validates=True)
def activity_delete(call: Call) -> bool:
    return delete_activity(call, False)


@method("bizproc.activity.list", scope="bizproc", validates=True)
def activity_list(call: Call) -> list[str]:
    return list_activities(call, False)


@method("bizproc.event.send", scope="bizproc", validates=True)
def event_send(call: Call) -> bool:
    """Complete a waiting robot: return values and a log line; bad/used token -> 403."""
    data = {str(k).upper(): v for k, v in call.params.items()}
    values = data.get("RETURN_VALUES")
    if not isinstance(values, dict):
        values = {}
    with call.world.lock:
        rules.receive_event(
            call.world,
            call.portal,
            str(data.get("EVENT_TOKEN") or ""),
            values,
            str(data.get("LOG_MESSAGE") or ""),
        )
    return True


@method("bizproc.activity.log", scope="bizproc", validates=True)
def activity_log(call: Call) -> bool:
    """Append to the workflow log without completing the robot."""
    data = {str(k).upper(): v for k, v in call.params.items()}
    with call.world.lock:
        step = rules.step_by_token(call.world, call.portal, str(data.get("EVENT_TOKEN") or ""))
        message = data.get("LOG_MESSAGE")
        if php_empty(message):
            raise EmptyLogMessage()
        rules.write_log(call.world, call.portal, step, str(message))
    return True


def registered(world: World, member_id: str | None, client_id: str) -> dict[str, Any]:
    """An app's robots and activities as stored (keys upper-cased as the portal keeps them)."""
    with world.lock:
        inst = installed(get_portal(world, member_id), client_id)
        return {code: a.as_dict() for code, a in inst.activities.items()}


@admin("robots")
def _admin_robots(world: World, client_id: str, member_id: str | None = None) -> dict:
    return registered(world, member_id, client_id)
