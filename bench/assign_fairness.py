"""assign_from_department under load: 200 deals arriving at once, four workers, one department.

Everything real on this machine: the emulated portal, the app's web layer over HTTP, a
redis-server and W ``robot-server worker`` processes (default 4). P people (default 7) work in
the department; N deals (default 200) enter the stage the robot is placed on at the same
moment, so the workers pick turns concurrently. Prints the largest and smallest share per
person (goal: they differ by at most one), whether anyone got a second deal before everyone
had one in each round (goal: never), the requests per assignment and the wall time. The
portal's limit is raised by default (``--rate``): fairness, not the rate, is measured here.

    .venv/bin/python bench/assign_fairness.py [--deals 200] [--people 7] [--workers 4]
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import redis_server, start_app, start_workers, wait  # noqa: E402

from fakeportal import limits  # noqa: E402
from fakeportal.automation import lifecycle, rules  # noqa: E402
from fakeportal.crm import admin as crm_admin  # noqa: E402
from fakeportal.crm import deals  # noqa: E402
from fakeportal.state import World  # noqa: E402

STAGE = "PREPARATION"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--deals", type=int, default=200)
    parser.add_argument("--people", type=int, default=7)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--burst", type=int, default=250)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="bench-assign-"))
    resources = ExitStack()
    redis_url = resources.enter_context(redis_server())
    workers = []
    try:
        world = World()
        world.config.update(bucket_size=args.burst, drain_per_second=args.rate)
        bench = start_app(world, redis_url, tmp, burst=args.burst, rate=args.rate)
        portal = world.add_portal(domain="solar.bitrix24.test", timezone="Europe/Warsaw")
        member = portal.member_id
        head = int(
            crm_admin.create_user(world, {"NAME": "Anna", "LAST_NAME": "Head"}, member)["ID"]
        )
        department = int(crm_admin.create_department(world, "Finance", head=head,
                                                     member_id=member)["ID"])  # fmt: skip
        people = [
            int(crm_admin.create_user(
                world, {"NAME": f"Officer{n}", "LAST_NAME": "Loan", "UF_DEPARTMENT": [department]},
                member,
            )["ID"])
            for n in range(args.people)
        ]  # fmt: skip
        workers = start_workers(bench, redis_url, args.workers)
        lifecycle.install_app(world, member, bench.settings.client_id)
        wait(lambda: bench.synced(member), 60, "install")
        rules.add_robot_rule(
            world, member_id=member, category_id=0, stage_id=STAGE,
            client_id=bench.settings.client_id, robot_code="assign_from_department",
            properties={"department": str(department), "rule": "round_robin",
                        "skip_absent": "N"},
            timeout_seconds=0,
        )  # fmt: skip
        with world.lock:
            ids = [deals.create_deal(portal, {"TITLE": f"Loan {i}"}, 1) for i in range(args.deals)]
        before, rejected_before = portal.request_total, limits.state(portal).rejected_503
        started = time.monotonic()
        with world.lock:
            for deal_id in ids:  # all at once: the robot calls queue up together
                deals.move_deal(portal, deal_id, STAGE, user_id=1)
        wait(lambda: _done(world, member, ids), 600, "all assignments")
        wall = time.monotonic() - started
        made = portal.request_total - before
        with world.lock:
            owners = {d: int(portal.table("deal")[d]["ASSIGNED_BY_ID"]) for d in ids}
        shares = Counter(owners.values())
        order = [owners[d] for d in _by_assignment(world, member, ids)]
        rounds = [order[i : i + args.people] for i in range(0, len(order), args.people)]
        unfair = sum(1 for r in rounds if len(set(r)) != len(r))
        print(
            f"assign_from_department: {args.deals} deals at once, {args.people} people, "
            f"{args.workers} workers, portal limit {args.burst} burst / {args.rate}/s"
        )
        print(f"  share per person: largest {max(shares.values())}, smallest "
              f"{min(shares.get(p, 0) for p in people)} (goal: differ by at most 1)")  # fmt: skip
        print(f"  rounds of {args.people} answers in which someone got a second deal: {unfair} "
              f"of {len(rounds)} (goal 0)")  # fmt: skip
        print(f"  only department people assigned: {set(shares) <= set(people)}")
        print(
            f"  REST requests {made} ({made / args.deals:.2f} per assignment, answer"
            f" included); 503 answers {limits.state(portal).rejected_503 - rejected_before}"
        )
        print(f"  wall {wall:.1f} s")
        bench.stop()
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=10)
        resources.close()


def _flows(world: World, member: str) -> list[dict]:
    with world.lock:
        return rules.list_workflows(world, member, None)


def _done(world: World, member: str, ids: list[int]) -> bool:
    finished = {f["deal_id"] for f in _flows(world, member)
                if f["robots"] and f["robots"][0]["status"] == "completed"}  # fmt: skip
    return all(i in finished for i in ids)


def _by_assignment(world: World, member: str, ids: list[int]) -> list[int]:
    """The deals in the order their robots answered."""
    flows = [f for f in _flows(world, member) if f["deal_id"] in set(ids) and f["robots"]]
    flows.sort(key=lambda f: f["robots"][0].get("finished_at") or 0)
    return [f["deal_id"] for f in flows]


if __name__ == "__main__":
    main()
