"""Flask commands: ``flask --app app sync``, ``portals``, ``runs``, ``replay-failed``."""

from __future__ import annotations

import json

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from app import jobs
from app.services import EVENTS, QUEUES, Services


def _services() -> Services:
    return current_app.extensions["robot_server"]


@click.command("sync")
@with_appcontext
@click.option("--member-id", default=None, help="One portal; all active portals when omitted.")
def sync_command(member_id: str | None) -> None:
    """Bring portals' robots, triggers, event bindings and SMS provider in line with the app."""
    portals = [member_id] if member_id else [i.member_id for i in _services().store.installations()]
    failed = 0
    for mid in portals:
        try:
            report = jobs.sync_portal(mid)
            click.echo(f"{mid}: {json.dumps(report, sort_keys=True)}")
        except Exception as exc:  # report and go on with the next portal
            failed += 1
            click.echo(f"{mid}: failed: {exc}", err=True)
    if failed:
        raise SystemExit(1)


@click.command("portals")
@with_appcontext
def portals_command() -> None:
    """List installed portals."""
    for inst in _services().store.installations(active_only=False):
        state = "active" if inst.active else "uninstalled"
        click.echo(f"{inst.member_id}  {inst.domain}  {state}  synced={inst.synced_at}")


@click.command("runs")
@with_appcontext
@click.option("--member-id", default=None)
@click.option("--limit", default=20)
def runs_command(member_id: str | None, limit: int) -> None:
    """Show the latest robot, event and sweep runs."""
    for run in _services().store.runs(member_id, limit=limit):
        click.echo(
            f"#{run['id']} {run['kind']} {run['name']} {run['document']} {run['status']}"
            f" attempts={run['attempts']} {run['duration_ms']}ms {run['error'] or ''}"
        )


@click.command("replay-failed")
@with_appcontext
@click.option("--member-id", default=None, help="One portal; all portals when omitted.")
def replay_failed_command(member_id: str | None) -> None:
    """Run failed work again: event handlers that failed (from the run history) and jobs
    RQ keeps in its failed registries. Robots are not replayed: their workflows already
    got the failure as an answer."""
    s = _services()
    events = 0
    for run in list(s.store.iter_failed_runs(member_id, kind="event")):
        if not isinstance(run["inputs"], dict) or "auth" not in run["inputs"]:
            continue  # recorded before calls were kept whole
        s.enqueue(EVENTS, jobs.handle_event, run["inputs"])
        s.store.set_run_status(run["id"], "replayed")
        events += 1
    requeued = 0
    for name in QUEUES:
        registry = s.queue(name).failed_job_registry
        for job_id in registry.get_job_ids():
            registry.requeue(job_id)
            requeued += 1
    click.echo(f"replayed {events} failed event(s); requeued {requeued} failed job(s)")


def init_app(app: Flask) -> None:
    for command in (sync_command, portals_command, runs_command, replay_failed_command):
        app.cli.add_command(command)
