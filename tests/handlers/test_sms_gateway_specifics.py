"""What only one SMS gateway does, beyond the shared behaviour tests of test_sms_gateways.py.

SerwerSMS: login by user name and password, its own message id, ECO vs FULL messages.
SMS.ru: test mode and its batched ``data[N]`` reports. Twilio: a Messaging Service as sender and
signed callbacks. The generic HTTP gateway: the other shapes its settings describe (a JSON
template, GET with a query, status maps as JSON, reports in the query string).
"""

from __future__ import annotations

import json

import pytest
import requests
import responses
from test_sms_gateways import (
    HTTP_URL,
    MESSAGE_ID,
    SECRETS,
    SMSRU_SEND,
    SWS_SEND,
    TW_BASE,
    TW_SID,
    expect_error,
    form_of,
    json_of,
    smsru_sent,
    sws_queued,
    tw_message,
)
from werkzeug.datastructures import MultiDict

from handlers.sms.gateways import (
    DeliveryStatus,
    GatewayError,
    GenericHttpGateway,
    SerwerSmsGateway,
    SmsRuGateway,
    TwilioGateway,
)

# --- SerwerSMS -------------------------------------------------------------------------


@pytest.fixture
def serwersms() -> SerwerSmsGateway:
    return SerwerSmsGateway({"token": SECRETS["serwersms_token"], "sender": "SKLEP"})


@responses.activate
def test_serwersms_send_with_username_and_password() -> None:
    gw = SerwerSmsGateway({"username": "api-user", "password": SECRETS["serwersms_password"]})
    responses.post(SWS_SEND, json=sws_queued("x1"))
    result = gw.send("+48500600700", "Hello", client_ref=MESSAGE_ID, callback_url=None)
    assert result.provider_id == "x1"
    call = responses.calls[0]
    assert "Authorization" not in call.request.headers
    body = json_of(call)
    assert body["username"] == "api-user"
    assert body["password"] == SECRETS["serwersms_password"]
    assert "sender" not in body and "utf" not in body  # ECO: no sender, plain text
    assert SECRETS["serwersms_password"] not in json.dumps(result.raw)


@responses.activate
def test_serwersms_full_message_in_gsm_alphabet_is_not_utf(serwersms: SerwerSmsGateway) -> None:
    responses.post(SWS_SEND, json=sws_queued())
    serwersms.send("+48500600700", "Order shipped", client_ref=MESSAGE_ID, callback_url=None)
    body = json_of(responses.calls[0])
    assert body["sender"] == "SKLEP" and "utf" not in body


def test_serwersms_unique_id_for_refs_it_would_refuse() -> None:
    assert SerwerSmsGateway.unique_id(MESSAGE_ID) == MESSAGE_ID
    odd = SerwerSmsGateway.unique_id("msg-1/2")
    assert odd.isalnum() and 3 <= len(odd) <= 50
    assert odd == SerwerSmsGateway.unique_id("msg-1/2")  # stable across retries
    assert SerwerSmsGateway.unique_id("ab") != "ab"  # too short as is


@responses.activate
def test_retry_after_timeout_reuses_the_same_client_ref(serwersms: SerwerSmsGateway) -> None:
    """The job retries a transient failure; the gateway sees the same own id both times."""
    responses.post(SWS_SEND, body=requests.ReadTimeout())
    with pytest.raises(GatewayError) as info:
        serwersms.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None)
    assert info.value.transient
    responses.replace(responses.POST, SWS_SEND, json=sws_queued("r1"))
    assert (
        serwersms.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None).provider_id
        == "r1"
    )
    assert [json_of(c)["unique_id"] for c in responses.calls] == [MESSAGE_ID, MESSAGE_ID]


# --- SMS.ru ----------------------------------------------------------------------------


@pytest.fixture
def smsru() -> SmsRuGateway:
    return SmsRuGateway({"api_id": SECRETS["smsru_api_id"], "sender": "SHOP"})


@responses.activate
def test_smsru_test_mode() -> None:
    gw = SmsRuGateway({"api_id": SECRETS["smsru_api_id"], "test": "1"})
    responses.post(SMSRU_SEND, json=smsru_sent("t-1"))
    gw.send("+79123456789", "hi", client_ref=MESSAGE_ID, callback_url=None)
    form = form_of(responses.calls[0])
    assert form["test"] == ["1"]
    assert "from" not in form


def test_smsru_callback_flat_form(smsru: SmsRuGateway) -> None:
    form = MultiDict(
        [
            ("data[0]", "sms_status\n000000-000001\n103\n1741600000"),
            ("data[1]", "sms_status\n000000-000002\n104\n1741600001"),
            ("data[2]", "callback_check\n123"),
        ]
    )
    reports = smsru.parse_callback(form, {})
    assert [(r.provider_id, r.status) for r in reports] == [
        ("000000-000001", DeliveryStatus.DELIVERED),
        ("000000-000002", DeliveryStatus.UNDELIVERED),
    ]
    assert reports[1].error == "lifetime expired"
    assert smsru.callback_ack == "100"


def test_smsru_callback_nested_form(smsru: SmsRuGateway) -> None:
    reports = smsru.parse_callback({"data": ["sms_status\r\nabc-1\r\n102\r\n1741600000"]}, {})
    assert [(r.provider_id, r.status) for r in reports] == [("abc-1", DeliveryStatus.SENT)]
    assert (
        smsru.parse_callback({"data": {"1": "sms_status\nb\n103", "0": "sms_status\na\n102"}}, {})[
            0
        ].provider_id
        == "a"
    )
    assert smsru.parse_callback({}, {}) == []


# --- Twilio ----------------------------------------------------------------------------


@responses.activate
def test_twilio_send_through_messaging_service() -> None:
    gw = TwilioGateway(
        {
            "account_sid": TW_SID,
            "auth_token": SECRETS["twilio_token"],
            "messaging_service_sid": "MG1",
        }
    )
    responses.post(f"{TW_BASE}/Messages.json", status=201, json=tw_message("accepted"))
    result = gw.send("+48500600700", "Hello", client_ref=MESSAGE_ID, callback_url=None)
    assert result.status is DeliveryStatus.QUEUED
    form = form_of(responses.calls[0])
    assert form["MessagingServiceSid"] == ["MG1"]
    assert "From" not in form and "StatusCallback" not in form


def test_twilio_signature_published_vector() -> None:
    gw = TwilioGateway({"account_sid": TW_SID, "auth_token": "12345", "from_number": "+1500"})
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
    good = {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}
    assert gw.verify_callback(url, params, good)
    assert gw.verify_callback(
        url, MultiDict(params), {"x-twilio-signature": good["X-Twilio-Signature"]}
    )
    assert not gw.verify_callback(url, {**params, "Digits": "9999"}, good)
    assert not gw.verify_callback(url + "&x=1", params, good)
    assert not gw.verify_callback(url, params, {})
    assert not gw.verify_callback(url, params, {"X-Twilio-Signature": "invalid 王"})
    repeated = MultiDict(
        [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]
    )
    assert gw.verify_callback(url, repeated, {"X-Twilio-Signature": "IK+Dwps556ElfBT0I3Rgjkr1wJU="})


# --- Generic HTTP gateway --------------------------------------------------------------


@responses.activate
def test_http_json_template() -> None:
    gw = GenericHttpGateway(
        {
            "url": HTTP_URL,
            "json_template": json.dumps(
                {
                    "to": ["{to_digits}"],
                    "body": {"text": "{text}", "ref": "msg-{client_ref}"},
                    "notify": "{callback_url}",
                    "flash": False,
                }
            ),
            "auth_header": "X-Api-Key",
            "auth_value": SECRETS["http_auth"],
            "id_path": "$.result.id",
        }
    )
    responses.post(HTTP_URL, json={"result": {"id": "abc"}})
    result = gw.send("+48500600700", 'Say "hi"', client_ref=MESSAGE_ID, callback_url=None)
    assert result.provider_id == "abc"
    assert result.status is DeliveryStatus.QUEUED
    call = responses.calls[0]
    assert call.request.headers["X-Api-Key"] == SECRETS["http_auth"]
    assert json_of(call) == {
        "to": ["48500600700"],
        "body": {"text": 'Say "hi"', "ref": f"msg-{MESSAGE_ID}"},
        "notify": "",
        "flash": False,
    }
    assert not gw.dedupes_by_client_ref()  # no idempotency header: a retry could send twice


@responses.activate
def test_http_get_query() -> None:
    gw = GenericHttpGateway({"url": HTTP_URL, "method": "get", "id_path": "id"})
    responses.get(HTTP_URL, json={"id": 7})
    gw.send("+48500600700", "Hi there", client_ref=MESSAGE_ID, callback_url=None)
    assert "to=%2B48500600700" in responses.calls[0].request.url
    assert "text=Hi+there" in responses.calls[0].request.url


@responses.activate
def test_http_poll_and_callback_with_a_json_status_map() -> None:
    gw = GenericHttpGateway(
        {
            "url": HTTP_URL,
            "poll_url": "https://sms.example.net/api/messages/{id}",
            "status_path": "state",
            "status_map": '{"DELIVRD": "delivered", "UNDELIV": "undelivered", "ENROUTE": "sent"}',
            "callback_id_key": "msg.id",
            "callback_status_key": "msg.state",
            "callback_error_key": "msg.reason",
        }
    )
    responses.get("https://sms.example.net/api/messages/m%2F1", json={"state": "DELIVRD"})
    assert gw.poll("m/1").status is DeliveryStatus.DELIVERED
    reports = gw.parse_callback({"msg": {"id": "m1", "state": "UNDELIV", "reason": "absent"}}, {})
    assert [(r.provider_id, r.status, r.error) for r in reports] == [
        ("m1", DeliveryStatus.UNDELIVERED, "absent")
    ]
    assert gw.parse_callback({}, {}) == []


def test_http_poll_without_url(caplog: pytest.LogCaptureFixture) -> None:
    gw = GenericHttpGateway({"url": HTTP_URL})
    expect_error(lambda: gw.poll("x"), transient=False, caplog=caplog, match="poll_url")


def test_http_callback_from_query_string() -> None:
    gw = GenericHttpGateway({"url": HTTP_URL})
    reports = gw.parse_callback(MultiDict(), {"id": "q1", "status": "delivered"})
    assert [(r.provider_id, r.status) for r in reports] == [("q1", DeliveryStatus.DELIVERED)]
