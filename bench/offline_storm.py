"""An offline-event storm on one portal, and a second portal's robots during it.

Everything real on this machine: one emulated world with two portals (each its own leaky
bucket at the cloud's 50 burst / 2 per second), the app installed into both over HTTP, a
redis-server, and W ``robot-server worker robots events bulk`` processes, so that robot jobs
and drain jobs compete for the same workers as in production.

1. Baseline: on portal B the copy robot is placed on "won"; one deal every ``--pace``
   seconds is moved there and the time from the portal's robot POST to the app's
   ``bizproc.event.send`` answer is taken from the emulator's workflow step timestamps.
2. The storm: the workers stop (the app is away, as during a deploy); N events the catalogue
   binds offline are made on portal A in the emulator's state (tasks completed and deleted,
   deals deleted: one queue row per event and object; the queue is checked to hold N rows).
   The portal's ONOFFLINEEVENT reaches the app's web, which queues a drain nobody runs yet.
3. The wake-up: the workers start again (each queues a drain for every portal, as it does at
   start); they drain A's queue while B's robots go on at the same pace, until A's queue is
   empty.

Prints: events, pages (events / 50), the REST requests the drain used on A (its
``event.offline.get`` calls and its clearing batches, from A's wire log; anything else on A
is listed apart), requests / pages (1 would mean clearing a page rides with reading the next;
2 means one request each), the drain's wall time against requests / rate, 503 answers (goal
0), the app's drain jobs, that every event was handled once (the app's run history), and
B's robot answer count, p50, p99 and max with and without the storm side by side.

    .venv/bin/python bench/offline_storm.py [--events 10000] [--workers 2] [--rate 2]
        [--burst 50] [--pace 2] [--baseline 15] [--kind mix|tasks|deals] [--robots-on-a]
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rq import Worker
from rq.job import Job

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import BenchApp, redis_server, start_app, wait, worker_env  # noqa: E402

from app.jobs import DRAIN_PAGE, DRAIN_PAGES, WAKE_UP_MIN_TIMEOUT  # noqa: E402
from app.registry import QUEUES  # noqa: E402
from app.services import Services  # noqa: E402
from fakeportal import limits  # noqa: E402
from fakeportal.automation import lifecycle, outbox, rules  # noqa: E402
from fakeportal.automation.models import automation  # noqa: E402
from fakeportal.crm import categories, contacts, deals, tasks  # noqa: E402
from fakeportal.state import Portal, World  # noqa: E402

ROBOT_STAGE = "WON"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000, help="offline events on A")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=2.0, help="portal drain, requests/s")
    parser.add_argument("--burst", type=int, default=50, help="portal bucket size")
    parser.add_argument("--pace", type=float, default=2.0, help="seconds between robot calls")
    parser.add_argument("--baseline", type=int, default=15, help="robot calls without a storm")
    parser.add_argument(
        "--kind",
        choices=("mix", "tasks", "deals"),
        default="mix",
        help="mix: tasks completed, tasks deleted, deals deleted in turn; tasks: tasks "
        "completed (ONTASKUPDATE); deals: deals deleted (ONCRMDEALDELETE)",
    )
    parser.add_argument(
        "--robots-on-a", action="store_true", help="robots on the storm's portal too"
    )
    args = parser.parse_args()
    if args.events < 1 or args.workers < 1 or args.pace <= 0:
        parser.error("--events and --workers must be >= 1, --pace > 0")
    logging.basicConfig(level=logging.WARNING)
    for name in ("werkzeug", "app", "rq", "handlers"):
        logging.getLogger(name).setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="bench-storm-"))
    resources = ExitStack()
    pool = WorkerPool(tmp)
    bench: BenchApp | None = None
    try:
        redis_url = resources.enter_context(redis_server())
        world = World()
        world.config.update(bucket_size=args.burst, drain_per_second=args.rate)
        bench = start_app(world, redis_url, tmp, burst=args.burst, rate=args.rate)
        services = bench.services
        portal_a = world.add_portal(domain="storm.bitrix24.test")
        portal_b = world.add_portal(domain="calm.bitrix24.test")
        pool.env = worker_env(bench, redis_url)  # the bench app: args.burst / args.rate
        pool.start(args.workers)
        for portal in (portal_a, portal_b):
            lifecycle.install_app(world, portal.member_id, bench.settings.client_id)
        wait(lambda: bench.synced(portal_a.member_id, portal_b.member_id), 90, "the installs")

        robot_portals = [portal_b] + ([portal_a] if args.robots_on_a else [])
        robots = {p.member_id: RobotLine(world, p, bench.settings.client_id) for p in robot_portals}
        time.sleep(args.burst / args.rate)  # idle portals: their buckets drained after install

        # 1. Baseline: the robots alone.
        pacer = Pacer(args.pace)
        for _ in range(args.baseline):
            pacer.wait_turn()
            for line in robots.values():
                line.trigger("baseline")
        wait(lambda: all(line.done("baseline") for line in robots.values()), 120, "baseline")

        # 2. The storm, while the app's workers are away.
        pool.stop()
        away_from = len(portal_a.wire)
        built = time.monotonic()
        queued = make_storm(world, portal_a, bench.settings.client_id, args.events, args.kind)
        built = time.monotonic() - built
        if queued["rows"] != args.events or queued["distinct"] != args.events:
            raise SystemExit(f"bench: the offline queue holds {queued}, not {args.events} rows")
        outbox.wait_idle(world, 30.0, robots=False)  # ONOFFLINEEVENT reached the web
        with world.lock:
            wake_ups = Counter(
                f"{r.status} {str(r.response).strip()}"
                for r in portal_a.wire[away_from:]
                if r.direction == "out" and r.name == "ONOFFLINEEVENT"
            )
        waiting = services.queue("events").count
        time.sleep(args.burst / args.rate)  # A's and B's buckets drained again

        # 3. The wake-up: workers again, A drained while B's robots go on.
        wire_from = {p.member_id: len(p.wire) for p in (portal_a, portal_b)}
        rejected_before = {p.member_id: reject_count(p) for p in (portal_a, portal_b)}
        woke = time.monotonic()
        pool.start(args.workers)
        wait(lambda: Worker.count(connection=services.redis) >= args.workers, 60, "workers")
        ready = time.monotonic()
        pacer = Pacer(args.pace)
        deadline = time.monotonic() + max(3600.0, 4 * args.events / DRAIN_PAGE / args.rate)
        while True:
            if time.monotonic() > deadline:
                raise SystemExit("bench: timed out waiting for the storm to drain")
            if pacer.due():
                for line in robots.values():
                    line.trigger("storm")
            if queue_rows(world, portal_a, bench.settings.client_id) == 0:
                emptied_at = world.timestamp()
                break
            time.sleep(0.05)
        drained_wall = time.monotonic() - woke
        wait(lambda: all(line.done("storm") for line in robots.values()), 300, "storm robots")
        wait_quiet(services, 120)

        report(
            args=args,
            services=services,
            world=world,
            portal_a=portal_a,
            portal_b=portal_b,
            robots=robots,
            built=built,
            away=f"ONOFFLINEEVENT answers {dict(wake_ups)}, {waiting} job(s) waiting in "
            "the events queue",
            emptied_at=emptied_at,
            drained_wall=drained_wall,
            boot=ready - woke,
            wire_from=wire_from,
            rejected_before=rejected_before,
            logs=pool.logs,
        )
    finally:
        pool.stop()
        if bench is not None:
            bench.stop()
        resources.close()
        shutil.rmtree(tmp, ignore_errors=True)


# The app's workers ------------------------------------------------------------------------


@dataclass
class WorkerPool:
    """``robot-server worker`` processes, each in its own process group (its work horse and
    scheduler with it), their logs kept in the temporary folder."""

    tmp: Path
    env: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def start(self, count: int) -> None:
        robot_server = str(Path(sys.executable).parent / "robot-server")
        for _ in range(count):
            log = self.tmp / f"worker-{len(self.logs)}.log"
            self.logs.append(log)
            with log.open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        [robot_server, "worker", "robots", "events", "bulk"],
                        cwd=ROOT,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def stop(self) -> None:
        """A warm shutdown (SIGTERM: the current job ends first), SIGKILL after 60 s."""
        for proc in self.procs:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)
            _signal_group(proc, signal.SIGKILL)  # a horse or scheduler left behind
        self.procs.clear()


def _signal_group(proc: subprocess.Popen, sig: signal.Signals) -> None:
    try:
        os.killpg(proc.pid, sig)  # the group this process leads (start_new_session)
    except ProcessLookupError:
        pass


# Robots on a portal ------------------------------------------------------------------------


class RobotLine:
    """The copy robot on a portal's "won" stage; each trigger moves a fresh deal there."""

    def __init__(self, world: World, portal: Portal, client_id: str) -> None:
        self.world, self.portal = world, portal
        self.deals: dict[str, list[int]] = {}
        with world.lock:
            service = categories.create_category(portal, "Service", [("NEW", "New", "P")])
            self.contact = contacts.create_contact(portal, {"NAME": "Client"})
        rules.add_robot_rule(
            world,
            member_id=portal.member_id,
            category_id=0,
            stage_id=ROBOT_STAGE,
            client_id=client_id,
            robot_code="copy_deal",
            properties={"category_id": str(service)},
            timeout_seconds=0,
        )

    def trigger(self, phase: str) -> None:
        with self.world.lock:
            deal_id = deals.create_deal(
                self.portal,
                {"TITLE": f"{phase} deal", "CONTACT_IDS": [self.contact], "OPPORTUNITY": "1000"},
                user_id=1,
            )
            deals.move_deal(self.portal, deal_id, ROBOT_STAGE, user_id=1)
        self.deals.setdefault(phase, []).append(deal_id)

    def steps(self, phase: str) -> list[dict[str, Any]]:
        """The robot step of each deal of ``phase`` (the workflow of its "won" entry)."""
        wanted = set(self.deals.get(phase, []))
        flows = rules.list_workflows(self.world, self.portal.member_id, None)
        return [
            f["robots"][0]
            for f in flows
            if f["deal_id"] in wanted and f["stage_id"] == ROBOT_STAGE and f["robots"]
        ]

    def done(self, phase: str) -> bool:
        steps = self.steps(phase)
        return len(steps) == len(self.deals.get(phase, [])) and all(
            s["status"] in ("completed", "failed", "timeout") for s in steps
        )

    def latencies(self, phase: str) -> tuple[list[float], Counter]:
        steps = self.steps(phase)
        times = [
            s["finished_at"] - s["started_at"]
            for s in steps
            if s["status"] == "completed" and s["finished_at"] and s["started_at"]
        ]
        return times, Counter(s["status"] for s in steps)


class Pacer:
    """One turn every ``pace`` seconds, the first at once."""

    def __init__(self, pace: float) -> None:
        self.pace = pace
        self.next = time.monotonic()

    def due(self) -> bool:
        if time.monotonic() < self.next:
            return False
        self.next += self.pace
        return True

    def wait_turn(self) -> None:
        time.sleep(max(0.0, self.next - time.monotonic()))
        self.next += self.pace


# The storm -------------------------------------------------------------------------------


def make_storm(world: World, portal: Portal, client_id: str, n: int, kind: str) -> dict[str, int]:
    """N changes by a user (not the app) that each leave one row in the app's offline queue:
    a task completed (ONTASKUPDATE), a task deleted (ONTASKDELETE), a deal deleted
    (ONCRMDEALDELETE); the ONTASKADD / ONCRMDEALADD before them are not bound."""
    makers: dict[str, tuple[Callable[[int], None], ...]] = {
        "tasks": (lambda i: _task(portal, i, "complete"),),
        "deals": (lambda i: _deal(portal, i),),
    }
    makers["mix"] = (
        lambda i: _task(portal, i, "complete"),
        lambda i: _task(portal, i, "delete"),
        lambda i: _deal(portal, i),
    )
    chosen = makers[kind]
    with world.lock:
        for i in range(n):
            chosen[i % len(chosen)](i)
        rows = [r for r in automation(portal).offline if r.client_id == client_id]
        return {
            "rows": len(rows),
            "distinct": len({(r.event_name, r.message_id) for r in rows}),
            "reserved": sum(1 for r in rows if r.process_id),
        }


def _task(portal: Portal, i: int, action: str) -> None:
    task_id = tasks.create_task(portal, {"TITLE": f"Storm task {i}", "RESPONSIBLE_ID": 1}, 1)
    if action == "delete":
        tasks.delete_task(portal, task_id, user_id=1)
    else:
        tasks.change_status(portal, task_id, action, user_id=1)


def _deal(portal: Portal, i: int) -> None:
    deal_id = deals.create_deal(portal, {"TITLE": f"Storm deal {i}"}, user_id=1)
    deals.delete_deal(portal, deal_id, user_id=1)


def queue_rows(world: World, portal: Portal, client_id: str) -> int:
    with world.lock:
        return sum(1 for r in automation(portal).offline if r.client_id == client_id)


# Reading the results -----------------------------------------------------------------------


def report(
    *,
    args: argparse.Namespace,
    services: Services,
    world: World,
    portal_a: Portal,
    portal_b: Portal,
    robots: dict[str, RobotLine],
    built: float,
    away: str,
    emptied_at: float,
    drained_wall: float,
    boot: float,
    wire_from: dict[str, int],
    rejected_before: dict[str, int],
    logs: list[Path],
) -> None:
    n, rate, burst = args.events, args.rate, args.burst
    pages = math.ceil(n / DRAIN_PAGE)
    with world.lock:
        wire_a = [r for r in portal_a.wire[wire_from[portal_a.member_id] :] if r.direction == "in"]
    drain = [r for r in wire_a if is_drain_request(r)]
    others = Counter(r.name for r in wire_a if r.kind in ("rest", "batch") and r not in drain)
    gets = [r for r in drain if r.name == "event.offline.get"]
    empty_gets = sum(1 for r in gets if not _events_in(r.response))
    settles = [r for r in drain if r.name == "batch"]
    reading = sum(1 for r in settles if "event.offline.get" in _batch_methods(r))
    until_empty = [r for r in drain if r.at <= emptied_at]
    first = drain[0].at if drain else emptied_at
    wall = emptied_at - first
    ideal = len(until_empty) / rate
    bucket_ideal = max(len(until_empty) - burst, 0) / rate
    rejected = {
        p.domain: reject_count(p) - rejected_before[p.member_id] for p in (portal_a, portal_b)
    }

    print(
        f"offline storm: {n} events ({args.kind}) on {portal_a.domain}, built in the emulator "
        f"in {built:.1f} s; {args.workers} workers; portal limit {burst} burst / {rate}/s; "
        f"drain page {DRAIN_PAGE} rows, {DRAIN_PAGES} pages per job"
    )
    print(f"  while the workers were away: {away}")
    print(f"  events {n}, pages (events / {DRAIN_PAGE}) {pages}")
    print(
        f"  REST requests of the drain on A: {len(drain)} = {len(gets)} event.offline.get "
        f"({empty_gets} of them empty) + {len(settles)} batches clearing a page "
        f"(event.offline.clear/error), {reading} of which also read the next page; "
        f"other requests on A: {dict(others) or 'none'}"
    )
    print(
        f"  requests / pages = {len(drain) / pages:.3f} (ideal 1 when clearing a page rides "
        f"with reading the next, 2 when each is its own request)"
    )
    print(
        f"  wall of the drain {wall:.1f} s (its first request -> queue empty; workers ready "
        f"{boot:.1f} s after their start, queue empty {drained_wall:.1f} s after it)"
    )
    print(
        f"  requests until empty {len(until_empty)}, requests / rate = {ideal:.1f} s, "
        f"wall / (requests / rate) = {_ratio(wall, ideal)}; "
        f"(requests - burst) / rate = {bucket_ideal:.1f} s, ratio {_ratio(wall, bucket_ideal)}"
    )
    if others:
        shared = [r for r in wire_a if r.kind in ("rest", "batch") and r.at <= emptied_at]
        shared_ideal = max(len(shared) - burst, 0) / rate
        print(
            f"  with the other requests on A (they share its budget): {len(shared)} until "
            f"empty, (requests - burst) / rate = {shared_ideal:.1f} s, "
            f"ratio {_ratio(wall, shared_ideal)}"
        )
    print(f"  503 answers {rejected} (goal 0)")
    print(f"  drain jobs on A: {drain_jobs(services, portal_a.member_id)}")

    runs = services.store.runs(portal_a.member_id, kind="event", limit=3 * n + 100)
    statuses = Counter(r["status"] for r in runs)
    keys = Counter(r["key"].split(":")[1] for r in runs if r["status"] == "ok")
    twice = sum(1 for c in keys.values() if c > 1)
    left = queue_rows(world, portal_a, services.settings.client_id)
    verdict = "yes" if statuses == Counter(ok=n) and len(keys) == n and not twice else "NO"
    print(
        f"  every event handled once: {verdict} (event runs {len(runs)} by status "
        f"{dict(statuses)}, distinct events ok {len(keys)}, handled twice {twice}, rows "
        f"left in the queue {left})"
    )

    print("  robot answer time, the portal's robot POST -> the app's bizproc.event.send:")
    print(f"    {'portal':<22} {'phase':<9} {'count':>5} {'p50':>8} {'p99':>8} {'max':>8}  other")
    for line in robots.values():
        for phase in ("baseline", "storm"):
            times, statuses = line.latencies(phase)
            other = {k: v for k, v in statuses.items() if k != "completed"}
            print(
                f"    {line.portal.domain:<22} {phase:<9} {len(times):>5} "
                f"{_s(percentile(times, 0.5))} {_s(percentile(times, 0.99))} "
                f"{_s(max(times) if times else None)}  {other or ''}"
            )
    problems = worker_problems(logs)
    if problems:
        print(f"  worker log lines with errors: {len(problems)}; first ones:")
        for text in problems[:5]:
            print(f"    {text}")


def is_drain_request(record: Any) -> bool:
    """event.offline.get, or a batch of only event.offline.* commands (the settle)."""
    if record.name == "event.offline.get":
        return True
    methods = _batch_methods(record) if record.name == "batch" else []
    return bool(methods) and all(m.startswith("event.offline.") for m in methods)


def _batch_methods(record: Any) -> list[str]:
    cmd = record.request.get("cmd") if isinstance(record.request, dict) else None
    values = list(cmd.values()) if isinstance(cmd, dict) else list(cmd or [])
    return [str(v).split("?", 1)[0] for v in values]


def _events_in(response: Any) -> int:
    if isinstance(response, dict):
        result = response.get("result")
        if isinstance(result, dict):
            return len(result.get("events") or [])
    return 0


def drain_jobs(services: Services, member_id: str) -> str:
    """The app's drain jobs of a portal as RQ kept them: pages each, skipped, gaps."""
    queue = services.queue("events")
    ids = list(queue.finished_job_registry.get_job_ids()) + list(
        queue.failed_job_registry.get_job_ids()
    )
    found = []
    for job in Job.fetch_many(ids, connection=services.redis):
        if job is None or not job.args or job.args[0] != "drain" or job.args[1] != member_id:
            continue
        found.append(job)
    found.sort(key=lambda j: j.started_at or j.enqueued_at)
    pages: list[int] = []
    skipped = empty = failed = 0
    gaps: list[float] = []
    last_end = None
    for job in found:
        result = job.return_value()
        if job.get_status() == "failed":
            failed += 1
        elif isinstance(result, dict) and "skipped" in result:
            skipped += 1
        elif isinstance(result, dict) and result.get("pages"):
            pages.append(int(result["pages"]))
            if last_end is not None and job.started_at:
                gaps.append((job.started_at - last_end).total_seconds())
            last_end = job.ended_at
        else:
            empty += 1
    gap = f", gaps between them max {max(gaps):.1f} s" if gaps else ""
    return (
        f"{len(pages)} with pages {pages}{gap}; {skipped} skipped (another drain ran), "
        f"{empty} found nothing, {failed} failed"
    )


def worker_problems(logs: list[Path]) -> list[str]:
    lines = []
    for path in logs:
        if path.exists():
            for text in path.read_text(errors="replace").splitlines():
                if "Traceback" in text or " ERROR " in text or "crashed" in text:
                    lines.append(text.strip()[:200])
    return lines


def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def _s(value: float | None) -> str:
    return f"{value:>6.2f} s" if value is not None else f"{'-':>8}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}" if b else "n/a"


def reject_count(portal: Portal) -> int:
    return limits.state(portal).rejected_503


def wait_quiet(services: Services, timeout: float) -> None:
    """Until no job is queued, running or scheduled for a few seconds (the drain's look
    once more after ``WAKE_UP_MIN_TIMEOUT`` included)."""
    deadline = time.monotonic() + timeout
    quiet_since = None
    while time.monotonic() < deadline:
        busy = 0
        for name in QUEUES:
            q = services.queue(name)
            busy += q.count + q.started_job_registry.count + q.scheduled_job_registry.count
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > WAKE_UP_MIN_TIMEOUT:
            return
        time.sleep(0.5)
    print("  (bench: jobs still queued or running when the figures were read)")


if __name__ == "__main__":
    main()
