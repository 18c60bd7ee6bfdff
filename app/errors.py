"""The app's errors: one base class, a few kinds; HTTP mapping lives in app.web."""

from __future__ import annotations


class AppError(Exception):
    """Base of every error the app raises on purpose."""


class BadRequest(AppError):
    """A callback or form that cannot be parsed or lacks what it must carry (HTTP 400)."""


class Unauthorized(AppError):
    """A callback from an unknown portal or with a wrong application_token (HTTP 401)."""


class PortalError(AppError):
    """The portal answered with an error: its code, description and HTTP status."""

    def __init__(self, code: str, description: str, status: int = 400, method: str = "") -> None:
        super().__init__(f"{method or 'portal'}: {code or '(no code)'}: {description}")
        self.code = code
        self.description = description
        self.status = status
        self.method = method

    @property
    def transient(self) -> bool:
        """Worth retrying later: overload, limits, server errors."""
        return (
            self.status >= 500
            or self.status == 429
            or self.code
            in {
                "QUERY_LIMIT_EXCEEDED",
                "OPERATION_TIME_LIMIT",
                "OVERLOAD_LIMIT",
            }
        )


class PortalUnavailable(PortalError):
    """The portal could not be reached or kept failing (network, timeouts, 5xx)."""

    def __init__(self, description: str, method: str = "") -> None:
        super().__init__("PORTAL_UNAVAILABLE", description, 503, method)


class AuthFailed(PortalError):
    """The portal's tokens are gone (refresh refused, app uninstalled): no retry helps."""


class RobotFailed(AppError):
    """A robot could not do its work; the message is shown to the portal admin."""


class TryAgain(AppError):
    """Something outside the app is down for now (a gateway, say): the job runs again later."""


def transient(exc: BaseException) -> bool:
    """Worth running again later: the portal overloaded or down, a gateway down."""
    if isinstance(exc, TryAgain):
        return True
    return isinstance(exc, PortalError) and exc.transient and not isinstance(exc, AuthFailed)
