"""The OAuth server (oauth.bitrix.info, or B24_OAUTH_URL): exchanging a refresh token.

One function serves both users: the portal client refreshing an expired token, and the
install job confirming that an install callback's tokens are real.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from app.errors import AuthFailed, PortalUnavailable
from app.settings import Settings

log = logging.getLogger(__name__)
USER_AGENT = "b24-robot-server"


def exchange_refresh_token(
    settings: Settings, refresh_token: str, timeout: float = 15
) -> dict[str, Any]:
    """A new token pair for ``refresh_token``, which the OAuth server then retires.

    GET with a query string (PROTOCOL §2). urllib, not requests: urllib3 logs request URLs
    at DEBUG, and this one carries the client secret and the refresh token. Refusals raise
    AuthFailed (no retry helps); 5xx and network errors raise PortalUnavailable.
    """
    query = {
        "grant_type": "refresh_token",
        "client_id": settings.client_id,
        "client_secret": settings.client_secret,
        "refresh_token": refresh_token,
    }
    separator = "&" if "?" in settings.oauth_url else "?"
    request = urllib.request.Request(
        f"{settings.oauth_url}{separator}{urllib.parse.urlencode(query)}",
        headers={"Accept": "application/json", "User-Agent": USER_AGENT},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PortalUnavailable(f"OAuth server: {type(reason).__name__}", "oauth") from None
    log.info("oauth refresh -> %d in %.0f ms", status, (time.monotonic() - started) * 1000)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        # Errors such as wrong_client come with HTTP 200.
        code, description = str(body["error"]), str(body.get("error_description") or "")
        if status >= 500:
            raise PortalUnavailable(f"OAuth server: {code}: {description}", "oauth")
        raise AuthFailed(code, description or "refresh refused", max(status, 400), "oauth")
    if status >= 400 or not isinstance(body, dict):
        raise PortalUnavailable(f"OAuth server answered HTTP {status}", "oauth")
    if not body.get("access_token") or not body.get("refresh_token"):
        raise PortalUnavailable("OAuth server answered without tokens", "oauth")
    return body
