"""An emulated Bitrix24 portal over real HTTP: REST, batch, OAuth, limits, CRM, automation.

``serve()`` starts it on 127.0.0.1; ``World`` holds its portals. Importing the package
registers every REST method and admin action.
"""

from __future__ import annotations

from fakeportal import admin, automation, crm, rest, system  # noqa: F401  (registration)
from fakeportal.exceptions import ApiError
from fakeportal.server import Server, serve
from fakeportal.state import Portal, World

__all__ = ["ApiError", "Portal", "Server", "World", "serve"]
