"""App install, install finish, update and uninstall, as the portal runs them.

Install (``mode="event"``) POSTs ONAPPINSTALL with tokens to the app's install URL; install
as a page (``mode="page"``) POSTs the install page form and leaves the app unfinished until
``install_finish`` (the page's ``BX24.installFinish()``). Update bumps the version, wipes the
app's robots, activities, event bindings and placements, and re-runs install. Uninstall
POSTs ONAPPUNINSTALL (no tokens) to the handlers bound to it, wipes and revokes.
"""

from __future__ import annotations

import json
import secrets
from typing import Any
from urllib.parse import urlsplit

import requests

from fakeportal import oauth  # the core's OAuth server
from fakeportal.api import admin
from fakeportal.automation import outbox
from fakeportal.automation.models import (
    Installation,
    NotFound,
    find_installation,
    get_portal,
    installed,
)
from fakeportal.state import AppDef, Portal, WireRecord, World

DEFAULT_SERVER_ENDPOINT = "https://oauth.bitrix.info/rest/"


def app_def(world: World, client_id: str) -> AppDef:
    try:
        return world.apps[client_id]
    except KeyError:
        raise NotFound(f"application {client_id} is not registered") from None


def _issue(world: World, portal: Portal, client_id: str, user_id: int) -> dict[str, Any]:
    return dict(oauth.issue_tokens(world, portal, client_id, user_id))


def user_auth(
    world: World,
    portal: Portal,
    inst: Installation,
    user_id: int,
    *,
    refresh: bool = True,
) -> dict[str, Any]:
    """``auth[...]`` with fresh tokens of ``user_id`` (robot calls, install, SMS, events)."""
    tokens = _issue(world, portal, inst.client_id, user_id)
    expires_in = int(tokens.get("expires_in") or world.config.get("access_ttl", 3600))
    scope = tokens.get("scope") or ",".join(app_def(world, inst.client_id).scope)
    auth: dict[str, Any] = {
        "access_token": tokens["access_token"],
        "expires": str(int(tokens.get("expires") or world.timestamp() + expires_in)),
        "expires_in": str(expires_in),
        "scope": scope if isinstance(scope, str) else ",".join(scope),
        "domain": portal.domain,
        "server_endpoint": tokens.get("server_endpoint") or DEFAULT_SERVER_ENDPOINT,
        "status": tokens.get("status") or "L",
        "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id,
        "user_id": str(user_id),
    }
    if refresh and tokens.get("refresh_token"):
        auth["refresh_token"] = tokens["refresh_token"]
    auth["application_token"] = inst.application_token
    return auth


def tokenless_auth(world: World, portal: Portal, inst: Installation) -> dict[str, Any]:
    """``auth[...]`` of a change made by no user (robot/workflow): no token fields."""
    return {
        "domain": portal.domain,
        "client_endpoint": portal.client_endpoint,
        "server_endpoint": _server_endpoint(world, portal, inst),
        "member_id": portal.member_id,
        "application_token": inst.application_token,
    }


def _server_endpoint(world: World, portal: Portal, inst: Installation) -> str:
    """The OAuth server's REST endpoint, as the token server reports it."""
    endpoint = world.config.get("server_endpoint")
    if isinstance(endpoint, str) and endpoint:
        return endpoint
    return f"{world.base_url}/rest/" if world.base_url else DEFAULT_SERVER_ENDPOINT


# install -----------------------------------------------------------------------------------
def install_app(
    world: World,
    member_id: str,
    client_id: str,
    user_id: int = 1,
    mode: str = "event",
) -> dict[str, Any]:
    """Install an app on a portal and POST its install callback.

    ``mode="event"``: ONAPPINSTALL is queued to the install URL; the app counts as installed.
    ``mode="page"``: the install page is POSTed now (as the admin's browser would) and the
    reply returned; events wait for ``install_finish``.
    """
    if mode not in ("event", "page"):
        raise ValueError("mode must be 'event' or 'page'")
    with world.lock:
        portal = get_portal(world, member_id)
        app = app_def(world, client_id)
        inst = find_installation(portal, client_id)
        if inst is None:  # a new installation (also after an uninstall): a new token
            old = portal.apps.get(client_id)
            inst = Installation(
                client_id=client_id,
                application_token=secrets.token_hex(16),
                version=app.version,
                user_id=int(user_id),
            )
            if isinstance(old, Installation) and not old.installed:
                inst.options = old.options  # kept unless uninstalled with CLEAN
            portal.apps[client_id] = inst
        inst.installed = True
        inst.mode = mode
        inst.user_id = int(user_id)
        inst.version = app.version
        inst.finished = mode == "event"
        if mode == "event":
            _queue_install_event(world, portal, inst, app)
            return {"installed": True, "application_token": inst.application_token}
        page = page_request(world, portal, inst, app.install_url, "DEFAULT", None, user_id)
    result = _post_page(world, portal, "install", page)
    result["application_token"] = inst.application_token
    return result


def _queue_install_event(world: World, portal: Portal, inst: Installation, app: AppDef) -> None:
    auth = user_auth(world, portal, inst, inst.user_id)
    form = {
        "event": "ONAPPINSTALL",
        "event_handler_id": str(portal.next_id("event_handler")),
        "data": {
            "VERSION": str(inst.version),
            "ACTIVE": "Y",
            "INSTALLED": "Y",
            "LANGUAGE_ID": portal.language,
        },
        "ts": str(int(world.timestamp())),
        "auth": auth,
    }
    outbox.enqueue(world, portal, "install", "ONAPPINSTALL", app.install_url, form)


def install_finish(world: World, member_id: str, client_id: str) -> dict[str, Any]:
    """What the install page's ``BX24.installFinish()`` does: the app becomes active."""
    with world.lock:
        portal = get_portal(world, member_id)
        inst = installed(portal, client_id)
        inst.finished = True
        return {"installed": True, "finished": True}


def update_app(world: World, member_id: str, client_id: str, mode: str | None = None) -> dict:
    """A new app version: registrations wiped, install re-run (version + 1)."""
    with world.lock:
        portal = get_portal(world, member_id)
        inst = installed(portal, client_id)
        app = app_def(world, client_id)
        app.version += 1
        inst.wipe()
        user_id, mode = inst.user_id, mode or inst.mode
    return install_app(world, member_id, client_id, user_id=user_id, mode=mode)


def uninstall_app(world: World, member_id: str, client_id: str, clean: bool = False) -> dict:
    """Uninstall: ONAPPUNINSTALL to bound handlers, registrations wiped, tokens revoked."""
    with world.lock:
        portal = get_portal(world, member_id)
        inst = installed(portal, client_id)
        handlers = [b for b in inst.bindings if b.event == "ONAPPUNINSTALL" and not b.offline]
        for binding in handlers:
            form = {
                "event": "ONAPPUNINSTALL",
                "event_handler_id": str(binding.id),
                "data": {"LANGUAGE_ID": portal.language, "CLEAN": "1" if clean else "0"},
                "ts": str(int(world.timestamp())),
                "auth": {
                    "domain": portal.domain,
                    "server_endpoint": _server_endpoint(world, portal, inst),
                    "client_endpoint": portal.client_endpoint,
                    "member_id": portal.member_id,
                    "application_token": inst.application_token,
                },
            }
            outbox.enqueue(world, portal, "event", "ONAPPUNINSTALL", binding.handler, form)
        inst.wipe()
        inst.triggers.clear()
        inst.senders.clear()
        if clean:
            inst.options.clear()
        inst.installed = False
        inst.finished = False
        oauth.revoke(world, portal, client_id)
        return {"uninstalled": True, "notified": len(handlers)}


# pages -------------------------------------------------------------------------------------
def page_request(
    world: World,
    portal: Portal,
    inst: Installation,
    url: str,
    placement: str,
    options: Any,
    user_id: int,
) -> dict[str, Any]:
    """The iframe POST a browser sends to an app page: query and body, all strings."""
    tokens = user_auth(world, portal, inst, int(user_id))
    base = urlsplit(portal.base_url or f"https://{portal.domain}")
    query = {
        "DOMAIN": base.netloc or portal.domain,
        "PROTOCOL": "1" if base.scheme == "https" else "0",
        "LANG": portal.language,
        "APP_SID": secrets.token_hex(16),
    }
    body = {
        "AUTH_ID": tokens["access_token"],
        "AUTH_EXPIRES": tokens["expires_in"],
        "REFRESH_ID": tokens.get("refresh_token", ""),
        "SERVER_ENDPOINT": tokens["server_endpoint"],
        "APPLICATION_TOKEN": inst.application_token,
        "APPLICATION_SCOPE": tokens["scope"],
        "member_id": portal.member_id,
        "status": tokens["status"],
        "PLACEMENT": placement,
    }
    if options is not None:
        body["PLACEMENT_OPTIONS"] = (
            options if isinstance(options, str) else json.dumps(options, separators=(",", ":"))
        )
    return {"url": url, "query": query, "body": body}


def _post_page(world: World, portal: Portal, kind: str, page: dict[str, Any]) -> dict[str, Any]:
    """POST a page form now (outside the world lock) and return what the app answered."""
    timeout = float(world.config.get("outbox_timeout", outbox.DEFAULT_TIMEOUT))
    status, text, ctype = 0, "", ""
    try:
        resp = requests.post(page["url"], params=page["query"], data=page["body"], timeout=timeout)
        status, text, ctype = resp.status_code, resp.text, resp.headers.get("Content-Type", "")
    except requests.RequestException as exc:
        text = f"{type(exc).__name__}: {exc}"
    with world.lock:
        portal.log(
            WireRecord(
                at=world.timestamp(),
                direction="out",
                kind=kind,
                name=page["body"]["PLACEMENT"],
                status=status,
                request={
                    "url": page["url"],
                    "query": page["query"],
                    "form": outbox.redact(page["body"]),
                },
                response=text[:2000],
            )
        )
    return {"status": status, "body": text, "content_type": ctype, "request": page}


def open_app_page(
    world: World,
    member_id: str,
    client_id: str,
    url: str | None = None,
    placement: str = "DEFAULT",
    options: Any = None,
    user_id: int = 1,
) -> dict[str, Any]:
    """Open an app page or placement as the portal's iframe would; returns the app's reply."""
    with world.lock:
        portal = get_portal(world, member_id)
        inst = installed(portal, client_id)
        target = url or app_def(world, client_id).install_url
        page = page_request(world, portal, inst, target, placement, options, user_id)
    return _post_page(world, portal, "page", page)


# admin actions -----------------------------------------------------------------------------
@admin("install_app")
def _admin_install(world: World, member_id: str, client_id: str, user_id: int = 1,
                   mode: str = "event") -> dict[str, Any]:  # fmt: skip
    return install_app(world, member_id, client_id, user_id=user_id, mode=mode)


@admin("install_finish")
def _admin_install_finish(world: World, member_id: str, client_id: str) -> dict[str, Any]:
    return install_finish(world, member_id, client_id)


@admin("update_app")
def _admin_update(world: World, member_id: str, client_id: str, mode: str | None = None) -> dict:
    return update_app(world, member_id, client_id, mode=mode)


@admin("uninstall_app")
def _admin_uninstall(world: World, member_id: str, client_id: str, clean: bool = False) -> dict:
    return uninstall_app(world, member_id, client_id, clean=bool(clean))


@admin("open_app_page")
def _admin_open_page(world: World, member_id: str, client_id: str, url: str | None = None,
                     placement: str = "DEFAULT", options: Any = None,
                     user_id: int = 1) -> dict[str, Any]:  # fmt: skip
    return open_app_page(world, member_id, client_id, url, placement, options, user_id)


@admin("wait_idle")
def _admin_wait_idle(world: World, timeout: float = 10.0, robots: bool = True) -> dict[str, Any]:
    return outbox.wait_idle(world, float(timeout), bool(robots))


@admin("apps")
def _admin_apps(world: World, member_id: str) -> list[dict[str, Any]]:
    """Every app installation on a portal with what it registered."""
    with world.lock:
        portal = get_portal(world, member_id)
        return [i.summary() for i in portal.apps.values() if isinstance(i, Installation)]
