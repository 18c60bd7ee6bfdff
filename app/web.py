"""The web layer: parse -> validate -> verify -> dedupe -> enqueue -> answer at once.

The callback blueprint (``/install``, ``/robots/<code>``, ``/events``) and one blueprint per
capability with its routes. No request on these paths calls the portal; the work happens
in jobs (app.jobs). Errors map to HTTP here, in one place.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from redis.exceptions import RedisError

from app import jobs
from app.errors import BadRequest, Unauthorized
from app.payloads import EventCall, InstallCall, RobotCall, read_form, to_dict
from app.registry import Capability
from app.services import Services

log = logging.getLogger(__name__)
bp = Blueprint("robot_server", __name__)
EXTENSION = "robot_server"
WAKE_UP_WINDOW = 60  # seconds a queued drain stays the only one (a started drain ends it)

INSTALL_FINISH_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Robot server</title>
<script src="//api.bitrix24.com/api/v1/"></script></head>
<body><p>The robot server is installed. Its robots appear in the automation designer.</p>
<script>if (window.BX24) { BX24.init(function () { BX24.installFinish(); }); }</script>
</body></html>"""


def services() -> Services:
    """The services of the app serving this request."""
    return current_app.extensions[EXTENSION]


def init_app(app: Flask, services: Services) -> None:
    """The callbacks and every capability's routes (a blueprint each), with error mapping."""
    app.extensions[EXTENSION] = services
    app.register_blueprint(bp)
    for capability in services.catalogue.capabilities:
        app.register_blueprint(capability_blueprint(capability))


def capability_blueprint(capability: Capability) -> Blueprint:
    """A capability's routes as a blueprint; each view gets the narrow ``Web``."""
    blueprint = Blueprint(capability.name, __name__, template_folder=capability.templates or None)
    for route in capability.routes:

        @functools.wraps(route.view)
        def view(_view: Any = route.view, **values: Any) -> Any:
            return _view(jobs.web(services()), **values)

        blueprint.add_url_rule(route.rule, route.endpoint, view, methods=list(route.methods))
    return blueprint


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
    call = InstallCall.from_form(read_form(), request.args)
    _queue_install(call)
    if call.from_page:
        return Response(INSTALL_FINISH_PAGE, mimetype="text/html")
    return jsonify(status="success")


def _queue_install(call: InstallCall) -> None:
    s = services()
    sealed = s.store.box.encrypt_json(to_dict(call))
    # An install for a portal is processed once per application token and refresh token.
    key = f"install:{call.member_id}:{call.application_token}:{call.refresh_token}"
    jobs.enqueue(
        s,
        "install",
        call.member_id,
        {"sealed": sealed},
        key=key,
        description=f"install {call.domain}",
    )


@bp.post("/robots/<code>")
def robot(code: str) -> Any:
    s = services()
    call = RobotCall.from_form(read_form())
    if call.code != code or s.catalogue.robot(code) is None:
        raise BadRequest(f"unknown robot {code[:60]!r}")
    s.verify(call.auth)
    queued = jobs.enqueue(
        s,
        "robot",
        call.auth.member_id,
        {"call": to_dict(call)},
        key=call.dedupe_key,
        retry=jobs.retry_within(call.timeout_duration, s.settings.robot_retry_intervals),
        description=f"robot {call.code} on {call.document_id.id} of {call.auth.domain}",
    )
    return jsonify(status="queued" if queued else "duplicate")


@bp.post("/events")
def event() -> Any:
    s = services()
    form = read_form()
    if str(form.get("event", "")).upper() == "ONAPPINSTALL":
        _queue_install(InstallCall.from_form(form, request.args))
        return jsonify(status="success")
    call = EventCall.from_form(form)
    s.verify(call.auth)
    if call.event == "ONAPPUNINSTALL":
        return _uninstall(s, call)
    if call.event == "ONOFFLINEEVENT":
        # The portal's offline queue has rows for us: wake the drainer (one waiting drain per
        # portal at most; one that has started lets the next wake-up queue another).
        queued = jobs.enqueue(
            s, "drain", call.auth.member_id, {}, key=f"drain:{call.auth.member_id}",
            once_for=WAKE_UP_WINDOW, description=f"drain offline events of {call.auth.domain}",
        )  # fmt: skip
        return jsonify(status="queued" if queued else "duplicate")
    if not s.catalogue.events.handlers(call.event):
        return jsonify(status="ignored")
    queued = jobs.enqueue(
        s,
        "event",
        call.auth.member_id,
        {"call": to_dict(call)},
        key=call.dedupe_key,
        retry=s.settings.event_retry_intervals,
        description=f"event {call.event} {call.fields.get('ID', '')} of {call.auth.domain}",
    )
    return jsonify(status="queued" if queued else "duplicate")


def _uninstall(s: Services, call: EventCall) -> Response:
    """The portal already revoked the tokens: forget them now (and the portal's data with
    CLEAN=1), so that no callback is accepted for it from this moment."""
    clean = str(call.data.get("CLEAN", "0")) == "1"
    s.store.deactivate(call.auth.member_id, clean=clean)
    s.installations.forget(call.auth.member_id)
    log.info("portal %s uninstalled the app (clean=%s)", call.auth.member_id, clean)
    return jsonify(status="uninstalled")
