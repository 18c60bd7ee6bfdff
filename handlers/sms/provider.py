"""The app as the portal's SMS provider: take a message, send it once, report its fate.

The portal POSTs each message to ``/sms`` (the sender's HANDLER). The view stores it and
queues ``send_job``; the job claims the message, normalizes the number, hands it to the
gateway the portal admin configured (see handlers/settings_page.py) and reports the status with
``messageservice.message.status.update``. Later statuses come from the gateway: a delivery
report to ``/sms/status/<gateway>/<ref>`` or, as a safety net and for gateways without
reports, the ``sms_poll`` schedule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Response, abort, jsonify, request
from rq import Retry, get_current_job

from app import services as services_module
from app.context import CALENDAR_SETTING, EventContext
from app.errors import BadRequest, PortalError
from app.payloads import SmsCall
from app.registry import Route, Schedule, SmsProvider
from app.services import EVENTS, Services
from app.web import enqueue_once, form_data, job_id, services, verify

from .gateways import Gateway, GatewayError, gateway_for
from .models import NEW, PORTAL, SENDING, Message, Messages, member_by_ref, portal_ref
from .phone import InvalidPhone, mask_phone, normalize_phone

log = logging.getLogger(__name__)

SMS_PROVIDER = SmsProvider(
    code="robot_server_sms",
    name={"en": "Robot server SMS", "ru": "SMS робот-сервера", "pl": "SMS serwera robotów"},
    description={
        "en": "Sends SMS through the gateway chosen in the app's settings"
        " (SerwerSMS, SMS.ru, Twilio or any HTTP gateway).",
        "ru": "Отправляет SMS через шлюз, выбранный в настройках приложения"
        " (SerwerSMS, SMS.ru, Twilio или любой HTTP-шлюз).",
        "pl": "Wysyła SMS przez bramkę wybraną w ustawieniach aplikacji"
        " (SerwerSMS, SMS.ru, Twilio lub dowolna bramka HTTP).",
    },
)

GATEWAY_SETTING = "sms_gateway"  # {"name": "serwersms", "config": {...}}
LEGACY_COUNTRY_SETTING = "sms_country"  # read only: the country before the calendar had one
# Gateway outages: retried after 10 s, 30 s, 2 min and 10 min, then the message fails.
SEND_RETRY_INTERVALS = (10, 30, 120, 600)
REPORT_RETRY_INTERVALS = (10, 60, 300)
POLL_WINDOW = 2 * 86400  # messages older than this are no longer polled
POLL_LIMIT = 200  # per portal and run
STUCK_AFTER = 15 * 60  # a claim this old without an outcome: its worker died mid-send


class RetryLater(GatewayError):
    """The gateway is down for now and surely did not take the message: send again later."""


@dataclass(frozen=True)
class Outcome:
    """What a send came to: the message's status and, when it failed, why."""

    message_id: str
    status: str
    error: str | None = None


def _now(s: Services) -> float:
    return s.clock.now().timestamp()


def _messages(s: Services) -> Messages:
    return Messages(s.store.engine)


def callback_ref(s: Services, member_id: str) -> str:
    """The opaque, stable reference of a portal in its delivery-report URLs."""
    return portal_ref(s.store.engine, member_id, s.store.box.sign(f"sms-callback:{member_id}"))


def callback_url(s: Services, member_id: str, gateway: str) -> str:
    return s.settings.url(f"sms/status/{gateway}/{callback_ref(s, member_id)}")


def load_gateway(s: Services, member_id: str) -> Gateway:
    """The portal's configured gateway; ValueError (a clear reason) when there is none."""
    conf = s.store.get_setting(member_id, GATEWAY_SETTING)
    if not isinstance(conf, dict) or not conf.get("name"):
        raise ValueError("no SMS gateway is configured: open the app's page in Bitrix24")
    return gateway_for(str(conf["name"]), conf.get("config") or {})


def default_country(s: Services, member_id: str) -> str:
    """The country numbers without ``+`` belong to: the portal calendar's country.

    A portal whose calendar has never been given a country keeps the country its admin
    once set for SMS alone (``sms_country``, no longer written).
    """
    calendar = s.store.get_setting(member_id, CALENDAR_SETTING) or {}
    if isinstance(calendar, dict) and "country" in calendar:
        return str(calendar.get("country") or "")
    return str(s.store.get_setting(member_id, LEGACY_COUNTRY_SETTING) or "")


# sending ------------------------------------------------------------------------------------


def deliver(s: Services, member_id: str, message_id: str, *, can_retry: bool) -> Outcome:
    """Hand one stored message to the gateway, at most once.

    Raises ``RetryLater`` (after releasing the claim) when the gateway is down and did not
    take the message and ``can_retry`` allows another attempt; every other outcome is stored.
    """
    messages = _messages(s)
    msg = messages.get(member_id, message_id)
    if msg is None:
        raise LookupError(f"SMS {message_id} is not stored for this portal")
    if msg.status != NEW:
        return Outcome(message_id, msg.status, msg.error)  # sent (or being sent) already
    try:
        gateway: Gateway | None = load_gateway(s, member_id)
        reason = ""
    except ValueError as exc:
        gateway, reason = None, str(exc)
    if not messages.claim(member_id, message_id, gateway.name if gateway else "", _now(s)):
        current = messages.get(member_id, message_id)
        return Outcome(message_id, current.status if current else SENDING)
    if gateway is None:
        return _fail(s, msg, reason)
    try:
        to = normalize_phone(msg.phone, default_country(s, member_id))
    except InvalidPhone as exc:
        return _fail(s, msg, str(exc))
    try:
        result = gateway.send(
            to,
            msg.body,
            client_ref=message_id,
            callback_url=callback_url(s, member_id, gateway.name),
        )
    except GatewayError as exc:
        repeatable = not exc.maybe_sent or gateway.dedupes_by_client_ref()
        if exc.transient and repeatable and can_retry:
            messages.release(member_id, message_id, f"{gateway.title}: {exc.message}", _now(s))
            raise RetryLater(
                exc.message,
                transient=True,
                gateway=exc.gateway,
                code=exc.code,
                http_status=exc.http_status,
            ) from None
        reason = f"{gateway.title}: {exc.message}"
        if exc.transient and not repeatable:
            reason += " (not retried: the gateway may have taken it, a retry could send it twice)"
        return _fail(s, msg, reason, to=to)
    messages.finish(
        member_id, message_id, result.status.value, _now(s), to=to, provider_id=result.provider_id
    )
    log.info(
        "sms %s for %s handed to %s as %s (%s)",
        message_id,
        mask_phone(to),
        gateway.name,
        result.provider_id,
        result.status.value,
    )
    return Outcome(message_id, result.status.value)


def _fail(s: Services, msg: Message, reason: str, to: str | None = None) -> Outcome:
    _messages(s).finish(msg.member_id, msg.message_id, "failed", _now(s), to=to, error=reason)
    log.info("sms %s failed: %s", msg.message_id, reason)
    return Outcome(msg.message_id, "failed", reason)


def report(s: Services, member_id: str, message_id: str, portal: Any = None) -> str | None:
    """Tell the portal the message's current status, if it has not accepted it yet.

    Only messages the portal handed us are reported (robot messages are unknown to it).
    A transient portal failure is raised for the job to retry.
    """
    messages = _messages(s)
    msg = messages.get(member_id, message_id)
    if msg is None or msg.origin != PORTAL or msg.status in (NEW, SENDING):
        return None
    if msg.reported == msg.status:
        return msg.status
    provider = s.registry.sms_provider
    code = provider.code if provider else SMS_PROVIDER.code
    portal = portal or s.portal(member_id)
    try:
        portal.call(
            "messageservice.message.status.update",
            {"CODE": code, "MESSAGE_ID": message_id, "STATUS": msg.status},
        )
    except PortalError as exc:
        if exc.transient:
            raise
        # The portal will never take it (message unknown, sender gone): stop trying.
        log.warning("sms %s status %s refused by the portal: %s", message_id, msg.status, exc)
    messages.mark_reported(member_id, message_id, msg.status, _now(s))
    return msg.status


def _retries_left() -> bool:
    job = get_current_job()
    return bool(job is not None and job.retries_left)


def send_job(member_id: str, message_id: str) -> dict[str, Any] | None:
    """RQ job: send one message (once), then report its status to the portal."""
    s = services_module.current()
    if s.store.installation(member_id) is None:
        log.warning("sms %s dropped: portal not installed", message_id)
        return None
    started = _now(s)
    key = f"sms:{member_id}:{message_id}"
    try:
        outcome = deliver(s, member_id, message_id, can_retry=_retries_left())
    except RetryLater as exc:
        _record(s, member_id, key, "retrying", exc.message, started)
        raise
    _record(s, member_id, key, "failed" if outcome.status == "failed" else "ok", outcome.error,
            started, {"status": outcome.status})  # fmt: skip
    report(s, member_id, message_id)
    return {"message_id": message_id, "status": outcome.status}


def report_job(member_id: str, message_id: str) -> str | None:
    """RQ job: report a status a delivery report brought (the request path never calls out)."""
    s = services_module.current()
    if s.store.installation(member_id) is None:
        return None
    return report(s, member_id, message_id)


def _record(
    s: Services,
    member_id: str,
    key: str,
    status: str,
    error: str | None,
    started: float,
    result: Any = None,
) -> None:
    job = get_current_job()
    attempts = 1
    if job is not None and job.retry_intervals:
        attempts = len(job.retry_intervals) - (job.retries_left or 0) + 1
    s.store.record_run(
        member_id=member_id, kind="sms", name="send", key=key, result=result, status=status,
        error=error, attempts=attempts, started_at=started,
    )  # fmt: skip


def queue_send(s: Services, member_id: str, message_id: str) -> bool:
    """Queue the send job of a stored message once (the portal or a replayer may resend)."""
    key = f"sms:{member_id}:{message_id}"
    return enqueue_once(
        key,
        EVENTS,
        send_job,
        member_id,
        message_id,
        job_id=job_id("sms", key),
        retry=Retry(max=len(SEND_RETRY_INTERVALS), interval=list(SEND_RETRY_INTERVALS)),
    )


# web ----------------------------------------------------------------------------------------


def sms_view() -> Any:
    """``POST /sms``: the portal hands over a message. Stored, queued, acknowledged at once."""
    s = services()
    call = SmsCall.from_form(form_data())
    provider = s.registry.sms_provider
    if provider is None or call.code != provider.code:
        raise BadRequest(f"unknown sender code {call.code[:60]!r}")
    verify(call.auth)
    member_id = call.auth.member_id
    _messages(s).create(member_id, call.message_id, call.message_to, call.message_body,
                        origin=PORTAL, now=_now(s))  # fmt: skip
    queued = queue_send(s, member_id, call.message_id)
    return jsonify(status="queued" if queued else "duplicate")


def status_view(gateway: str, ref: str) -> Any:
    """``/sms/status/<gateway>/<ref>``: a gateway's delivery report. Answered at once."""
    s = services()
    member_id = member_by_ref(s.store.engine, ref)
    if member_id is None or not s.store.box.verify(f"sms-callback:{member_id}", ref):
        abort(404)
    if s.store.installation(member_id) is None:
        abort(404)
    try:
        gw = load_gateway(s, member_id)
    except ValueError:
        abort(404)
    if gw.name != gateway:
        abort(404)  # the portal has switched gateways; this one's reports are not ours
    if request.is_json:
        data: Any = request.get_json(silent=True) or {}
        params: Any = data if isinstance(data, dict) else {}
    else:
        data = params = request.form
    url = s.settings.url(request.path)
    if request.query_string:
        url += "?" + request.query_string.decode()
    if not gw.verify_callback(url, params, request.headers):
        abort(403)
    messages = _messages(s)
    for item in gw.parse_callback(data, request.args):
        msg = messages.by_provider_id(member_id, gw.name, item.provider_id)
        if msg is None:
            continue
        if messages.advance(member_id, msg.message_id, item.status.value, item.error, _now(s)):
            _queue_report(member_id, msg.message_id, item.status.value)
    return Response(gw.callback_ack, mimetype="text/plain")


def _queue_report(member_id: str, message_id: str, status: str) -> None:
    key = f"sms-status:{member_id}:{message_id}:{status}"
    enqueue_once(
        key, EVENTS, report_job, member_id, message_id, job_id=job_id("smsstatus", key),
        retry=Retry(max=len(REPORT_RETRY_INTERVALS), interval=list(REPORT_RETRY_INTERVALS)),
    )  # fmt: skip


# polling ------------------------------------------------------------------------------------


def poll(ctx: EventContext) -> dict[str, Any]:
    """Schedule ``sms_poll``: ask the gateway about messages still on their way.

    Work is in proportion to those messages: a portal with none costs no gateway or portal
    call. Also fails messages whose send job died mid-send and re-reports what the portal
    has not accepted yet.
    """
    s: Services = ctx.services
    messages = _messages(s)
    now = _now(s)
    counts = {"polled": 0, "changed": 0, "stuck": 0, "reported": 0, "errors": 0}
    for msg in messages.stuck(ctx.member_id, now - STUCK_AFTER):
        reason = "the send was interrupted; not retried: the gateway may have taken it"
        messages.finish(ctx.member_id, msg.message_id, "failed", now, error=reason)
        counts["stuck"] += 1
    pending = messages.pending(ctx.member_id, now - POLL_WINDOW, POLL_LIMIT)
    if pending:
        try:
            gw = load_gateway(s, ctx.member_id)
        except ValueError:
            gw = None
        for msg in pending:
            if gw is None or msg.gateway != gw.name or not msg.provider_id:
                continue
            try:
                state = gw.poll(msg.provider_id)
            except GatewayError as exc:
                counts["errors"] += 1
                if not exc.transient:
                    continue
                break  # the gateway is down: the next run asks again
            counts["polled"] += 1
            if messages.advance(ctx.member_id, msg.message_id, state.status.value, state.error,
                                now):  # fmt: skip
                counts["changed"] += 1
    for msg in messages.unreported(ctx.member_id):
        if report(s, ctx.member_id, msg.message_id, portal=ctx.portal):
            counts["reported"] += 1
    return counts


ROUTES = [
    Route("/sms", "sms_provider", sms_view, ("POST",)),
    Route("/sms/status/<gateway>/<ref>", "sms_status", status_view, ("GET", "POST")),
]
SCHEDULES = [Schedule("sms_poll", "*/5 * * * *", poll)]
