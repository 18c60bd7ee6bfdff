"""The SMS section of the app's settings page: the gateway and its credentials.

Secrets are stored encrypted (portal settings) and never written back into the page: a set
secret shows as "set", and an empty secret field keeps the stored value. Numbers without
``+`` are read in the portal's country, set in the calendar section.

The gateways' titles and field labels are English marked with ``N_`` (the gateway layer runs
without Flask); they are translated here, as the page is built.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask_babel import gettext as _

from app.context import Context
from handlers import calendar

from .gateways import GATEWAYS, Gateway, gateway_for
from .provider import GATEWAY_SETTING, callback_url

log = logging.getLogger(__name__)


def _stored(ctx: Context) -> tuple[str, dict[str, str]]:
    conf = ctx.settings.get(GATEWAY_SETTING) or {}
    return str(conf.get("name") or ""), dict(conf.get("config") or {})


def view(ctx: Context) -> dict[str, Any]:
    """The gateways with their fields; values of the chosen one, secrets only as "set"."""
    chosen, config = _stored(ctx)
    gateways = []
    for name, cls in GATEWAYS.items():
        fields = [
            {
                "name": f"{name}.{f.name}",
                "label": _(f.label),
                "help": _(f.help) if f.help else "",
                "secret": f.secret,
                "value": "" if f.secret else (config.get(f.name, "") if name == chosen else ""),
                "is_set": bool(f.secret and name == chosen and config.get(f.name)),
                "default": f.default,
            }
            for f in cls.fields
        ]
        gateways.append(
            {
                "name": name,
                "title": _(cls.title),
                "chosen": name == chosen,
                "fields": fields,
                "report_url": callback_url(ctx, name) if name == chosen else "",
            }
        )
    return {"country": calendar.country(ctx), "gateways": gateways}


def save(ctx: Context, form: Mapping[str, str]) -> str:
    """Store the chosen gateway and its credentials; the message to show, or ValueError."""
    name = str(form.get("gateway", ""))
    cls: type[Gateway] | None = GATEWAYS.get(name)
    if cls is None:
        raise ValueError(_("Choose a gateway."))
    chosen, stored = _stored(ctx)
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
        # The same message as the calendar's refusals; the reason is the gateway's (English).
        raise ValueError(_("Not saved: %(reason)s.", reason=str(exc).rstrip("."))) from None
    ctx.settings.set(GATEWAY_SETTING, {"name": name, "config": config})
    log.info("sms gateway set to %s for %s", name, ctx.member_id)
    return _("Saved: SMS messages go through %(gateway)s.", gateway=_(cls.title))
