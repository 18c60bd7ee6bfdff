"""The portal calendar: its time zone and country (public holidays), set by the portal admin.

Robots, date watches and SMS numbers read it (``ctx.calendar``); this capability is its
section of the settings page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask_babel import gettext as _

from app.calendar import PortalCalendar
from app.context import CALENDAR_SETTING, Context
from app.registry import Capability, Section

log = logging.getLogger(__name__)
MAX_TIMEZONE = 64  # longer than any IANA name
LEGACY_COUNTRY_SETTING = "sms_country"  # read only: the country before the calendar had one


def country(ctx: Context) -> str:
    """The portal's country, also for numbers without ``+``.

    A portal whose calendar has never been given a country keeps the country its admin
    once set for SMS alone (``sms_country``, no longer written).
    """
    conf = ctx.settings.get(CALENDAR_SETTING) or {}
    if isinstance(conf, dict) and "country" in conf:
        return str(conf.get("country") or "")
    return str(ctx.settings.get(LEGACY_COUNTRY_SETTING) or "")


def view(ctx: Context) -> dict[str, Any]:
    conf = ctx.settings.get(CALENDAR_SETTING, {}) or {}
    return {"timezone": str(conf.get("timezone") or ""), "country": country(ctx)}


def save(ctx: Context, form: Mapping[str, str]) -> str:
    """Store the portal's time zone and country (what ``ctx.calendar`` reads)."""
    timezone = str(form.get("timezone", "")).strip()
    code = str(form.get("country", "")).strip().upper()
    if not timezone:
        raise ValueError(_("Not saved: a time zone is required (an IANA name: Europe/Warsaw)."))
    if len(timezone) > MAX_TIMEZONE or len(code) > 3:
        raise ValueError(_("Not saved: the time zone or the country is too long."))
    try:
        PortalCalendar(timezone=timezone, country=code or None)
    except ValueError as exc:
        raise ValueError(_("Not saved: %(reason)s.", reason=str(exc).rstrip("."))) from None
    conf = dict(ctx.settings.get(CALENDAR_SETTING) or {})
    conf.update(timezone=timezone, country=code)
    ctx.settings.set(CALENDAR_SETTING, conf)
    log.info("calendar set to %s / %s for %s", timezone, code or "-", ctx.member_id)
    if code:
        return _(
            "Saved: time zone %(tz)s, public holidays of %(country)s.", tz=timezone, country=code
        )
    return _("Saved: time zone %(tz)s, no public holidays.", tz=timezone)


CAPABILITY = Capability(
    name="calendar",
    sections=(Section("calendar", "calendar/section.html", view, {"calendar": save}),),
    templates=str(Path(__file__).parent / "templates"),
)
