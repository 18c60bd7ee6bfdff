"""An emulated Bitrix24 portal over real HTTP: REST, batch, OAuth, limits, CRM, automation.

``serve()`` starts it on 127.0.0.1; ``World`` holds its portals. Importing the package
registers every REST method and admin action.
"""

from __future__ import annotations

import importlib
import importlib.util

from fakeportal import admin, rest, system  # noqa: F401  (register methods and actions)
from fakeportal.api import ApiError
from fakeportal.server import Server, serve
from fakeportal.state import Portal, World

for _name in ("fakeportal.crm", "fakeportal.automation"):
    if importlib.util.find_spec(_name) is not None:
        importlib.import_module(_name)

__all__ = ["ApiError", "Portal", "Server", "World", "serve"]
