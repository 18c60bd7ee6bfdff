"""The app's page inside Bitrix24: a portal admin chooses the SMS gateway and its credentials.

The portal opens the page in an iframe with a form POST (``AUTH_ID``, ``member_id``,
``APPLICATION_TOKEN``...). The page checks the application token against the installation
and asks the portal (``user.admin``, with the opener's own token) whether the opener is a
portal admin; only then does it show the form. The form comes back with a signed token bound
to the portal and a short expiry (it carries no portal token). Secrets are stored encrypted
(portal settings) and never written back into the page: a set secret shows as "set", and an
empty secret field keeps the stored value.
"""

from __future__ import annotations

import html
import logging
import time
from typing import Any

import requests
from flask import Response, request

from app.web import services

from .gateways import GATEWAYS, Gateway, gateway_for
from .provider import COUNTRY_SETTING, GATEWAY_SETTING, callback_url, default_country

log = logging.getLogger(__name__)

FORM_TTL = 15 * 60  # seconds an opened form may be saved
ADMIN_CHECK_TIMEOUT = 10


def _form_token(member_id: str, expires: int) -> str:
    box = services().store.box
    return f"{expires}.{box.sign(f'sms-settings:{member_id}:{expires}')}"


def _form_token_ok(member_id: str, token: str) -> bool:
    expires, _, signature = token.partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return services().store.box.verify(f"sms-settings:{member_id}:{expires}", signature)


def _page(body: str, status: int = 200) -> Response:
    doc = (
        '<!doctype html><html><head><meta charset="utf-8"><title>SMS gateway</title>'
        "<style>body{font:14px sans-serif;margin:16px}fieldset{margin:8px 0}"
        "label{display:block;margin:4px 0}input[type=text],input[type=password]{width:24em}"
        ".err{color:#b00}.ok{color:#070}</style></head><body>"
        f"{body}</body></html>"
    )
    return Response(doc, status=status, mimetype="text/html")


def _is_admin(client_endpoint: str, auth_id: str) -> bool:
    """Ask the portal whether the token's user may manage the app (``user.admin``)."""
    url = client_endpoint.rstrip("/") + "/user.admin.json"
    try:
        reply = requests.post(url, json={"auth": auth_id}, timeout=ADMIN_CHECK_TIMEOUT)
        data = reply.json()
    except (requests.RequestException, ValueError):
        log.warning("admin check failed: the portal did not answer")
        return False
    return reply.status_code == 200 and data.get("result") is True


def settings_view() -> Response:
    """``/settings``: the portal opens the page (POST with AUTH_ID) or the form is saved."""
    if request.method == "GET":
        return _page("<p>Open this page from the application's menu in Bitrix24.</p>", 400)
    form = request.form
    member_id = form.get("member_id", "")
    s = services()
    installation = s.store.installation(member_id) if member_id else None
    if installation is None:
        return _page("<p class=err>This portal has not installed the app.</p>", 401)
    if form.get("action") == "save":
        if not _form_token_ok(member_id, form.get("form_token", "")):
            return _page("<p class=err>The form has expired. Open the page again.</p>", 403)
        return _save(member_id, form)
    if not installation.token_matches(form.get("APPLICATION_TOKEN", "")):
        return _page("<p class=err>This page must be opened from the portal.</p>", 401)
    auth_id = form.get("AUTH_ID", "")
    if not auth_id or not _is_admin(installation.client_endpoint, auth_id):
        return _page("<p class=err>Only a portal administrator can change SMS settings.</p>", 403)
    return _render(member_id)


def _stored(member_id: str) -> tuple[str, dict[str, str]]:
    conf = services().store.get_setting(member_id, GATEWAY_SETTING) or {}
    return str(conf.get("name") or ""), dict(conf.get("config") or {})


def _render(member_id: str, message: str = "", error: str = "", status: int = 200) -> Response:
    s = services()
    chosen, config = _stored(member_id)
    token = _form_token(member_id, int(time.time()) + FORM_TTL)
    esc = html.escape
    parts = ["<h2>SMS gateway</h2>"]
    if message:
        parts.append(f"<p class=ok>{esc(message)}</p>")
    if error:
        parts.append(f"<p class=err>{esc(error)}</p>")
    parts.append(
        '<form method="post" action="">'
        f'<input type="hidden" name="member_id" value="{esc(member_id)}">'
        f'<input type="hidden" name="form_token" value="{esc(token)}">'
        '<input type="hidden" name="action" value="save">'
    )
    country = default_country(s, member_id)
    parts.append(
        "<label>Default country of numbers without +"
        f' <input type="text" name="country" value="{esc(country)}" size="2" maxlength="2">'
        "</label>"
    )
    for name, cls in GATEWAYS.items():
        checked = " checked" if name == chosen else ""
        parts.append(
            f"<fieldset><legend><label><input type=radio name=gateway value={esc(name)}"
            f"{checked}> {esc(cls.title)}</label></legend>"
        )
        for field in cls.fields:
            value = config.get(field.name, "") if name == chosen else ""
            key = f"{name}.{field.name}"
            if field.secret:
                hint = "set; leave empty to keep" if value else ""
                parts.append(
                    f"<label>{esc(field.label)} <input type=password name={esc(key)} value=''"
                    f' placeholder="{esc(hint)}" autocomplete=off></label>'
                )
            else:
                parts.append(
                    f"<label>{esc(field.label)} <input type=text name={esc(key)}"
                    f' value="{esc(value)}" placeholder="{esc(field.default)}"></label>'
                )
        if name == chosen:
            url = callback_url(s, member_id, name)
            parts.append(f"<p>Delivery report URL: <code>{esc(url)}</code></p>")
        parts.append("</fieldset>")
    parts.append("<button type=submit>Save</button></form>")
    return _page("".join(parts), status)


def _save(member_id: str, form: Any) -> Response:
    s = services()
    name = form.get("gateway", "")
    cls: type[Gateway] | None = GATEWAYS.get(name)
    if cls is None:
        return _render(member_id, error="Choose a gateway.", status=400)
    chosen, stored = _stored(member_id)
    config: dict[str, str] = {}
    for field in cls.fields:
        value = str(form.get(f"{name}.{field.name}", "")).strip()
        if field.secret and not value and chosen == name:
            value = stored.get(field.name, "")  # an empty secret field keeps what is stored
        if value:
            config[field.name] = value
    try:
        gateway_for(name, config)  # the gateway's own checks (names fields, never values)
    except ValueError as exc:
        return _render(member_id, error=f"Not saved: {exc}", status=400)
    country = str(form.get("country", "")).strip().upper()
    if country and (len(country) != 2 or not country.isalpha()):
        return _render(member_id, error="Not saved: the country is a two-letter code.", status=400)
    s.store.set_setting(member_id, GATEWAY_SETTING, {"name": name, "config": config})
    s.store.set_setting(member_id, COUNTRY_SETTING, country)
    log.info("sms gateway set to %s for %s", name, member_id)
    return _render(member_id, message=f"Saved: SMS go through {cls.title}.")
