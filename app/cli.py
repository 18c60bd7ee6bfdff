"""The operator's commands: ``robot-server portals|runs|sync|sweep|replay-failed|worker|cron``.

Every command reads the settings from the environment and ``.env`` (or ``--env-file``),
prints one line per error and exits non-zero when something failed.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from typing import Any

import click
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app import jobs
from app.errors import AppError
from app.registry import BULK, QUEUES
from app.services import Services
from app.settings import Settings

Build = Callable[[Settings], Services]


class _Group(click.Group):
    """Turns the errors an operator can fix (settings, Redis, the database) into one line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (AppError, FileNotFoundError, RedisError, SQLAlchemyError) as exc:
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            click.echo(f"robot-server: error: {detail}", err=True)
            sys.exit(1)


def command_line(build: Build) -> click.Group:
    """The command group; ``build`` makes the services (the composition root's)."""

    @click.group(cls=_Group)
    @click.option("--env-file", default=None, help="Read settings from this file (default .env).")
    @click.pass_context
    def cli(ctx: click.Context, env_file: str | None) -> None:
        """The Bitrix24 robot server's operator commands."""
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s %(message)s")
        settings = Settings.from_env(env_file=env_file)
        services = build(settings)
        jobs.use(services)
        ctx.obj = services

    @cli.command()
    @click.pass_obj
    def portals(s: Services) -> None:
        """List installed portals."""
        for inst in s.store.installations(active_only=False):
            state = "active" if inst.active else "uninstalled"
            click.echo(f"{inst.member_id}  {inst.domain}  {state}  synced={inst.synced_at}")

    @cli.command()
    @click.option("--member-id", default=None)
    @click.option("--limit", default=20, show_default=True)
    @click.pass_obj
    def runs(s: Services, member_id: str | None, limit: int) -> None:
        """Show the latest robot, event, job and schedule runs."""
        for run in s.store.runs(member_id, limit=limit):
            click.echo(
                f"#{run['id']} {run['kind']} {run['name']} {run['document']} {run['status']}"
                f" attempts={run['attempts']} {run['duration_ms']}ms {run['error'] or ''}"
            )

    @cli.command()
    @click.option("--member-id", default=None, help="One portal; all active portals when omitted.")
    @click.pass_obj
    def sync(s: Services, member_id: str | None) -> None:
        """Bring portals' robots, triggers, event bindings and SMS provider in line with the app."""
        failed = _each_portal(s, member_id, "sync", {})
        if failed:
            sys.exit(1)

    @cli.command()
    @click.argument("schedule")
    @click.option("--member-id", default=None, help="One portal; all active portals when omitted.")
    @click.pass_obj
    def sweep(s: Services, schedule: str, member_id: str | None) -> None:
        """Run one schedule (date_watch, sms_poll...) now, as the clock would."""
        if schedule not in s.catalogue.schedules:
            names = ", ".join(sorted(s.catalogue.schedules))
            raise AppError(f"unknown schedule {schedule!r} (one of: {names})")
        failed = _each_portal(s, member_id, "schedule", {"schedule": schedule})
        if failed:
            sys.exit(1)

    @cli.command("replay-failed")
    @click.option("--member-id", default=None, help="One portal; all portals when omitted.")
    @click.pass_obj
    def replay_failed(s: Services, member_id: str | None) -> None:
        """Run failed work again: event handlers that failed (from the run history) and jobs
        RQ keeps in its failed registries. Robots are not replayed: their workflows already
        got the failure as an answer."""
        events = 0
        offline: set[str] = set()
        for run in list(s.store.iter_failed_runs(member_id, kind="event")):
            inputs = run["inputs"]
            if not isinstance(inputs, dict):
                continue
            if "offline" in inputs:
                # Marked as failed in the portal's offline queue: the drain reads it again.
                offline.add(run["member_id"])
            else:
                args = inputs if "call" in inputs else {"call": inputs}  # older rows
                if "auth" not in args["call"]:
                    continue
                jobs.enqueue(s, "event", run["member_id"], args)
            s.store.set_run_status(run["id"], "replayed")
            events += 1
        for mid in sorted(offline):
            jobs.enqueue(s, "drain", mid, {"errors": True})
        requeued = 0
        for name in QUEUES:
            registry = s.queue(name).failed_job_registry
            for job_id in registry.get_job_ids():
                registry.requeue(job_id)
                requeued += 1
        click.echo(f"replayed {events} failed event(s); requeued {requeued} failed job(s)")

    @cli.command()
    @click.argument("queues", nargs=-1)
    @click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
    @click.pass_obj
    def worker(s: Services, queues: tuple[str, ...], burst: bool) -> None:
        """Run jobs: queues in priority order (default: robots events bulk)."""
        from rq import Worker

        logging.getLogger().setLevel(logging.INFO)
        names = queues or QUEUES
        if s.catalogue.events.events:  # what the portals queued while no worker ran
            jobs.enqueue(s, "fan_out", "", {"job": "drain", "args": {"recover": True}})
        w = Worker([s.queue(q) for q in names], connection=s.redis)
        w.work(with_scheduler=True, burst=burst)

    @cli.command()
    @click.pass_obj
    def cron(s: Services) -> None:
        """The clock: every schedule of the catalogue on its cron line (UTC)."""
        from rq.cron import CronScheduler

        logging.getLogger().setLevel(logging.INFO)
        scheduler = CronScheduler(connection=s.redis, name="robot-server")
        for name, schedule in s.catalogue.schedules.items():
            scheduler.register(
                jobs.run,
                queue_name=BULK,
                args=("fan_out", "", {"schedule": name}),
                cron=schedule.cron,
                name=f"schedule-{name}",
            )
        if s.catalogue.events.events:  # the offline queues, also when no wake-up came
            scheduler.register(
                jobs.run,
                queue_name=BULK,
                args=("fan_out", "", {"job": "drain", "args": {"recover": True}}),
                cron="* * * * *",
                name="drain-offline-events",
            )
        scheduler.start()

    return cli


def _each_portal(s: Services, member_id: str | None, job: str, args: dict[str, Any]) -> int:
    """Run a job now for one portal or every active one, one line each; how many failed."""
    portals = [member_id] if member_id else [i.member_id for i in s.store.installations()]
    failed = 0
    for mid in portals:
        try:
            report = jobs.execute(s, job, mid, args, reraise=True)
            click.echo(f"{mid}: {json.dumps(report, sort_keys=True, default=str)}")
        except Exception as exc:  # report and go on with the next portal
            failed += 1
            click.echo(f"{mid}: failed: {exc}", err=True)
    return failed
