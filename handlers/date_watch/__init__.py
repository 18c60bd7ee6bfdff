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

from flask_babel import get_locale, ngettext
from flask_babel import gettext as _

from app.calendar import PortalCalendar
from app.context import Context
from app.errors import AppError
from app.registry import Capability, Section

from .watches import (
    DATE_DUE,
    FIRE,
    MOVE,
    NOTIFY,
    SCHEDULES,
    TRIGGERS,
    WARRANTY_EXPIRING,
    Watch,
    add,
    cutoff,
    due_filters,
    record_watch,
    remove_watch,
    router,
    sweep,
    sweep_watch,
    validate_rule,
    watches,
)

log = logging.getLogger(__name__)


def _int(form: Mapping[str, str], name: str, refusal: str, default: str = "") -> int:
    """The form's ``name`` as a whole number; ValueError(``refusal``) when it is not one."""
    raw = str(form.get(name, default)).strip() or default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(refusal) from None


def rule_text(watch: Watch) -> str:
    """When a deal is due, for the watches table: "3 working days before the date".

    Whole messages per case (before, after, on the day; calendar or working days) with their
    plural forms, so no language has to glue fragments; English reads as ``Watch.when()``.
    """
    days = abs(watch.within_days)
    if watch.within_days > 0:
        if watch.working_days:
            return ngettext(
                "%(num)d working day before the date", "%(num)d working days before the date", days
            )
        return ngettext("%(num)d day before the date", "%(num)d days before the date", days)
    if watch.within_days < 0:
        if watch.working_days:
            return ngettext(
                "%(num)d working day after the date", "%(num)d working days after the date", days
            )
        return ngettext("%(num)d day after the date", "%(num)d days after the date", days)
    return _("on the date")


def rule_of_field(watch: Watch) -> str:
    """When a deal is due, relative to the watched field: "3 working days before UF_CRM_X"."""
    days, field = abs(watch.within_days), watch.field
    # TRANSLATORS: %(field)s is the code of the deal's date field (UF_CRM_WARRANTY_END).
    if watch.within_days > 0:
        if watch.working_days:
            return ngettext(
                "%(num)d working day before %(field)s",
                "%(num)d working days before %(field)s",
                days,
                field=field,
            )
        return ngettext(
            "%(num)d day before %(field)s", "%(num)d days before %(field)s", days, field=field
        )
    if watch.within_days < 0:
        if watch.working_days:
            return ngettext(
                "%(num)d working day after %(field)s",
                "%(num)d working days after %(field)s",
                days,
                field=field,
            )
        return ngettext(
            "%(num)d day after %(field)s", "%(num)d days after %(field)s", days, field=field
        )
    # TRANSLATORS: a deal is due on the day its date field %(field)s holds.
    return _("on %(field)s", field=field)


def watching(watch: Watch) -> str:
    """The answer to an added watch; in English as ``Watch.describe()``."""
    if watch.action == MOVE:
        # TRANSLATORS: %(stage)s is a deal stage id (C1:WON).
        action = _("move to %(stage)s", stage=watch.target)
    elif watch.action == NOTIFY:
        # TRANSLATORS: %(field)s is a deal field holding a user (UF_CRM_INSTALLER).
        action = _("notify the user in %(field)s", field=watch.target)
    else:
        # TRANSLATORS: %(trigger)s is an automation trigger code (date_due).
        action = _("fire %(trigger)s", trigger=watch.target)
    # TRANSLATORS: funnel: its id; rule: "3 working days before UF_CRM_X"; action: "move to
    # C1:WON" or "fire date_due" (the messages above).
    return _(
        "Watching: funnel %(funnel)s: %(rule)s, %(action)s.",
        funnel=watch.category_id,
        rule=rule_of_field(watch),
        action=action,
    )


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
            "rule": rule_text(w),
            "action": {
                MOVE: _("move to stage"),
                FIRE: _("fire trigger"),
                NOTIFY: _("notify the user"),
            }[w.action],  # fmt: skip
            "last_sweep": _last_sweep(ctx, w),
        }
        for w in watches(ctx.store, ctx.member_id)
    ]
    lang = str(get_locale() or "en")
    triggers = [(t.code, t.to_bitrix(lang)["NAME"]) for t in TRIGGERS]
    return {"rows": rows, "triggers": triggers, "move": MOVE, "fire": FIRE, "notify": NOTIFY}


def add_from_form(ctx: Context, form: Mapping[str, str]) -> str:
    """Record a date watch from the form (``record_watch`` validates it)."""
    category_id = _int(
        form, "category_id", _("Not added: the funnel id must be a whole number."), "0"
    )
    within_days = _int(
        form, "within_days", _("Not added: the number of days must be a whole number."), "0"
    )
    action = str(form.get("then", ""))
    target = str(form.get({MOVE: "stage", NOTIFY: "user_field"}.get(action, "trigger"), ""))
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
    return watching(watch)


def remove_from_form(ctx: Context, form: Mapping[str, str]) -> str:
    """Forget one of the portal's watches."""
    watch_id = _int(form, "watch_id", _("Not removed: the watch id must be a whole number."))
    if not remove_watch(ctx.store, ctx.member_id, watch_id):
        raise ValueError(_("Watch %(id)s is not there (removed already?).", id=watch_id))
    log.info("date watch %s removed for %s", watch_id, ctx.member_id)
    return _("Watch %(id)s removed.", id=watch_id)


CAPABILITY = Capability(
    name="date_watch",
    router=router,
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
    "NOTIFY",
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
