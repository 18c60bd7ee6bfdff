"""The copy robot at scale: requests per copy, and N workers copying many deals at 2 req/s.

Everything real, on this machine: the emulated portal (its leaky bucket set to the cloud's
50 burst / 2 per second), the app's web layer over HTTP, a redis-server, and W
``robot-server worker`` processes. N deals are moved to "won", where the copy robot is
placed; the portal calls the robot N times, the workers copy the deals and answer the
workflows. Prints:

- requests one copy makes (goal: 2) plus the answer to the workflow (bizproc.event.send);
- for the whole run: REST requests, 503 answers (goal: 0), wall time, the ideal time at the
  portal's rate ((requests - burst) / rate), and their ratio (goal: within 1.1).

    .venv/bin/python bench/copy_throughput.py [--deals 1000] [--workers 4] [--rate 2]
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import redis_server, start_app, start_workers, wait  # noqa: E402

from fakeportal.automation import lifecycle, rules  # noqa: E402
from fakeportal.crm import categories, contacts, deals  # noqa: E402
from fakeportal.state import World  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in ("werkzeug", "app", "rq"):
        logging.getLogger(name).setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="bench-copy-"))
    resources = ExitStack()
    redis_url = resources.enter_context(redis_server())
    workers: list[subprocess.Popen] = []
    try:
        world = World()
        world.config.update(bucket_size=args.burst, drain_per_second=args.rate)
        bench = start_app(world, redis_url, tmp, burst=args.burst, rate=args.rate)
        settings = bench.settings
        portal = world.add_portal(domain="bench.bitrix24.test")
        workers = start_workers(bench, redis_url, args.workers)
        lifecycle.install_app(world, portal.member_id, settings.client_id)
        wait(lambda: bench.synced(portal.member_id), 60, "install")
        with world.lock:
            service = categories.create_category(portal, "Service", [("NEW", "New", "P")])
            contact = contacts.create_contact(portal, {"NAME": "Client"})
            ids = [
                deals.create_deal(
                    portal,
                    {"TITLE": f"Deal {i}", "CONTACT_IDS": [contact], "OPPORTUNITY": "1000"},
                    user_id=1,
                )
                for i in range(args.deals + 1)
            ]
        rules.add_robot_rule(
            world,
            member_id=portal.member_id,
            category_id=0,
            stage_id="WON",
            client_id=settings.client_id,
            robot_code="copy_deal",
            properties={"category_id": str(service)},
            timeout_seconds=0,
        )
        # One copy alone, for the requests a copy makes.
        time.sleep(args.burst / args.rate)  # let the bucket drain after install
        before = portal.request_total
        with world.lock:
            deals.move_deal(portal, ids[0], "WON", user_id=1)
        wait(lambda: done(world, portal, [ids[0]]), 60, "one copy")
        one = portal.request_total - before
        methods_one = dict(portal.requests)

        time.sleep(args.burst / args.rate)  # a full bucket again, as at the start of a day
        before, rejected_before = portal.request_total, reject_count(portal)
        started = time.monotonic()
        with world.lock:
            for deal_id in ids[1:]:
                deals.move_deal(portal, deal_id, "WON", user_id=1)
        wait(lambda: done(world, portal, ids[1:]), 3 * 3600, "all copies")
        wall = time.monotonic() - started
        made = portal.request_total - before
        rejected = reject_count(portal) - rejected_before
        ideal = max(made - args.burst, 0) / args.rate
        print(f"copy robot: {one - 1} requests per copy (goal 2) + 1 bizproc.event.send answer")
        print(f"  methods seen so far: {methods_one}")
        print(
            f"{args.workers} workers, {args.deals} deals, portal limit {args.burst} burst / "
            f"{args.rate}/s:"
        )
        print(f"  REST requests {made}, 503 answers {rejected} (goal 0)")
        print(
            f"  wall {wall:.1f} s, ideal (requests - burst) / rate = {ideal:.1f} s, "
            f"ratio {wall / ideal if ideal else float('nan'):.3f} (goal <= 1.1)"
        )
        bench.stop()
    finally:
        for w in workers:
            w.terminate()
        resources.close()


def reject_count(portal) -> int:
    from fakeportal import limits

    return limits.state(portal).rejected_503


def done(world: World, portal, ids: list[int]) -> bool:
    with world.lock:
        flows = rules.list_workflows(world, portal.member_id, None)
    finished = {
        f["deal_id"] for f in flows if f["robots"] and f["robots"][0]["status"] == "completed"
    }
    return all(i in finished for i in ids)


if __name__ == "__main__":
    main()
