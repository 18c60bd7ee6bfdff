"""Date watches: deals whose date field comes due are moved to a stage or get a trigger fired.

The rule, the tables and the hourly sweep are in ``watches``; the robot ``watch_date``
records a watch with ``add(ctx, ...)``; the settings page lists, adds and removes them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from flask_babel import get_locale
from flask_babel import gettext as _

from app.calendar import PortalCalendar
from app.context import Context
from app.errors import AppError
from app.registry import Capability, Section

from .watches import (
    DATE_DUE,
    FIRE,
    MOVE,
    SCHEDULES,
    TRIGGERS,
    WARRANTY_EXPIRING,
    Watch,
    add,
    cutoff,
    due_filters,
    record_watch,
    remove_watch,
    sweep,
    sweep_watch,
    validate_rule,
    watches,
)

log = logging.getLogger(__name__)


def _int(form: Mapping[str, str], name: str, label: str, default: str = "") -> int:
    raw = str(form.get(name, default)).strip() or default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(_("Not added: the %(what)s must be a whole number.", what=label)) from None


def _last_sweep(ctx: Context, watch: Watch) -> str:
    if watch.swept_at is None:
        return _("not yet")
    try:
        tz = ctx.calendar.tz
    except ValueError:
        tz = PortalCalendar().tz
    return datetime.fromtimestamp(watch.swept_at, tz).strftime("%Y-%m-%d %H:%M %Z")


def view(ctx: Context) -> dict[str, Any]:
    rows = [
        {
            "watch": w,
            "rule": _("%(when)s the date", when=w.when()),
            "action": _("move to stage") if w.action == MOVE else _("fire trigger"),
            "last_sweep": _last_sweep(ctx, w),
        }
        for w in watches(ctx.store, ctx.member_id)
    ]
    lang = str(get_locale() or "en")
    triggers = [(t.code, t.to_bitrix(lang)["NAME"]) for t in TRIGGERS]
    return {"rows": rows, "triggers": triggers, "move": MOVE, "fire": FIRE}


def add_from_form(ctx: Context, form: Mapping[str, str]) -> str:
    """Record a date watch from the form (``record_watch`` validates it)."""
    category_id = _int(form, "category_id", _("funnel id"), "0")
    within_days = _int(form, "within_days", _("number of days"), "0")
    action = str(form.get("then", ""))
    target = str(form.get("stage" if action == MOVE else "trigger", ""))
    name = str(form.get("name", "")).strip()
    if len(name) > 200:
        raise ValueError(_("Not added: the name is longer than 200 characters."))
    try:
        watch = add(
            ctx,
            category_id=category_id,
            field=str(form.get("field", "")),
            within_days=within_days,
            working_days=bool(form.get("working_days")),
            action=action,
            target=target,
            name=name,
        )
    except AppError as exc:
        raise ValueError(_("Not added: %(reason)s.", reason=exc)) from None
    log.info("date watch %s recorded for %s", watch.id, ctx.member_id)
    return _("Watching: %(watch)s.", watch=watch.describe())


def remove_from_form(ctx: Context, form: Mapping[str, str]) -> str:
    """Forget one of the portal's watches."""
    watch_id = _int(form, "watch_id", _("watch id"))
    if not remove_watch(ctx.store, ctx.member_id, watch_id):
        raise ValueError(_("Watch %(id)s is not there (removed already?).", id=watch_id))
    log.info("date watch %s removed for %s", watch_id, ctx.member_id)
    return _("Watch %(id)s removed.", id=watch_id)


CAPABILITY = Capability(
    name="date_watch",
    triggers=TRIGGERS,
    schedules=SCHEDULES,
    sections=(
        Section(
            "watches",
            "date_watch/section.html",
            view,
            {"add_watch": add_from_form, "remove_watch": remove_from_form},
        ),
    ),
    templates=str(Path(__file__).parent / "templates"),
)

__all__ = [
    "CAPABILITY",
    "DATE_DUE",
    "FIRE",
    "MOVE",
    "TRIGGERS",
    "WARRANTY_EXPIRING",
    "Watch",
    "add",
    "cutoff",
    "due_filters",
    "record_watch",
    "remove_watch",
    "sweep",
    "sweep_watch",
    "validate_rule",
    "watches",
]
