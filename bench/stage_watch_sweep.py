"""watch_stage at scale: what one sweep costs with many watched deals and a few due.

Everything real on this machine: the emulated portal (its leaky bucket at the cloud's 50
burst / 2 per second), the app installed into it, a redis-server, and the sweep run once
through the app's own portal client. N deals sit in "Awaiting payment", each watched by the
robot's rule ("3 working days, then notify"); D of them entered four working days ago, so they
are due. Prints the REST requests of one sweep against the minimum (ceil(D / 50) batch reads
of the due deals + as many batch writes; the N - D others cost none), a second sweep's (goal
0), the wall time against requests / rate, and the 503 answers.

    .venv/bin/python bench/stage_watch_sweep.py [--deals 10000] [--due 100]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import redis_server, start_app  # noqa: E402

from app import jobs  # noqa: E402
from app.calendar import FixedClock  # noqa: E402
from app.context import JobContext  # noqa: E402
from fakeportal import limits  # noqa: E402
from fakeportal.crm import create_deal  # noqa: E402
from fakeportal.state import World  # noqa: E402
from handlers import stage_watch  # noqa: E402

STAGE = "PREPAYMENT_INVOICE"
THURSDAY = datetime(2026, 11, 12, 9, 0, tzinfo=UTC)  # 10:00 in Warsaw
LAST_WEEK = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)  # 4 working days before (11 Nov is off)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    if not 0 <= args.due <= args.deals:
        parser.error("--due must be between 0 and --deals")
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-stage-watch-"))
    resources = ExitStack()
    redis_url = resources.enter_context(redis_server())
    try:
        world = World()
        world.config.update(bucket_size=args.burst, drain_per_second=args.rate)
        clock = FixedClock(THURSDAY)
        bench = start_app(world, redis_url, tmp, burst=args.burst, rate=args.rate, clock=clock)
        services = bench.services
        portal = world.add_portal(domain="print.bitrix24.test", timezone="Europe/Warsaw",
                                  country="PL")  # fmt: skip
        bench.install_in_process(world, portal.member_id)
        services.store.set_setting(
            portal.member_id, "calendar", {"timezone": "Europe/Warsaw", "country": "PL"}
        )
        started = time.monotonic()
        with world.lock:
            ids = [
                create_deal(portal, {"TITLE": f"Order {n}", "STAGE_ID": STAGE}, 1)
                for n in range(args.deals)
            ]
        ctx = jobs.context(services, portal.member_id, JobContext, name="bench")
        step = args.deals / args.due if args.due else 0
        due = {ids[int(i * step)] for i in range(args.due)}
        for deal_id in ids:
            clock.set(LAST_WEEK if deal_id in due else THURSDAY)
            stage_watch.start(ctx, deal_id, STAGE, after="3 working days", action="notify")
        clock.set(THURSDAY)
        built = time.monotonic() - started

        time.sleep(args.burst / args.rate)  # an idle portal: its bucket drained after install
        before, rejected_before = portal.request_total, limits.state(portal).rejected_503
        started = time.monotonic()
        report = stage_watch.sweep(ctx)
        wall = time.monotonic() - started
        made = portal.request_total - before
        again_before = portal.request_total
        second = stage_watch.sweep(ctx)
        again = portal.request_total - again_before
        rejected = limits.state(portal).rejected_503 - rejected_before
        with world.lock:
            notified = len(portal.table("notification"))
        minimum = 2 * math.ceil(args.due / 50)
        ideal = made / args.rate
        print(f"stage watch sweep: {args.deals} watched deals, {args.due} due "
              f"(watches recorded in {built:.1f} s)")  # fmt: skip
        print(f"  sweep report {report}; notifications sent: {notified}")
        print(f"  REST requests {made}; minimum {minimum} = {minimum // 2} batch reads + "
              f"{minimum // 2} batch writes (goal: equal)")  # fmt: skip
        print(f"  a second sweep: {second}, REST requests {again} (goal 0)")
        print(f"  503 answers {rejected} (goal 0)")
        print(
            f"  portal limit {args.burst} burst / {args.rate}/s: wall {wall:.2f} s, "
            f"requests / rate = {ideal:.2f} s, ratio {wall / ideal if ideal else 0:.3f}"
        )
        bench.stop()
    finally:
        resources.close()


if __name__ == "__main__":
    main()
