"""What a robot or an event handler receives: everything it may touch, nothing of Flask or RQ."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from app.payloads import DocumentId
from app.store import Store

# The portal setting the calendar is read from: {"timezone": "Europe/Warsaw", "country": "PL"}
CALENDAR_SETTING = "calendar"


class PortalSettings:
    """Settings of one portal (gateway credentials, time zone, watches...), encrypted at rest."""

    def __init__(self, store: Store, member_id: str) -> None:
        self._store = store
        self.member_id = member_id

    def get(self, key: str, default: Any = None) -> Any:
        return self._store.get_setting(self.member_id, key, default)

    def set(self, key: str, value: Any) -> None:
        self._store.set_setting(self.member_id, key, value)


@dataclass
class Context:
    """The portal being served and the tools to serve it."""

    member_id: str
    portal: Any  # app.bitrix.PortalClient
    settings: PortalSettings
    clock: Any  # app.calendar.Clock
    log: logging.LoggerAdapter
    services: Any = field(
        repr=False, default=None
    )  # app.services.Services, for jobs that queue more

    @property
    def calendar(self) -> Any:
        """The portal's calendar: its time zone, working days and public holidays."""
        from app.calendar import PortalCalendar

        conf = self.settings.get(CALENDAR_SETTING, {}) or {}
        return PortalCalendar(
            timezone=conf.get("timezone") or "UTC",
            country=conf.get("country") or None,
        )

    def url(self, path: str) -> str:
        return self.services.settings.url(path)

    def sign(self, message: str) -> str:
        return self.services.store.box.sign(message)


@dataclass
class RobotContext(Context):
    """A robot's run: the document it runs on and its typed properties."""

    document: DocumentId = field(default_factory=lambda: DocumentId("crm", "CCrmDocumentDeal", ""))
    properties: dict[str, Any] = field(default_factory=dict)
    workflow_id: str = ""

    @property
    def deal_id(self) -> int:
        return self.document.number


@dataclass
class EventContext(Context):
    """An event handler's run."""

    event: str = ""
