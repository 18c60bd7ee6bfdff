"""SMS through a gateway, end to end: the portal's "Send SMS" robot, our provider, SerwerSMS.

The emulated portal, the app over HTTP, Redis and a worker are real; only SerwerSMS's HTTPS
API (a third party) is emulated with ``responses``, with its documented replies.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests
import responses
from rq.job import Job
from sqlalchemy import select

from app.registry import QUEUES
from app.store import portal_settings
from fakeportal.automation import rules
from fakeportal.crm import contacts, deals
from handlers.sms.models import sms_messages
from tests.conftest import free_port

SERWERSMS = "https://api2.serwersms.pl"
SEND_URL = f"{SERWERSMS}/messages/send_sms.json"
REPORTS_URL = f"{SERWERSMS}/messages/reports.json"
API_TOKEN = "ss-token-7f3a9c2e41b8d605"
SENDER = "robot_server_sms"
TEXT = "Dzień dobry, {{TITLE}}: Twój projekt jest w realizacji."


@pytest.fixture
def gateway() -> Iterator[responses.RequestsMock]:
    """SerwerSMS's API; everything on 127.0.0.1 (portal, app) passes through for real."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")
        yield mock


def accepted(provider_id: str = "a1b2c3d4e5", phone: str = "+48600100200") -> dict[str, Any]:
    """SerwerSMS's reply to messages/send_sms with details=true."""
    return {
        "success": True,
        "queued": 1,
        "unsent": 0,
        "items": [
            {"id": provider_id, "phone": phone, "status": "queued", "queued": "2026-11-23 10:00:00",
             "parts": 1},
        ],
    }  # fmt: skip


def sends(mock: responses.RequestsMock) -> list[dict[str, Any]]:
    return [json.loads(c.request.body) for c in mock.calls if c.request.url == SEND_URL]


def configure_serwersms(stack) -> str:
    """An admin opens the app's page in the portal and saves SerwerSMS; the report URL."""
    fields = {"serwersms.token": API_TOKEN, "serwersms.sender": "SOLARTECH"}
    text = configure_gateway(stack, "serwersms", fields)
    assert API_TOKEN not in text  # a secret is never written back into the page
    return re.search(r"Delivery report URL: <code>([^<]+)</code>", text).group(1)


def configure_gateway(stack, name: str, fields: dict[str, str]) -> str:
    """An admin opens the app's page, sets the Polish calendar and saves a gateway; the page."""
    page = stack.open_settings()
    assert page["status"] == 200, page["body"][:300]
    assert "X-Frame-Options" not in page["content_type"]
    token = re.search(r'name="form_token" value="([^"]+)"', page["body"]).group(1)
    calendar = requests.post(
        f"{stack.app_url}/settings",
        data={"member_id": stack.member_id, "form_token": token, "action": "calendar",
              "timezone": "Europe/Warsaw", "country": "pl"},
        timeout=10,
    )  # fmt: skip
    assert calendar.status_code == 200, calendar.text[:500]  # numbers without + are Polish
    saved = requests.post(
        f"{stack.app_url}/settings",
        data={"member_id": stack.member_id, "form_token": token, "action": "sms",
              "gateway": name, **fields},
        timeout=10,
    )  # fmt: skip
    assert saved.status_code == 200 and "Saved" in saved.text, saved.text[:500]
    assert "x-frame-options" not in {k.lower() for k in saved.headers}
    return saved.text


def sms_rule(stack, stage: str = "NEW") -> None:
    rules.add_sms_rule(
        stack.world, member_id=stack.member_id, category_id=0, stage_id=stage,
        client_id=stack.client_id, sender_code=SENDER, message_text=TEXT,
    )  # fmt: skip


def new_deal(stack, phone: str = "600 100 200", stage: str = "NEW") -> int:
    with stack.world.lock:
        contact = contacts.create_contact(
            stack.portal,
            {"NAME": "Anna", "LAST_NAME": "Nowak",
             "PHONE": [{"VALUE": phone, "VALUE_TYPE": "MOBILE"}]},
        )  # fmt: skip
        return deals.create_deal(
            stack.portal,
            {"TITLE": "PV 9.6 kWp Nowak", "STAGE_ID": stage, "CONTACT_IDS": [contact],
             "ASSIGNED_BY_ID": 1},
            user_id=1,
        )  # fmt: skip


def messages(stack, deal_id: int | None = None) -> list[dict[str, Any]]:
    return stack.admin.sms_messages(member_id=stack.member_id, deal_id=deal_id)


def statuses(message: dict[str, Any]) -> list[str]:
    return [h["status"] for h in message["history"]]


def retries_due_now(stack) -> int:
    """Let time pass for the retry backoff: scheduled jobs become due (no sleeping)."""
    moved = 0
    for name in QUEUES:
        registry = stack.services.queue(name).scheduled_job_registry
        for job_id in registry.get_job_ids():
            job = Job.fetch(job_id, connection=stack.services.redis)
            registry.schedule(job, datetime.now(UTC) - timedelta(seconds=1))
            moved += 1
    return moved


def test_first_stage_sms_goes_out_once_and_delivery_is_reported(stack, gateway, caplog) -> None:
    gateway.post(SEND_URL, json=accepted())
    stack.install()
    report_url = configure_serwersms(stack)
    stored = stack.services.store.engine.connect().execute(select(portal_settings.c.value)).all()
    assert stored and all(API_TOKEN not in row.value for row in stored)  # encrypted at rest
    assert stack.member_id not in report_url  # the portal is named by an opaque reference
    sms_rule(stack)

    deal_id = new_deal(stack)
    stack.settle()

    sent = sends(gateway)
    assert len(sent) == 1
    assert sent[0]["phone"] == "+48600100200"
    assert sent[0]["text"] == "Dzień dobry, PV 9.6 kWp Nowak: Twój projekt jest w realizacji."
    assert sent[0]["sender"] == "SOLARTECH" and sent[0]["utf"] is True
    assert gateway.calls[0].request.headers["Authorization"] == f"Bearer {API_TOKEN}"
    [message] = messages(stack, deal_id)
    assert sent[0]["unique_id"] == message["message_id"]  # the portal's id is the client ref
    assert message["status"] == "queued" and statuses(message) == ["queued"]

    # SerwerSMS posts the delivery report to the URL set in its panel.
    answer = requests.post(report_url, data={"id": "a1b2c3d4e5", "status": "delivered"}, timeout=10)
    assert answer.status_code == 200 and answer.text == "OK"
    stack.settle()
    [message] = messages(stack, deal_id)
    assert statuses(message) == ["queued", "delivered"]

    # The portal (or anyone) replays the SMS POST; a duplicated job runs anyway: no resend.
    [post] = stack.admin.wire_log(member_id=stack.member_id, kind="sms")
    form = dict(post["request"]["form"])  # the log hides tokens; the replayer knows them
    form["auth[application_token]"] = stack.portal.apps[stack.client_id].application_token
    replay = requests.post(post["request"]["url"], data=form, timeout=10)
    assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
    stack.enqueue("sms.send", {"message_id": message["message_id"]})
    stack.settle()
    assert len(sends(gateway)) == 1
    assert statuses(messages(stack, deal_id)[0]) == ["queued", "delivered"]
    runs = stack.services.store.runs(stack.member_id, kind="sms")
    assert {r["status"] for r in runs} == {"ok"}
    assert API_TOKEN not in caplog.text  # credentials never reach a log line


def test_gateway_outage_is_retried_with_backoff_and_sends_once(stack, gateway) -> None:
    gateway.post(SEND_URL, status=503, body="Service Unavailable")
    gateway.post(SEND_URL, json=accepted("retry-ok"))
    stack.install()
    configure_serwersms(stack)
    sms_rule(stack)
    deal_id = new_deal(stack)
    stack.settle()
    assert len(sends(gateway)) == 1
    assert statuses(messages(stack, deal_id)[0]) == []  # nothing to report yet
    runs = stack.services.store.runs(stack.member_id, kind="sms")
    assert [(r["status"], r["attempts"]) for r in runs] == [("retrying", 1)]

    assert retries_due_now(stack) == 1
    stack.settle()
    assert len(sends(gateway)) == 2  # the failed attempt and the one that went out
    [message] = messages(stack, deal_id)
    assert statuses(message) == ["queued"]
    row = stack.services.store.engine.connect().execute(select(sms_messages)).mappings().one()
    assert (row["status"], row["provider_id"], row["attempts"]) == ("queued", "retry-ok", 2)


def test_invalid_number_fails_clearly_without_calling_the_gateway(stack, gateway) -> None:
    stack.install()
    configure_serwersms(stack)
    sms_rule(stack)
    deal_id = new_deal(stack, phone="12-34")
    stack.settle()
    assert sends(gateway) == []
    [message] = messages(stack, deal_id)
    assert statuses(message) == ["failed"]
    [run] = stack.services.store.runs(stack.member_id, kind="sms")
    assert run["status"] == "failed" and "invalid phone number '12-34'" in run["error"]


def test_permanent_gateway_error_fails_with_the_gateways_reason(stack, gateway) -> None:
    refused = {"code": 1001, "type": "InvalidUser", "message": "Incorrect login or password"}
    gateway.post(SEND_URL, status=401, json={"error": refused})
    stack.install()
    configure_serwersms(stack)
    sms_rule(stack)
    deal_id = new_deal(stack)
    stack.settle()
    assert len(sends(gateway)) == 1  # no retry: credentials do not get better by waiting
    assert statuses(messages(stack, deal_id)[0]) == ["failed"]
    [run] = stack.services.store.runs(stack.member_id, kind="sms")
    assert run["status"] == "failed" and "Incorrect login or password" in run["error"]


def test_settings_page_is_for_portal_admins_only(stack, gateway) -> None:
    stack.install()
    page = stack.open_settings(user_id=2)  # a seeded employee, not an admin
    assert page["status"] == 403 and "administrator" in page["body"]
    forged = requests.post(
        f"{stack.app_url}/settings",
        data={"member_id": stack.member_id, "form_token": "9999999999.forged", "action": "sms",
              "gateway": "serwersms", "serwersms.token": "x"},
        timeout=10,
    )  # fmt: skip
    assert forged.status_code == 403
    assert stack.services.store.get_setting(stack.member_id, "sms_gateway") is None

    # With no gateway configured the message fails with the reason, nothing is sent.
    sms_rule(stack)
    deal_id = new_deal(stack)
    stack.settle()
    assert sends(gateway) == [] and statuses(messages(stack, deal_id)[0]) == ["failed"]
    [run] = stack.services.store.runs(stack.member_id, kind="sms")
    assert "no SMS gateway is configured" in run["error"]


def test_polling_reports_delivery_when_no_report_comes(stack, gateway) -> None:

    gateway.post(SEND_URL, json=accepted("poll-me"))
    report = {"id": "poll-me", "phone": "+48600100200", "status": "delivered"}
    gateway.post(REPORTS_URL, json={"items": [report]})
    stack.install()
    configure_serwersms(stack)
    sms_rule(stack)
    deal_id = new_deal(stack)
    stack.settle()
    stack.enqueue("schedule", {"schedule": "sms_poll"})
    stack.settle()
    polls = [json.loads(c.request.body) for c in gateway.calls if c.request.url == REPORTS_URL]
    assert polls == [{"id": ["poll-me"]}]
    assert statuses(messages(stack, deal_id)[0]) == ["queued", "delivered"]

    # Nothing on its way: the next run asks the gateway nothing.
    stack.enqueue("schedule", {"schedule": "sms_poll"})
    stack.settle()
    assert len([c for c in gateway.calls if c.request.url == REPORTS_URL]) == 1


def test_send_sms_robot_returns_message_id_and_status(stack, gateway) -> None:
    gateway.post(SEND_URL, json=accepted("robot-1"))
    stack.install()
    configure_serwersms(stack)
    stack.place_robot(
        "send_sms",
        "PREPARATION",
        {"message": "{{CONTACT.NAME}}, projekt {{DEAL.TITLE}} ruszył. {{DEAL.NOPE}}"},
    )
    deal_id = new_deal(stack, stage="PREPARATION")
    stack.settle()

    [flow] = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    step = flow["robots"][0]
    assert step["status"] == "completed", flow
    values = step["return_values"]
    assert re.fullmatch(r"[0-9a-f]{32}", values["message_id"])
    assert values["status"] == "queued"
    [sent] = sends(gateway)
    assert sent["phone"] == "+48600100200" and sent["unique_id"] == values["message_id"]
    assert sent["text"] == "Anna, projekt PV 9.6 kWp Nowak ruszył."


class _Gateway(BaseHTTPRequestHandler):
    """An HTTP SMS gateway on 127.0.0.1 that takes every message."""

    received: list[dict[str, list[str]]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self.received.append(parse_qs(body))
        reply = json.dumps({"id": f"gw-{len(self.received)}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args: Any) -> None:
        pass


def test_send_sms_robot_queues_the_message_while_the_gateway_is_down_and_retries(
    stack, gateway
) -> None:
    """The gateway is unreachable when the robot runs: the robot answers "queued", the send
    job retries with backoff, and the message goes out once when the gateway is back."""
    port = free_port()  # nothing listens there yet
    stack.install()
    configure_gateway(stack, "http", {"http.url": f"http://127.0.0.1:{port}/send"})
    stack.place_robot("send_sms", "PREPARATION", {"message": "{{DEAL.TITLE}}: w realizacji"})
    deal_id = new_deal(stack, stage="PREPARATION")
    stack.settle()

    [flow] = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    step = flow["robots"][0]
    assert step["status"] == "completed", flow
    assert step["return_values"]["status"] == "queued" and step["return_values"]["error"] == ""
    [robot_run] = stack.services.store.runs(stack.member_id, kind="robot")
    assert robot_run["status"] == "ok", robot_run["error"]
    runs = stack.services.store.runs(stack.member_id, kind="sms")
    assert [(r["status"], r["attempts"]) for r in runs] == [("retrying", 1)]
    assert "ConnectionError" in runs[0]["error"] or "connect" in runs[0]["error"].lower()

    _Gateway.received = []
    server = ThreadingHTTPServer(("127.0.0.1", port), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert retries_due_now(stack) == 1
        stack.settle()
    finally:
        server.shutdown()
        server.server_close()
    assert [m["to"] for m in _Gateway.received] == [["+48600100200"]]
    assert _Gateway.received[0]["text"] == ["PV 9.6 kWp Nowak: w realizacji"]
    runs = stack.services.store.runs(stack.member_id, kind="sms")
    assert [(r["status"], r["attempts"]) for r in reversed(runs)] == [("retrying", 1), ("ok", 2)]
    row = stack.services.store.engine.connect().execute(select(sms_messages)).mappings().one()
    assert (row["status"], row["provider_id"], row["origin"]) == ("queued", "gw-1", "robot")
