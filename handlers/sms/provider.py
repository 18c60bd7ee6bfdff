"""The app as the portal's SMS provider: take a message, send it once, report its fate.

The portal POSTs each message to ``/sms`` (the sender's HANDLER). The view stores it and
queues the ``sms.send`` job; the job claims the message, normalizes the number, hands it to
the gateway the portal admin configured (the settings page's SMS section, section.py) and
reports the status with ``messageservice.message.status.update``. Later statuses come from
the gateway: a delivery report to ``/sms/status/<gateway>/<ref>`` or, as a safety net and
for gateways without reports, the ``sms_poll`` schedule.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flask import Response, abort, jsonify, request

from app.context import Context, JobContext, Web
from app.errors import BadRequest, PortalError, TryAgain
from app.payloads import SmsCall
from app.registry import Job, Route, Schedule, SmsProvider
from app.store import Store
from handlers import calendar

from .gateways import Gateway, GatewayError, gateway_for
from .models import NEW, PORTAL, ROBOT, SENDING, Message, Messages, member_by_ref, portal_ref
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


def _now(ctx: Context | Web) -> float:
    return ctx.clock.now().timestamp()


def _messages(ctx: Context | Web) -> Messages:
    return Messages(ctx.store.engine)


def callback_ref(store: Store, member_id: str) -> str:
    """The opaque, stable reference of a portal in its delivery-report URLs."""
    return portal_ref(store.engine, member_id, store.box.sign(f"sms-callback:{member_id}"))


def callback_url(ctx: Context, gateway: str) -> str:
    return ctx.url(f"sms/status/{gateway}/{callback_ref(ctx.store, ctx.member_id)}")


def load_gateway(store: Store, member_id: str) -> Gateway:
    """The portal's configured gateway; ValueError (a clear reason) when there is none."""
    conf = store.get_setting(member_id, GATEWAY_SETTING)
    if not isinstance(conf, dict) or not conf.get("name"):
        raise ValueError("no SMS gateway is configured: open the app's page in Bitrix24")
    return gateway_for(str(conf["name"]), conf.get("config") or {})


# sending ------------------------------------------------------------------------------------


def send_key(member_id: str, message_id: str) -> str:
    """The send job's key: one job per stored message, however often it is handed over."""
    return f"sms:{member_id}:{message_id}"


def send(ctx: Context, phone: str, text: str, message_id: str) -> Outcome:
    """Send a message of the app's own (the ``send_sms`` robot) through the portal's gateway.

    Stored once under ``message_id`` and sent at most once; when the gateway is down the
    message stays queued and the ``sms.send`` job retries it (10 s to 10 min).
    """
    _messages(ctx).create(ctx.member_id, message_id, phone, text, origin=ROBOT, now=_now(ctx))
    try:
        return deliver(ctx, message_id, can_retry=True)
    except RetryLater as exc:
        ctx.enqueue("sms.send", key=send_key(ctx.member_id, message_id), message_id=message_id)
        ctx.log.info("sms %s queued for retry: %s", message_id, exc.message)
        return Outcome(message_id, "queued")


def deliver(ctx: Context, message_id: str, *, can_retry: bool) -> Outcome:
    """Hand one stored message to the gateway, at most once.

    Raises ``RetryLater`` (after releasing the claim) when the gateway is down and did not
    take the message and ``can_retry`` allows another attempt; every other outcome is stored.
    """
    member_id = ctx.member_id
    messages = _messages(ctx)
    msg = messages.get(member_id, message_id)
    if msg is None:
        raise LookupError(f"SMS {message_id} is not stored for this portal")
    if msg.status != NEW:
        return Outcome(message_id, msg.status, msg.error)  # sent (or being sent) already
    try:
        gateway: Gateway | None = load_gateway(ctx.store, member_id)
        reason = ""
    except ValueError as exc:
        gateway, reason = None, str(exc)
    if not messages.claim(member_id, message_id, gateway.name if gateway else "", _now(ctx)):
        current = messages.get(member_id, message_id)
        return Outcome(message_id, current.status if current else SENDING)
    if gateway is None:
        return _fail(ctx, msg, reason)
    try:
        to = normalize_phone(msg.phone, calendar.country(ctx))
    except InvalidPhone as exc:
        return _fail(ctx, msg, str(exc))
    try:
        result = gateway.send(
            to, msg.body, client_ref=message_id, callback_url=callback_url(ctx, gateway.name)
        )
    except GatewayError as exc:
        repeatable = not exc.maybe_sent or gateway.dedupes_by_client_ref()
        if exc.transient and repeatable and can_retry:
            messages.release(member_id, message_id, f"{gateway.title}: {exc.message}", _now(ctx))
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
        return _fail(ctx, msg, reason, to=to)
    messages.finish(
        member_id, message_id, result.status.value, _now(ctx), to=to,
        provider_id=result.provider_id,
    )  # fmt: skip
    log.info(
        "sms %s for %s handed to %s as %s (%s)",
        message_id,
        mask_phone(to),
        gateway.name,
        result.provider_id,
        result.status.value,
    )
    return Outcome(message_id, result.status.value)


def _fail(ctx: Context, msg: Message, reason: str, to: str | None = None) -> Outcome:
    _messages(ctx).finish(msg.member_id, msg.message_id, "failed", _now(ctx), to=to, error=reason)
    log.info("sms %s failed: %s", msg.message_id, reason)
    return Outcome(msg.message_id, "failed", reason)


def report(ctx: Context, message_id: str) -> str | None:
    """Tell the portal the message's current status, if it has not accepted it yet.

    Only messages the portal handed us are reported (robot messages are unknown to it).
    A transient portal failure is raised for the job to retry.
    """
    messages = _messages(ctx)
    msg = messages.get(ctx.member_id, message_id)
    if msg is None or msg.origin != PORTAL or msg.status in (NEW, SENDING):
        return None
    if msg.reported == msg.status:
        return msg.status
    try:
        ctx.portal.call(
            "messageservice.message.status.update",
            {"CODE": SMS_PROVIDER.code, "MESSAGE_ID": message_id, "STATUS": msg.status},
        )
    except PortalError as exc:
        if exc.transient:
            raise
        # The portal will never take it (message unknown, sender gone): stop trying.
        log.warning("sms %s status %s refused by the portal: %s", message_id, msg.status, exc)
    messages.mark_reported(ctx.member_id, message_id, msg.status, _now(ctx))
    return msg.status


def send_job(ctx: JobContext, message_id: str) -> dict[str, Any]:
    """Job ``sms.send``: send one message (once), then report its status to the portal."""
    ctx.run.name = "send"
    try:
        outcome = deliver(ctx, message_id, can_retry=ctx.will_retry)
    except RetryLater as exc:
        raise TryAgain(exc.message) from None
    if outcome.status == "failed":
        ctx.run.fail(outcome.error or "failed")
    report(ctx, message_id)
    return {"message_id": message_id, "status": outcome.status}


def report_job(ctx: JobContext, message_id: str) -> str | None:
    """Job ``sms.report``: report a status a delivery report brought (the request path
    never calls out)."""
    ctx.run.keep = False
    return report(ctx, message_id)


# web ----------------------------------------------------------------------------------------


def sms_view(web: Web) -> Any:
    """``POST /sms``: the portal hands over a message. Stored, queued, acknowledged at once."""
    call = SmsCall.from_form(web.form())
    if call.code != SMS_PROVIDER.code:
        raise BadRequest(f"unknown sender code {call.code[:60]!r}")
    web.verify(call.auth)
    member_id = call.auth.member_id
    _messages(web).create(member_id, call.message_id, call.message_to, call.message_body,
                          origin=PORTAL, now=_now(web))  # fmt: skip
    key = send_key(member_id, call.message_id)
    queued = web.enqueue("sms.send", member_id, key=key, message_id=call.message_id)
    return jsonify(status="queued" if queued else "duplicate")


def status_view(web: Web, gateway: str, ref: str) -> Any:
    """``/sms/status/<gateway>/<ref>``: a gateway's delivery report. Answered at once."""
    member_id = member_by_ref(web.store.engine, ref)
    if member_id is None or not web.store.box.verify(f"sms-callback:{member_id}", ref):
        abort(404)
    if not web.installed(member_id):
        abort(404)
    try:
        gw = load_gateway(web.store, member_id)
    except ValueError:
        abort(404)
    if gw.name != gateway:
        abort(404)  # the portal has switched gateways; this one's reports are not ours
    if request.is_json:
        data: Any = request.get_json(silent=True) or {}
        params: Any = data if isinstance(data, dict) else {}
    else:
        data = params = request.form
    url = web.url(request.path)
    if request.query_string:
        url += "?" + request.query_string.decode()
    if not gw.verify_callback(url, params, request.headers):
        abort(403)
    messages = _messages(web)
    for item in gw.parse_callback(data, request.args):
        msg = messages.by_provider_id(member_id, gw.name, item.provider_id)
        if msg is None:
            continue
        if messages.advance(member_id, msg.message_id, item.status.value, item.error, _now(web)):
            key = f"sms-status:{member_id}:{msg.message_id}:{item.status.value}"
            web.enqueue("sms.report", member_id, key=key, message_id=msg.message_id)
    return Response(gw.callback_ack, mimetype="text/plain")


# polling ------------------------------------------------------------------------------------


def poll(ctx: JobContext) -> dict[str, Any]:
    """Schedule ``sms_poll``: ask the gateway about messages still on their way.

    Work is in proportion to those messages: a portal with none costs no gateway or portal
    call. Also fails messages whose send job died mid-send and re-reports what the portal
    has not accepted yet.
    """
    messages = _messages(ctx)
    now = _now(ctx)
    counts = {"polled": 0, "changed": 0, "stuck": 0, "reported": 0, "errors": 0}
    for msg in messages.stuck(ctx.member_id, now - STUCK_AFTER):
        reason = "the send was interrupted; not retried: the gateway may have taken it"
        messages.finish(ctx.member_id, msg.message_id, "failed", now, error=reason)
        counts["stuck"] += 1
    pending = messages.pending(ctx.member_id, now - POLL_WINDOW, POLL_LIMIT)
    if pending:
        try:
            gw = load_gateway(ctx.store, ctx.member_id)
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
        if report(ctx, msg.message_id):
            counts["reported"] += 1
    return counts


ROUTES = (
    Route("/sms", "sms_provider", sms_view, ("POST",)),
    Route("/sms/status/<gateway>/<ref>", "sms_status", status_view, ("GET", "POST")),
)
SCHEDULES = (Schedule("sms_poll", "*/5 * * * *", poll),)
JOBS = (
    Job("sms.send", send_job, retry=SEND_RETRY_INTERVALS),
    Job("sms.report", report_job, retry=REPORT_RETRY_INTERVALS),
)
