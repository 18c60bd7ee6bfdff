"""SMS: the app as the portal's SMS provider, and ``send(ctx, ...)`` for robots.

The portal's own "Send SMS" robot and the deal card hand messages to ``/sms``; the gateway
is the one the portal admin chose in the settings page's SMS section. The gateway layer
(``gateways``, ``phone``) is usable on its own.
"""

from pathlib import Path

from app.registry import Capability, Section

from . import section
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
from .provider import JOBS, ROUTES, SCHEDULES, SMS_PROVIDER, Outcome, deliver, report, send

CAPABILITY = Capability(
    name="sms",
    sms_provider=SMS_PROVIDER,
    jobs=JOBS,
    routes=ROUTES,
    schedules=SCHEDULES,
    sections=(Section("sms", "sms/section.html", section.view, {"sms": section.save}),),
    templates=str(Path(__file__).parent / "templates"),
)

__all__ = [
    "CAPABILITY",
    "GATEWAYS",
    "DeliveryStatus",
    "Field",
    "Gateway",
    "GatewayError",
    "GenericHttpGateway",
    "InvalidPhone",
    "Outcome",
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
    "report",
    "send",
]
