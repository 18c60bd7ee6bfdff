"""The SMS provider: the portal's messages sent through the gateway its admin chose.

``SMS_PROVIDER``, ``ROUTES`` (``/sms``, delivery reports) and
``SCHEDULES`` (polling) are collected by handlers/__init__.py; the gateway layer
(``gateways``, ``phone``) is usable on its own.
"""

from .gateways import (
    GATEWAYS,
    DeliveryStatus,
    Field,
    Gateway,
    GatewayError,
    GenericHttpGateway,
    SendResult,
    SerwerSmsGateway,
    SmsRuGateway,
    StatusReport,
    TwilioGateway,
    gateway_for,
)
from .phone import InvalidPhone, mask_phone, normalize_phone
from .provider import ROUTES, SCHEDULES, SMS_PROVIDER, deliver, queue_send, report

__all__ = [
    "GATEWAYS",
    "DeliveryStatus",
    "Field",
    "Gateway",
    "GatewayError",
    "GenericHttpGateway",
    "InvalidPhone",
    "ROUTES",
    "SCHEDULES",
    "SMS_PROVIDER",
    "SendResult",
    "SerwerSmsGateway",
    "SmsRuGateway",
    "StatusReport",
    "TwilioGateway",
    "deliver",
    "gateway_for",
    "mask_phone",
    "normalize_phone",
    "queue_send",
    "report",
]
