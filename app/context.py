"""What a robot, a job or a capability's view receives: typed, narrow, no Flask and no RQ.

A robot gets the portal client, its document, typed properties, the portal calendar, the
clock and a logger, and passes its context to the capabilities' functions it needs
(``sms.send(ctx, ...)``). Those functions reach their own tables through ``ctx.store`` and
queue their jobs with ``ctx.enqueue``; a robot calls the functions, never the tables.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from app.calendar import Clock, PortalCalendar
from app.errors import RobotFailed
from app.payloads import DocumentId, read_form
from app.store import Store

if TYPE_CHECKING:  # pragma: no cover
    from app.bitrix import PortalClient
    from app.payloads import Auth
    from app.store import Installation

# The portal setting the calendar is read from: {"timezone": "Europe/Warsaw", "country": "PL"}
CALENDAR_SETTING = "calendar"
C = TypeVar("C", bound="Context")


class PortalSettings:
    """Settings of one portal (gateway credentials, time zone, watches...), encrypted at rest."""

    def __init__(self, store: Store, member_id: str) -> None:
        self._store = store
        self.member_id = member_id

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get_setting(self.member_id, key, default)

    def set(self, key: str, value: Any) -> None:
        self._store.set_setting(self.member_id, key, value)


class Runtime(Protocol):
    """What a context asks of the process it runs in (app.jobs provides it)."""

    def url(self, path: str) -> str: ...

    def enqueue(self, job: str, member_id: str, args: dict[str, Any], *, key: str) -> bool: ...

    def release(self, key: str) -> None: ...

    def verify(self, auth: Auth) -> Installation: ...

    def installed(self, member_id: str) -> bool: ...


def wire_value(value: Any) -> Any:
    """A return value as the portal takes it: Y/N for booleans, ISO text for dates."""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def portal_calendar(settings: PortalSettings) -> PortalCalendar:
    """The portal's calendar: its time zone, working days and public holidays."""
    conf = settings.get(CALENDAR_SETTING, {}) or {}
    return PortalCalendar(
        timezone=conf.get("timezone") or "UTC", country=conf.get("country") or None
    )


@dataclass
class Context:
    """The portal being served and the tools to serve it."""

    member_id: str
    portal: PortalClient
    settings: PortalSettings
    clock: Clock
    log: logging.LoggerAdapter
    store: Store = field(repr=False)  # for capabilities' own tables; robots call capabilities
    _runtime: Runtime = field(repr=False)

    @property
    def calendar(self) -> PortalCalendar:
        return portal_calendar(self.settings)

    @property
    def language(self) -> str:
        """The portal's language (ru, en, pl...), for what the app writes into the portal."""
        installation = self.store.installation(self.member_id)
        return (installation.language if installation else "") or "en"

    def url(self, path: str) -> str:
        """The public URL of one of the app's endpoints."""
        return self._runtime.url(path)

    def sign(self, message: str) -> str:
        return self.store.box.sign(message)

    def enqueue(self, job: str, *, key: str, **args: Any) -> bool:
        """Queue a capability's job for this portal once per ``key`` (True when queued)."""
        return self._runtime.enqueue(job, self.member_id, args, key=key)

    def release(self, key: str) -> None:
        """Let ``key`` be queued again (a job that gave up and may be asked again later)."""
        self._runtime.release(key)

    def answer_workflow(self, event_token: str, values: Mapping[str, Any], message: str) -> None:
        """Give a waiting workflow its robot's answer (``bizproc.event.send``)."""
        self.portal.call(
            "bizproc.event.send",
            {
                "EVENT_TOKEN": event_token,
                "RETURN_VALUES": {k: wire_value(v) for k, v in values.items()},
                "LOG_MESSAGE": message[:1000],
            },
        )

    def derive(self, kind: type[C], **own: Any) -> C:
        """This context as another kind (a robot's context inside the robot job)."""
        wanted = {f.name for f in fields(kind)}
        base = {f.name: getattr(self, f.name) for f in fields(self) if f.name in wanted}
        return kind(**{**base, **own})


@dataclass
class RobotContext(Context):
    """A robot's run: the document it runs on and its typed properties."""

    document: DocumentId = field(default_factory=lambda: DocumentId("crm", "CCrmDocumentDeal", ""))
    properties: dict[str, Any] = field(default_factory=dict)
    workflow_id: str = ""
    event_token: str = field(default="", repr=False)
    waits: bool = False  # the workflow gets its answer later, from a capability
    after_answer: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def deal_id(self) -> int:
        return self.document.number

    def then(self, label: str, method: str, params: dict[str, Any]) -> None:
        """A write to make once the workflow has its answer (one batch, after it): a move
        to another stage, which may end the automation of the stage the robot runs on."""
        self.after_answer[label] = (method, params)

    def answer_later(self) -> str:
        """Keep the workflow waiting after the robot returns; the event token to answer it
        with later (``ctx.answer_workflow``). The robot's return values are then only
        recorded, not sent."""
        if not self.event_token:
            raise RobotFailed("this robot cannot wait: it was placed without waiting for an answer")
        self.waits = True
        return self.event_token


@dataclass
class RunRecord:
    """What the run history will say of a job; the job may name its document and outcome."""

    kind: str
    name: str
    key: str = ""
    document: str = ""
    inputs: Any = None
    status: str = ""  # empty: "ok" when the job returns, "failed" when it raises
    error: str | None = None
    keep: bool = True  # False: the job recorded itself, or has nothing worth a row
    attempt: int = 1
    started_at: float = 0.0

    def fail(self, reason: str) -> None:
        """The job ended normally but what it was for failed (an SMS the gateway refused)."""
        self.status, self.error = "failed", reason


@dataclass
class JobContext(Context):
    """A job's run (a capability's job, a schedule): its attempt and its run record."""

    will_retry: bool = False  # a transient failure now is retried later
    run: RunRecord = field(default_factory=lambda: RunRecord("job", ""))

    @property
    def attempt(self) -> int:
        return self.run.attempt


@dataclass
class EventContext(JobContext):
    """An event handler's run."""

    event: str = ""


class Web:
    """What a capability's HTTP view receives (see ``app.registry.Route``)."""

    def __init__(self, runtime: Runtime, store: Store, clock: Clock) -> None:
        self._runtime = runtime
        self.store = store
        self.clock = clock

    def form(self) -> dict[str, Any]:
        """The POSTed form, re-nested (PHP bracket keys); BadRequest when unreadable."""
        return read_form()

    def verify(self, auth: Auth) -> Installation:
        """The installation a callback claims to come from, or Unauthorized."""
        return self._runtime.verify(auth)

    def installed(self, member_id: str) -> bool:
        return self._runtime.installed(member_id)

    def enqueue(self, job: str, member_id: str, *, key: str, **args: Any) -> bool:
        """Queue a capability's job once per ``key`` (True when queued)."""
        return self._runtime.enqueue(job, member_id, args, key=key)

    def url(self, path: str) -> str:
        return self._runtime.url(path)
