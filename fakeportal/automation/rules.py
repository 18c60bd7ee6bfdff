"""Automation rules on funnel stages and the workflows that run them.

When a deal enters a stage, the stage's robot rules (app robots and the built-in "send SMS"
robot) run as one workflow, one robot after another: a robot that waits holds the queue
until ``bizproc.event.send`` with its ``event_token`` arrives or its ``timeout_duration``
passes on the world clock. A robot whose turn comes after the deal left the stage is
cancelled with the rest. Trigger rules say "when this app trigger fires for a deal of this
funnel, move it to this stage".
"""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import secrets
import string
from typing import Any

from fakeportal import signals
from fakeportal.api import admin
from fakeportal.automation import crmlink, messageservice, outbox
from fakeportal.automation.lifecycle import user_auth
from fakeportal.automation.models import (
    Activity,
    NotFound,
    Rule,
    Step,
    Workflow,
    automation,
    find_installation,
    get_portal,
    installed,
    new_workflow_id,
)
from fakeportal.exceptions import AccessDenied
from fakeportal.state import Portal, World

DEFAULT_ROBOT_TIMEOUT = 600
DEFAULT_LOG_MESSAGE = "Received response from the application"
DOCUMENT_CLASS = "CCrmDocumentDeal"
_ALNUM = string.ascii_letters + string.digits


# identifiers and the event token --------------------------------------------------------------
def new_activity_name() -> str:
    return "A" + "_".join(f"{random.randint(10000, 99999)}" for _ in range(4))


def sign(world: World, value: str) -> str:
    key = outbox.runtime(world).secret + b"bizproc"
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def make_token(world: World, workflow_id: str, activity_name: str, event_id: str) -> str:
    value = f"{workflow_id}|{activity_name}|{event_id}"
    return f"{value}.{sign(world, value)}"


def step_by_token(world: World, portal: Portal, token: str) -> tuple[Workflow, Step]:
    """The waiting robot an event token belongs to; forged, foreign or spent -> 403."""
    value, _, signature = token.rpartition(".")
    if not value or not hmac.compare_digest(signature, sign(world, value)):
        raise AccessDenied("Access denied!")
    parts = value.split("|")
    if len(parts) != 3:
        raise AccessDenied("Access denied!")
    state = automation(portal)
    found = state.tokens.get(parts[2])
    if found is None or parts[2] in state.used_tokens:
        raise AccessDenied("Access denied!")
    workflow = state.workflows.get(found[0])
    if workflow is None or workflow.id != parts[0]:
        raise AccessDenied("Access denied!")
    step = workflow.steps[found[1]]
    if step.activity_name != parts[1] or step.status != "waiting":
        raise AccessDenied("Access denied!")
    return workflow, step


def write_log(world: World, portal: Portal, found: tuple[Workflow, Step], message: str) -> None:
    workflow, step = found
    workflow.log.append(
        {
            "at": world.timestamp(),
            "step": workflow.steps.index(step),
            "robot": step.rule.code,
            "message": message,
        }
    )


def receive_event(
    world: World, portal: Portal, token: str, values: dict[str, Any], log_message: str
) -> None:
    """``bizproc.event.send``: store return values, log, complete the robot, run the next."""
    workflow, step = step_by_token(world, portal, token)
    automation(portal).used_tokens.add(step.event_id)
    codes = {code.lower(): code for code in step.return_codes}
    step.return_values = {
        codes[str(k).lower()]: v for k, v in values.items() if str(k).lower() in codes
    }
    write_log(world, portal, (workflow, step), log_message or DEFAULT_LOG_MESSAGE)
    _finish(world, workflow, step, "completed")
    advance(world, portal, workflow)


# rules --------------------------------------------------------------------------------------
def _add_rule(portal: Portal, **fields: Any) -> Rule:
    rule = Rule(id=portal.next_id("automation_rule"), **fields)
    automation(portal).rules.append(rule)
    return rule


def add_robot_rule(
    world: World,
    member_id: str,
    category_id: int,
    stage_id: str,
    client_id: str,
    robot_code: str,
    properties: dict[str, Any] | None = None,
    auth_user_id: int | None = None,
    delay_seconds: float = 0,
    condition: dict[str, Any] | None = None,
    timeout_seconds: float | None = None,
) -> dict[str, Any]:
    """Place an app's robot on a stage, with its property values (``{code: value}``).

    ``condition``: deal fields that must match, ``{"TYPE_ID": "SALE", ">OPPORTUNITY": 1000}``.
    ``timeout_seconds``: the robot's ``timeout_duration`` (default ``world.config
    ["robot_timeout"]`` or 600; 0 waits forever).
    """
    with world.lock:
        outbox.runtime(world)
        portal = get_portal(world, member_id)
        inst = installed(portal, client_id)
        activity = inst.activities.get(robot_code)
        if activity is None or not activity.is_robot:
            raise NotFound(f"Robot {robot_code} is not registered by {client_id}")
        rule = _add_rule(
            portal,
            kind="robot",
            category_id=int(category_id),
            stage_id=str(stage_id),
            client_id=client_id,
            code=robot_code,
            properties=dict(properties or {}),
            auth_user_id=None if auth_user_id is None else int(auth_user_id),
            delay_seconds=float(delay_seconds or 0),
            condition=condition,
            timeout_seconds=None if timeout_seconds is None else float(timeout_seconds),
        )
        return rule.as_dict()


def add_sms_rule(
    world: World,
    member_id: str,
    category_id: int,
    stage_id: str,
    client_id: str,
    sender_code: str,
    message_text: str,
    phone: str | None = None,
    delay_seconds: float = 0,
    condition: dict[str, Any] | None = None,
    auth_user_id: int | None = None,
) -> dict[str, Any]:
    """Place the portal's built-in "Send SMS" robot on a stage, sending through an app sender.

    ``message_text`` may use deal fields: ``"Hello, {{TITLE}}"``; the phone is the deal
    contact's first phone unless ``phone`` is given.
    """
    with world.lock:
        outbox.runtime(world)
        portal = get_portal(world, member_id)
        inst = installed(portal, client_id)
        if sender_code not in inst.senders:
            raise NotFound(f"Sender {sender_code} is not registered by {client_id}")
        rule = _add_rule(
            portal,
            kind="sms",
            category_id=int(category_id),
            stage_id=str(stage_id),
            client_id=client_id,
            code=sender_code,
            properties={"phone": phone} if phone else {},
            auth_user_id=None if auth_user_id is None else int(auth_user_id),
            delay_seconds=float(delay_seconds or 0),
            condition=condition,
            message_text=message_text,
        )
        return rule.as_dict()


def add_trigger_rule(
    world: World,
    member_id: str,
    category_id: int,
    stage_id: str,
    client_id: str,
    trigger_code: str,
) -> dict[str, Any]:
    """Place an app trigger on a stage: when it fires for a deal of this funnel, move it here."""
    with world.lock:
        outbox.runtime(world)
        portal = get_portal(world, member_id)
        inst = installed(portal, client_id)
        if trigger_code.lower() not in {c.lower() for c in inst.triggers}:
            raise NotFound(f"Trigger {trigger_code} is not registered by {client_id}")
        rule = _add_rule(
            portal,
            kind="trigger",
            category_id=int(category_id),
            stage_id=str(stage_id),
            client_id=client_id,
            code=trigger_code,
        )
        return rule.as_dict()


def list_rules(
    world: World, member_id: str, category_id: int | None = None, stage_id: str | None = None
) -> list[dict[str, Any]]:
    with world.lock:
        portal = get_portal(world, member_id)
        return [
            r.as_dict()
            for r in automation(portal).rules
            if (category_id is None or r.category_id == int(category_id))
            and (stage_id is None or r.stage_id == stage_id)
        ]


def delete_rule(world: World, member_id: str, rule_id: int) -> bool:
    with world.lock:
        portal = get_portal(world, member_id)
        state = automation(portal)
        before = len(state.rules)
        state.rules = [r for r in state.rules if r.id != int(rule_id)]
        return len(state.rules) < before


def list_workflows(
    world: World, member_id: str, deal_id: int | None = None
) -> list[dict[str, Any]]:
    with world.lock:
        portal = get_portal(world, member_id)
        outbox.runtime(world).tick()
        return [
            w.as_dict()
            for w in automation(portal).workflows.values()
            if deal_id is None or w.deal_id == int(deal_id)
        ]


# running ------------------------------------------------------------------------------------
def on_stage_entered(
    portal: Portal, deal_id: int, stage_id: str, category_id: int, user_id: int | None = None
) -> None:
    """Signal ``deal.stage_entered``: start the stage's workflow if it has robots."""
    world = outbox.world_of(portal)
    if world is None:
        return
    with world.lock:
        for earlier in list(automation(portal).workflows.values()):
            if earlier.deal_id == int(deal_id) and earlier.status == "running":
                _supersede(world, earlier)
        rules = [
            r
            for r in automation(portal).rules
            if r.kind in ("robot", "sms")
            and r.stage_id == str(stage_id)
            and r.category_id == int(category_id or 0)
        ]
        if not rules:
            return
        workflow = Workflow(
            id=new_workflow_id(world),
            deal_id=int(deal_id),
            category_id=int(category_id or 0),
            stage_id=str(stage_id),
            started_at=world.timestamp(),
        )
        workflow.steps = [Step(rule=r, activity_name=new_activity_name()) for r in rules]
        automation(portal).workflows[workflow.id] = workflow
        advance(world, portal, workflow)


def _finish(world: World, workflow: Workflow, step: Step, status: str, note: str = "") -> None:
    step.status = status
    step.finished_at = world.timestamp()
    if note:
        step.note = note
    workflow.current += 1


def advance(world: World, portal: Portal, workflow: Workflow) -> None:
    """Run robots until one waits, is delayed, or the workflow ends."""
    now = world.timestamp()
    while workflow.status == "running" and workflow.current < len(workflow.steps):
        step = workflow.steps[workflow.current]
        if step.status == "waiting":
            return
        if step.status == "cancelled":
            workflow.current += 1
            continue
        if step.status == "queued" and step.rule.delay_seconds > 0:
            step.status = "delayed"
            step.due_at = now + step.rule.delay_seconds
        if step.status == "delayed":
            if now < step.due_at:
                return
            step.status = "queued"
        deal = crmlink.get_deal(portal, workflow.deal_id)
        if deal is None or str(deal.get("STAGE_ID")) != workflow.stage_id:
            _cancel(world, workflow, "the deal left the stage")
            return
        step.started_at = now
        if not _matches(deal, step.rule.condition):
            _finish(world, workflow, step, "skipped", "condition not met")
            continue
        if step.rule.kind == "sms":
            _run_sms(world, portal, workflow, step, deal)
        else:
            _run_robot(world, portal, workflow, step, deal)
    if workflow.current >= len(workflow.steps) and workflow.status == "running":
        cancelled = any(step.status == "cancelled" for step in workflow.steps)
        workflow.status = "cancelled" if cancelled else "completed"


def _supersede(world: World, workflow: Workflow) -> None:
    """The deal entered a stage again: robots of an earlier stage entry that have not started
    are cancelled (one already waiting for its answer may still get it)."""
    for step in workflow.steps[workflow.current :]:
        if step.status in ("queued", "delayed"):
            step.status = "cancelled"
            step.note = "the deal entered another stage"
            step.finished_at = world.timestamp()
    if workflow.current < len(workflow.steps):
        if workflow.steps[workflow.current].status == "cancelled":
            workflow.current = len(workflow.steps)
            workflow.status = "cancelled"


def _cancel(world: World, workflow: Workflow, note: str) -> None:
    for step in workflow.steps[workflow.current :]:
        if step.status in ("queued", "delayed"):
            step.status = "cancelled"
            step.note = note
            step.finished_at = world.timestamp()
    workflow.current = len(workflow.steps)
    workflow.status = "cancelled"


def _run_robot(
    world: World, portal: Portal, workflow: Workflow, step: Step, deal: dict[str, Any]
) -> None:
    rule = step.rule
    inst = find_installation(portal, rule.client_id)
    activity = inst.activities.get(rule.code) if inst else None
    if inst is None or activity is None or not activity.is_robot:
        _finish(world, workflow, step, "failed", "robot is not registered")
        return
    waits = activity.waits
    timeout = _timeout(world, rule) if waits else 0
    step.event_id = "".join(secrets.choice(_ALNUM) for _ in range(32))
    step.return_codes = list(activity.return_properties)
    automation(portal).tokens[step.event_id] = (workflow.id, workflow.current)
    user_id = rule.auth_user_id or activity.auth_user_id or inst.user_id
    form = {
        "workflow_id": workflow.id,
        "code": activity.code,
        "document_id": ["crm", DOCUMENT_CLASS, f"DEAL_{workflow.deal_id}"],
        "document_type": ["crm", DOCUMENT_CLASS, "DEAL"],
        "event_token": make_token(world, workflow.id, step.activity_name, step.event_id),
        "properties": robot_properties(activity, rule.properties, deal),
        "use_subscription": "Y" if waits else "N",
        "timeout_duration": str(int(timeout)),
        "ts": str(int(world.timestamp())),
        "auth": user_auth(world, portal, inst, int(user_id)),
    }
    outbox.enqueue(world, portal, "robot", activity.code, activity.handler, form)
    if waits:
        step.status = "waiting"
        step.timeout_duration = int(timeout)
        step.timeout_at = world.timestamp() + timeout if timeout > 0 else None
    else:
        _finish(world, workflow, step, "completed")


def _run_sms(
    world: World, portal: Portal, workflow: Workflow, step: Step, deal: dict[str, Any]
) -> None:
    rule = step.rule
    phone = rule.properties.get("phone") or crmlink.deal_phone(portal, deal)[0]
    if not phone:
        _finish(world, workflow, step, "failed", "the deal has no contact phone")
        return
    try:
        message = messageservice.queue_sms(
            world,
            portal,
            rule.client_id,
            rule.code,
            str(phone),
            render(rule.message_text, deal),
            deal_id=workflow.deal_id,
            workflow_id=workflow.id,
            user_id=rule.auth_user_id,
        )
    except LookupError as exc:
        _finish(world, workflow, step, "failed", str(exc))
        return
    step.message_id = message.id
    _finish(world, workflow, step, "completed")


def _timeout(world: World, rule: Rule) -> float:
    if rule.timeout_seconds is not None:
        return rule.timeout_seconds
    return float(world.config.get("robot_timeout", DEFAULT_ROBOT_TIMEOUT))


_FIELD_RE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*\}\}|\{=Document:([A-Za-z0-9_]+)\}")


def render(template: Any, deal: dict[str, Any]) -> str:
    """Substitute ``{{FIELD}}`` / ``{=Document:FIELD}`` with the deal's field values."""

    def field(match: re.Match[str]) -> str:
        value = deal.get((match.group(1) or match.group(2)).upper())
        if isinstance(value, list):
            return ", ".join(str(v) for v in value)
        return "" if value is None else str(value)

    return _FIELD_RE.sub(field, str(template if template is not None else ""))


def robot_properties(
    activity: Activity, values: dict[str, Any], deal: dict[str, Any]
) -> dict[str, Any]:
    """Property values the robot call carries: the rule's values, else defaults; as strings."""
    lowered = {str(k).lower(): v for k, v in values.items()}
    out: dict[str, Any] = {}
    for code, spec in activity.properties.items():
        value = values.get(code, lowered.get(code.lower(), spec.get("DEFAULT")))
        multiple = str(spec.get("MULTIPLE", "N")).upper() == "Y"
        if isinstance(value, (list, tuple)):
            items = [render(v, deal) for v in value]
            out[code] = items if multiple else (items[0] if items else "")
        elif isinstance(value, bool):
            out[code] = "Y" if value else "N"
        else:
            text = render(value, deal)
            out[code] = [text] if multiple and text != "" else text
    return out


_OPS = ("<=", ">=", "!=", "<", ">", "=", "!")


def _matches(deal: dict[str, Any], condition: dict[str, Any] | None) -> bool:
    """All ``{[op]FIELD: value}`` pairs hold (numbers compared as numbers)."""
    for key, expected in (condition or {}).items():
        op = next((o for o in _OPS if key.startswith(o)), "=")
        field = key[len(op) :] if key.startswith(op) else key
        actual = deal.get(field.upper())
        try:
            left: Any = float(actual)  # type: ignore[arg-type]
            right: Any = float(expected)
        except (TypeError, ValueError):
            left, right = str(actual if actual is not None else ""), str(expected)
        ok = {
            "=": left == right,
            "!": left != right,
            "!=": left != right,
            "<": left < right,
            ">": left > right,
            "<=": left <= right,
            ">=": left >= right,
        }[op]
        if not ok:
            return False
    return True


# timers -------------------------------------------------------------------------------------
def tick(world: World) -> None:
    """Time out waiting robots and start delayed ones that are due (world clock)."""
    now = world.timestamp()
    for portal in list(world.portals.values()):
        state = portal.extra.get("automation")
        if state is None:
            continue
        for workflow in list(state.workflows.values()):
            if workflow.status != "running" or workflow.current >= len(workflow.steps):
                continue
            step = workflow.steps[workflow.current]
            if step.status == "waiting" and step.timeout_at is not None and now >= step.timeout_at:
                step.is_timeout = True
                write_log(world, portal, (workflow, step), "IsTimeout: no answer in time")
                state.used_tokens.add(step.event_id)
                _finish(world, workflow, step, "timeout")
                advance(world, portal, workflow)
            elif step.status == "delayed" and now >= step.due_at:
                advance(world, portal, workflow)


def busy(world: World) -> int:
    """Robots still waiting for an answer or a delay."""
    count = 0
    for portal in list(world.portals.values()):
        state = portal.extra.get("automation")
        if state is None:
            continue
        for workflow in state.workflows.values():
            if workflow.status == "running" and workflow.current < len(workflow.steps):
                if workflow.steps[workflow.current].status in ("waiting", "delayed"):
                    count += 1
    return count


def _setup(rt: outbox.Runtime) -> None:
    rt.tickers.append(tick)
    rt.busy_checks.append(busy)


outbox.on_runtime(_setup)
signals.connect("deal.stage_entered", on_stage_entered)
signals.connect("portal.created", lambda world, portal: outbox.remember(world))


# admin actions ------------------------------------------------------------------------------
@admin("add_robot_rule")
def _admin_add_robot_rule(world: World, **kw: Any) -> dict[str, Any]:
    return add_robot_rule(world, **kw)


@admin("add_sms_rule")
def _admin_add_sms_rule(world: World, **kw: Any) -> dict[str, Any]:
    return add_sms_rule(world, **kw)


@admin("add_trigger_rule")
def _admin_add_trigger_rule(world: World, **kw: Any) -> dict[str, Any]:
    return add_trigger_rule(world, **kw)


@admin("list_rules")
def _admin_list_rules(world: World, **kw: Any) -> list[dict[str, Any]]:
    return list_rules(world, **kw)


@admin("delete_rule")
def _admin_delete_rule(world: World, member_id: str, rule_id: int) -> bool:
    return delete_rule(world, member_id, rule_id)


@admin("workflows")
def _admin_workflows(world: World, member_id: str, deal_id: int | None = None) -> list:
    return list_workflows(world, member_id, deal_id)
