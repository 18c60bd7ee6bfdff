"""SMS gateways: send a message, ask for its status, read delivery reports.

The app is the portal's SMS provider; a job hands each message to the gateway the portal admin
configured and reports the outcome back with ``messageservice.message.status.update``. Every
gateway speaks its own API; this package turns each into the same small interface and maps the
gateway's statuses onto the portal's five (``DeliveryStatus``) and its failures onto
``GatewayError`` (``transient`` = worth retrying with backoff).

``base`` holds what all gateways share (the interface, HTTP calls, reply reading, failure
classification, redaction); each other module is one gateway's API. Credentials never leave
the package in a message or a log line: every error text and every ``raw`` reply passes
through the gateway's redaction of its secret config values, and requests carry secrets in
headers or bodies, never in URLs. See ../README.md for the API facts each gateway follows.
"""

from __future__ import annotations

from collections.abc import Mapping

import requests

from .base import DeliveryStatus, Field, Gateway, GatewayError, SendResult, StatusReport
from .http import GenericHttpGateway
from .serwersms import SerwerSmsGateway
from .smsru import SmsRuGateway
from .twilio import TwilioGateway

__all__ = [
    "GATEWAYS",
    "DeliveryStatus",
    "Field",
    "Gateway",
    "GatewayError",
    "GenericHttpGateway",
    "SendResult",
    "SerwerSmsGateway",
    "SmsRuGateway",
    "StatusReport",
    "TwilioGateway",
    "gateway_for",
]

#: Every gateway by its ``name``, in the order the settings page offers them.
GATEWAYS: dict[str, type[Gateway]] = {
    SerwerSmsGateway.name: SerwerSmsGateway,
    SmsRuGateway.name: SmsRuGateway,
    TwilioGateway.name: TwilioGateway,
    GenericHttpGateway.name: GenericHttpGateway,
}


def gateway_for(
    name: str,
    config: Mapping[str, str],
    session: requests.Session | None = None,
    timeout: float = 10,
) -> Gateway:
    """The configured gateway ``name``; ValueError for an unknown name or bad settings."""
    try:
        cls = GATEWAYS[name]
    except KeyError:
        raise ValueError(
            f"unknown SMS gateway {name!r}; known: {', '.join(sorted(GATEWAYS))}"
        ) from None
    return cls(config, session=session, timeout=timeout)
