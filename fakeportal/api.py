"""The contract every emulated REST method is written against.

A method is a plain function registered with ``@method("crm.deal.get")``. It receives a
``Call`` (the portal, the caller, the parameters as sent) and returns the value that goes
into ``result``, or a ``Page`` for list methods. It raises one of the error classes of
``fakeportal.exceptions`` (``raise NotFound("Item not found")``): each carries the real
portal's error code and HTTP status. ``ApiError``, their base, is importable from here too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

from fakeportal.exceptions import AccessDenied
from fakeportal.exceptions import ApiError as ApiError  # re-exported: the older import path

if TYPE_CHECKING:  # pragma: no cover
    from fakeportal.state import Portal, World


@overload
def flag(value: Any, default: bool = False) -> bool: ...
@overload
def flag(value: Any, default: None) -> bool | None: ...
def flag(value: Any, default: bool | None = False) -> bool | None:
    """A Bitrix Y/N flag as a bool: True/False, "Y"/"N", "1"/"0", 1/0, "true"/"false" (any
    case). Unset (None, "") or anything else gives ``default``.

    The one reader of such flags, so a stored ``IS_ADMIN: "N"`` and a sent one mean the same
    everywhere (``bool("N")`` is True).
    """
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().upper()
    if text in ("Y", "1", "TRUE"):
        return True
    if text in ("N", "0", "FALSE"):
        return False
    return default


@dataclass
class Caller:
    """Who is calling: a user acting through an app token (``app_id`` set) or a webhook."""

    user_id: int
    app_id: str | None = None  # the app's client_id for OAuth tokens, None for webhooks
    is_admin: bool = True


@dataclass
class Call:
    """One REST call as the method sees it."""

    world: World
    portal: Portal
    caller: Caller
    method: str  # lower-case method name
    params: dict[str, Any]  # nested (PHP brackets already parsed), keys exactly as sent
    scope: list[str] | None = None  # the token's or webhook's scope; None: unrestricted
    # The request's top-level ``auth_connector`` ("" when absent). Like ``auth`` it belongs to
    # the HTTP request: every command of a batch gets the batch's.
    connector: str = ""

    def get(self, name: str, default: Any = None) -> Any:
        """A parameter looked up case-insensitively (bizproc/messageservice style)."""
        if name in self.params:
            return self.params[name]
        lower = name.lower()
        for key, value in self.params.items():
            if key.lower() == lower:
                return value
        return default

    def require_app(self) -> str:
        """The calling app's client_id; webhooks get the portal's 'Application context required'."""
        if self.caller.app_id is None:
            raise AccessDenied("Application context required")
        return self.caller.app_id

    def require_admin(self) -> None:
        if not self.caller.is_admin:
            raise AccessDenied("Access denied! Admin permissions required")


# the REST call being handled ---------------------------------------------------------------
# One HTTP request is served by one thread (and a batch runs its commands in that thread), so a
# context variable names the call whose handler runs now. The portal code that records offline
# events asks it who made a change and with which ``auth_connector``; admin actions, robots,
# triggers and the outbox run with none (they are not REST calls of an app).
_current_call: ContextVar[Call | None] = ContextVar("fakeportal_current_call", default=None)
_current_hit: ContextVar[object | None] = ContextVar("fakeportal_current_hit", default=None)


def current_call() -> Call | None:
    """The REST call whose handler is running in this context, or None outside one."""
    return _current_call.get()


@contextmanager
def handling(call: Call | None) -> Iterator[None]:
    """Run a block as (part of) ``call``; ``handling(None)``: as no REST call at all.

    Automation wraps its own writes in ``handling(None)``: a trigger that moves a deal inside
    the app's ``crm.automation.trigger.execute`` is the portal's change, not the app's.
    """
    token = _current_call.set(call)
    try:
        yield
    finally:
        _current_call.reset(token)


def current_hit() -> object | None:
    """The portal hit (one HTTP request: a REST call, a batch, an admin action) now served."""
    return _current_hit.get()


@contextmanager
def portal_hit() -> Iterator[object]:
    """Mark a block as one hit of the portal (ONOFFLINEEVENT with ``minTimeout`` 0 is sent at
    most once per hit)."""
    hit = object()
    token = _current_hit.set(hit)
    try:
        yield hit
    finally:
        _current_hit.reset(token)


@dataclass
class Page:
    """A list result: one page of rows plus the portal's ``total`` and ``next``.

    ``total`` is 0 and ``next`` is None when the caller asked for ``start=-1``.
    ``wrap`` names the key rows are wrapped in (``"items"`` for crm.item.list,
    ``"categories"`` for crm.category.list, ``"tasks"`` for tasks.task.list).
    """

    rows: list[Any]
    total: int
    next: int | None = None
    wrap: str | None = None


Handler = Callable[[Call], Any]


@dataclass
class MethodInfo:
    name: str
    handler: Handler
    scope: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


METHODS: dict[str, MethodInfo] = {}


def method(name: str, *, scope: str | None = None, **extra: Any) -> Callable[[Handler], Handler]:
    """Register a REST method under its (case-insensitive) name."""

    def register(handler: Handler) -> Handler:
        key = name.lower()
        if key in METHODS:
            raise RuntimeError(f"method {name} registered twice")
        METHODS[key] = MethodInfo(key, handler, scope, dict(extra))
        return handler

    return register


AdminHandler = Callable[..., Any]
ADMIN_ACTIONS: dict[str, AdminHandler] = {}


def admin(name: str) -> Callable[[AdminHandler], AdminHandler]:
    """Register an admin action, served as ``POST /_admin/<name>`` with a JSON body.

    The handler is called as ``handler(world, **body)`` and returns something JSON-able.
    Admin actions are the emulator's own surface (create portals, funnels, rules, move a
    deal, read the wire log): they are not Bitrix24 methods and are never counted.
    """

    def register(handler: AdminHandler) -> AdminHandler:
        if name in ADMIN_ACTIONS:
            raise RuntimeError(f"admin action {name} registered twice")
        ADMIN_ACTIONS[name] = handler
        return handler

    return register
