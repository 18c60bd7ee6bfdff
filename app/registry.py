"""What the app offers a portal: robots, and capabilities with their triggers, event
handlers, jobs, routes, schedules, settings sections and the SMS provider.

One ``Catalogue`` is the single source of truth. Installers bring a portal in line with it,
the web layer dispatches callbacks by it, the job runner finds jobs in it. It is built by
the composition root (``server.py``) from ``robots.ROBOTS`` and ``handlers.CAPABILITIES``;
app/ never names a robot or a capability.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from app.errors import RobotFailed

if TYPE_CHECKING:  # pragma: no cover
    from app.context import EventContext, JobContext, RobotContext

Text = Mapping[str, str]  # a text per language: {"en": ..., "ru": ..., "pl": ...}
LANGUAGES = ("en", "ru", "pl")
DEAL_DOCUMENT = ("crm", "CCrmDocumentDeal", "DEAL")
PROPERTY_TYPES = {"bool", "date", "datetime", "double", "int", "select", "string", "text", "user"}
# The permissions the app asks a portal for (the local app's "scopes").
SCOPES = (
    "crm", "bizproc", "placement", "messageservice", "task", "im", "user", "calendar", "catalog",
    "department",
)  # fmt: skip


def localized(text: Text | str) -> dict[str, str]:
    """A text for every language the portal may use (English where one is missing)."""
    if isinstance(text, str):
        return {lang: text for lang in LANGUAGES}
    base = text.get("en") or next(iter(text.values()))
    return {lang: text.get(lang, base) for lang in sorted(set(LANGUAGES) | set(text))}


@dataclass(frozen=True)
class Property:
    """One robot property (input) or return property (output)."""

    type: str
    name: Text | str
    description: Text | str = ""
    required: bool = False
    multiple: bool = False
    default: Any = None
    options: Mapping[str, Text | str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in PROPERTY_TYPES:
            raise ValueError(f"unknown property type {self.type!r}")
        if self.type == "select" and not self.options:
            raise ValueError("a select property needs options")

    def to_bitrix(self) -> dict[str, Any]:
        """The property as ``bizproc.robot.add`` takes it."""
        spec: dict[str, Any] = {
            "Name": localized(self.name),
            "Type": self.type,
            "Required": "Y" if self.required else "N",
            "Multiple": "Y" if self.multiple else "N",
        }
        if self.description:
            spec["Description"] = localized(self.description)
        if self.default is not None:
            spec["Default"] = self.default
        if self.options:
            spec["Options"] = {k: localized(v)["en"] for k, v in self.options.items()}
        return spec

    def coerce(self, code: str, raw: Any) -> Any:
        """The value the portal sent (strings) as a Python value; RobotFailed if it can't be."""
        if self.multiple:
            values = raw if isinstance(raw, list) else ([] if raw in (None, "") else [raw])
            return [self._one(code, v) for v in values if v not in (None, "")]
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if raw in (None, ""):
            if self.required and self.default is None:
                raise RobotFailed(f"property {code} is required")
            return self.default
        return self._one(code, raw)

    def _one(self, code: str, raw: Any) -> Any:
        value = str(raw).strip()
        try:
            if self.type == "int":
                return int(float(value))
            if self.type == "double":
                return float(value.replace(",", "."))
            if self.type == "bool":
                return value.upper() in {"Y", "1", "TRUE", "YES"}
            if self.type == "user":
                # The portal sends users as "user_<ID>"; a bare id is accepted too.
                return int(value.removeprefix("user_"))
            if self.type == "date":
                return date.fromisoformat(value[:10])
            if self.type == "datetime":
                return datetime.fromisoformat(value)
        except ValueError:
            raise RobotFailed(
                f"property {code}: {value[:40]!r} is not a valid {self.type}"
            ) from None
        if self.type == "select" and value not in self.options:
            raise RobotFailed(
                f"property {code}: {value[:40]!r} is not one of {sorted(self.options)}"
            )
        return value


RobotRun = Callable[["RobotContext"], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Robot:
    """A robot an admin places on a stage in the automation designer."""

    code: str
    name: Text | str
    description: Text | str
    run: RobotRun
    properties: Mapping[str, Property] = field(default_factory=dict)
    returns: Mapping[str, Property] = field(default_factory=dict)
    use_subscription: bool = True
    document_type: tuple[str, str, str] = DEAL_DOCUMENT

    def handler_path(self) -> str:
        return f"robots/{self.code}"

    def to_bitrix(self, handler_url: str) -> dict[str, Any]:
        """The parameters of ``bizproc.robot.add`` for this robot."""
        return {
            "CODE": self.code,
            "HANDLER": handler_url,
            "AUTH_USER_ID": 1,
            "USE_SUBSCRIPTION": "Y" if self.use_subscription else "N",
            "NAME": localized(self.name),
            "DESCRIPTION": localized(self.description),
            "PROPERTIES": {k: p.to_bitrix() for k, p in self.properties.items()},
            "RETURN_PROPERTIES": {k: p.to_bitrix() for k, p in self.returns.items()},
            "DOCUMENT_TYPE": list(self.document_type),
        }

    def typed_properties(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        return {code: prop.coerce(code, raw.get(code)) for code, prop in self.properties.items()}


@dataclass(frozen=True)
class Trigger:
    """A trigger an admin places on a stage: when the app fires it, the deal moves there."""

    code: str
    name: Text | str

    def to_bitrix(self, language: str = "en") -> dict[str, str]:
        return {
            "CODE": self.code,
            "NAME": localized(self.name).get(language, localized(self.name)["en"]),
        }


EventHandler = Callable[["EventContext", Any], None]

# Queues in priority order: a workflow is waiting on a robot; events next; bulk work last.
ROBOTS, EVENTS, BULK = "robots", "events", "bulk"
QUEUES = (ROBOTS, EVENTS, BULK)


class EventRouter:
    """Event handlers by event name; a capability has one, the catalogue combines them."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[EventHandler]] = defaultdict(list)

    def on(self, event: str) -> Callable[[EventHandler], EventHandler]:
        def register(handler: EventHandler) -> EventHandler:
            self._handlers[event.upper()].append(handler)
            return handler

        return register

    def include(self, *routers: EventRouter) -> EventRouter:
        for router in routers:
            for event, handlers in router._handlers.items():
                self._handlers[event].extend(handlers)
        return self

    def handlers(self, event: str) -> list[EventHandler]:
        return list(self._handlers.get(event.upper(), ()))

    @property
    def events(self) -> list[str]:
        return sorted(self._handlers)


@dataclass(frozen=True)
class SmsProvider:
    """The app as an SMS provider of the portal (``messageservice.sender.add``)."""

    code: str
    name: Text | str
    description: Text | str = ""


@dataclass(frozen=True)
class Route:
    """A public HTTP endpoint of a capability (tracking pixel, SMS delivery reports).

    ``view(web, **url_values)`` gets the narrow ``app.context.Web`` (form, verify, enqueue,
    the capability's store) and must answer at once, leaving any portal call to a job.
    """

    rule: str
    endpoint: str
    view: Callable[..., Any]
    methods: tuple[str, ...] = ("GET",)


@dataclass(frozen=True)
class Job:
    """Work a capability queues: ``run(ctx, **args)`` with primitive ``args``.

    The one runner (app.jobs) loads the installation, counts attempts, retries after
    ``retry`` (seconds) when the job raises a transient error, and records the run under
    ``kind`` (the capability's name when empty).
    """

    name: str
    run: Callable[..., Mapping[str, Any] | None]
    queue: str = EVENTS
    retry: tuple[int, ...] = ()
    kind: str = ""
    portal: bool = True  # runs only for an installed portal (False: the app's install job)

    @property
    def run_kind(self) -> str:
        return self.kind or self.name.split(".")[0]


@dataclass(frozen=True)
class Schedule:
    """Work that runs on a clock for every installed portal (``robot-server cron``).

    ``run(ctx)`` gets a JobContext of one portal and returns a small report.
    """

    name: str
    cron: str  # five-field cron expression, in UTC
    run: Callable[[JobContext], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Section:
    """A capability's section of the app's settings page.

    ``template`` (in the capability's ``templates`` folder) gets what ``view(ctx)`` returns;
    each form ``action`` is ``change(ctx, form) -> message`` or raises ValueError with the
    reason to show (both already translated).
    """

    key: str
    template: str
    view: Callable[[Any], Mapping[str, Any]]
    actions: Mapping[str, Callable[[Any, Mapping[str, str]], str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Capability:
    """Everything a capability offers besides its robots, declared in one object."""

    name: str
    triggers: tuple[Trigger, ...] = ()
    router: EventRouter | None = None
    jobs: tuple[Job, ...] = ()
    routes: tuple[Route, ...] = ()
    schedules: tuple[Schedule, ...] = ()
    sections: tuple[Section, ...] = ()
    sms_provider: SmsProvider | None = None
    templates: str | None = None  # a folder of Jinja templates (``<name>/...`` inside)


class Catalogue:
    """What the app offers: robots and capabilities, combined and checked for clashes."""

    def __init__(self, robots: Iterable[Robot] = (), capabilities: Iterable[Capability] = ()):
        self.capabilities: list[Capability] = []
        self.robots: dict[str, Robot] = {}
        self.triggers: dict[str, Trigger] = {}
        self.events = EventRouter()
        self.jobs: dict[str, Job] = {}
        self.schedules: dict[str, Schedule] = {}
        self.sections: list[Section] = []
        self.sms_provider: SmsProvider | None = None
        for robot in robots:
            _put(self.robots, robot.code, robot, "robot")
        for capability in capabilities:
            self._add(capability)

    def _add(self, capability: Capability) -> None:
        if any(c.name == capability.name for c in self.capabilities):
            raise ValueError(f"capability {capability.name} declared twice")
        self.capabilities.append(capability)
        for trigger in capability.triggers:
            _put(self.triggers, trigger.code, trigger, "trigger")
        if capability.router is not None:
            self.events.include(capability.router)
        for job in capability.jobs:
            _put(self.jobs, job.name, job, "job")
        for schedule in capability.schedules:
            _put(self.schedules, schedule.name, schedule, "schedule")
        keys = {s.key for s in self.sections}
        for section in capability.sections:
            if section.key in keys:
                raise ValueError(f"settings section {section.key} declared twice")
            self.sections.append(section)
        if capability.sms_provider is not None:
            if self.sms_provider is not None:
                raise ValueError("a second SMS provider declared")
            self.sms_provider = capability.sms_provider

    def extended(self, *capabilities: Capability) -> Catalogue:
        """This catalogue with more capabilities (a test adding an event handler, say)."""
        return Catalogue(self.robots.values(), [*self.capabilities, *capabilities])

    def robot(self, code: str) -> Robot | None:
        return self.robots.get(code)


def _put(into: dict[str, Any], key: str, value: Any, what: str) -> None:
    if key in into:
        raise ValueError(f"{what} {key} declared twice")
    into[key] = value
