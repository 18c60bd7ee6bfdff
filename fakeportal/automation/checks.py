"""Parameter checks the automation REST methods share (bizproc, event, placement,
messageservice, triggers): PHP's ``empty()``, PHP lists, the portal's handler URL check.

They sit below every method module so none of them imports another for these.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fakeportal.exceptions import UnsupportedProtocol, WrongHandlerUrl


def php_empty(value: Any) -> bool:
    """PHP's empty(): None, "", "0", 0, False, an empty array."""
    return value in (None, "", "0", 0, False) or (isinstance(value, (dict, list)) and not value)


def as_list(value: Any) -> list[Any] | None:
    """A PHP list arriving as a JSON list or as a dict keyed ``0..n-1``."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and all(str(k).isdigit() for k in value):
        return [value[k] for k in sorted(value, key=lambda k: int(k))]
    return None


def check_handler(handler: Any) -> str:
    """The portal's handler URL check: a host with a dot not at position 0, http(s) only."""
    parts = urlsplit(str(handler or ""))
    host = parts.hostname or ""
    if not host or host.find(".") <= 0:
        raise WrongHandlerUrl()
    if parts.scheme not in ("http", "https"):
        raise UnsupportedProtocol()
    return str(handler)
