"""The app's page inside Bitrix24: a portal admin sets the portal calendar, the SMS gateway
and the date watches.

The portal opens the page in an iframe with a form POST (``AUTH_ID``, ``member_id``,
``APPLICATION_TOKEN``...). The page checks the application token against the installation
and asks the portal (``user.admin``, with the opener's own token) whether the opener is a
portal admin; only then does it show the forms. Every form comes back with a signed token
bound to the portal and a short expiry (it carries no portal token) and an ``action``:
``calendar``, ``sms``, ``add_watch`` or ``remove_watch``. A refused change is shown on the
page with its reason (HTTP 400) and stores nothing. Every value written into the page is
escaped; secrets are never written back.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests
from flask import Response, request

from app.calendar import PortalCalendar
from app.context import CALENDAR_SETTING
from app.errors import AppError
from app.registry import Route
from app.services import Services
from app.web import services
from handlers import date_watch
from handlers.sms import settings_page as sms_section
from handlers.sms.provider import default_country

log = logging.getLogger(__name__)

FORM_TTL = 15 * 60  # seconds an opened page's forms may be sent
ADMIN_CHECK_TIMEOUT = 10
MAX_TIMEZONE = 64  # longer than any IANA name
esc = html.escape


# access ------------------------------------------------------------------------------------


def _now(s: Services) -> int:
    return int(s.clock.now().timestamp())


def form_token(s: Services, member_id: str) -> str:
    """A token for the page's forms: this portal only, valid for ``FORM_TTL`` seconds."""
    expires = _now(s) + FORM_TTL
    return f"{expires}.{s.store.box.sign(f'settings:{member_id}:{expires}')}"


def form_token_ok(s: Services, member_id: str, token: str) -> bool:
    expires, _, signature = token.partition(".")
    if not expires.isdigit() or int(expires) < _now(s):
        return False
    return s.store.box.verify(f"settings:{member_id}:{expires}", signature)


def _is_admin(client_endpoint: str, auth_id: str) -> bool:
    """Ask the portal whether the token's user may manage the app (``user.admin``)."""
    url = client_endpoint.rstrip("/") + "/user.admin.json"
    try:
        reply = requests.post(url, json={"auth": auth_id}, timeout=ADMIN_CHECK_TIMEOUT)
        data = reply.json()
    except (requests.RequestException, ValueError):
        log.warning("admin check failed: the portal did not answer")
        return False
    return reply.status_code == 200 and isinstance(data, dict) and data.get("result") is True


# the sections' changes -----------------------------------------------------------------------


def save_calendar(s: Services, member_id: str, form: Any) -> str:
    """Store the portal's time zone and country (what ``Context.calendar`` reads)."""
    timezone = str(form.get("timezone", "")).strip()
    country = str(form.get("country", "")).strip().upper()
    if not timezone:
        raise ValueError("Not saved: a time zone is required (an IANA name: Europe/Warsaw).")
    if len(timezone) > MAX_TIMEZONE or len(country) > 3:
        raise ValueError("Not saved: the time zone or the country is too long.")
    try:
        PortalCalendar(timezone=timezone, country=country or None)
    except ValueError as exc:
        raise ValueError(f"Not saved: {exc}.") from None
    conf = dict(s.store.get_setting(member_id, CALENDAR_SETTING) or {})
    conf.update(timezone=timezone, country=country)
    s.store.set_setting(member_id, CALENDAR_SETTING, conf)
    log.info("calendar set to %s / %s for %s", timezone, country or "-", member_id)
    holidays = f"public holidays of {country}" if country else "no public holidays"
    return f"Saved: time zone {timezone}, {holidays}."


def _int(form: Any, name: str, label: str, default: str = "") -> int:
    raw = str(form.get(name, default)).strip() or default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Not added: the {label} must be a whole number.") from None


def add_watch(s: Services, member_id: str, form: Any) -> str:
    """Record a date watch from the form (``date_watch.record_watch`` validates it)."""
    category_id = _int(form, "category_id", "funnel id", "0")
    within_days = _int(form, "within_days", "number of days", "0")
    action = str(form.get("then", ""))
    target = str(form.get("stage" if action == date_watch.MOVE else "trigger", ""))
    name = str(form.get("name", "")).strip()
    if len(name) > 200:
        raise ValueError("Not added: the name is longer than 200 characters.")
    try:
        watch = date_watch.record_watch(
            s.store,
            member_id,
            category_id=category_id,
            field=str(form.get("field", "")),
            within_days=within_days,
            working_days=bool(form.get("working_days")),
            action=action,
            target=target,
            name=name,
        )
    except AppError as exc:
        raise ValueError(f"Not added: {exc}.") from None
    log.info("date watch %s recorded for %s", watch.id, member_id)
    return f"Watching: {watch.describe()}."


def remove_watch(s: Services, member_id: str, form: Any) -> str:
    """Forget one of the portal's watches."""
    watch_id = _int(form, "watch_id", "watch id")
    if not date_watch.remove_watch(s.store, member_id, watch_id):
        raise ValueError(f"Watch {watch_id} is not there (removed already?).")
    log.info("date watch %s removed for %s", watch_id, member_id)
    return f"Watch {watch_id} removed."


# (section, change) for each form action
ACTIONS: dict[str, tuple[str, Callable[[Services, str, Any], str]]] = {
    "calendar": ("calendar", save_calendar),
    "sms": ("sms", sms_section.save),
    "add_watch": ("watches", add_watch),
    "remove_watch": ("watches", remove_watch),
}


# the page ----------------------------------------------------------------------------------


def settings_view() -> Response:
    """``/settings``: the portal opens the page (POST with AUTH_ID) or a form is sent."""
    if request.method == "GET":
        return _page("<p>Open this page from the application's menu in Bitrix24.</p>", 400)
    form = request.form
    member_id = form.get("member_id", "")
    s = services()
    installation = s.store.installation(member_id) if member_id else None
    if installation is None:
        return _page("<p class=err>This portal has not installed the app.</p>", 401)
    action = form.get("action", "")
    if action:
        if not form_token_ok(s, member_id, form.get("form_token", "")):
            return _page("<p class=err>The form has expired. Open the page again.</p>", 403)
        if action not in ACTIONS:
            return _render(s, member_id, ("", "Unknown action."), error=True, status=400)
        section, change = ACTIONS[action]
        try:
            message = change(s, member_id, form)
        except ValueError as exc:
            return _render(s, member_id, (section, str(exc)), error=True, status=400)
        return _render(s, member_id, (section, message))
    if not installation.token_matches(form.get("APPLICATION_TOKEN", "")):
        return _page("<p class=err>This page must be opened from the portal.</p>", 401)
    auth_id = form.get("AUTH_ID", "")
    if not auth_id or not _is_admin(installation.client_endpoint, auth_id):
        return _page("<p class=err>Only a portal administrator can change the settings.</p>", 403)
    return _render(s, member_id)


def _page(body: str, status: int = 200) -> Response:
    doc = (
        '<!doctype html><html><head><meta charset="utf-8"><title>Robot server settings</title>'
        "<style>body{font:14px sans-serif;margin:16px}fieldset{margin:8px 0}"
        "label{display:block;margin:4px 0}input[type=text],input[type=password]{width:24em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "td form{margin:0}.err{color:#b00}.ok{color:#070}</style></head><body>"
        f"{body}</body></html>"
    )
    return Response(doc, status=status, mimetype="text/html")


def _form(member_id: str, token: str, action: str, body: str, button: str) -> str:
    return (
        '<form method="post" action="">'
        f'<input type="hidden" name="member_id" value="{esc(member_id)}">'
        f'<input type="hidden" name="form_token" value="{esc(token)}">'
        f'<input type="hidden" name="action" value="{esc(action)}">'
        f'{body}<button type="submit">{esc(button)}</button></form>'
    )


def _render(
    s: Services,
    member_id: str,
    note: tuple[str, str] = ("", ""),
    *,
    error: bool = False,
    status: int = 200,
) -> Response:
    """The whole page; ``note`` is (section, text) shown at the top of that section."""
    token = form_token(s, member_id)

    def said(section: str) -> str:
        if note[1] and note[0] == section:
            return f'<p class="{"err" if error else "ok"}">{esc(note[1])}</p>'
        return ""

    calendar_conf = s.store.get_setting(member_id, CALENDAR_SETTING) or {}
    parts = [
        "<h1>Robot server settings</h1>",
        said(""),
        '<h2 id="calendar">Portal calendar</h2>',
        said("calendar"),
        "<p>The portal's time zone and country decide dates, working days and public holidays"
        " (date watches, robots) and how SMS numbers without + are read.</p>",
        _form(member_id, token, "calendar", _calendar_fields(s, member_id, calendar_conf), "Save"),
        '<h2 id="sms">SMS gateway</h2>',
        said("sms"),
        _form(member_id, token, "sms", sms_section.render_section(s, member_id), "Save"),
        '<h2 id="watches">Date watches</h2>',
        said("watches"),
        _watch_table(s, member_id, token, calendar_conf),
        "<h3>Add a watch</h3>",
        _form(member_id, token, "add_watch", _watch_fields(), "Add"),
    ]
    return _page("".join(parts), status)


def _calendar_fields(s: Services, member_id: str, conf: dict[str, Any]) -> str:
    timezone = str(conf.get("timezone") or "")
    country = str(conf.get("country") or "")
    if "country" not in conf:
        country = default_country(s, member_id)  # the old SMS-only country
    return (
        "<label>Time zone (IANA name)"
        f' <input type="text" name="timezone" value="{esc(timezone)}"'
        ' placeholder="Europe/Warsaw"></label>'
        "<label>Country (ISO code; empty: no public holidays)"
        f' <input type="text" name="country" value="{esc(country)}" size="3" maxlength="3"'
        ' placeholder="PL"></label>'
    )


def _last_sweep(watch: date_watch.Watch, conf: dict[str, Any]) -> str:
    if watch.swept_at is None:
        return "not yet"
    try:
        tz = PortalCalendar(timezone=conf.get("timezone") or "UTC").tz
    except ValueError:
        tz = PortalCalendar().tz
    return datetime.fromtimestamp(watch.swept_at, tz).strftime("%Y-%m-%d %H:%M %Z")


def _watch_table(s: Services, member_id: str, token: str, conf: dict[str, Any]) -> str:
    found = date_watch.watches(s.store, member_id)
    if not found:
        return "<p>No date watches yet.</p>"
    rows = [
        "<table><tr><th>Name</th><th>Funnel</th><th>Field</th><th>Rule</th><th>Action</th>"
        "<th>Target</th><th>Last sweep</th><th></th></tr>"
    ]
    for w in found:
        action = "move to stage" if w.action == date_watch.MOVE else "fire trigger"
        remove = _form(
            member_id,
            token,
            "remove_watch",
            f'<input type="hidden" name="watch_id" value="{w.id}">',
            "Remove",
        )
        cells = (w.name, w.category_id, w.field, f"{w.when()} the date", action, w.target)
        rows.append(
            f'<tr id="watch-{w.id}">'
            + "".join(f"<td>{esc(str(c))}</td>" for c in cells)
            + f"<td>{esc(_last_sweep(w, conf))}</td><td>{remove}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _watch_fields() -> str:
    triggers = "".join(
        f'<option value="{esc(t.code)}">{esc(t.to_bitrix()["NAME"])} ({esc(t.code)})</option>'
        for t in date_watch.TRIGGERS
    )
    return (
        '<label>Name <input type="text" name="name" value="" maxlength="200"></label>'
        '<label>Funnel id (0: the general funnel) <input type="text" name="category_id"'
        ' value="0" size="6"></label>'
        '<label>Date field <input type="text" name="field" value=""'
        ' placeholder="UF_CRM_WARRANTY_END"></label>'
        "<label>Days before the date (0: on the day; negative: days after)"
        ' <input type="text" name="within_days" value="0" size="6"></label>'
        '<label><input type="checkbox" name="working_days" value="1"> Count working days</label>'
        "<fieldset><legend>Then</legend>"
        f'<label><input type="radio" name="then" value="{date_watch.MOVE}" checked>'
        ' move the deal to the stage <input type="text" name="stage" value=""'
        ' placeholder="C1:EXECUTING"></label>'
        f'<label><input type="radio" name="then" value="{date_watch.FIRE}">'
        f' fire the trigger <select name="trigger">{triggers}</select></label>'
        "</fieldset>"
    )


ROUTES = [Route("/settings", "settings", settings_view, ("GET", "POST"))]
