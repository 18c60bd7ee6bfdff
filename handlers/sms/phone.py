"""Phone numbers as the gateways want them: E.164, checked before anything is sent."""

from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat

__all__ = ["InvalidPhone", "mask_phone", "normalize_phone"]

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "its country cannot be determined",
    NumberParseException.NOT_A_NUMBER: "it is not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "it is too short after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "it is too short",
    NumberParseException.TOO_LONG: "it is too long",
}


class InvalidPhone(ValueError):
    """A number that cannot be turned into a dialable E.164 number."""

    def __init__(self, raw: object, reason: str) -> None:
        super().__init__(f"invalid phone number {raw!r}: {reason}")
        self.raw = raw
        self.reason = reason


def normalize_phone(raw: str, default_country: str) -> str:
    """``raw`` as E.164 (``+48500600700``); numbers without ``+`` are read in ``default_country``.

    Raises InvalidPhone (a ValueError) for anything that is not a possible, valid number.
    """
    if not isinstance(raw, str):
        raise InvalidPhone(raw, f"expected text, got {type(raw).__name__}")
    text = raw.strip()
    if not text:
        raise InvalidPhone(raw, "it is empty")
    region = (default_country or "").strip().upper() or None
    if region is not None and region not in phonenumbers.SUPPORTED_REGIONS:
        region = None  # only numbers written with their country code can be read then
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "it cannot be parsed")
        if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE and region is None:
            reason += f" (no '+' and unknown default country {default_country!r})"
        raise InvalidPhone(raw, reason) from None
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(raw, "it has the wrong number of digits for its country")
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(raw, "no such number exists in its country's numbering plan")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def mask_phone(e164: str) -> str:
    """A number safe for logs: country code and last two digits (``+48*******00``)."""
    digits = e164.lstrip("+")
    if len(digits) <= 4:
        return "+" + "*" * len(digits)
    return "+" + digits[:2] + "*" * (len(digits) - 4) + digits[-2:]
