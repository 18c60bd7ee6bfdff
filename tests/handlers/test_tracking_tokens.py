"""Tracking tokens: signed, opaque, tamper-evident; message labels and redirect targets."""

from __future__ import annotations

import string

import pytest

from app.crypto import SecretBox
from handlers import tracking

BOX = SecretBox("a-secret-key-of-the-app-0123456789")
OTHER = SecretBox("another-secret-key-9876543210abcdef")
MEMBER = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
URL_SAFE = set(string.ascii_letters + string.digits + "-_")


def _link(deal: int = 57, message: str = "proposal", target: str = "") -> str:
    return tracking.link_id(BOX, MEMBER, deal, message, target)


def test_a_token_round_trips_and_is_short_url_safe_and_opaque() -> None:
    link = _link()
    for kind in ("t", "l"):
        token = tracking.make_token(BOX, kind, link)
        assert tracking.read_token(BOX, kind, token) == link
        assert len(token) == tracking.ID_LEN + tracking.SIG_LEN == 32
        assert set(token) <= URL_SAFE
        assert MEMBER not in token and MEMBER[:8] not in token
    # The pixel and the link token differ, and neither opens the other's route.
    pixel, link_token = (tracking.make_token(BOX, k, link) for k in ("t", "l"))
    assert pixel != link_token
    assert tracking.read_token(BOX, "l", pixel) is None
    assert tracking.read_token(BOX, "t", link_token) is None


def test_the_link_id_is_stable_and_differs_per_deal_message_target_and_portal() -> None:
    assert _link() == _link()
    ids = {
        _link(),
        _link(deal=58),
        _link(message="invoice"),
        _link(target="https://water.example/order"),
        tracking.link_id(BOX, "f" * 32, 57, "proposal", ""),
        tracking.link_id(OTHER, MEMBER, 57, "proposal", ""),
    }
    assert len(ids) == 6


def test_every_single_character_change_is_refused() -> None:
    token = tracking.make_token(BOX, "t", _link())
    for i, char in enumerate(token):
        for replacement in ("A", "z", "-", "0"):
            if replacement != char:
                altered = token[:i] + replacement + token[i + 1 :]
                assert tracking.read_token(BOX, "t", altered) is None, (i, replacement)


@pytest.mark.parametrize(
    "token",
    ["", "x", "A" * 32, "A" * 31, "A" * 33, "é" * 32, "../../etc/passwd" * 2],
)
def test_guessed_or_malformed_tokens_are_refused(token: str) -> None:
    assert tracking.read_token(BOX, "t", token) is None
    assert tracking.read_token(BOX, "l", token) is None


def test_a_token_of_another_app_key_is_refused() -> None:
    token = tracking.make_token(OTHER, "t", _link())
    assert tracking.read_token(BOX, "t", token) is None


def test_message_labels_are_trimmed_lowered_and_default_to_email() -> None:
    assert tracking.clean_message("  Proposal ") == "proposal"
    assert tracking.clean_message("Коммерческое  предложение") == "коммерческое предложение"
    assert tracking.clean_message("") == "email"
    assert tracking.clean_message(None) == "email"
    with pytest.raises(ValueError):
        tracking.clean_message("x" * 65)


def test_targets_must_be_absolute_http_urls() -> None:
    assert tracking.clean_target("") == ""
    assert tracking.clean_target(" https://water.example/a?b=1 ") == "https://water.example/a?b=1"
    assert tracking.clean_target("http://water.example") == "http://water.example"
    for bad in (
        "javascript:alert(1)",
        "//evil.example/",
        "/relative/path",
        "ftp://water.example/",
        "https://",
        "https://water.example/a b",
        "https://water.example/\r\nSet-Cookie: x=1",
        "https://water.example/" + "a" * 2000,
    ):
        with pytest.raises(ValueError):
            tracking.clean_target(bad)


def test_the_pixel_is_a_real_transparent_1x1_gif() -> None:
    gif = tracking.PIXEL_GIF
    assert gif[:6] == b"GIF89a" and gif[-1:] == b";"
    assert int.from_bytes(gif[6:8], "little") == 1 and int.from_bytes(gif[8:10], "little") == 1
    assert b"\x21\xf9\x04\x01" in gif  # graphic control extension with the transparency flag
    assert len(gif) == 42
