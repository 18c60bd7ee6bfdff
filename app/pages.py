"""Pages inside the portal: templates, translations, the portal frame (BX24), signed forms.

The portal opens the app's page in an iframe with a form POST (``AUTH_ID``, ``member_id``,
``APPLICATION_TOKEN``, ``LANG``...). The page checks the application token against the
installation and asks the portal, with the opener's own token, whether the opener is a
portal admin (``user.admin``); only then does it show the forms. Every form comes back with
a token signed for this portal with a short expiry (it carries no portal token), the page's
language and an ``action``, which names a change of one capability's section. A refused
change is shown in its section with its reason (HTTP 400) and stores nothing.

Pages render from Jinja templates (autoescaped) in the portal's language (``LANG``: ru, pl,
en; English otherwise) with Flask-Babel's gettext catalogues in app/translations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, Response, render_template, request
from flask_babel import Babel
from flask_babel import gettext as _

from app import jobs
from app.context import Context
from app.errors import AppError, PortalError
from app.registry import Section
from app.services import Services

log = logging.getLogger(__name__)

LANGUAGES = ("en", "ru", "pl")
FORM_TTL = 15 * 60  # seconds an opened page's forms may be sent
TRANSLATIONS = str(Path(__file__).parent / "translations")
Change = Callable[[Context, Mapping[str, str]], str]


def init_app(app: Flask, services: Services) -> None:
    Babel(app, locale_selector=page_language, default_translation_directories=TRANSLATIONS)
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.add_url_rule(
        "/settings", "settings", lambda: settings_view(services), methods=["GET", "POST"]
    )


def page_language() -> str:
    """The portal's language (``LANG`` when the portal opens the page, ``lang`` after)."""
    lang = str(request.values.get("LANG") or request.values.get("lang") or "").lower()[:2]
    return lang if lang in LANGUAGES else "en"


# signed forms ------------------------------------------------------------------------------


def form_token(s: Services, member_id: str) -> str:
    """A token for the page's forms: this portal only, valid for ``FORM_TTL`` seconds."""
    expires = int(s.clock.now().timestamp()) + FORM_TTL
    return f"{expires}.{s.store.box.sign(f'settings:{member_id}:{expires}')}"


def form_token_ok(s: Services, member_id: str, token: str) -> bool:
    expires, _dot, signature = token.partition(".")
    if not expires.isdigit() or int(expires) < s.clock.now().timestamp():
        return False
    return s.store.box.verify(f"settings:{member_id}:{expires}", signature)


# the settings page -----------------------------------------------------------------------------


@dataclass
class Page:
    """What the settings template gets besides the sections' own values."""

    member_id: str
    token: str
    lang: str
    note_section: str = ""
    note: str = ""
    error: bool = False

    def said(self, section: str) -> str:
        return self.note if self.note and self.note_section == section else ""


def _actions(s: Services) -> dict[str, tuple[Section, Change]]:
    return {
        action: (section, change)
        for section in s.catalogue.sections
        for action, change in section.actions.items()
    }


def settings_view(s: Services) -> Response:
    """``/settings``: the portal opens the page (POST with AUTH_ID) or a form is sent."""
    if request.method == "GET":
        return _message(_("Open this page from the application's menu in Bitrix24."), 400)
    form = request.form
    member_id = form.get("member_id", "")
    installation = s.store.installation(member_id) if member_id else None
    if installation is None:
        return _message(_("This portal has not installed the app."), 401)
    action = form.get("action", "")
    if action:
        if not form_token_ok(s, member_id, form.get("form_token", "")):
            return _message(_("The form has expired. Open the page again."), 403)
        actions = _actions(s)
        if action not in actions:
            return _render(s, member_id, ("", _("Unknown action.")), error=True, status=400)
        section, change = actions[action]
        try:
            ctx = jobs.context(s, member_id, Context, name=f"settings:{action}")
            said = change(ctx, form)
        except (ValueError, AppError) as exc:
            return _render(s, member_id, (section.key, str(exc)), error=True, status=400)
        return _render(s, member_id, (section.key, said))
    if not installation.token_matches(form.get("APPLICATION_TOKEN", "")):
        return _message(_("This page must be opened from the portal."), 401)
    auth_id = form.get("AUTH_ID", "")
    if not auth_id or not _is_admin(s, installation, auth_id):
        return _message(_("Only a portal administrator can change the settings."), 403)
    return _render(s, member_id)


def _is_admin(s: Services, installation: Any, auth_id: str) -> bool:
    """Whether the opener may manage the app: the portal's answer to ``user.admin``."""
    try:
        return s.portal_as_user(installation, auth_id).call("user.admin") is True
    except PortalError as exc:
        log.warning("admin check refused: %s", exc.code)
        return False


def _message(text: str, status: int) -> Response:
    body = render_template("message.html", text=text, lang=page_language())
    return Response(body, status=status, mimetype="text/html")


def _render(
    s: Services,
    member_id: str,
    note: tuple[str, str] = ("", ""),
    *,
    error: bool = False,
    status: int = 200,
) -> Response:
    """The whole page; ``note`` is (section, text) shown at the top of that section."""
    page = Page(member_id, form_token(s, member_id), page_language(), *note, error=error)
    ctx = jobs.context(s, member_id, Context, name="settings")
    sections = [(section, section.view(ctx)) for section in s.catalogue.sections]
    body = render_template("settings.html", page=page, sections=sections)
    return Response(body, status=status, mimetype="text/html")
