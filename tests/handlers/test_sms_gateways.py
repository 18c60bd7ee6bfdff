"""SMS gateways against their HTTP APIs, emulated at the requests level with ``responses``.

One set of behaviour tests runs for every gateway through ``CASES``: each case holds the
gateway's config, how its API answers in each situation (accepted, refused, asked for a
status) and the status mapping it must apply. Every gateway must: send and start in the right
status, classify refusals as permanent or transient (5xx, rate limits and network failures
transient, bad credentials permanent), poll, read delivery reports, verify callbacks, validate
its settings naming fields, and never show a credential in an error, a log line, a ``raw``
reply or its repr. What only one gateway does is in test_sms_gateway_specifics.py.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
import requests
import responses
from werkzeug.datastructures import MultiDict

from handlers.sms.gateways import (
    GATEWAYS,
    DeliveryStatus,
    Gateway,
    GatewayError,
    GenericHttpGateway,
    SendResult,
    SerwerSmsGateway,
    SmsRuGateway,
    TwilioGateway,
    gateway_for,
)

MESSAGE_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"  # the portal's 32-hex message_id
SECRETS = {
    "serwersms_token": "sws-token-7Hq9ZZ",
    "serwersms_password": "pw-Secret-4431",
    "smsru_api_id": "A1B2C3D4-5E6F-7A8B-9C0D-SMSRUSECRET1",
    "twilio_token": "twilio-auth-token-0f9e8d",
    "http_auth": "Bearer generic-gw-key-55aa",
}
CALLBACK = "https://app.example/sms/status/gw?m=" + MESSAGE_ID

Q, S, D = DeliveryStatus.QUEUED, DeliveryStatus.SENT, DeliveryStatus.DELIVERED
U, F = DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED


def form_of(call: responses.Call) -> dict[str, list[str]]:
    body = call.request.body
    if isinstance(body, bytes):
        body = body.decode()
    return parse_qs(body or "")


def json_of(call: responses.Call) -> dict:
    return json.loads(call.request.body)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in SECRETS.values():
            assert secret not in text, f"secret leaked: {text!r}"
            assert secret.split(" ")[-1] not in text, f"secret leaked: {text!r}"


def expect_error(
    call, *, transient: bool, caplog: pytest.LogCaptureFixture, match: str = ""
) -> GatewayError:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(GatewayError) as info:
        call()
    err = info.value
    assert err.transient is transient, err
    if match:
        assert match in str(err)
    assert_no_secret(str(err), repr(err), err.message, caplog.text)
    return err


# --- the case table --------------------------------------------------------------------


@dataclass(frozen=True)
class Refusal:
    """A reply (``responses`` kwargs) the gateway refuses with, and how it must be classified:
    ``transient`` or not, ``match`` in the message, and ``code``/``http_status`` where given."""

    id: str
    reply: dict[str, Any]
    transient: bool
    match: str
    code: str | None = None
    http_status: int | None = None


@dataclass(frozen=True)
class Poll:
    """The gateway's answer to a status request, and the report it must become."""

    provider_id: str
    reply: dict[str, Any]
    status: DeliveryStatus
    error: str | None = None


@dataclass(frozen=True)
class Case:
    """One gateway as the behaviour tests drive it: its settings and how its API answers."""

    cls: type[Gateway]
    config: dict[str, str]
    #: a send of ``text`` to ``to`` (with ``CALLBACK``): method and URL, the reply accepting
    #: it, the id and status that reply must give, and how the request must look
    to: str
    text: str
    send: tuple[str, str]
    accepted: dict[str, Any]
    provider_id: str
    start_status: DeliveryStatus
    check_send: Callable[[responses.Call], None]
    auth_error: Refusal
    refusals: list[Refusal]
    #: the credential, and an error reply (a refusal of the credential) quoting a text
    secret: str
    echo: Callable[[str], dict[str, Any]]
    #: method and URL of a status request for a provider id; its answers; its refusals
    #: (of a request for the id "nope")
    poll: Callable[[str], tuple[str, str]]
    polls: list[Poll]
    check_poll: Callable[[responses.Call, str], None]
    poll_refusals: list[Refusal]
    #: a delivery report (form or JSON, query) for a provider id and a raw status; each raw
    #: status's portal status (None: no report at all) and the report's error
    report: Callable[[str, str], tuple[Mapping[str, Any], Mapping[str, str]]]
    statuses: list[tuple[str, DeliveryStatus | None, str | None]]
    callback_ack: str
    signs_callbacks: bool
    #: settings the gateway must refuse, with what the message must say
    bad_configs: list[tuple[dict[str, str], str]]
    shown: str  # a setting the repr shows
    supports_client_ref: bool
    dedupes: bool

    @property
    def name(self) -> str:
        return self.cls.name

    def gateway(self) -> Gateway:
        return self.cls(self.config)


# SerwerSMS ----------------------------------------------------------------------------

SWS_SEND = "https://api2.serwersms.pl/messages/send_sms.json"
SWS_REPORTS = "https://api2.serwersms.pl/messages/reports.json"


def sws_queued(message_id: str = "aca3944055") -> dict:
    return {
        "success": True,
        "queued": 1,
        "unsent": 0,
        "items": [
            {
                "id": message_id,
                "phone": "+48500600700",
                "status": "queued",
                "queued": "2026-03-10 10:00:00",
                "parts": 1,
                "text": "Zamówienie wysłane",
            }
        ],
    }


def sws_error(code: int, type_: str, message: str, status: int = 200) -> dict[str, Any]:
    return {"status": status, "json": {"error": {"code": code, "type": type_, "message": message}}}


def sws_refusal(id_: str, code: int, type_: str, message: str, status: int = 200) -> Refusal:
    """An error in SerwerSMS's shape: all its documented codes are account or input problems."""
    return Refusal(id_, sws_error(code, type_, message, status), False, message, str(code), status)


def sws_check_send(call: responses.Call) -> None:
    assert call.request.headers["Authorization"] == f"Bearer {SECRETS['serwersms_token']}"
    assert json_of(call) == {
        "phone": "+48500600700",
        "text": "Zamówienie wysłane",
        "details": True,
        "unique_id": MESSAGE_ID,  # the portal's id is the idempotent own id
        "sender": "SKLEP",
        "utf": True,  # Polish diacritics need SMS FULL in UTF
    }  # and no username or password: the token authenticates


def sws_check_poll(call: responses.Call, provider_id: str) -> None:
    assert call.request.headers["Authorization"] == f"Bearer {SECRETS['serwersms_token']}"
    assert json_of(call)["id"] == [provider_id]


SWS_UNSENT = {
    "id": "u1",
    "phone": "+48500600700",
    "status": "unsent",
    "error_code": 2001,
    "error_message": "Invalid phone number",
}

SERWERSMS = Case(
    cls=SerwerSmsGateway,
    config={"token": SECRETS["serwersms_token"], "sender": "SKLEP"},
    to="+48500600700",
    text="Zamówienie wysłane",
    send=("POST", SWS_SEND),
    accepted={"json": sws_queued()},
    provider_id="aca3944055",
    start_status=Q,
    check_send=sws_check_send,
    auth_error=sws_refusal("auth", 1001, "InvalidUser", "Incorrect login or password", 401),
    refusals=[
        sws_refusal("invalid-number", 2001, "ValidationPhoneError", "Invalid phone number"),
        sws_refusal("limit", 3002, "SendError", "Exhausted the limit of available SMS FULL"),
        Refusal(
            "unsent-in-details",
            {"json": {"success": True, "queued": 0, "unsent": 1, "items": [SWS_UNSENT]}},
            False,
            "Invalid phone number",
            "2001",
        ),
        Refusal("nothing-queued", {"json": {"success": True, "queued": 0}}, False, "not queued"),
        Refusal(
            "no-id",
            {"json": {"queued": 1, "items": [{"status": "queued"}]}},
            False,
            "no message id",
        ),
    ],
    secret=SECRETS["serwersms_token"],
    echo=lambda text: sws_error(1001, "InvalidUser", text, 401),
    poll=lambda provider_id: ("POST", SWS_REPORTS),
    polls=[
        Poll(
            "aca3944055",
            {
                "json": {
                    "paging": {"page": 1, "count": 1},
                    "items": [{"id": "aca3944055", "phone": "+48500600700", "status": "delivered"}],
                }
            },
            D,
        ),
        Poll(
            "m2",
            {
                "json": {
                    "items": [{"id": "m2", "status": "undelivered", "reason": "message_expired"}]
                }
            },
            U,
            "message_expired",
        ),
    ],
    check_poll=sws_check_poll,
    poll_refusals=[
        Refusal(
            "not-found",
            {"json": {"paging": {"page": 1, "count": 0}, "items": []}},
            False,
            "not found",
        ),
    ],
    report=lambda provider_id, raw: ({}, {"id": provider_id, "status": raw}),
    statuses=[
        ("delivered", D, None),
        ("undelivered", U, "undelivered"),
        ("sent", S, None),
        ("unsent", F, "unsent"),
        ("in_progress", Q, None),
        ("pending", Q, None),
        ("saved", Q, None),
        ("queued", Q, None),
        ("DELIVERED", D, None),
        ("something-new", S, None),
    ],
    callback_ack="OK",
    signs_callbacks=False,
    bad_configs=[
        ({"username": "api-user"}, "token or both username and password"),
        ({"password": SECRETS["serwersms_password"]}, "token or both username and password"),
        ({"sender": "SKLEP"}, "token or both username and password"),
    ],
    shown="SKLEP",
    supports_client_ref=True,
    dedupes=False,
)


# SMS.ru -------------------------------------------------------------------------------

SMSRU_SEND = "https://sms.ru/sms/send"
SMSRU_STATUS = "https://sms.ru/sms/status"
SMSRU_ID = "000000-000001"
EXPIRED = "Не может быть доставлено: время жизни истекло"
REJECTED = "Не может быть доставлено: отклонено"


def smsru_sent(sms_id: str = "000000-10000000") -> dict:
    ok = {"status": "OK", "status_code": 100, "sms_id": sms_id}
    return {"status": "OK", "status_code": 100, "sms": {"79123456789": ok}, "balance": 4122.56}


def smsru_number_error(code: int, text: str, transient: bool) -> Refusal:
    """The request went through but the number's entry is an error."""
    error = {"status": "ERROR", "status_code": code, "status_text": text}
    reply = {"json": {"status": "OK", "status_code": 100, "sms": {"79123456789": error}}}
    return Refusal(f"number-error-{code}", reply, transient, text, str(code))


def smsru_error(code: int, text: str) -> dict[str, Any]:
    """The reply when the whole request failed (credentials, server trouble)."""
    return {"json": {"status": "ERROR", "status_code": code, "status_text": text}}


def smsru_request_error(code: int, text: str, transient: bool) -> Refusal:
    return Refusal(f"request-error-{code}", smsru_error(code, text), transient, text, str(code))


def smsru_status(provider_id: str, code: int, text: str | None = None) -> dict[str, Any]:
    """The reply to a status request: a known ``code`` with its cost, or an error code."""
    entry: dict[str, Any] = {"status": "ERROR", "status_code": code}
    if code > 0:
        entry = {"status": "OK", "status_code": code, "cost": 0.5}
    if text:
        entry["status_text"] = text
    return {"json": {"status": "OK", "status_code": 100, "sms": {provider_id: entry}}}


def smsru_check_send(call: responses.Call) -> None:
    assert "api_id" not in call.request.url  # the credential travels in the body only
    assert form_of(call) == {
        "api_id": [SECRETS["smsru_api_id"]],
        "to": ["79123456789"],
        "msg": ["Заказ готов"],
        "json": ["1"],
        "from": ["SHOP"],
    }  # and no "test": a real send


def smsru_check_poll(call: responses.Call, provider_id: str) -> None:
    assert "api_id" not in call.request.url
    form = form_of(call)
    assert form["sms_id"] == [provider_id]
    assert form["json"] == ["1"]
    assert form["api_id"] == [SECRETS["smsru_api_id"]]


SMSRU = Case(
    cls=SmsRuGateway,
    config={"api_id": SECRETS["smsru_api_id"], "sender": "SHOP"},
    to="+79123456789",
    text="Заказ готов",
    send=("POST", SMSRU_SEND),
    accepted={"json": smsru_sent()},
    provider_id="000000-10000000",
    start_status=Q,
    check_send=smsru_check_send,
    auth_error=smsru_request_error(200, "Неправильный api_id", False),
    refusals=[
        smsru_number_error(
            202, "Неправильно указан номер телефона получателя, либо на него нет маршрута", False
        ),
        smsru_number_error(201, "Не хватает средств на лицевом счету", False),
        smsru_number_error(207, "На этот номер нет маршрута для доставки сообщений", False),
        smsru_number_error(220, "Сервис временно недоступен, попробуйте чуть позже", True),
        smsru_number_error(231, "Превышен лимит одинаковых сообщений на этот номер в минуту", True),
        smsru_request_error(500, "Ошибка на сервере", True),
        Refusal("no-entry", {"json": {"status": "OK", "sms": {}}}, False, "no result for the"),
        Refusal("no-id", {"json": smsru_sent(sms_id="")}, False, "no sms_id"),
    ],
    secret=SECRETS["smsru_api_id"],
    echo=lambda text: smsru_error(200, text),
    poll=lambda provider_id: ("POST", SMSRU_STATUS),
    polls=[
        Poll(SMSRU_ID, smsru_status(SMSRU_ID, 100), Q),
        Poll(SMSRU_ID, smsru_status(SMSRU_ID, 101), Q),
        Poll(SMSRU_ID, smsru_status(SMSRU_ID, 102), S),
        Poll(SMSRU_ID, smsru_status(SMSRU_ID, 103), D),
        Poll(SMSRU_ID, smsru_status(SMSRU_ID, 104, EXPIRED), U, EXPIRED),
        Poll(SMSRU_ID, smsru_status(SMSRU_ID, 108, REJECTED), U, REJECTED),
        Poll(SMSRU_ID, smsru_status(SMSRU_ID, 150), U, "no route to this number"),
    ],
    check_poll=smsru_check_poll,
    poll_refusals=[
        Refusal(
            "not-found",
            smsru_status("nope", -1, "Сообщение не найдено"),
            False,
            "Сообщение не найдено",
            "-1",
        ),
        Refusal("not-in-reply", {"json": {"status": "OK", "sms": {}}}, False, "not in the reply"),
    ],
    report=lambda provider_id, raw: (
        MultiDict([("data[0]", f"sms_status\n{provider_id}\n{raw}\n1741600000")]),
        {},
    ),
    statuses=[
        ("100", Q, None),
        ("101", Q, None),
        ("102", S, None),
        ("103", D, None),
        ("104", U, "lifetime expired"),
        ("105", U, "deleted by the operator"),
        ("106", U, "failure in the phone"),
        ("107", U, "unknown reason"),
        ("108", U, "rejected"),
        ("110", D, None),
        ("150", U, "no route to this number"),
        ("-1", None, None),  # "not found" is no delivery report
        ("999", None, None),
    ],
    callback_ack="100",
    signs_callbacks=False,
    bad_configs=[
        ({}, "missing settings: api_id"),
        ({"sender": "SHOP", "test": "1"}, "missing settings: api_id"),
    ],
    shown="SHOP",
    supports_client_ref=False,
    dedupes=False,
)


# Twilio -------------------------------------------------------------------------------

TW_SID = "AC0123456789abcdef0123456789abcdef"
TW_BASE = f"https://api.twilio.com/2010-04-01/Accounts/{TW_SID}"
TW_MESSAGE_SID = "SM1f0e8ae6ade43cb3c0ce4525424e404f"


def tw_message(status: str = "queued", **extra) -> dict:
    return {
        "sid": TW_MESSAGE_SID,
        "account_sid": TW_SID,
        "to": "+48500600700",
        "from": "+15005550006",
        "body": "Hello",
        "status": status,
        "error_code": None,
        "error_message": None,
        "api_version": "2010-04-01",
        **extra,
    }


def tw_error(status: int, code: int, message: str) -> dict[str, Any]:
    more_info = f"https://www.twilio.com/docs/errors/{code}"
    return {
        "status": status,
        "json": {"code": code, "message": message, "more_info": more_info, "status": status},
    }


def tw_refusal(id_: str, status: int, code: int, message: str, transient: bool) -> Refusal:
    return Refusal(id_, tw_error(status, code, message), transient, message, str(code), status)


def tw_check_auth(call: responses.Call) -> None:
    expected = base64.b64encode(f"{TW_SID}:{SECRETS['twilio_token']}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected}"


def tw_check_send(call: responses.Call) -> None:
    tw_check_auth(call)
    assert form_of(call) == {
        "To": ["+48500600700"],
        "From": ["+15005550006"],
        "Body": ["Hello"],
        "StatusCallback": [CALLBACK],
    }


def tw_report(provider_id: str, raw: str) -> tuple[MultiDict, dict]:
    form = {
        "MessageSid": provider_id,
        "MessageStatus": raw,
        "SmsSid": provider_id,
        "SmsStatus": raw,
        "AccountSid": TW_SID,
        "To": "+48500600700",
        "ApiVersion": "2010-04-01",
        "ErrorCode": "30008",  # in the report's error only where the message did not arrive
    }
    return MultiDict(form), {}


TWILIO = Case(
    cls=TwilioGateway,
    config={
        "account_sid": TW_SID,
        "auth_token": SECRETS["twilio_token"],
        "from_number": "+15005550006",
    },
    to="+48500600700",
    text="Hello",
    send=("POST", f"{TW_BASE}/Messages.json"),
    accepted={"status": 201, "json": tw_message()},
    provider_id=TW_MESSAGE_SID,
    start_status=Q,
    check_send=tw_check_send,
    auth_error=tw_refusal("auth", 401, 20003, "Authenticate", False),
    refusals=[
        tw_refusal(
            "invalid-number",
            400,
            21211,
            "The 'To' number +4812 is not a valid phone number.",
            False,
        ),
        tw_refusal("too-many-requests", 429, 20429, "Too Many Requests", True),
        tw_refusal("too-many-requests-code", 400, 20429, "Too Many Requests", True),  # code alone
        tw_refusal("server-error", 500, 20500, "Internal Server Error", True),
        Refusal(
            "failed-at-once",
            {"status": 201, "json": tw_message("failed", error_code=30007, error_message="Spam")},
            False,
            "error 30007: Spam",
        ),
        Refusal("no-sid", {"status": 201, "json": tw_message(sid=None)}, False, "no sid"),
    ],
    secret=SECRETS["twilio_token"],
    echo=lambda text: tw_error(401, 20003, text),
    poll=lambda provider_id: ("GET", f"{TW_BASE}/Messages/{provider_id}.json"),
    polls=[
        Poll(TW_MESSAGE_SID, {"json": tw_message("delivered")}, D),
        Poll(
            TW_MESSAGE_SID,
            {
                "json": tw_message(
                    "undelivered", error_code=30003, error_message="Unreachable destination handset"
                )
            },
            U,
            "error 30003: Unreachable destination handset",
        ),
    ],
    check_poll=lambda call, provider_id: tw_check_auth(call),
    poll_refusals=[
        tw_refusal("not-found", 404, 20404, "The requested resource was not found", False)
    ],
    report=tw_report,
    statuses=[
        ("accepted", Q, None),
        ("scheduled", Q, None),
        ("queued", Q, None),
        ("sending", Q, None),
        ("sent", S, None),
        ("delivered", D, None),
        ("read", D, None),
        ("undelivered", U, "error 30008: undelivered"),
        ("partially_delivered", U, "error 30008: partially_delivered"),
        ("failed", F, "error 30008: failed"),
        ("canceled", F, "error 30008: canceled"),
        ("Delivered", D, None),
        ("something-new", Q, None),
    ],
    callback_ack="",
    signs_callbacks=True,
    bad_configs=[
        (
            {"account_sid": "AC1", "auth_token": SECRETS["twilio_token"]},
            "from_number or messaging_service_sid",
        ),
        (
            {"auth_token": SECRETS["twilio_token"], "from_number": "+1"},
            "missing settings: account_sid",
        ),
        ({"account_sid": TW_SID, "from_number": "+1500"}, "missing settings: auth_token"),
    ],
    shown="+15005550006",
    supports_client_ref=False,
    dedupes=False,
)


# Generic HTTP gateway -----------------------------------------------------------------

HTTP_URL = "https://sms.example.net/api/messages"
HTTP_CONFIG = {
    "url": HTTP_URL,
    "to_param": "recipient",
    "text_param": "message",
    "ref_param": "client_id",
    "callback_param": "dlr_url",
    "extra_params": "route=premium, sender=SHOP",
    "auth_value": SECRETS["http_auth"],
    "idempotency_header": "Idempotency-Key",
    "id_path": "data.messages[0].id",
    "status_path": "data.messages[0].state",
    "error_path": "error.message",
    "status_map": "accepted=queued, submitted=sent, DELIVRD=delivered, UNDELIV=undelivered,"
    " REJECTD=failed",
    "poll_url": "https://sms.example.net/api/messages/{id}",
    "callback_id_key": "msg.id",
    "callback_status_key": "msg.state",
    "callback_error_key": "msg.reason",
}


def http_message(state: str, **extra: Any) -> dict[str, Any]:
    return {"json": {"data": {"messages": [{"state": state, **extra}]}}}


def http_error(status: int, message: str) -> dict[str, Any]:
    return {"status": status, "json": {"error": {"message": message}}}


def http_check_send(call: responses.Call) -> None:
    assert call.request.headers["Authorization"] == SECRETS["http_auth"]
    assert call.request.headers["Idempotency-Key"] == MESSAGE_ID
    assert form_of(call) == {
        "recipient": ["+48500600700"],
        "message": ["Hi"],
        "client_id": [MESSAGE_ID],
        "dlr_url": [CALLBACK],
        "route": ["premium"],
        "sender": ["SHOP"],
    }


def http_check_poll(call: responses.Call, provider_id: str) -> None:
    assert call.request.url == "https://sms.example.net/api/messages/" + quote(provider_id, "")
    assert call.request.headers["Authorization"] == SECRETS["http_auth"]
    assert "Idempotency-Key" not in call.request.headers


HTTP = Case(
    cls=GenericHttpGateway,
    config=HTTP_CONFIG,
    to="+48500600700",
    text="Hi",
    send=("POST", HTTP_URL),
    accepted=http_message("submitted", id=991),
    provider_id="991",
    start_status=S,
    check_send=http_check_send,
    auth_error=Refusal(
        "auth", http_error(401, "invalid api key"), False, "invalid api key", None, 401
    ),
    refusals=[
        Refusal("error-in-ok-reply", http_error(200, "bad number"), False, "bad number", None, 200),
        Refusal(
            "error-page", {"status": 400, "body": "bad request"}, False, "HTTP 400: bad request"
        ),
        Refusal("request-timeout", {"status": 408, "body": "timeout"}, True, "HTTP 408", None, 408),
        Refusal("failed", http_message("REJECTD", id=5), False, "reports the message failed"),
        Refusal("no-id", {"json": {"ok": True}}, False, "no message id"),
    ],
    secret=SECRETS["http_auth"],
    echo=lambda text: {"status": 403, "body": text},
    poll=lambda provider_id: (
        "GET",
        "https://sms.example.net/api/messages/" + quote(provider_id, safe=""),
    ),
    polls=[
        Poll("m/1", http_message("DELIVRD"), D),
        Poll("m2", http_message("UNDELIV"), U, "UNDELIV"),
        Poll("m3", http_message("enroute"), S),  # unknown words read as sent
    ],
    check_poll=http_check_poll,
    poll_refusals=[
        Refusal(
            "not-found", http_error(404, "no such message"), False, "no such message", None, 404
        ),
        Refusal("no-status", {"json": {"data": {}}}, False, "no status"),
    ],
    report=lambda provider_id, raw: ({"msg": {"id": provider_id, "state": raw}}, {}),
    statuses=[
        ("accepted", Q, None),
        ("submitted", S, None),
        ("DELIVRD", D, None),
        ("UNDELIV", U, "UNDELIV"),
        ("REJECTD", F, "REJECTD"),
        ("delivered", D, None),  # the portal's own words need no mapping
        ("failed", F, "failed"),
        ("enroute", S, None),
    ],
    callback_ack="OK",
    signs_callbacks=False,
    bad_configs=[
        ({}, "missing settings: url"),
        ({"url": "ftp://x"}, "http:// or https://"),
        ({"url": HTTP_URL, "auth_value": SECRETS["http_auth"], "method": "DELETE"}, "method"),
        ({"url": HTTP_URL, "body_format": "xml"}, "body_format"),
        (
            {"url": HTTP_URL, "auth_value": SECRETS["http_auth"], "json_template": "{nope"},
            "json_template is not valid JSON",
        ),
        ({"url": HTTP_URL, "status_map": "ok=great"}, "not one of"),
        ({"url": HTTP_URL, "extra_params": "novalue"}, "not key=value"),
    ],
    shown=HTTP_URL,
    supports_client_ref=True,
    dedupes=True,  # the idempotency header carries the portal's id
)

CASES = [SERWERSMS, SMSRU, TWILIO, HTTP]


def per_gateway(
    items: Callable[[Case], list[tuple[str, Any]]] | None = None,
) -> pytest.MarkDecorator:
    """Parametrize a test over the gateways (``case``), or over every gateway's ``items``
    (``case``, ``item``): ``items(case)`` gives (label, item) pairs."""
    if items is None:
        return pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
    params = [
        pytest.param(c, item, id=f"{c.name}-{label}") for c in CASES for label, item in items(c)
    ]
    return pytest.mark.parametrize(("case", "item"), params)


def expect_refusal(
    case: Case, refusal: Refusal, call: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    """``call`` raises the GatewayError ``refusal`` describes, with no secret anywhere."""
    err = expect_error(call, transient=refusal.transient, caplog=caplog, match=refusal.match)
    assert err.gateway == case.name
    assert refusal.code is None or err.code == refusal.code
    assert refusal.http_status is None or err.http_status == refusal.http_status


def add(method_url: tuple[str, str], reply: Mapping[str, Any]) -> None:
    """Have ``responses`` answer ``reply`` to the request ``method_url``."""
    method, url = method_url
    responses.add(method, url, **reply)


def send(case: Case) -> SendResult:
    """Send the case's message, as the provider does: the portal's id and a callback URL."""
    return case.gateway().send(case.to, case.text, client_ref=MESSAGE_ID, callback_url=CALLBACK)


# --- registry and settings -------------------------------------------------------------


def test_registry_and_factory() -> None:
    assert list(GATEWAYS) == [c.name for c in CASES]  # the settings page's order
    assert [GATEWAYS[c.name] for c in CASES] == [c.cls for c in CASES]
    gw = gateway_for("smsru", {"api_id": SECRETS["smsru_api_id"]})
    assert isinstance(gw, SmsRuGateway)
    with pytest.raises(ValueError, match="unknown SMS gateway 'nope'"):
        gateway_for("nope", {})


def test_delivery_status_values_are_the_portals() -> None:
    assert [s.value for s in DeliveryStatus] == [
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "failed",
    ]
    assert DeliveryStatus.DELIVERED.final and not DeliveryStatus.SENT.final
    assert DeliveryStatus.UNDELIVERED.final and DeliveryStatus.FAILED.final
    assert not DeliveryStatus.QUEUED.final


@pytest.mark.parametrize("cls", list(GATEWAYS.values()))
def test_every_gateway_describes_its_settings(cls: type[Gateway]) -> None:
    names = [f.name for f in cls.fields]
    assert len(names) == len(set(names))
    assert all(f.label for f in cls.fields)
    assert any(f.secret for f in cls.fields)  # somewhere to keep the credential


@per_gateway()
def test_factory_builds_the_gateway(case: Case) -> None:
    gw = gateway_for(case.name, case.config, timeout=3)
    assert type(gw) is case.cls
    assert gw.timeout == 3
    assert gw.supports_client_ref is case.supports_client_ref
    assert gw.dedupes_by_client_ref() is case.dedupes


@per_gateway(lambda c: [(str(i), bad) for i, bad in enumerate(c.bad_configs)])
def test_bad_settings_name_fields_never_secrets(case: Case, item: tuple[dict, str]) -> None:
    config, match = item
    with pytest.raises(ValueError, match=match) as info:
        case.cls(config)
    assert_no_secret(str(info.value))


@per_gateway()
def test_repr_hides_secrets(case: Case) -> None:
    shown = repr(case.gateway())
    assert_no_secret(shown)
    assert "***" in shown
    assert case.shown in shown


# --- sending ---------------------------------------------------------------------------


@responses.activate
@per_gateway()
def test_send_accepted(case: Case) -> None:
    add(case.send, case.accepted)
    result = send(case)
    assert result.provider_id == case.provider_id
    assert result.status is case.start_status
    assert len(responses.calls) == 1
    case.check_send(responses.calls[0])
    assert_no_secret(json.dumps(result.raw, ensure_ascii=False))


@responses.activate
@per_gateway()
def test_secret_echoed_in_an_accepted_reply_is_redacted_from_raw(case: Case) -> None:
    reply = dict(case.accepted)
    reply["json"] = {**reply["json"], "echo": f"key {case.secret}"}
    add(case.send, reply)
    raw = json.dumps(send(case).raw, ensure_ascii=False)
    assert_no_secret(raw)
    assert "key ***" in raw


@per_gateway()
def test_accepted_send_is_logged_without_secrets_number_or_text(
    case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with responses.RequestsMock() as rsps:
        rsps.add(*case.send, **case.accepted)
        send(case)
    assert case.provider_id in caplog.text and MESSAGE_ID in caplog.text
    assert case.to.lstrip("+") not in caplog.text
    assert case.text not in caplog.text
    assert_no_secret(caplog.text)


@responses.activate
@per_gateway()
def test_auth_error_is_permanent(case: Case, caplog: pytest.LogCaptureFixture) -> None:
    assert case.auth_error.transient is False
    add(case.send, case.auth_error.reply)
    expect_refusal(case, case.auth_error, lambda: send(case), caplog)


@responses.activate
@per_gateway(lambda c: [(r.id, r) for r in c.refusals])
def test_send_refused(case: Case, item: Refusal, caplog: pytest.LogCaptureFixture) -> None:
    add(case.send, item.reply)
    expect_refusal(case, item, lambda: send(case), caplog)


@responses.activate
@per_gateway()
def test_secret_echoed_in_an_error_is_redacted(
    case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    add(case.send, case.echo(f"key {case.secret} is revoked"))
    err = expect_error(
        lambda: send(case), transient=False, caplog=caplog, match="key *** is revoked"
    )
    assert "***" in err.message


@responses.activate
@per_gateway(lambda c: [(str(s), s) for s in (500, 502, 503, 429)])
def test_server_errors_are_transient(
    case: Case, item: int, caplog: pytest.LogCaptureFixture
) -> None:
    add(case.send, {"status": item, "body": "<html>Bad Gateway</html>"})
    err = expect_error(lambda: send(case), transient=True, caplog=caplog)
    assert err.http_status == item


@responses.activate
@per_gateway(lambda c: [(str(s), s) for s in (200, 201)])
def test_a_reply_that_is_not_json_is_permanent(
    case: Case, item: int, caplog: pytest.LogCaptureFixture
) -> None:
    add(case.send, {"status": item, "body": "<html>maintenance</html>"})
    err = expect_error(lambda: send(case), transient=False, caplog=caplog, match="not JSON")
    assert err.http_status == item


NETWORK_FAILURES = [
    # what went wrong, the error text, whether the gateway may have got the message
    ("connect-timeout", (requests.ConnectTimeout("timed out"), "no answer within 10s", False)),
    ("read-timeout", (requests.ReadTimeout("read timed out"), "no answer within 10s", True)),
    ("refused", (requests.ConnectionError("refused"), "network error", None)),
    ("reset", (requests.ConnectionError("reset"), "network error: ConnectionError: reset", None)),
]


@responses.activate
@per_gateway(lambda c: NETWORK_FAILURES)
def test_network_failures_are_transient(
    case: Case, item: tuple[Exception, str, bool | None], caplog: pytest.LogCaptureFixture
) -> None:
    exc, match, maybe_sent = item
    add(case.send, {"body": exc})
    err = expect_error(lambda: send(case), transient=True, caplog=caplog, match=match)
    assert maybe_sent is None or err.maybe_sent is maybe_sent


# --- polling ---------------------------------------------------------------------------


@responses.activate
@per_gateway(lambda c: [(f"{i}-{p.status}", p) for i, p in enumerate(c.polls)])
def test_poll(case: Case, item: Poll) -> None:
    add(case.poll(item.provider_id), item.reply)
    report = case.gateway().poll(item.provider_id)
    assert (report.provider_id, report.status, report.error) == (
        item.provider_id,
        item.status,
        item.error,
    )
    assert len(responses.calls) == 1
    case.check_poll(responses.calls[0], item.provider_id)


@responses.activate
@per_gateway(lambda c: [(r.id, r) for r in c.poll_refusals])
def test_poll_refused(case: Case, item: Refusal, caplog: pytest.LogCaptureFixture) -> None:
    add(case.poll("nope"), item.reply)
    expect_refusal(case, item, lambda: case.gateway().poll("nope"), caplog)


@responses.activate
@per_gateway()
def test_poll_when_the_gateway_is_down(case: Case, caplog: pytest.LogCaptureFixture) -> None:
    add(case.poll("x1"), {"status": 503, "body": "Service Unavailable"})
    err = expect_error(lambda: case.gateway().poll("x1"), transient=True, caplog=caplog)
    assert err.http_status == 503
    responses.replace(*case.poll("x1"), body=requests.ReadTimeout())
    expect_error(
        lambda: case.gateway().poll("x1"), transient=True, caplog=caplog, match="no answer"
    )


# --- delivery reports ------------------------------------------------------------------


@per_gateway(lambda c: [(raw, (raw, status, error)) for raw, status, error in c.statuses])
def test_delivery_report_status_mapping(
    case: Case, item: tuple[str, DeliveryStatus | None, str | None]
) -> None:
    raw, status, error = item
    reports = case.gateway().parse_callback(*case.report("msg-1", raw))
    if status is None:
        assert reports == []
    else:
        assert [(r.provider_id, r.status, r.error) for r in reports] == [("msg-1", status, error)]


@per_gateway()
def test_callback_without_a_report(case: Case) -> None:
    gw = case.gateway()
    assert gw.parse_callback({}, {}) == []
    assert gw.parse_callback(MultiDict(), {"foo": "bar"}) == []
    assert gw.parse_callback(MultiDict({"foo": "bar"}), {}) == []


@per_gateway()
def test_callback_ack(case: Case) -> None:
    assert case.gateway().callback_ack == case.callback_ack


@per_gateway()
def test_verify_callback(case: Case) -> None:
    gw = case.gateway()
    form, _ = case.report("msg-1", "delivered")
    if case.signs_callbacks:
        assert not gw.verify_callback(CALLBACK, form, {})
        assert not gw.verify_callback(CALLBACK, form, {"X-Twilio-Signature": "forged"})
    else:
        assert gw.verify_callback(CALLBACK, form, {})  # nothing to check: accepted
