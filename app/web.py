"""The web layer: parse -> validate -> verify -> dedupe -> enqueue -> answer at once.

No request on these paths calls the portal; the work happens in RQ jobs (app.jobs).
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import parse_qsl

from flask import Blueprint, Response, current_app, jsonify, request
from redis.exceptions import RedisError

from app import jobs
from app.errors import BadRequest, Unauthorized
from app.payloads import (
    MAX_FIELDS,
    Auth,
    EventCall,
    InstallCall,
    RobotCall,
    parse_form,
    to_dict,
)
from app.services import EVENTS, ROBOTS, Services
from app.store import Installation

log = logging.getLogger(__name__)
bp = Blueprint("robot_server", __name__)

DEDUPE_TTL = 7 * 86400
INSTALL_FINISH_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Robot server</title>
<script src="//api.bitrix24.com/api/v1/"></script></head>
<body><p>The robot server is installed. Its robots appear in the automation designer.</p>
<script>if (window.BX24) { BX24.init(function () { BX24.installFinish(); }); }</script>
</body></html>"""


def services() -> Services:
    return current_app.extensions["robot_server"]


def form_data() -> dict[str, Any]:
    """The POSTed form, re-nested. The portal sends urlencoded bodies; those are read with
    the standard library's parser (faster than building a MultiDict on the hot path)."""
    if request.mimetype == "application/x-www-form-urlencoded":
        try:
            body = request.get_data(cache=True).decode("utf-8")
            pairs = parse_qsl(
                body, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"unreadable form: {exc}") from None
        return parse_form(pairs)
    if request.mimetype == "multipart/form-data":
        return parse_form(request.form.items(multi=True))
    raise BadRequest("expected a form POST (application/x-www-form-urlencoded)")


def verify(auth: Auth) -> Installation:
    """The installation the callback claims to come from, or Unauthorized."""
    cache = services().installations
    installation = cache.get(auth.member_id)
    if installation is not None and not installation.token_matches(auth.application_token):
        installation = cache.get(auth.member_id, fresh=True)  # reinstalled meanwhile?
    if installation is None:
        raise Unauthorized("unknown portal")
    if not installation.token_matches(auth.application_token):
        raise Unauthorized("application_token does not match this portal's installation")
    return installation


def job_id(kind: str, key: str) -> str:
    return f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"


def _first_time(key: str) -> bool:
    """True the first time a callback key is seen (the portal or a replayer may resend)."""
    return bool(services().redis.set(f"seen:{key}", 1, nx=True, ex=DEDUPE_TTL))


def enqueue_once(key: str, queue: str, func: Any, *args: Any, **options: Any) -> bool:
    """Queue a job unless ``key`` was seen. Give a ``description``: RQ logs it and keeps it
    in Redis instead of the arguments (which may hold event tokens and personal data)."""
    if not _first_time(key):
        return False
    try:
        with services().redis.pipeline() as pipe:
            services().enqueue(queue, func, *args, pipeline=pipe, **options)
            pipe.execute()
    except RedisError:
        services().redis.delete(f"seen:{key}")
        raise
    return True


@bp.app_errorhandler(BadRequest)
def _bad_request(exc: BadRequest) -> tuple[Response, int]:
    log.info("bad callback on %s: %s", request.path, exc)
    return jsonify(error="bad_request", error_description=str(exc)), 400


@bp.app_errorhandler(Unauthorized)
def _unauthorized(exc: Unauthorized) -> tuple[Response, int]:
    log.warning("rejected callback on %s: %s", request.path, exc)
    return jsonify(error="unauthorized", error_description=str(exc)), 401


@bp.app_errorhandler(RedisError)
def _queue_down(exc: RedisError) -> tuple[Response, int]:
    log.error("queue unavailable: %s", type(exc).__name__)
    return jsonify(error="unavailable", error_description="queue unavailable, try again"), 503


@bp.get("/healthz")
def healthz() -> Response:
    services().redis.ping()
    return jsonify(status="ok")


@bp.route("/install", methods=["GET", "POST"])
def install() -> Any:
    """Both ways a portal installs the app: the ONAPPINSTALL event and the install page."""
    if request.method == "GET":
        return Response("POST the install callback here.", mimetype="text/plain")
    call = InstallCall.from_form(form_data(), request.args)
    _queue_install(call)
    if call.from_page:
        return Response(INSTALL_FINISH_PAGE, mimetype="text/html")
    return jsonify(status="success")


def _queue_install(call: InstallCall) -> None:
    sealed = services().store.box.encrypt_json(to_dict(call))
    # An install for a portal is processed once per application token and refresh token.
    key = f"install:{call.member_id}:{call.application_token}:{call.refresh_token}"
    enqueue_once(
        key,
        EVENTS,
        jobs.install_portal,
        sealed,
        job_id=job_id("install", key),
        description=f"install {call.domain}",
    )


@bp.post("/robots/<code>")
def robot(code: str) -> Any:
    call = RobotCall.from_form(form_data())
    if call.code != code or services().registry.robot(code) is None:
        raise BadRequest(f"unknown robot {code[:60]!r}")
    verify(call.auth)
    retry = jobs.retry_within(call.timeout_duration, services().settings.robot_retry_intervals)
    queued = enqueue_once(
        call.dedupe_key,
        ROBOTS,
        jobs.run_robot,
        to_dict(call),
        job_id=job_id("robot", call.dedupe_key),
        retry=retry,
        description=f"robot {call.code} on {call.document_id.id} of {call.auth.domain}",
    )
    return jsonify(status="queued" if queued else "duplicate")


@bp.post("/events")
def event() -> Any:
    form = form_data()
    if str(form.get("event", "")).upper() == "ONAPPINSTALL":
        _queue_install(InstallCall.from_form(form, request.args))
        return jsonify(status="success")
    call = EventCall.from_form(form)
    verify(call.auth)
    if call.event == "ONAPPUNINSTALL":
        return _uninstall(call)
    if not services().registry.events.handlers(call.event):
        return jsonify(status="ignored")
    queued = enqueue_once(
        call.dedupe_key,
        EVENTS,
        jobs.handle_event,
        to_dict(call),
        job_id=job_id("event", call.dedupe_key),
        retry=jobs.retry_within(0, services().settings.event_retry_intervals),
        description=f"event {call.event} {call.fields.get('ID', '')} of {call.auth.domain}",
    )
    return jsonify(status="queued" if queued else "duplicate")


def _uninstall(call: EventCall) -> Response:
    """The portal already revoked the tokens: forget them now (and the portal's data with
    CLEAN=1), so that no callback is accepted for it from this moment."""
    clean = str(call.data.get("CLEAN", "0")) == "1"
    services().store.deactivate(call.auth.member_id, clean=clean)
    services().installations.forget(call.auth.member_id)
    log.info("portal %s uninstalled the app (clean=%s)", call.auth.member_id, clean)
    return jsonify(status="uninstalled")
