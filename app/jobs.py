"""The one job runner, and the app's own jobs (robots, events, install, sync, schedules).

RQ runs one function, ``run(job, member_id, args, key)``, with primitive arguments. It finds
the job (the app's own below, or a capability's in the catalogue), loads the installation,
counts attempts, applies the retry policy, calls the job with its context and records the
run. Jobs are plain functions ``job(ctx, **args)``; none touches RQ.
"""

from __future__ import annotations

import hashlib
import logging
import time
from datetime import datetime
from typing import Any, TypeVar

from redis.exceptions import RedisError
from rq import Retry, get_current_job

from app.context import (
    Context,
    EventContext,
    JobContext,
    PortalSettings,
    RobotContext,
    RunRecord,
    Web,
)
from app.errors import AppError, AuthFailed, PortalError, RobotFailed, transient
from app.payloads import Auth, RobotCall, event_call_from_dict, robot_call_from_dict
from app.registry import BULK, EVENTS, ROBOTS, Catalogue, Job
from app.services import Services
from app.store import Installation

log = logging.getLogger(__name__)
C = TypeVar("C", bound=Context)
DEDUPE_TTL = 7 * 86400
RUNNER = "app.jobs.run"  # the one function RQ runs
REGISTRATIONS = "registrations"  # portal setting: fingerprints of what sync last registered

_current: Services | None = None


def current() -> Services:
    """The services of this process, as the composition root set them."""
    if _current is None:
        raise RuntimeError("no services in this process: start workers with `robot-server worker`")
    return _current


def use(services: Services | None) -> None:
    global _current
    _current = services


def retry_within(seconds: int, intervals: tuple[int, ...]) -> tuple[int, ...]:
    """The retry waits that all fit in ``seconds`` (0 = the portal waits forever)."""
    chosen: list[int] = []
    spent = 0
    for interval in intervals:
        if seconds and spent + interval >= seconds:
            break
        chosen.append(interval)
        spent += interval
    return tuple(chosen)


def job_spec(catalogue: Catalogue, name: str) -> Job:
    spec = APP_JOBS.get(name) or catalogue.jobs.get(name)
    if spec is None:
        raise AppError(f"unknown job {name!r}")
    return spec


# Queueing and contexts ----------------------------------------------------------------------


def enqueue(
    s: Services,
    job: str,
    member_id: str,
    args: dict[str, Any],
    *,
    key: str = "",
    retry: tuple[int, ...] | None = None,
    description: str = "",
    at: datetime | None = None,
) -> bool:
    """Queue ``job`` (the app's own, or a capability's from the catalogue) for one portal.

    With a ``key`` the job is queued once: a key seen before (a portal resending, a
    replayer) queues nothing and answers False. ``retry`` overrides the job's own waits.
    RQ keeps and logs the ``description``, not the arguments (which may hold event tokens
    and personal data).
    """
    spec = job_spec(s.catalogue, job)
    waits = spec.retry if retry is None else retry
    options: dict[str, Any] = {
        "job_id": job_id(job, key) if key else None,
        "retry": Retry(max=len(waits), interval=list(waits)) if waits else None,
        "failure_ttl": 7 * 86400,
        "description": description or f"{job} for {member_id}",
    }
    if key and not s.redis.set(f"seen:{key}", 1, nx=True, ex=DEDUPE_TTL):
        return False
    q = s.queue(spec.queue)
    try:
        with s.redis.pipeline() as pipe:
            if at is not None:
                q.enqueue_at(at, RUNNER, job, member_id, args, key, pipeline=pipe, **options)
            else:
                q.enqueue(RUNNER, job, member_id, args, key, pipeline=pipe, **options)
            pipe.execute()
    except RedisError:
        if key:
            s.redis.delete(f"seen:{key}")
        raise
    return True


def job_id(job: str, key: str) -> str:
    """An RQ job id for a key (letters, digits, ``_`` and ``-`` only)."""
    return f"{job.replace('.', '_')}-{hashlib.sha256(key.encode()).hexdigest()[:40]}"


class AppRuntime:
    """What contexts and views ask of this process (``app.context.Runtime``)."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def url(self, path: str) -> str:
        return self.services.settings.url(path)

    def enqueue(self, job: str, member_id: str, args: dict[str, Any], *, key: str) -> bool:
        return enqueue(self.services, job, member_id, args, key=key)

    def release(self, key: str) -> None:
        """Forget that ``key`` was queued, so that it may be queued again."""
        self.services.redis.delete(f"seen:{key}")

    def verify(self, auth: Auth) -> Installation:
        return self.services.verify(auth)

    def installed(self, member_id: str) -> bool:
        return self.services.installations.get(member_id) is not None


def context(s: Services, member_id: str, kind: type[C] = JobContext, **own: Any) -> C:  # type: ignore[assignment]
    """A robot's, job's or page's context for one portal; ``name`` names the run in logs,
    ``own`` fills the kind's own fields."""
    name = own.pop("name", "")
    logger = logging.LoggerAdapter(log, {"member_id": member_id, "run": name})
    return kind(
        member_id=member_id,
        portal=s.portal(member_id),
        settings=PortalSettings(s.store, member_id),
        clock=s.clock,
        log=logger,
        store=s.store,
        _runtime=AppRuntime(s),
        **own,
    )


def web(s: Services) -> Web:
    """What a capability's view receives."""
    return Web(AppRuntime(s), s.store, s.clock)


def _services(ctx: Context) -> Services:
    """The services behind a context: for the app's own jobs below, not for capabilities."""
    runtime = ctx._runtime
    assert isinstance(runtime, AppRuntime)
    return runtime.services


# The runner --------------------------------------------------------------------------------


def run(job: str, member_id: str, args: dict[str, Any], key: str = "") -> Any:
    """The function RQ runs: one job for one portal."""
    return execute(current(), job, member_id, args, key=key)


def execute(
    s: Services,
    job: str,
    member_id: str,
    args: dict[str, Any],
    *,
    key: str = "",
    reraise: bool = False,
) -> Any:
    """Run a job now and record it; a transient failure with retries left is raised for RQ
    to retry (``reraise``: every failure is raised, for a command that reports it)."""
    spec = job_spec(s.catalogue, job)
    attempt, will_retry = _attempt()
    if spec.portal and s.store.installation(member_id) is None:
        log.warning("%s for %s dropped: portal not installed", job, member_id)
        if reraise:
            raise AppError(f"portal {member_id} is not installed")
        return None
    record = RunRecord(
        spec.run_kind, job, key=key, inputs=args, attempt=attempt, started_at=time.time()
    )
    ctx = context(s, member_id, JobContext, name=job, will_retry=will_retry, run=record)
    try:
        result = spec.run(ctx, **args)
    except Exception as exc:
        retrying = will_retry and transient(exc)
        if not isinstance(exc, AppError):
            ctx.log.exception("%s crashed", job)
        reason = str(exc) if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
        write_run(s, member_id, record, "retrying" if retrying else "failed", reason)
        if retrying or reraise:
            raise
        ctx.log.info("%s failed: %s", job, reason)
        return None
    write_run(s, member_id, record, record.status or "ok", record.error, result)
    return result


def _attempt() -> tuple[int, bool]:
    """(this attempt's number, whether RQ will retry after it)."""
    job = get_current_job()
    if job is None or not job.retry_intervals:
        return 1, False
    left = job.retries_left or 0
    return len(job.retry_intervals) - left + 1, left > 0


def write_run(
    s: Services,
    member_id: str,
    record: RunRecord,
    status: str,
    error: str | None = None,
    result: Any = None,
) -> None:
    if not record.keep:
        return
    s.store.record_run(
        member_id=member_id,
        kind=record.kind,
        name=record.name,
        document=record.document,
        key=record.key,
        inputs=record.inputs,
        result=result,
        status=status,
        error=error,
        attempts=record.attempt,
        started_at=record.started_at,
    )


# Robots ----------------------------------------------------------------------------------


def run_robot(ctx: JobContext, call: dict[str, Any]) -> dict[str, Any] | None:
    """Run one robot call and answer its workflow (also when the robot fails)."""
    s = _services(ctx)
    rc = robot_call_from_dict(call)
    record = ctx.run
    record.kind, record.name, record.key = "robot", rc.code, rc.dedupe_key
    record.document, record.inputs = rc.document_id.id, dict(rc.properties)
    robot = s.catalogue.robot(rc.code)
    if robot is None:
        raise AppError(f"unknown robot {rc.code}")
    done = s.store.run_by_key(rc.dedupe_key)
    if done is not None:
        # The robot already did its work; only the answer to the workflow is missing.
        record.keep = False
        return _answer(ctx, rc, done["result"] or {}, "done")
    rctx = ctx.derive(RobotContext, document=rc.document_id, workflow_id=rc.workflow_id)
    try:
        rctx.properties = robot.typed_properties(rc.properties)
        result = dict(robot.run(rctx) or {})
    except RobotFailed as exc:
        _answer(ctx, rc, {}, f"failed: {exc}")
        raise
    except PortalError as exc:
        if not (ctx.will_retry and transient(exc)):
            message = f"failed: the portal answered {exc.code or exc.status}: {exc.description}"
            _try_answer(ctx, rc, message)
        raise
    except AppError as exc:
        _try_answer(ctx, rc, f"failed: {exc}")
        raise
    except Exception:  # a bug: answer so the workflow does not hang, the runner keeps the trace
        _try_answer(ctx, rc, "failed: internal error in the robot server")
        raise
    # Recorded before the answer: a retry after a failed answer only answers again.
    write_run(s, ctx.member_id, record, "ok", None, result)
    record.keep = False
    return _answer(ctx, rc, result, "done")


def _answer(
    ctx: JobContext, call: RobotCall, result: dict[str, Any], outcome: str
) -> dict[str, Any]:
    if call.use_subscription:
        message = f"{call.code}: {outcome}" + (
            "; " + ", ".join(f"{k}={v}" for k, v in result.items()) if result else ""
        )
        ctx.portal.call(
            "bizproc.event.send",
            {
                "EVENT_TOKEN": call.event_token,
                "RETURN_VALUES": {k: _wire(v) for k, v in result.items()},
                "LOG_MESSAGE": message[:1000],
            },
        )
    ctx.log.info("robot answered: %s", outcome)
    return result


def _try_answer(ctx: JobContext, call: RobotCall, message: str) -> None:
    if not call.use_subscription:
        return
    try:
        ctx.portal.call(
            "bizproc.event.send",
            {"EVENT_TOKEN": call.event_token, "RETURN_VALUES": {}, "LOG_MESSAGE": message[:1000]},
        )
    except PortalError as exc:
        ctx.log.warning("could not answer the workflow: %s", exc)


def _wire(value: Any) -> Any:
    if isinstance(value, bool):
        return "Y" if value else "N"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


# Events ----------------------------------------------------------------------------------


def handle_event(ctx: JobContext, call: dict[str, Any]) -> dict[str, Any]:
    """Run every handler the catalogue has for the event."""
    s = _services(ctx)
    ec = event_call_from_dict(call)
    record = ctx.run
    record.kind, record.name, record.key = "event", ec.event, ec.dedupe_key
    record.document = str(ec.fields.get("ID", ""))
    # record.inputs keeps the whole (token-free) call: `robot-server replay-failed` reruns it.
    handlers = s.catalogue.events.handlers(ec.event)
    ectx = ctx.derive(EventContext, event=ec.event)
    for handler in handlers:
        handler(ectx, ec)
    return {"handlers": len(handlers)}


# Install and registrations -----------------------------------------------------------------


def install_portal(ctx: JobContext, sealed: str) -> str:
    """Verify an install callback with the OAuth server, store it, then sync registrations.

    The install callback carries no proof we could check locally, so its refresh token is
    exchanged at the OAuth server (with our client secret): only a real installation of
    this app has one that works, and the answer names the portal (member_id, endpoint).
    """
    from app.oauth import exchange_refresh_token

    s = _services(ctx)
    data = s.store.box.decrypt_json(sealed)
    ctx.run.inputs = None  # the sealed tokens stay out of the run history
    member_id = data["member_id"]
    try:
        tokens = exchange_refresh_token(s.settings, data["refresh_token"])
    except AuthFailed as exc:
        raise AppError(f"install not confirmed by the OAuth server: {exc.description}") from None
    if tokens.get("member_id") and tokens["member_id"] != member_id:
        raise AppError("install callback names another portal than its tokens")
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
    write_run(s, member_id, ctx.run, "ok")
    ctx.run.keep = False
    execute(s, "sync", member_id, {})
    return "installed"


def sync_portal(ctx: JobContext) -> dict[str, Any]:
    """Bring one portal's registrations in line with the catalogue."""
    s = _services(ctx)
    installation = s.store.installation(ctx.member_id)
    if installation is None or s.installer is None:
        raise AppError(f"portal {ctx.member_id} is not installed")
    previous = ctx.settings.get(REGISTRATIONS) or {}
    report = s.installer(ctx.portal, s.catalogue, s.settings, installation.language, previous)
    ctx.settings.set(REGISTRATIONS, report.pop("fingerprints", {}))
    s.store.mark_synced(ctx.member_id)
    return report


# Schedules ---------------------------------------------------------------------------------


def fan_out(ctx: JobContext, schedule: str) -> int:
    """One job per installed portal (so one slow portal delays no other)."""
    s = _services(ctx)
    if schedule not in s.catalogue.schedules:
        raise AppError(f"unknown schedule {schedule}")
    ctx.run.keep = False
    portals = s.store.installations()
    for inst in portals:
        enqueue(s, "schedule", inst.member_id, {"schedule": schedule})
    return len(portals)


def run_schedule(ctx: JobContext, schedule: str) -> dict[str, Any]:
    """Run one schedule for one portal."""
    s = _services(ctx)
    ctx.run.kind, ctx.run.name, ctx.run.inputs = "schedule", schedule, None
    if schedule not in s.catalogue.schedules:
        raise AppError(f"unknown schedule {schedule}")
    return dict(s.catalogue.schedules[schedule].run(ctx) or {})


APP_JOBS: dict[str, Job] = {
    job.name: job
    for job in (
        Job("robot", run_robot, queue=ROBOTS),
        Job("event", handle_event, queue=EVENTS),
        Job("install", install_portal, queue=EVENTS, portal=False),
        Job("sync", sync_portal, queue=EVENTS, kind="install"),
        Job("fan_out", fan_out, queue=BULK, portal=False),
        Job("schedule", run_schedule, queue=BULK),
    )
}
