"""normalize_phone: E.164 out, InvalidPhone (a ValueError with a clear message) for the rest."""

from __future__ import annotations

import pytest

from handlers.sms.phone import InvalidPhone, mask_phone, normalize_phone


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("500 600 700", "PL", "+48500600700"),
        ("500-600-700", "pl", "+48500600700"),
        ("+48 500 600 700", "RU", "+48500600700"),  # an explicit country code wins
        ("0048500600700", "PL", "+48500600700"),  # international prefix from Poland
        ("8 (912) 345-67-89", "RU", "+79123456789"),  # Russian trunk prefix 8
        ("+7 912 345 67 89", "", "+79123456789"),
        ("810 48 500 600 700", "RU", "+48500600700"),  # international prefix from Russia
        ("030 901820", "DE", "+4930901820"),  # a landline with trunk prefix 0
        ("tel:+1-650-253-0000", "US", "+16502530000"),
        ("+1 650 253 0000 ext. 12", "US", "+16502530000"),  # extension dropped
        ("  +48500600700  ", "PL", "+48500600700"),
    ],
)
def test_normalizes_to_e164(raw: str, country: str, expected: str) -> None:
    assert normalize_phone(raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "country", "reason"),
    [
        ("", "PL", "it is empty"),
        ("   ", "PL", "it is empty"),
        ("call me", "PL", "not a phone number"),
        ("123", "PL", "wrong number of digits"),
        ("+48 123", "PL", "wrong number of digits"),
        ("+48 000 000 000", "PL", "numbering plan"),
        ("12345678901234567890", "PL", "too long"),
        ("+999 1234567", "PL", "country cannot be determined"),
        ("500600700", "XX", "unknown default country 'XX'"),
        ("500600700", "", "country cannot be determined"),
    ],
)
def test_invalid_numbers_raise_invalid_phone(raw: str, country: str, reason: str) -> None:
    with pytest.raises(InvalidPhone, match=reason) as info:
        normalize_phone(raw, country)
    assert isinstance(info.value, ValueError)
    assert str(info.value).startswith(f"invalid phone number {raw!r}")
    assert info.value.raw == raw


@pytest.mark.parametrize("raw", [None, 48500600700, b"+48500600700"])
def test_non_text_raises_invalid_phone_not_a_crash(raw: object) -> None:
    with pytest.raises(InvalidPhone, match="expected text"):
        normalize_phone(raw, "PL")  # type: ignore[arg-type]


def test_mask_phone_keeps_only_edges() -> None:
    assert mask_phone("+48500600700") == "+48*******00"
    assert "600" not in mask_phone("+48500600700")
    assert mask_phone("+123") == "+***"
