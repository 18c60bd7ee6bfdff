"""The OAuth server (oauth.bitrix.info, or B24_OAUTH_URL): exchanging a refresh token."""

from __future__ import annotations

import logging
from typing import Any

import requests

from app.errors import AuthFailed, PortalUnavailable
from app.settings import Settings

log = logging.getLogger(__name__)

# Answers that mean the refresh token will never work again.
FATAL = {"invalid_grant", "invalid_client", "wrong_client", "invalid_request", "PAYMENT_REQUIRED"}


def exchange_refresh_token(
    settings: Settings, refresh_token: str, timeout: float = 15
) -> dict[str, Any]:
    """A new token pair for ``refresh_token`` (which the OAuth server then retires)."""
    try:
        response = requests.get(
            settings.oauth_url,
            params={
                "grant_type": "refresh_token",
                "client_id": settings.client_id,
                "client_secret": settings.client_secret,
                "refresh_token": refresh_token,
            },
            timeout=timeout,
        )
    except requests.RequestException as exc:
        raise PortalUnavailable(
            f"OAuth server unreachable: {type(exc).__name__}", "oauth"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code >= 500:
        raise PortalUnavailable(f"OAuth server answered HTTP {response.status_code}", "oauth")
    error = body.get("error") if isinstance(body, dict) else None
    if error or response.status_code != 200 or not body.get("access_token"):
        code = str(error or f"HTTP_{response.status_code}")
        description = str(body.get("error_description") or "no access token in the answer")
        log.warning("token refresh refused: %s", code)
        raise AuthFailed(code, description, response.status_code if error else 401, "oauth")
    return body
