"""The SMS section of the app's settings page (handlers/settings_page.py): gateway and secrets.

The page itself (admin check, signed form token, layout) lives in handlers/settings_page.py;
this module renders the section's form fields and saves them. Secrets are stored encrypted
(portal settings) and never written back into the page: a set secret shows as "set", and an
empty secret field keeps the stored value. Numbers without ``+`` are read in the portal's
country, set in the page's calendar section (``default_country``).
"""

from __future__ import annotations

import html
import logging
from typing import Any

from app.services import Services

from .gateways import GATEWAYS, Gateway, gateway_for
from .provider import GATEWAY_SETTING, callback_url, default_country

log = logging.getLogger(__name__)


def _stored(s: Services, member_id: str) -> tuple[str, dict[str, str]]:
    conf = s.store.get_setting(member_id, GATEWAY_SETTING) or {}
    return str(conf.get("name") or ""), dict(conf.get("config") or {})


def render_section(s: Services, member_id: str) -> str:
    """The section's form fields (the page wraps them in its form with the token)."""
    chosen, config = _stored(s, member_id)
    esc = html.escape
    country = default_country(s, member_id)
    parts = [
        "<p>Numbers without + are read as numbers of "
        f"<b>{esc(country) if country else 'no country'}</b> (the portal calendar's country).</p>"
    ]
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
    return "".join(parts)


def save(s: Services, member_id: str, form: Any) -> str:
    """Store the chosen gateway and its credentials; the message to show, or ValueError."""
    name = str(form.get("gateway", ""))
    cls: type[Gateway] | None = GATEWAYS.get(name)
    if cls is None:
        raise ValueError("Choose a gateway.")
    chosen, stored = _stored(s, member_id)
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
        raise ValueError(f"Not saved: {exc}") from None
    s.store.set_setting(member_id, GATEWAY_SETTING, {"name": name, "config": config})
    log.info("sms gateway set to %s for %s", name, member_id)
    return f"Saved: SMS go through {cls.title}."
