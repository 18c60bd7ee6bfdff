"""The only functions RQ runs. Arguments are primitives (payload dicts, member ids)."""

from __future__ import annotations

import logging
import time
from typing import Any

from rq import Retry, get_current_job

from app import services as services_module
from app.context import RobotContext
from app.errors import AppError, AuthFailed, PortalError, RobotFailed
from app.payloads import (
    EventCall,
    RobotCall,
    event_call_from_dict,
    robot_call_from_dict,
)
from app.services import Services

log = logging.getLogger(__name__)


def _services() -> Services:
    return services_module.current()


def _attempt() -> tuple[int, bool]:
    """(this attempt's number, whether RQ will retry after it)."""
    job = get_current_job()
    if job is None or job.retry_intervals is None:
        return 1, False
    retries_left = job.retries_left or 0
    total = len(job.retry_intervals) if job.retry_intervals else 0
    return (total - retries_left) + 1, retries_left > 0


def retry_within(seconds: int, intervals: tuple[int, ...]) -> Retry | None:
    """Retries whose waits all fit in ``seconds`` (0 = the portal waits forever)."""
    chosen: list[int] = []
    spent = 0
    for interval in intervals:
        if seconds and spent + interval >= seconds:
            break
        chosen.append(interval)
        spent += interval
    return Retry(max=len(chosen), interval=chosen) if chosen else None


# Robots ----------------------------------------------------------------------------------


def run_robot(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Run one robot call and answer its workflow (also when the robot fails)."""
    s = _services()
    call = robot_call_from_dict(payload)
    member_id = call.auth.member_id
    started = time.time()
    attempt, will_retry = _attempt()
    installation = s.store.installation(member_id)
    robot = s.registry.robot(call.code)
    if installation is None or robot is None:
        log.warning(
            "robot call for %s dropped: %s",
            member_id,
            "portal not installed" if robot else "unknown robot",
        )
        return None
    ctx = s.context(
        member_id,
        RobotContext,
        robot=call.code,
        document=call.document_id,
        workflow_id=call.workflow_id,
    )
    portal, logger = ctx.portal, ctx.log
    done = s.store.run_by_key(call.dedupe_key)
    if done is not None:
        # The robot already did its work; only the answer to the workflow is missing.
        return _answer(s, portal, call, done["result"] or {}, "done", logger)
    inputs = dict(call.properties)
    try:
        ctx.properties = robot.typed_properties(call.properties)
        result = dict(robot.run(ctx) or {})
    except RobotFailed as exc:
        _record(s, call, inputs, None, "failed", str(exc), attempt, started)
        logger.info("robot failed: %s", exc)
        _answer(s, portal, call, {}, f"failed: {exc}", logger)
        return None
    except PortalError as exc:
        if exc.transient and will_retry and not isinstance(exc, AuthFailed):
            _record(s, call, inputs, None, "retrying", str(exc), attempt, started)
            raise
        _record(s, call, inputs, None, "failed", str(exc), attempt, started)
        message = f"failed: the portal answered {exc.code or exc.status}: {exc.description}"
        _try_answer(s, portal, call, message, logger)
        return None
    except AppError as exc:
        _record(s, call, inputs, None, "failed", str(exc), attempt, started)
        _try_answer(s, portal, call, f"failed: {exc}", logger)
        return None
    except Exception as exc:  # a bug: answer so the workflow does not hang, keep the trace
        logger.exception("robot crashed")
        _record(s, call, inputs, None, "failed", f"{type(exc).__name__}: {exc}", attempt, started)
        _try_answer(s, portal, call, "failed: internal error in the robot server", logger)
        return None
    _record(s, call, inputs, result, "ok", None, attempt, started)
    return _answer(s, portal, call, result, "done", logger)


def _record(
    s: Services,
    call: RobotCall,
    inputs: Any,
    result: Any,
    status: str,
    error: str | None,
    attempt: int,
    started: float,
) -> None:
    s.store.record_run(
        member_id=call.auth.member_id,
        kind="robot",
        name=call.code,
        document=call.document_id.id,
        key=call.dedupe_key,
        inputs=inputs,
        result=result,
        status=status,
        error=error,
        attempts=attempt,
        started_at=started,
    )


def _answer(
    s: Services,
    portal: Any,
    call: RobotCall,
    result: dict[str, Any],
    outcome: str,
    logger: logging.LoggerAdapter,
) -> dict[str, Any]:
    if call.use_subscription:
        message = f"{call.code}: {outcome}" + (
            "; " + ", ".join(f"{k}={v}" for k, v in result.items()) if result else ""
        )
        portal.call(
            "bizproc.event.send",
            {
                "EVENT_TOKEN": call.event_token,
                "RETURN_VALUES": {k: _wire(v) for k, v in result.items()},
                "LOG_MESSAGE": message[:1000],
            },
        )
    logger.info("robot answered: %s", outcome)
    return result


def _try_answer(
    s: Services, portal: Any, call: RobotCall, message: str, logger: logging.LoggerAdapter
) -> None:
    if not call.use_subscription:
        return
    try:
        portal.call(
            "bizproc.event.send",
            {"EVENT_TOKEN": call.event_token, "RETURN_VALUES": {}, "LOG_MESSAGE": message[:1000]},
        )
    except PortalError as exc:
        logger.warning("could not answer the workflow: %s", exc)


def _wire(value: Any) -> Any:
    if isinstance(value, bool):
        return "Y" if value else "N"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# Events ----------------------------------------------------------------------------------


def handle_event(payload: dict[str, Any]) -> int:
    """Run every handler registered for the event; returns how many ran."""
    s = _services()
    call: EventCall = event_call_from_dict(payload)
    member_id = call.auth.member_id
    started = time.time()
    attempt, will_retry = _attempt()
    handlers = s.registry.events.handlers(call.event)
    if s.store.installation(member_id) is None:
        log.warning("event %s for %s dropped: portal not installed", call.event, member_id)
        return 0
    ctx = s.context(member_id, event=call.event)
    logger = ctx.log
    status, error = "ok", None
    try:
        for handler in handlers:
            handler(ctx, call)
    except PortalError as exc:
        status, error = ("retrying" if exc.transient and will_retry else "failed"), str(exc)
        if status == "retrying":
            raise
    except AppError as exc:
        status, error = "failed", str(exc)
    except Exception as exc:
        logger.exception("event handler crashed")
        status, error = "failed", f"{type(exc).__name__}: {exc}"
    finally:
        s.store.record_run(
            member_id=member_id,
            kind="event",
            name=call.event,
            document=str(call.fields.get("ID", "")),
            key=call.dedupe_key,
            inputs=payload,  # the whole (token-free) call: `flask replay-failed` re-runs it
            status=status,
            error=error,
            attempts=attempt,
            started_at=started,
        )
    return len(handlers)


# Install and registrations -----------------------------------------------------------------


def install_portal(sealed: str) -> str:
    """Verify an install callback with the OAuth server, store it, then sync registrations.

    The install callback carries no proof we could check locally, so its refresh token is
    exchanged at the OAuth server (with our client secret): only a real installation of
    this app has one that works, and the answer names the portal (member_id, endpoint).
    """
    from app.oauth import exchange_refresh_token

    s = _services()
    data = s.store.box.decrypt_json(sealed)
    started = time.time()
    member_id = data["member_id"]
    try:
        tokens = exchange_refresh_token(s.settings, data["refresh_token"])
    except AuthFailed as exc:
        s.store.record_run(
            member_id=member_id,
            kind="install",
            name="install",
            status="failed",
            error=f"install not confirmed by the OAuth server: {exc.description}",
            started_at=started,
        )
        log.warning("install for %s not confirmed by the OAuth server", member_id)
        return "rejected"
    if tokens.get("member_id") and tokens["member_id"] != member_id:
        s.store.record_run(
            member_id=member_id,
            kind="install",
            name="install",
            status="failed",
            error="install callback names another portal than its tokens",
            started_at=started,
        )
        return "rejected"
    s.store.save_installation(
        member_id=member_id,
        domain=data["domain"],
        client_endpoint=tokens.get("client_endpoint") or data["client_endpoint"],
        server_endpoint=tokens.get("server_endpoint") or data["server_endpoint"],
        application_token=data["application_token"],
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_at=float(tokens.get("expires") or time.time() + 3600),
        scope=tokens.get("scope") or data["scope"],
        status=tokens.get("status") or data["status"],
        language=data["language"],
        installed_by=int(data.get("user_id") or 0),
    )
    s.store.record_run(
        member_id=member_id, kind="install", name="install", status="ok", started_at=started
    )
    sync_portal(member_id)
    return "installed"


def sync_portal(member_id: str) -> dict[str, Any]:
    """Bring one portal's registrations in line with the registry."""
    from installers.sync import sync_registrations

    s = _services()
    installation = s.store.installation(member_id)
    if installation is None:
        raise AppError(f"portal {member_id} is not installed")
    started = time.time()
    report = sync_registrations(s.portal(member_id), s.registry, s.settings, installation.language)
    s.store.mark_synced(member_id)
    s.store.record_run(
        member_id=member_id,
        kind="install",
        name="sync",
        result=report,
        status="ok",
        started_at=started,
    )
    return report


# Schedules ---------------------------------------------------------------------------------


def run_schedule(name: str) -> int:
    """Fan a schedule out: one job per installed portal (so one slow portal delays no other)."""
    from app.services import BULK

    s = _services()
    if name not in s.registry.schedules:
        raise AppError(f"unknown schedule {name}")
    portals = s.store.installations()
    for inst in portals:
        s.enqueue(BULK, run_schedule_for, name, inst.member_id)
    return len(portals)


def run_schedule_for(name: str, member_id: str) -> dict[str, Any] | None:
    """Run one schedule for one portal and record the run."""
    s = _services()
    schedule = s.registry.schedules[name]
    if s.store.installation(member_id) is None:
        return None
    started = time.time()
    attempt, _ = _attempt()
    ctx = s.context(member_id, schedule=name, event=f"schedule:{name}")
    try:
        report = dict(schedule.run(ctx) or {})
    except Exception as exc:
        s.store.record_run(
            member_id=member_id,
            kind="schedule",
            name=name,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            attempts=attempt,
            started_at=started,
        )
        raise
    s.store.record_run(
        member_id=member_id,
        kind="schedule",
        name=name,
        result=report,
        status="ok",
        attempts=attempt,
        started_at=started,
    )
    return report
