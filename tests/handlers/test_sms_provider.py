"""The SMS provider's parts on their own: the once-only message table, ambiguous network
failures, the send_sms robot's template and phone choice."""

from __future__ import annotations

import threading

import pytest
import requests
import responses

from app.errors import RobotFailed
from app.store import Store
from handlers.sms import GatewayError, SerwerSmsGateway
from handlers.sms.models import Messages, member_by_ref, portal_ref
from robots.send_sms import contact_phone, render

MID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def messages(database_url: str) -> Messages:
    store = Store(database_url, "k" * 32)
    return Messages(store.engine)


def test_a_message_is_stored_once_and_claimed_by_one_sender_only(messages: Messages) -> None:
    assert messages.create("m1", MID, "600100200", "hi", now=1.0)
    assert not messages.create("m1", MID, "600100200", "hi again", now=2.0)  # a replay
    assert messages.create("m2", MID, "600100200", "other portal", now=2.0)

    wins: list[bool] = []
    threads = [
        threading.Thread(target=lambda: wins.append(messages.claim("m1", MID, "serwersms", 3.0)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]
    msg = messages.get("m1", MID)
    assert (msg.status, msg.attempts, msg.body) == ("sending", 1, "hi")

    messages.release("m1", MID, "HTTP 503", 4.0)  # the gateway surely did not take it
    assert messages.claim("m1", MID, "serwersms", 5.0)
    messages.finish("m1", MID, "queued", 6.0, to="+48600100200", provider_id="p1")
    assert not messages.claim("m1", MID, "serwersms", 7.0)  # sent: never again
    assert messages.by_provider_id("m1", "serwersms", "p1").message_id == MID


def test_statuses_only_move_forward(messages: Messages) -> None:
    messages.create("m1", MID, "600100200", "hi", now=1.0)
    messages.claim("m1", MID, "serwersms", 2.0)
    messages.finish("m1", MID, "queued", 3.0, provider_id="p1")
    assert messages.advance("m1", MID, "sent", None, 4.0)
    assert messages.advance("m1", MID, "delivered", None, 5.0)
    assert not messages.advance("m1", MID, "sent", None, 6.0)  # a late, older report
    assert not messages.advance("m1", MID, "undelivered", "expired", 7.0)
    assert messages.get("m1", MID).status == "delivered"
    assert [m.message_id for m in messages.unreported("m1")] == [MID]
    messages.mark_reported("m1", MID, "delivered", 8.0)
    assert messages.unreported("m1") == []


def test_callback_refs_map_back_to_their_portal(messages: Messages) -> None:
    assert portal_ref(messages.engine, "m1", "ref-one") == "ref-one"
    assert portal_ref(messages.engine, "m1", "ref-one") == "ref-one"  # idempotent
    assert member_by_ref(messages.engine, "ref-one") == "m1"
    assert member_by_ref(messages.engine, "unknown") is None


@responses.activate
def test_no_connection_is_retryable_but_no_answer_may_have_sent() -> None:
    gw = SerwerSmsGateway({"token": "t0ken-secret-1"})
    url = "https://api2.serwersms.pl/messages/send_sms.json"
    responses.post(url, body=requests.ConnectTimeout("connect timed out"))
    with pytest.raises(GatewayError) as refused:
        gw.send("+48600100200", "hi", client_ref=MID, callback_url=None)
    assert refused.value.transient and not refused.value.maybe_sent

    responses.replace(responses.POST, url, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(GatewayError) as silent:
        gw.send("+48600100200", "hi", client_ref=MID, callback_url=None)
    assert silent.value.transient and silent.value.maybe_sent
    assert not gw.dedupes_by_client_ref()  # so the provider does not repeat that send


def test_template_uses_deal_and_contact_fields() -> None:
    deal = {"TITLE": "PV 9.6 kWp", "UF_CRM_PROJECT": "S-114"}
    contact = {"NAME": "Anna", "PHONE": [{"VALUE": "+48 600 100 200"}, {"VALUE": "22 100 20 30"}]}
    text = render(
        "{{CONTACT.NAME}}: {{ deal.title }} ({{DEAL.UF_CRM_PROJECT}}) {{CONTACT.PHONE}}{{DEAL.X}}",
        {"DEAL": deal, "CONTACT": contact},
    )
    assert text == "Anna: PV 9.6 kWp (S-114) +48 600 100 200, 22 100 20 30"
    with pytest.raises(RobotFailed, match="use DEAL or CONTACT"):
        render("{{COMPANY.TITLE}}", {"DEAL": deal})


def test_contact_phone_prefers_a_mobile() -> None:
    phones = [
        {"VALUE": "22 100 20 30", "VALUE_TYPE": "WORK"},
        {"VALUE": "600 100 200", "VALUE_TYPE": "MOBILE"},
    ]
    assert contact_phone({"PHONE": phones}) == "600 100 200"
    assert contact_phone({"PHONE": phones[:1]}) == "22 100 20 30"
    assert contact_phone({}) == ""
