"""The SMS provider: the portal's messages sent through the gateway its admin chose.

``SMS_PROVIDER``, ``ROUTES`` (``/sms``, delivery reports, the settings page) and
``SCHEDULES`` (polling) are collected by handlers/__init__.py; the gateway layer
(``gateways``, ``phone``) is usable on its own.
"""

from app.registry import Route

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
from .provider import ROUTES as _PROVIDER_ROUTES
from .provider import SCHEDULES, SMS_PROVIDER, deliver, queue_send, report
from .settings_page import settings_view

ROUTES = [
    *_PROVIDER_ROUTES,
    Route("/settings", "sms_settings", settings_view, ("GET", "POST")),
]

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
