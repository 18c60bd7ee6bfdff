"""State of apps and automation inside one emulated portal.

``Portal.apps[client_id]`` holds an ``Installation`` (what one app registered on that portal);
``Portal.extra["automation"]`` holds the portal's own automation state (rules on stages,
running workflows, SMS messages, offline event queue).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fakeportal.exceptions import ErrorOAuth

if TYPE_CHECKING:  # pragma: no cover
    from fakeportal.state import Portal, World


@dataclass
class Activity:
    """A robot (``is_robot``) or a workflow-designer activity registered by an app."""

    code: str
    is_robot: bool
    handler: str
    name: Any
    description: Any = ""
    auth_user_id: int = 0
    use_subscription: str = ""  # as registered: "Y", "N" or "" (empty waits)
    properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    return_properties: dict[str, dict[str, Any]] = field(default_factory=dict)
    document_type: list[str] | None = None
    filter: Any = None
    use_placement: str = "N"
    placement_handler: str = ""

    @property
    def waits(self) -> bool:
        """Whether the workflow waits for ``bizproc.event.send`` (missing = wait)."""
        return self.use_subscription != "N"

    def as_dict(self) -> dict[str, Any]:
        return {
            "CODE": self.code,
            "IS_ROBOT": "Y" if self.is_robot else "N",
            "HANDLER": self.handler,
            "NAME": self.name,
            "DESCRIPTION": self.description,
            "AUTH_USER_ID": self.auth_user_id,
            "USE_SUBSCRIPTION": self.use_subscription,
            "PROPERTIES": self.properties,
            "RETURN_PROPERTIES": self.return_properties,
            "DOCUMENT_TYPE": self.document_type,
            "FILTER": self.filter,
            "USE_PLACEMENT": self.use_placement,
            "PLACEMENT_HANDLER": self.placement_handler,
        }


@dataclass
class EventBinding:
    """One ``event.bind`` registration."""

    id: int
    event: str
    handler: str
    auth_type: int = 0
    offline: bool = False
    auth_connector: str = ""
    options: Any = None

    def as_dict(self) -> dict[str, Any]:
        """As event.get lists it: offline bindings show their connector, not a handler."""
        if self.offline:
            return {"event": self.event, "connector_id": self.auth_connector, "offline": 1}
        return {
            "event": self.event,
            "handler": self.handler,
            "auth_type": str(self.auth_type),
            "offline": 0,
        }

    def admin_dict(self) -> dict[str, Any]:
        """Every field, for the admin surface (``apps``, ``event_bindings``)."""
        return {
            "event": self.event,
            "handler": self.handler,
            "auth_type": str(self.auth_type),
            "offline": 1 if self.offline else 0,
            "connector_id": self.auth_connector,
            "options": self.options,
        }


@dataclass
class PlacementBinding:
    """One ``placement.bind`` registration."""

    placement: str
    handler: str
    title: str = ""
    description: str = ""
    group_name: str = ""
    lang_all: dict[str, Any] = field(default_factory=dict)
    options: Any = field(default_factory=list)
    user_id: int = 0

    def as_dict(self) -> dict[str, Any]:
        lang_all = self.lang_all or {
            "en": {
                "TITLE": self.title,
                "DESCRIPTION": self.description,
                "GROUP_NAME": self.group_name,
            }
        }
        return {
            "placement": self.placement,
            "userId": self.user_id,
            "handler": self.handler,
            "options": self.options if self.options else [],
            "title": self.title,
            "description": self.description,
            "langAll": lang_all,
        }


@dataclass
class Sender:
    """An SMS provider registered with ``messageservice.sender.add``."""

    code: str
    type: str
    handler: str
    name: Any
    description: Any = ""


@dataclass
class Installation:
    """One app on one portal: install state, tokens' application_token, registrations."""

    client_id: str
    application_token: str
    version: int
    user_id: int
    mode: str = "event"
    installed: bool = True
    finished: bool = False  # BX24.installFinish() called (always True in "event" mode)
    activities: dict[str, Activity] = field(default_factory=dict)  # lower-case code -> ...
    bindings: list[EventBinding] = field(default_factory=list)
    placements: list[PlacementBinding] = field(default_factory=list)
    triggers: dict[str, str] = field(default_factory=dict)  # code -> name
    senders: dict[str, Sender] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Installed and finished: only then events are delivered and widgets shown."""
        return self.installed and self.finished

    def wipe(self) -> None:
        """Drop what the portal removes on app update/uninstall."""
        self.activities.clear()
        self.bindings.clear()
        self.placements.clear()

    def summary(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "version": self.version,
            "installed": self.installed,
            "finished": self.finished,
            "mode": self.mode,
            "user_id": self.user_id,
            "robots": sorted(a.code for a in self.activities.values() if a.is_robot),
            "activities": sorted(a.code for a in self.activities.values() if not a.is_robot),
            "events": [b.admin_dict() for b in self.bindings],
            "placements": [p.placement for p in self.placements],
            "triggers": dict(self.triggers),
            "senders": sorted(self.senders),
        }


@dataclass
class Rule:
    """Something placed on a funnel stage: an app robot, the built-in SMS robot, a trigger."""

    id: int
    kind: str  # "robot" | "sms" | "trigger"
    category_id: int
    stage_id: str
    client_id: str
    code: str = ""  # robot code, sender code or trigger code
    properties: dict[str, Any] = field(default_factory=dict)
    auth_user_id: int | None = None
    delay_seconds: float = 0
    condition: dict[str, Any] | None = None
    timeout_seconds: float | None = None
    message_text: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "category_id": self.category_id,
            "stage_id": self.stage_id,
            "client_id": self.client_id,
            "code": self.code,
            "properties": self.properties,
            "auth_user_id": self.auth_user_id,
            "delay_seconds": self.delay_seconds,
            "condition": self.condition,
            "timeout_seconds": self.timeout_seconds,
            "message_text": self.message_text,
        }


@dataclass
class Step:
    """One robot of a stage's workflow."""

    rule: Rule
    activity_name: str
    status: str = "queued"  # queued, delayed, waiting, completed, timeout, cancelled, skipped,
    #                         failed
    event_id: str = ""
    due_at: float = 0.0
    started_at: float | None = None
    finished_at: float | None = None
    timeout_at: float | None = None
    timeout_duration: int = 0
    is_timeout: bool = False
    return_values: dict[str, Any] = field(default_factory=dict)
    return_codes: list[str] = field(default_factory=list)  # RETURN_PROPERTIES at start
    message_id: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule.id,
            "kind": self.rule.kind,
            "client_id": self.rule.client_id,
            "code": self.rule.code,
            "activity_name": self.activity_name,
            "status": self.status,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "timeout_duration": self.timeout_duration,
            "is_timeout": self.is_timeout,
            "return_values": self.return_values,
            "message_id": self.message_id or None,
            "note": self.note,
        }


def new_workflow_id(world: World) -> str:
    """Like PHP ``uniqid('', true)``: 13 hex digits of time, then a random ``d.dddddddd``.

    Workflows get one, and so does an SMS sent "as a robot" outside a workflow.
    """
    now = world.timestamp()
    seconds, micros = int(now), int((now % 1) * 1_000_000)
    return f"{seconds:08x}{micros:05x}{random.random() * 10:.8f}"


@dataclass
class Workflow:
    """The automation workflow started when a deal enters a stage (one per stage entry)."""

    id: str
    deal_id: int
    category_id: int
    stage_id: str
    started_at: float
    steps: list[Step] = field(default_factory=list)
    current: int = 0
    status: str = "running"  # running, completed, cancelled
    log: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow_id": self.id,
            "deal_id": self.deal_id,
            "category_id": self.category_id,
            "stage_id": self.stage_id,
            "status": self.status,
            "started_at": self.started_at,
            "robots": [
                {**s.as_dict(), "log": [e["message"] for e in self.log if e["step"] == i]}
                for i, s in enumerate(self.steps)
            ],
            "log": [e["message"] for e in self.log],
            "log_entries": [dict(e) for e in self.log],
        }


@dataclass
class Message:
    """An SMS sent through an app's sender, with its status history."""

    id: str
    client_id: str
    sender_code: str
    phone: str
    text: str
    module_id: str
    deal_id: int | None
    workflow_id: str | None
    created_at: float
    status: str = "created"
    history: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "message_id": self.id,
            "client_id": self.client_id,
            "sender_code": self.sender_code,
            "phone": self.phone,
            "text": self.text,
            "module_id": self.module_id,
            "deal_id": self.deal_id,
            "workflow_id": self.workflow_id,
            "status": self.status,
            "history": list(self.history),
        }


@dataclass
class OfflineEvent:
    """A row of the offline event queue (``event.offline.*``): one per (MESSAGE_ID, app,
    connector, PROCESS_ID), as the portal's unique key has it."""

    id: int
    client_id: str  # APP_ID
    at: float  # TIMESTAMP_X: the last change merged into the row
    event_name: str
    event_data: Any
    event_additional: Any
    message_id: str
    auth_connector: str = ""  # CONNECTOR_ID: the binding's auth_connector
    process_id: str = ""  # "" unreserved; else the event.offline.get batch holding it
    error: bool = False


@dataclass
class PortalAutomation:
    """Per-portal automation state kept in ``Portal.extra["automation"]``."""

    rules: list[Rule] = field(default_factory=list)
    workflows: dict[str, Workflow] = field(default_factory=dict)
    tokens: dict[str, tuple[str, int]] = field(default_factory=dict)  # event_id -> (wf, step)
    used_tokens: set[str] = field(default_factory=set)
    messages: dict[str, Message] = field(default_factory=dict)
    offline: list[OfflineEvent] = field(default_factory=list)
    trigger_firings: list[dict[str, Any]] = field(default_factory=list)


def automation(portal: Portal) -> PortalAutomation:
    """The portal's automation state (created on first use)."""
    state = portal.extra.get("automation")
    if state is None:
        state = PortalAutomation()
        portal.extra["automation"] = state
    return state


def find_installation(portal: Portal, client_id: str) -> Installation | None:
    inst = portal.apps.get(client_id)
    return inst if isinstance(inst, Installation) and inst.installed else None


def app_installation(portal: Portal, client_id: str) -> Installation:
    """The caller app's installation; a token of an app that is not installed is refused."""
    inst = find_installation(portal, client_id)
    if inst is None:
        raise ErrorOAuth()
    return inst


class NotFound(LookupError):
    """An admin action named something that does not exist (the admin surface answers 400)."""


def get_portal(world: World, member_id: str | None) -> Portal:
    """A portal by member_id for admin actions (None: the only portal there is)."""
    if member_id is None and len(world.portals) == 1:
        return next(iter(world.portals.values()))
    portal = world.portals.get(str(member_id))
    if portal is None:
        raise NotFound(f"portal {member_id} not found")
    return portal


def installed(portal: Portal, client_id: str) -> Installation:
    """An installed app for admin actions."""
    inst = find_installation(portal, client_id)
    if inst is None:
        raise NotFound(f"application {client_id} is not installed on {portal.member_id}")
    return inst


def lang_text(value: Any, language: str = "en") -> str:
    """A NAME/DESCRIPTION that is a string or ``{lang: text}`` as plain text."""
    if isinstance(value, dict):
        for key in (language, "en", "ru"):
            if value.get(key):
                return str(value[key])
        return next((str(v) for v in value.values() if v), "")
    return "" if value is None else str(value)
