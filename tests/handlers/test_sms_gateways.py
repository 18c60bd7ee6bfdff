"""SMS gateways against their HTTP APIs, emulated at the requests level with ``responses``.

Each gateway: a successful send (with the portal's message id passed where the API takes one),
its documented error replies mapped to permanent or transient GatewayErrors, 5xx and network
failures as transient, polling, and delivery-report parsing. Credentials must never show up in
an error message, a log line or a ``raw`` reply.
"""

from __future__ import annotations

import base64
import json
import logging
from urllib.parse import parse_qs

import pytest
import requests
import responses
from werkzeug.datastructures import MultiDict

from handlers.sms import (
    GATEWAYS,
    DeliveryStatus,
    Gateway,
    GatewayError,
    GenericHttpGateway,
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


# --- registry ---------------------------------------------------------------------------


def test_registry_and_factory() -> None:
    assert set(GATEWAYS) == {"serwersms", "smsru", "twilio", "http"}
    gw = gateway_for("smsru", {"api_id": SECRETS["smsru_api_id"]})
    assert isinstance(gw, SmsRuGateway)
    with pytest.raises(ValueError, match="unknown SMS gateway 'nope'"):
        gateway_for("nope", {})


@pytest.mark.parametrize("cls", list(GATEWAYS.values()))
def test_every_gateway_describes_its_settings(cls: type[Gateway]) -> None:
    names = [f.name for f in cls.fields]
    assert len(names) == len(set(names))
    assert all(f.label for f in cls.fields)
    assert any(f.secret for f in cls.fields)  # somewhere to keep the credential


def test_missing_settings_name_fields_not_values() -> None:
    with pytest.raises(ValueError, match="missing settings: api_id"):
        SmsRuGateway({})
    with pytest.raises(ValueError, match="token or both username and password"):
        SerwerSmsGateway({"username": "api-user"})
    with pytest.raises(ValueError, match="from_number or messaging_service_sid"):
        TwilioGateway({"account_sid": "AC1", "auth_token": SECRETS["twilio_token"]})


def test_repr_hides_secrets() -> None:
    gw = SerwerSmsGateway({"token": SECRETS["serwersms_token"], "sender": "SKLEP"})
    assert SECRETS["serwersms_token"] not in repr(gw)
    assert "SKLEP" in repr(gw)


def test_delivery_status_values_are_the_portals() -> None:
    assert [s.value for s in DeliveryStatus] == [
        "queued",
        "sent",
        "delivered",
        "undelivered",
        "failed",
    ]
    assert DeliveryStatus.DELIVERED.final and not DeliveryStatus.SENT.final


# =====================================================================================
# SerwerSMS
# =====================================================================================

SWS_SEND = "https://api2.serwersms.pl/messages/send_sms.json"
SWS_REPORTS = "https://api2.serwersms.pl/messages/reports.json"


@pytest.fixture
def serwersms() -> SerwerSmsGateway:
    return SerwerSmsGateway({"token": SECRETS["serwersms_token"], "sender": "SKLEP"})


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


@responses.activate
def test_serwersms_send_with_token(serwersms: SerwerSmsGateway) -> None:
    responses.post(SWS_SEND, json=sws_queued())
    result = serwersms.send(
        "+48500600700", "Zamówienie wysłane", client_ref=MESSAGE_ID, callback_url=None
    )
    assert result.provider_id == "aca3944055"
    assert result.status is DeliveryStatus.QUEUED
    call = responses.calls[0]
    assert call.request.headers["Authorization"] == f"Bearer {SECRETS['serwersms_token']}"
    body = json_of(call)
    assert body["phone"] == "+48500600700"
    assert body["text"] == "Zamówienie wysłane"
    assert body["unique_id"] == MESSAGE_ID  # the portal's id is the idempotent own id
    assert body["details"] is True
    assert body["sender"] == "SKLEP"
    assert body["utf"] is True  # Polish diacritics need SMS FULL in UTF
    assert "username" not in body and "password" not in body


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


def test_serwersms_unique_id_for_refs_it_would_refuse() -> None:
    assert SerwerSmsGateway.unique_id(MESSAGE_ID) == MESSAGE_ID
    odd = SerwerSmsGateway.unique_id("msg-1/2")
    assert odd.isalnum() and 3 <= len(odd) <= 50
    assert odd == SerwerSmsGateway.unique_id("msg-1/2")  # stable across retries
    assert SerwerSmsGateway.unique_id("ab") != "ab"  # too short as is


@responses.activate
def test_serwersms_auth_failure(
    serwersms: SerwerSmsGateway, caplog: pytest.LogCaptureFixture
) -> None:
    responses.post(
        SWS_SEND,
        status=401,
        json={
            "error": {"code": 1001, "type": "InvalidUser", "message": "Incorrect login or password"}
        },
    )
    err = expect_error(
        lambda: serwersms.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="Incorrect login or password",
    )
    assert err.code == "1001"
    assert err.gateway == "serwersms"


@responses.activate
def test_serwersms_invalid_number(
    serwersms: SerwerSmsGateway, caplog: pytest.LogCaptureFixture
) -> None:
    responses.post(
        SWS_SEND,
        json={
            "error": {
                "code": 2001,
                "type": "ValidationPhoneError",
                "message": "Invalid phone number",
            }
        },
    )
    err = expect_error(
        lambda: serwersms.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="Invalid phone number",
    )
    assert err.code == "2001"


@responses.activate
def test_serwersms_message_unsent_in_details(
    serwersms: SerwerSmsGateway, caplog: pytest.LogCaptureFixture
) -> None:
    responses.post(
        SWS_SEND,
        json={
            "success": True,
            "queued": 0,
            "unsent": 1,
            "items": [
                {
                    "id": "u1",
                    "phone": "+48500600700",
                    "status": "unsent",
                    "error_code": 2001,
                    "error_message": "Invalid phone number",
                }
            ],
        },
    )
    err = expect_error(
        lambda: serwersms.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="Invalid phone number",
    )
    assert err.code == "2001"


@responses.activate
def test_serwersms_limit_exhausted_is_permanent(
    serwersms: SerwerSmsGateway, caplog: pytest.LogCaptureFixture
) -> None:
    responses.post(
        SWS_SEND,
        json={
            "error": {
                "code": 3002,
                "type": "SendError",
                "message": "Exhausted the limit of available SMS FULL",
            }
        },
    )
    expect_error(
        lambda: serwersms.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="Exhausted the limit",
    )


@responses.activate
@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_serwersms_server_errors_are_transient(
    serwersms: SerwerSmsGateway, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    responses.post(SWS_SEND, status=status, body="<html>Bad Gateway</html>")
    err = expect_error(
        lambda: serwersms.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=True,
        caplog=caplog,
    )
    assert err.http_status == status


@responses.activate
@pytest.mark.parametrize(
    "exc", [requests.ConnectTimeout("timed out"), requests.ConnectionError("refused")]
)
def test_serwersms_network_failures_are_transient(
    serwersms: SerwerSmsGateway, caplog: pytest.LogCaptureFixture, exc: Exception
) -> None:
    responses.post(SWS_SEND, body=exc)
    expect_error(
        lambda: serwersms.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=True,
        caplog=caplog,
    )


@responses.activate
def test_serwersms_poll(serwersms: SerwerSmsGateway) -> None:
    responses.post(
        SWS_REPORTS,
        json={
            "paging": {"page": 1, "count": 1},
            "items": [{"id": "aca3944055", "phone": "+48500600700", "status": "delivered"}],
        },
    )
    report = serwersms.poll("aca3944055")
    assert report.provider_id == "aca3944055"
    assert report.status is DeliveryStatus.DELIVERED
    assert report.error is None
    assert json_of(responses.calls[0])["id"] == ["aca3944055"]


@responses.activate
def test_serwersms_poll_undelivered_and_missing(
    serwersms: SerwerSmsGateway, caplog: pytest.LogCaptureFixture
) -> None:
    responses.post(
        SWS_REPORTS,
        json={"items": [{"id": "m2", "status": "undelivered", "reason": "message_expired"}]},
    )
    report = serwersms.poll("m2")
    assert report.status is DeliveryStatus.UNDELIVERED
    assert report.error == "message_expired"
    responses.post(SWS_REPORTS, json={"paging": {"page": 1, "count": 0}, "items": []})
    expect_error(lambda: serwersms.poll("nope"), transient=False, caplog=caplog, match="not found")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("delivered", DeliveryStatus.DELIVERED),
        ("undelivered", DeliveryStatus.UNDELIVERED),
        ("sent", DeliveryStatus.SENT),
        ("unsent", DeliveryStatus.FAILED),
        ("in_progress", DeliveryStatus.QUEUED),
    ],
)
def test_serwersms_callback(
    serwersms: SerwerSmsGateway, raw: str, expected: DeliveryStatus
) -> None:
    reports = serwersms.parse_callback({}, {"id": "aca3944055", "status": raw})
    assert [(r.provider_id, r.status) for r in reports] == [("aca3944055", expected)]


def test_serwersms_callback_without_a_report(serwersms: SerwerSmsGateway) -> None:
    assert serwersms.parse_callback({}, {"foo": "bar"}) == []


# =====================================================================================
# SMS.ru
# =====================================================================================

SMSRU_SEND = "https://sms.ru/sms/send"
SMSRU_STATUS = "https://sms.ru/sms/status"


@pytest.fixture
def smsru() -> SmsRuGateway:
    return SmsRuGateway({"api_id": SECRETS["smsru_api_id"], "sender": "SHOP"})


@responses.activate
def test_smsru_send(smsru: SmsRuGateway) -> None:
    responses.post(
        SMSRU_SEND,
        json={
            "status": "OK",
            "status_code": 100,
            "sms": {
                "79123456789": {"status": "OK", "status_code": 100, "sms_id": "000000-10000000"}
            },
            "balance": 4122.56,
        },
    )
    result = smsru.send("+79123456789", "Заказ готов", client_ref=MESSAGE_ID, callback_url=None)
    assert result.provider_id == "000000-10000000"
    assert result.status is DeliveryStatus.QUEUED
    call = responses.calls[0]
    assert "api_id" not in call.request.url  # the credential travels in the body only
    form = form_of(call)
    assert form["api_id"] == [SECRETS["smsru_api_id"]]
    assert form["to"] == ["79123456789"]
    assert form["msg"] == ["Заказ готов"]
    assert form["json"] == ["1"]
    assert form["from"] == ["SHOP"]
    assert "test" not in form
    assert SECRETS["smsru_api_id"] not in json.dumps(result.raw)


@responses.activate
def test_smsru_test_mode() -> None:
    gw = SmsRuGateway({"api_id": SECRETS["smsru_api_id"], "test": "1"})
    responses.post(
        SMSRU_SEND,
        json={
            "status": "OK",
            "status_code": 100,
            "sms": {"79123456789": {"status": "OK", "status_code": 100, "sms_id": "t-1"}},
        },
    )
    gw.send("+79123456789", "hi", client_ref=MESSAGE_ID, callback_url=None)
    assert form_of(responses.calls[0])["test"] == ["1"]


@responses.activate
def test_smsru_bad_api_id(smsru: SmsRuGateway, caplog: pytest.LogCaptureFixture) -> None:
    responses.post(
        SMSRU_SEND,
        json={"status": "ERROR", "status_code": 200, "status_text": "Неправильный api_id"},
    )
    err = expect_error(
        lambda: smsru.send("+79123456789", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="Неправильный api_id",
    )
    assert err.code == "200"


@responses.activate
@pytest.mark.parametrize(
    ("code", "text", "transient"),
    [
        (202, "Неправильно указан номер телефона получателя, либо на него нет маршрута", False),
        (201, "Не хватает средств на лицевом счету", False),
        (207, "На этот номер нет маршрута для доставки сообщений", False),
        (220, "Сервис временно недоступен, попробуйте чуть позже", True),
        (231, "Превышен лимит одинаковых сообщений на этот номер в минуту", True),
    ],
)
def test_smsru_per_number_errors(
    smsru: SmsRuGateway,
    caplog: pytest.LogCaptureFixture,
    code: int,
    text: str,
    transient: bool,
) -> None:
    responses.post(
        SMSRU_SEND,
        json={
            "status": "OK",
            "status_code": 100,
            "sms": {"79123456789": {"status": "ERROR", "status_code": code, "status_text": text}},
        },
    )
    err = expect_error(
        lambda: smsru.send("+79123456789", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=transient,
        caplog=caplog,
        match=text,
    )
    assert err.code == str(code)


@responses.activate
def test_smsru_server_error_code_is_transient(
    smsru: SmsRuGateway, caplog: pytest.LogCaptureFixture
) -> None:
    responses.post(
        SMSRU_SEND,
        json={"status": "ERROR", "status_code": 500, "status_text": "Ошибка на сервере"},
    )
    expect_error(
        lambda: smsru.send("+79123456789", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=True,
        caplog=caplog,
    )


@responses.activate
def test_smsru_http_5xx_and_timeout_are_transient(
    smsru: SmsRuGateway, caplog: pytest.LogCaptureFixture
) -> None:
    responses.post(SMSRU_SEND, status=503, body="Service Unavailable")
    expect_error(
        lambda: smsru.send("+79123456789", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=True,
        caplog=caplog,
    )
    responses.replace(responses.POST, SMSRU_SEND, body=requests.ReadTimeout("read timed out"))
    expect_error(
        lambda: smsru.send("+79123456789", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=True,
        caplog=caplog,
        match="no answer within 10s",
    )


@responses.activate
@pytest.mark.parametrize(
    ("code", "expected", "error"),
    [
        (100, DeliveryStatus.QUEUED, None),
        (101, DeliveryStatus.QUEUED, None),
        (102, DeliveryStatus.SENT, None),
        (103, DeliveryStatus.DELIVERED, None),
        (104, DeliveryStatus.UNDELIVERED, "Не может быть доставлено: время жизни истекло"),
        (108, DeliveryStatus.UNDELIVERED, "Не может быть доставлено: отклонено"),
    ],
)
def test_smsru_poll(
    smsru: SmsRuGateway, code: int, expected: DeliveryStatus, error: str | None
) -> None:
    entry = {"status": "OK", "status_code": code, "cost": 0.5}
    if error:
        entry["status_text"] = error
    responses.post(
        SMSRU_STATUS,
        json={"status": "OK", "status_code": 100, "sms": {"000000-000001": entry}},
    )
    report = smsru.poll("000000-000001")
    assert report.status is expected
    assert report.error == error
    form = form_of(responses.calls[0])
    assert form["sms_id"] == ["000000-000001"]
    assert form["json"] == ["1"]


@responses.activate
def test_smsru_poll_unknown_message(smsru: SmsRuGateway, caplog: pytest.LogCaptureFixture) -> None:
    responses.post(
        SMSRU_STATUS,
        json={
            "status": "OK",
            "status_code": 100,
            "sms": {
                "nope": {
                    "status": "ERROR",
                    "status_code": -1,
                    "status_text": "Сообщение не найдено",
                }
            },
        },
    )
    expect_error(
        lambda: smsru.poll("nope"), transient=False, caplog=caplog, match="Сообщение не найдено"
    )


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


# =====================================================================================
# Twilio
# =====================================================================================

TW_SID = "AC0123456789abcdef0123456789abcdef"
TW_BASE = f"https://api.twilio.com/2010-04-01/Accounts/{TW_SID}"


@pytest.fixture
def twilio() -> TwilioGateway:
    return TwilioGateway(
        {
            "account_sid": TW_SID,
            "auth_token": SECRETS["twilio_token"],
            "from_number": "+15005550006",
        }
    )


def tw_message(status: str = "queued", **extra) -> dict:
    return {
        "sid": "SM1f0e8ae6ade43cb3c0ce4525424e404f",
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


@responses.activate
def test_twilio_send(twilio: TwilioGateway) -> None:
    responses.post(f"{TW_BASE}/Messages.json", status=201, json=tw_message())
    result = twilio.send(
        "+48500600700",
        "Hello",
        client_ref=MESSAGE_ID,
        callback_url="https://app.example/sms/status/twilio?m=" + MESSAGE_ID,
    )
    assert result.provider_id == "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    assert result.status is DeliveryStatus.QUEUED
    call = responses.calls[0]
    expected_auth = base64.b64encode(f"{TW_SID}:{SECRETS['twilio_token']}".encode()).decode()
    assert call.request.headers["Authorization"] == f"Basic {expected_auth}"
    form = form_of(call)
    assert form["To"] == ["+48500600700"]
    assert form["From"] == ["+15005550006"]
    assert form["Body"] == ["Hello"]
    assert form["StatusCallback"] == ["https://app.example/sms/status/twilio?m=" + MESSAGE_ID]


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


@responses.activate
def test_twilio_auth_failure(twilio: TwilioGateway, caplog: pytest.LogCaptureFixture) -> None:
    responses.post(
        f"{TW_BASE}/Messages.json",
        status=401,
        json={
            "code": 20003,
            "message": "Authenticate",
            "more_info": "https://www.twilio.com/docs/errors/20003",
            "status": 401,
        },
    )
    err = expect_error(
        lambda: twilio.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="Authenticate",
    )
    assert (err.code, err.http_status) == ("20003", 401)


@responses.activate
def test_twilio_invalid_number(twilio: TwilioGateway, caplog: pytest.LogCaptureFixture) -> None:
    responses.post(
        f"{TW_BASE}/Messages.json",
        status=400,
        json={
            "code": 21211,
            "message": "The 'To' number +4812 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400,
        },
    )
    err = expect_error(
        lambda: twilio.send("+4812", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="is not a valid phone number",
    )
    assert err.code == "21211"


@responses.activate
@pytest.mark.parametrize(
    ("status", "body"),
    [
        (429, {"code": 20429, "message": "Too Many Requests", "status": 429}),
        (500, {"code": 20500, "message": "Internal Server Error", "status": 500}),
        (503, None),
    ],
)
def test_twilio_transient_errors(
    twilio: TwilioGateway, caplog: pytest.LogCaptureFixture, status: int, body: dict | None
) -> None:
    if body is None:
        responses.post(f"{TW_BASE}/Messages.json", status=status, body="upstream down")
    else:
        responses.post(f"{TW_BASE}/Messages.json", status=status, json=body)
    expect_error(
        lambda: twilio.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=True,
        caplog=caplog,
    )


@responses.activate
def test_twilio_network_error_is_transient(
    twilio: TwilioGateway, caplog: pytest.LogCaptureFixture
) -> None:
    responses.post(f"{TW_BASE}/Messages.json", body=requests.ConnectionError("connection reset"))
    expect_error(
        lambda: twilio.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=True,
        caplog=caplog,
        match="network error",
    )


@responses.activate
def test_twilio_poll(twilio: TwilioGateway) -> None:
    sid = "SM1f0e8ae6ade43cb3c0ce4525424e404f"
    responses.get(f"{TW_BASE}/Messages/{sid}.json", json=tw_message("delivered"))
    assert twilio.poll(sid).status is DeliveryStatus.DELIVERED
    responses.replace(
        responses.GET,
        f"{TW_BASE}/Messages/{sid}.json",
        json=tw_message(
            "undelivered", error_code=30003, error_message="Unreachable destination handset"
        ),
    )
    report = twilio.poll(sid)
    assert report.status is DeliveryStatus.UNDELIVERED
    assert report.error == "error 30003: Unreachable destination handset"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("queued", DeliveryStatus.QUEUED),
        ("sending", DeliveryStatus.QUEUED),
        ("sent", DeliveryStatus.SENT),
        ("delivered", DeliveryStatus.DELIVERED),
        ("undelivered", DeliveryStatus.UNDELIVERED),
        ("failed", DeliveryStatus.FAILED),
    ],
)
def test_twilio_callback(twilio: TwilioGateway, raw: str, expected: DeliveryStatus) -> None:
    form = MultiDict(
        {
            "MessageSid": "SM123",
            "MessageStatus": raw,
            "SmsSid": "SM123",
            "SmsStatus": raw,
            "AccountSid": TW_SID,
            "To": "+48500600700",
            "ApiVersion": "2010-04-01",
        }
    )
    if raw in ("undelivered", "failed"):
        form["ErrorCode"] = "30008"
    reports = twilio.parse_callback(form, {})
    assert [(r.provider_id, r.status) for r in reports] == [("SM123", expected)]
    if raw in ("undelivered", "failed"):
        assert reports[0].error.startswith("error 30008")


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


# =====================================================================================
# Generic HTTP gateway
# =====================================================================================

HTTP_URL = "https://sms.example.net/api/messages"


@responses.activate
def test_http_form_params_and_idempotency_header() -> None:
    gw = GenericHttpGateway(
        {
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
            "status_map": "accepted=queued, submitted=sent",
        }
    )
    responses.post(HTTP_URL, json={"data": {"messages": [{"id": 991, "state": "submitted"}]}})
    result = gw.send(
        "+48500600700", "Hi", client_ref=MESSAGE_ID, callback_url="https://app.example/dlr"
    )
    assert result.provider_id == "991"
    assert result.status is DeliveryStatus.SENT
    call = responses.calls[0]
    assert call.request.headers["Authorization"] == SECRETS["http_auth"]
    assert call.request.headers["Idempotency-Key"] == MESSAGE_ID
    assert form_of(call) == {
        "recipient": ["+48500600700"],
        "message": ["Hi"],
        "client_id": [MESSAGE_ID],
        "dlr_url": ["https://app.example/dlr"],
        "route": ["premium"],
        "sender": ["SHOP"],
    }


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


@responses.activate
def test_http_get_query() -> None:
    gw = GenericHttpGateway({"url": HTTP_URL, "method": "get", "id_path": "id"})
    responses.get(HTTP_URL, json={"id": 7})
    gw.send("+48500600700", "Hi there", client_ref=MESSAGE_ID, callback_url=None)
    assert "to=%2B48500600700" in responses.calls[0].request.url
    assert "text=Hi+there" in responses.calls[0].request.url


@responses.activate
def test_http_errors(caplog: pytest.LogCaptureFixture) -> None:
    gw = GenericHttpGateway(
        {"url": HTTP_URL, "auth_value": SECRETS["http_auth"], "error_path": "error.message"}
    )
    responses.post(HTTP_URL, status=401, json={"error": {"message": "invalid api key"}})
    expect_error(
        lambda: gw.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="invalid api key",
    )
    responses.replace(
        responses.POST, HTTP_URL, status=200, json={"error": {"message": "bad number"}}
    )
    expect_error(
        lambda: gw.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="bad number",
    )
    responses.replace(responses.POST, HTTP_URL, status=502, body="bad gateway")
    expect_error(
        lambda: gw.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=True,
        caplog=caplog,
    )
    responses.replace(responses.POST, HTTP_URL, body=requests.ConnectTimeout())
    expect_error(
        lambda: gw.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=True,
        caplog=caplog,
    )
    responses.replace(responses.POST, HTTP_URL, json={"ok": True})
    expect_error(
        lambda: gw.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="no message id",
    )


@responses.activate
def test_http_echoed_secret_is_redacted(caplog: pytest.LogCaptureFixture) -> None:
    gw = GenericHttpGateway({"url": HTTP_URL, "auth_value": SECRETS["http_auth"]})
    responses.post(HTTP_URL, status=403, body=f"key {SECRETS['http_auth']} is revoked")
    err = expect_error(
        lambda: gw.send("+48500600700", "x", client_ref=MESSAGE_ID, callback_url=None),
        transient=False,
        caplog=caplog,
        match="is revoked",
    )
    assert "***" in str(err)


@responses.activate
def test_http_poll_and_callback() -> None:
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


@pytest.mark.parametrize(
    ("config", "match"),
    [
        ({"url": "ftp://x"}, "http:// or https://"),
        ({"url": HTTP_URL, "method": "DELETE"}, "method"),
        ({"url": HTTP_URL, "body_format": "xml"}, "body_format"),
        ({"url": HTTP_URL, "json_template": "{nope"}, "json_template is not valid JSON"),
        ({"url": HTTP_URL, "status_map": "ok=great"}, "not one of"),
        ({"url": HTTP_URL, "extra_params": "novalue"}, "not key=value"),
    ],
)
def test_http_bad_settings(config: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GenericHttpGateway(config)


# --- a retried send ----------------------------------------------------------------------


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


def test_successful_send_logs_without_secrets_or_full_number(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with responses.RequestsMock() as rsps:
        rsps.post(
            SMSRU_SEND,
            json={
                "status": "OK",
                "status_code": 100,
                "sms": {"79123456789": {"status": "OK", "status_code": 100, "sms_id": "l-1"}},
            },
        )
        SmsRuGateway({"api_id": SECRETS["smsru_api_id"]}).send(
            "+79123456789", "secret text", client_ref=MESSAGE_ID, callback_url=None
        )
    assert "l-1" in caplog.text and MESSAGE_ID in caplog.text
    assert "79123456789" not in caplog.text
    assert "secret text" not in caplog.text
    assert_no_secret(caplog.text)
