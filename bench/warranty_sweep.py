"""The warranty sweep at scale: requests for one hourly sweep over many service deals.

Everything real on this machine: the emulated portal (its leaky bucket at the cloud's 50
burst / 2 per second), the app installed into it over HTTP, a redis-server, and the sweep run
once through the app's own portal client. N service deals are created in the emulator's state
(in process), D of them due (their warranty ends within 3 working days), spread over the id
range. Prints:

- REST requests the sweep made versus the minimum: the ``start=-1`` pages the due deals need
  (D // 50 + 1: a short page ends the listing) plus ceil(D / 50) batch writes (goal: equal);
- wall time versus requests / rate (goal: within 1.1), 503 answers (goal: 0);
- that exactly the due deals moved.

    .venv/bin/python bench/warranty_sweep.py [--deals 10000] [--due 300]
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import redis_server, start_app  # noqa: E402

from app import jobs  # noqa: E402
from app.calendar import FixedClock  # noqa: E402
from app.context import JobContext, PortalSettings  # noqa: E402
from fakeportal import limits  # noqa: E402
from fakeportal.crm import add_user_field, create_category, create_deal  # noqa: E402
from fakeportal.state import World  # noqa: E402
from handlers import date_watch  # noqa: E402

WARSAW = ZoneInfo("Europe/Warsaw")
FIELD = "UF_CRM_WARRANTY_END"
TODAY = date(2026, 11, 6)  # Friday; 3 working days later is Thu 12 Nov (11 Nov is a holiday)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--burst", type=int, default=50)
    args = parser.parse_args()
    if not 0 <= args.due <= args.deals:
        parser.error("--due must be between 0 and --deals")
    logging.basicConfig(level=logging.WARNING)
    for name in ("werkzeug", "app", "rq", "rq.worker", "handlers"):
        logging.getLogger(name).setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="bench-warranty-"))
    resources = ExitStack()
    redis_url = resources.enter_context(redis_server())
    try:
        world = World()
        world.config.update(bucket_size=args.burst, drain_per_second=args.rate)
        moment = datetime(TODAY.year, TODAY.month, TODAY.day, 10, tzinfo=WARSAW).astimezone(UTC)
        world.advance(moment - world.now())
        bench = start_app(
            world, redis_url, tmp, burst=args.burst, rate=args.rate, clock=FixedClock(moment)
        )
        services = bench.services
        portal = world.add_portal(
            domain="solar.bitrix24.test", timezone="Europe/Warsaw", country="PL"
        )
        bench.install_in_process(world, portal.member_id)

        started = time.monotonic()
        with world.lock:
            service = create_category(
                portal,
                "Service",
                [
                    ("NEW", "Under warranty", "P"),
                    ("POST", "Post-warranty service", "P"),
                    ("WON", "Closed", "S"),
                    ("LOSE", "Cancelled", "F"),
                ],
            )
            add_user_field(portal, "DEAL", "WARRANTY_END", "date")
            step = args.deals / args.due if args.due else 0
            due_at = {int(i * step) for i in range(args.due)}
            for n in range(args.deals):
                end = "2026-11-12" if n in due_at else f"{2027 + n % 3}-0{1 + n % 9}-15"
                create_deal(
                    portal,
                    {
                        "TITLE": f"Service #{n}",
                        "CATEGORY_ID": service,
                        "STAGE_ID": f"C{service}:NEW",
                        FIELD: end,
                    },
                )
        built = time.monotonic() - started
        PortalSettings(services.store, portal.member_id).set(
            "calendar", {"timezone": "Europe/Warsaw", "country": "PL"}
        )
        date_watch.record_watch(
            services.store,
            portal.member_id,
            category_id=service,
            field=FIELD,
            within_days=3,
            working_days=True,
            action="move",
            target=f"C{service}:POST",
        )
        ctx = jobs.context(services, portal.member_id, JobContext, name="schedule:date_watch")
        time.sleep(args.burst / args.rate)  # an idle portal: its bucket drained after install
        before, rejected_before = portal.request_total, limits.state(portal).rejected_503
        methods_before = dict(portal.requests)
        started = time.monotonic()
        report = date_watch.sweep(ctx)
        wall = time.monotonic() - started
        made = portal.request_total - before
        rejected = limits.state(portal).rejected_503 - rejected_before
        methods = {
            k: v - methods_before.get(k, 0)
            for k, v in portal.requests.items()
            if v != methods_before.get(k, 0)
        }
        with world.lock:
            moved_count = sum(
                1 for d in portal.table("deal").values() if d.get("STAGE_ID") == f"C{service}:POST"
            )
        reads = args.due // 50 + 1
        writes = math.ceil(args.due / 50)
        minimum = reads + writes
        ideal = made / args.rate
        print(
            f"warranty sweep: {args.deals} service deals, {args.due} due "
            f"(built in the emulator in {built:.1f} s)"
        )
        print(f"  sweep report {report}; deals now in post-warranty service: {moved_count}")
        print(
            f"  REST requests {made} (batch commands inside: {methods}); minimum {minimum} = "
            f"{reads} start=-1 pages + {writes} batch writes (goal: equal)"
        )
        print(f"  503 answers {rejected} (goal 0)")
        print(
            f"  portal limit {args.burst} burst / {args.rate}/s: wall {wall:.2f} s, "
            f"requests / rate = {ideal:.2f} s, ratio {wall / ideal if ideal else 0:.3f} "
            "(goal: within 1.1)"
        )
        bench.stop()
    finally:
        resources.close()


if __name__ == "__main__":
    main()
