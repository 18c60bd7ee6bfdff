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
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from redis.exceptions import LockError, RedisError
from rq import Retry, get_current_job

from app.bitrix import AUTH_CONNECTOR
from app.context import (
    Context,
    EventContext,
    JobContext,
    PortalSettings,
    RobotContext,
    RunRecord,
    Web,
    wire_value,
)
from app.errors import AppError, AuthFailed, PortalError, RobotFailed, TryAgain, transient
from app.payloads import Auth, EventCall, RobotCall, event_call_from_dict, robot_call_from_dict
from app.registry import BULK, EVENTS, ROBOTS, Catalogue, Job
from app.services import Services
from app.store import Installation

log = logging.getLogger(__name__)
C = TypeVar("C", bound=Context)
DEDUPE_TTL = 7 * 86400
RUNNER = "app.jobs.run"  # the one function RQ runs
OFFLINE_PROCESS = "offline_process"  # portal setting: the reserved batch not yet cleared
DRAIN_PAGE = 50  # rows per event.offline.get
DRAIN_PAGES = 20  # pages per drain job; a storm goes on in the next job
DRAIN_LOCK_SECONDS = 300
WAKE_UP_MIN_TIMEOUT = 5  # seconds between two ONOFFLINEEVENT of a portal (installers bind it so)
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
    once_for: int = DEDUPE_TTL,
) -> bool:
    """Queue ``job`` (the app's own, or a capability's from the catalogue) for one portal.

    With a ``key`` the job is queued once (for ``once_for`` seconds): a key seen before (a
    portal resending, a replayer) queues nothing and answers False. ``retry`` overrides the
    job's own waits.
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
    if key and not s.redis.set(f"seen:{key}", 1, nx=True, ex=once_for):
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
    if s.store.run_by_key(rc.dedupe_key, "waiting") is not None:
        record.keep = False  # done, and its workflow is answered later by the capability
        return None
    done = s.store.run_by_key(rc.dedupe_key)
    if done is not None:
        # The robot already did its work; only the answer to the workflow is missing.
        record.keep = False
        return _answer(ctx, rc, done["result"] or {}, "done")
    rctx = ctx.derive(
        RobotContext,
        document=rc.document_id,
        workflow_id=rc.workflow_id,
        event_token=rc.event_token if rc.use_subscription else "",
    )
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
    write_run(s, ctx.member_id, record, "waiting" if rctx.waits else "ok", None, result)
    record.keep = False
    if rctx.waits:
        ctx.log.info("robot waits: its workflow is answered later")
        return result
    if rctx.after_answer:
        return _answer_then(s, ctx, rc, result, rctx.after_answer)
    return _answer(ctx, rc, result, "done")


def _answer_then(
    s: Services,
    ctx: JobContext,
    rc: RobotCall,
    result: dict[str, Any],
    then: dict[str, tuple[str, dict[str, Any]]],
) -> dict[str, Any]:
    """The answer and the robot's writes that follow it, in one request (the writes alone
    when nothing waits for an answer). A refused write is recorded for the admin; the workflow
    has its answer, so the robot is not run again."""
    commands = dict(then)
    if rc.use_subscription:
        message = f"{rc.code}: done; " + ", ".join(f"{k}={v}" for k, v in result.items())
        values = {k: wire_value(v) for k, v in result.items()}
        answer = {"EVENT_TOKEN": rc.event_token, "RETURN_VALUES": values,
                  "LOG_MESSAGE": message[:1000]}  # fmt: skip
        commands = {"answer": ("bizproc.event.send", answer), **then}
    got = ctx.portal.batch(commands)
    if "answer" in got.errors:
        raise got.errors["answer"]
    errors = [f"{label}: {e.code or e.status}: {e.description}" for label, e in got.errors.items()]
    if errors:
        record = RunRecord("robot", rc.code, document=rc.document_id.id, started_at=time.time())
        write_run(s, ctx.member_id, record, "failed", "after the answer: " + "; ".join(errors))
    ctx.log.info("robot answered: done, then %s", ", ".join(then))
    return result


def _answer(
    ctx: JobContext, call: RobotCall, result: dict[str, Any], outcome: str
) -> dict[str, Any]:
    if call.use_subscription:
        message = f"{call.code}: {outcome}" + (
            "; " + ", ".join(f"{k}={v}" for k, v in result.items()) if result else ""
        )
        ctx.answer_workflow(call.event_token, result, message)
    ctx.log.info("robot answered: %s", outcome)
    return result


def _try_answer(ctx: JobContext, call: RobotCall, message: str) -> None:
    if not call.use_subscription:
        return
    try:
        ctx.answer_workflow(call.event_token, {}, message)
    except PortalError as exc:
        ctx.log.warning("could not answer the workflow: %s", exc)


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


def drain_events(ctx: JobContext, errors: bool = False, recover: bool = False) -> dict[str, Any]:
    """Handle what the portal's offline queue holds for the app, losing nothing.

    Rows are reserved (``clear=0``, a ``process_id``), handled by the catalogue's handlers,
    and only then cleared; a handler's failure marks its row (``event.offline.error``, seen
    again by ``replay-failed``: ``errors``). The reserved batch's id is kept in the portal's
    settings until it is cleared, so a drain that died in between (a killed worker) is
    re-read by the next one: a re-read, never a loss. One drain per portal at a time; a
    wake-up that comes while one runs makes it look once more. Each event is a run.
    A batch reserved whose id never reached the settings (the answer to a read was lost, the
    worker died in that instant) is found again with ``recover`` (the clock's drain, every
    minute, and a worker's at start): such rows are late, never lost.
    """
    s = _services(ctx)
    ctx.run.keep = False
    mid = ctx.member_id
    s.redis.delete(f"seen:drain:{mid}")  # started: the next wake-up queues a drain again
    lock = s.redis.lock(f"drain:{mid}", timeout=DRAIN_LOCK_SECONDS)
    if not lock.acquire(blocking=False):
        s.redis.set(f"drain-again:{mid}", 1, ex=DRAIN_LOCK_SECONDS)
        return {"skipped": "another drain of this portal runs"}
    report = {"pages": 0, "events": 0, "ok": 0, "failed": 0}
    left_over = False
    try:
        orphans = (
            _orphaned_batches(ctx) if recover and not ctx.settings.get(OFFLINE_PROCESS) else []
        )
        got: dict[str, Any] | None = None  # the next page, read with the last page's clearing
        while True:
            if orphans and got is None and not ctx.settings.get(OFFLINE_PROCESS):
                ctx.settings.set(OFFLINE_PROCESS, orphans.pop())
            s.redis.delete(f"drain-again:{mid}")
            pending = ctx.settings.get(OFFLINE_PROCESS)
            if got is None:
                got = ctx.portal.call("event.offline.get", _page_query(pending, errors)) or {}
            rows = [r for r in got.get("events") or [] if isinstance(r, dict)]
            process_id = str(got.get("process_id") or pending or "")
            got = None
            if not rows:
                if pending:
                    ctx.settings.set(OFFLINE_PROCESS, None)  # that batch was cleared already
                    continue
                if s.redis.get(f"drain-again:{mid}"):
                    continue
                break
            if process_id != pending:
                ctx.settings.set(OFFLINE_PROCESS, process_id)
            report["pages"] += 1
            done, failed = _handle_rows(s, ctx, rows, report)
            # A full page (or a wake-up meanwhile) means more may wait; a replay that failed
            # again leaves its rows marked for the next replay.
            full = len(rows) == DRAIN_PAGE or bool(s.redis.get(f"drain-again:{mid}"))
            full = full and not (errors and failed)
            more = full and report["pages"] < DRAIN_PAGES
            next_page = _page_query(None, errors) if more else None
            got = _settle_rows(ctx, process_id, done, failed, next_page)
            # The next page is reserved already: its id is kept before anything else happens.
            ctx.settings.set(OFFLINE_PROCESS, (got or {}).get("process_id") or None)
            lock.extend(DRAIN_LOCK_SECONDS, replace_ttl=True)
            if not more:
                left_over = full
                break
    finally:
        try:
            lock.release()
        except LockError:
            ctx.log.warning("drain lock expired before release")
    if left_over:  # a storm: hand the worker back (robots first), go on in a new job
        enqueue(s, "drain", mid, {"errors": errors})
    if report["events"]:
        ctx.log.info("offline events drained: %s", report)
        # The portal sends no wake-up for rows queued within WAKE_UP_MIN_TIMEOUT of the last
        # one: look once more when that window has passed, not only at the next minute.
        at = datetime.now(UTC) + timedelta(seconds=WAKE_UP_MIN_TIMEOUT + 1)
        enqueue(s, "drain", mid, {}, key=f"drain-after:{mid}", at=at, once_for=WAKE_UP_MIN_TIMEOUT)
    return report


def _handle_rows(
    s: Services, ctx: JobContext, rows: list[dict[str, Any]], report: dict[str, int]
) -> tuple[list[str], list[str]]:
    """Run the handlers for each row; the message ids handled and failed. A transient
    failure stops the page: what is done is cleared, the rest stays reserved for a retry."""
    installation = s.store.installation(ctx.member_id)
    auth = Auth(
        member_id=ctx.member_id,
        domain=installation.domain if installation else "",
        application_token="",
        client_endpoint=installation.client_endpoint if installation else "",
    )
    done: list[str] = []
    failed: list[str] = []
    for row in rows:
        ec = EventCall.from_offline(row, auth)
        # One row per event and object; a later change of the object moves its TIMESTAMP_X.
        key = f"offline:{ec.message_id}:{row.get('TIMESTAMP_X', '')}"
        if s.store.run_by_key(key) is not None:
            done.append(ec.message_id)  # handled by a drain that died before clearing it
            continue
        record = RunRecord(
            "event", ec.event, key=key, inputs={"offline": row},
            document=str(ec.fields.get("ID", "")), attempt=ctx.attempt, started_at=time.time(),
        )  # fmt: skip
        ectx = ctx.derive(EventContext, event=ec.event, run=record)
        report["events"] += 1
        try:
            for handler in s.catalogue.events.handlers(ec.event):
                handler(ectx, ec)
        except Exception as exc:
            if transient(exc):
                write_run(s, ctx.member_id, record, "retrying", str(exc))
                _settle_rows(ctx, str(ctx.settings.get(OFFLINE_PROCESS) or ""), done, [])
                raise TryAgain(f"offline event {ec.event}: {exc}") from exc
            if not isinstance(exc, AppError):
                ctx.log.exception("event handler crashed")
            reason = str(exc) if isinstance(exc, AppError) else f"{type(exc).__name__}: {exc}"
            write_run(s, ctx.member_id, record, "failed", reason)
            failed.append(ec.message_id)
            report["failed"] += 1
            continue
        write_run(
            s,
            ctx.member_id,
            record,
            "ok",
            None,
            {"handlers": len(s.catalogue.events.handlers(ec.event))},
        )
        done.append(ec.message_id)
        report["ok"] += 1
    return done, failed


def _orphaned_batches(ctx: JobContext) -> list[str]:
    """Reserved batches no drain knows of (this drain holds the portal's lock, and no batch
    id is kept): their ids, to read them again."""
    rows = ctx.portal.call(
        "event.offline.list", {"filter": {"!PROCESS_ID": ""}, "auth_connector": AUTH_CONNECTOR}
    )
    found = {str(r.get("PROCESS_ID")) for r in rows or [] if isinstance(r, dict)}
    return sorted(p for p in found if p)


def _page_query(process_id: str | None, errors: bool) -> dict[str, Any]:
    """``event.offline.get`` for the next page: a reserved batch again, or new rows."""
    query: dict[str, Any] = {"clear": 0, "limit": DRAIN_PAGE, "auth_connector": AUTH_CONNECTOR}
    if process_id:
        query["process_id"] = process_id
    elif errors:
        query["error"] = 1
    return query


def _settle_rows(
    ctx: JobContext,
    process_id: str,
    done: list[str],
    failed: list[str],
    next_page: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Clear what was handled and mark what failed, and read the next page (``next_page``),
    all in one request; the next page, when asked for."""
    commands: dict[str, tuple[str, dict[str, Any]]] = {}
    base = {"process_id": process_id, "auth_connector": AUTH_CONNECTOR}
    if done:
        commands["clear"] = ("event.offline.clear", {**base, "message_id": done})
    if failed:
        commands["error"] = ("event.offline.error", {**base, "message_id": failed})
    if next_page is not None:
        commands["next"] = ("event.offline.get", next_page)
    if not commands:
        return None
    got = ctx.portal.batch(commands)
    got.raise_for_errors()
    return got.results.get("next") if next_page is not None else None


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


def fan_out(
    ctx: JobContext, schedule: str = "", job: str = "", args: dict[str, Any] | None = None
) -> int:
    """A schedule (or an app job: ``drain``) as one job per installed portal, so one slow
    portal delays no other."""
    s = _services(ctx)
    ctx.run.keep = False
    if job:
        if job not in APP_JOBS:
            raise AppError(f"unknown job {job}")
        name, args = job, dict(args or {})
    elif schedule in s.catalogue.schedules:
        name, args = "schedule", {"schedule": schedule}
    else:
        raise AppError(f"unknown schedule {schedule}")
    portals = s.store.installations()
    for inst in portals:
        enqueue(s, name, inst.member_id, args)
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
        Job("drain", drain_events, queue=EVENTS, retry=(10, 60, 300)),
        Job("fan_out", fan_out, queue=BULK, portal=False),
        Job("schedule", run_schedule, queue=BULK),
    )
}
