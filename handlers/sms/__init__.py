"""The SMS provider's gateway layer: gateways the portal admin can choose, phone numbers."""

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

__all__ = [
    "GATEWAYS",
    "DeliveryStatus",
    "Field",
    "Gateway",
    "GatewayError",
    "GenericHttpGateway",
    "InvalidPhone",
    "SendResult",
    "SerwerSmsGateway",
    "SmsRuGateway",
    "StatusReport",
    "TwilioGateway",
    "gateway_for",
    "mask_phone",
    "normalize_phone",
]
