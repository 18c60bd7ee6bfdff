"""The OAuth server (``/oauth/token/``), access tokens, and incoming webhooks.

Tokens live in ``world.extra["oauth"]``. Access tokens expire on the world clock after
``world.config["access_ttl"]`` seconds; refresh tokens rotate (a used one is ``invalid_grant``)
and die with the app's installation (``revoke``). Webhooks are ``/rest/<user_id>/<code>/``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from fakeportal.api import Caller, flag
from fakeportal.exceptions import ErrorOAuth, ExpiredToken, InvalidToken, NoAuthFound
from fakeportal.state import Portal, World


@dataclass
class AccessToken:
    token: str
    member_id: str
    client_id: str
    user_id: int
    scope: list[str]
    expires: float  # world timestamp


@dataclass
class RefreshGrant:
    token: str
    member_id: str
    client_id: str
    user_id: int
    scope: list[str]
    expires: float


@dataclass
class Webhook:
    """An incoming webhook: a user's code, with a scope list (None: every scope)."""

    code: str
    member_id: str
    user_id: int
    scope: list[str] | None = None


@dataclass
class OAuthStore:
    access: dict[str, AccessToken] = field(default_factory=dict)
    refresh: dict[str, RefreshGrant] = field(default_factory=dict)
    revoked_access: set[str] = field(default_factory=set)
    revoked_refresh: set[str] = field(default_factory=set)
    webhooks: dict[str, Webhook] = field(default_factory=dict)


@dataclass
class Auth:
    """A REST call's resolved credentials."""

    portal: Portal
    caller: Caller
    scope: list[str] | None  # None: unrestricted
    key: str  # the operating-time account: client_id or "webhook:<code>"
    webhook: bool = False


def store(world: World) -> OAuthStore:
    with world.lock:
        st = world.extra.get("oauth")
        if st is None:
            st = world.extra["oauth"] = OAuthStore()
        return st


def _status(client_id: str) -> str:
    """Application status letter: ``L`` local, ``F`` free marketplace app."""
    return "L" if client_id.startswith("local.") else "F"


def _server_endpoint(world: World) -> str:
    return f"{world.base_url}/rest/"


def issue_tokens(world: World, portal: Portal, client_id: str, user_id: int) -> dict[str, Any]:
    """Issue a fresh access/refresh pair for an app user; returns the ``auth[...]`` fields."""
    app = world.apps.get(client_id)
    scope = list(app.scope) if app else []
    now = world.timestamp()
    ttl = int(world.config["access_ttl"])
    access = secrets.token_hex(35)
    refresh = secrets.token_hex(35)
    st = store(world)
    with world.lock:
        st.access[access] = AccessToken(
            access, portal.member_id, client_id, int(user_id), scope, now + ttl
        )
        st.refresh[refresh] = RefreshGrant(
            refresh,
            portal.member_id,
            client_id,
            int(user_id),
            scope,
            now + float(world.config.get("refresh_ttl", 180 * 86400)),
        )
    return {
        "access_token": access,
        "expires": int(now + ttl),
        "expires_in": ttl,
        "scope": ",".join(scope),
        "domain": portal.domain,
        "server_endpoint": _server_endpoint(world),
        "status": _status(client_id),
        "client_endpoint": portal.client_endpoint,
        "member_id": portal.member_id,
        "user_id": int(user_id),
        "refresh_token": refresh,
    }


def revoke(world: World, portal: Portal, client_id: str) -> None:
    """The app was uninstalled: every token it holds on this portal stops working."""
    st = store(world)
    with world.lock:
        for token, rec in list(st.access.items()):
            if rec.member_id == portal.member_id and rec.client_id == client_id:
                del st.access[token]
                st.revoked_access.add(token)
        for token, grant in list(st.refresh.items()):
            if grant.member_id == portal.member_id and grant.client_id == client_id:
                del st.refresh[token]
                st.revoked_refresh.add(token)


def expire_access_tokens(world: World, member_id: str | None = None) -> int:
    """Fault injection: every current access token (of one portal, or all) is now expired."""
    st = store(world)
    now = world.timestamp()
    count = 0
    with world.lock:
        for rec in st.access.values():
            if member_id is None or rec.member_id == member_id:
                rec.expires = min(rec.expires, now - 1)
                count += 1
    return count


def create_webhook(
    world: World, portal: Portal, user_id: int = 1, scope: list[str] | None = None
) -> str:
    """Create an incoming webhook for a user; returns its URL ``{base}/rest/<user>/<code>/``."""
    code = secrets.token_hex(8)
    with world.lock:
        store(world).webhooks[code] = Webhook(code, portal.member_id, int(user_id), scope)
    return f"{portal.base_url or world.base_url}/rest/{int(user_id)}/{code}/"


def _is_admin(portal: Portal, user_id: int) -> bool:
    """A user row's ``IS_ADMIN`` Y/N flag when the users table has one; admin otherwise."""
    for name in ("user", "users"):
        row = portal.tables.get(name, {}).get(int(user_id))
        if row is not None and "IS_ADMIN" in row:
            return flag(row["IS_ADMIN"])
    return True


def authenticate_token(world: World, token: str | None) -> Auth:
    """Resolve an OAuth access token to its portal and caller, or raise the portal's 401."""
    if not token:
        raise NoAuthFound()
    st = store(world)
    with world.lock:
        rec = st.access.get(token)
        if rec is None:
            if token in st.revoked_access:
                raise ErrorOAuth()
            raise InvalidToken()
        if rec.expires <= world.timestamp():
            raise ExpiredToken()
        portal = world.portals.get(rec.member_id)
        if portal is None:
            raise InvalidToken()
        caller = Caller(rec.user_id, rec.client_id, _is_admin(portal, rec.user_id))
        return Auth(portal, caller, list(rec.scope), rec.client_id)


def token_portal(world: World, token: Any) -> Portal | None:
    """The portal an access token (valid or expired) belongs to, for the wire log."""
    if not isinstance(token, str):
        return None
    with world.lock:
        rec = store(world).access.get(token)
        return world.portals.get(rec.member_id) if rec else None


def authenticate_webhook(world: World, user_id: str, code: str) -> Auth:
    """Resolve ``/rest/<user_id>/<code>/`` to its portal and user."""
    st = store(world)
    with world.lock:
        hook = st.webhooks.get(code)
        if hook is None or str(hook.user_id) != str(user_id):
            raise NoAuthFound()
        portal = world.portals.get(hook.member_id)
        if portal is None:
            raise NoAuthFound()
        caller = Caller(hook.user_id, None, _is_admin(portal, hook.user_id))
        scope = list(hook.scope) if hook.scope is not None else None
        return Auth(portal, caller, scope, f"webhook:{code}", webhook=True)


class OAuthError(Exception):
    """An answer of the OAuth server: a JSON body and its HTTP status."""

    def __init__(self, body: dict[str, Any], status: int) -> None:
        super().__init__(body.get("error", ""))
        self.body = body
        self.status = status


def token_endpoint(world: World, params: dict[str, Any]) -> dict[str, Any]:
    """``/oauth/token/``: refresh a token pair; raises ``OAuthError`` as the server answers."""
    grant_type = params.get("grant_type")
    if not grant_type:
        raise OAuthError(
            {"error": "invalid_request", "error_description": 'No "grant_type" parameter found'},
            400,
        )
    if grant_type != "refresh_token":
        raise OAuthError(
            {"error": "invalid_request", "error_description": "Unsupported grant_type"}, 400
        )
    client_id = params.get("client_id")
    if not client_id:
        raise OAuthError(
            {"error": "invalid_request", "error_description": 'No "client_id" parameter found'},
            400,
        )
    app = world.apps.get(str(client_id))
    if app is None:
        raise OAuthError({"error": "wrong_client"}, 200)
    if params.get("client_secret") != app.client_secret:
        raise OAuthError({"error": "invalid_client"}, 400)
    refresh = params.get("refresh_token")
    if not refresh:
        raise OAuthError(
            {"error": "invalid_request", "error_description": 'No "refresh_token" parameter found'},
            400,
        )
    st = store(world)
    with world.lock:
        grant = st.refresh.get(str(refresh))
        if grant is None:
            if refresh in st.revoked_refresh:
                raise OAuthError({"error": "invalid_client"}, 400)
            raise OAuthError({"error": "invalid_grant"}, 400)
        if grant.client_id != app.client_id or grant.expires <= world.timestamp():
            raise OAuthError({"error": "invalid_grant"}, 400)
        portal = world.portals.get(grant.member_id)
        if portal is None:
            raise OAuthError({"error": "invalid_grant"}, 400)
        del st.refresh[grant.token]
        issued = issue_tokens(world, portal, app.client_id, grant.user_id)
    return {
        "access_token": issued["access_token"],
        "client_endpoint": portal.client_endpoint,
        "domain": "oauth.bitrix.info",
        "expires": issued["expires"],
        "expires_in": issued["expires_in"],
        "member_id": portal.member_id,
        "refresh_token": issued["refresh_token"],
        "scope": issued["scope"],
        "server_endpoint": issued["server_endpoint"],
        "status": issued["status"],
        "user_id": grant.user_id,
    }
