"""assign_from_department end to end: the solar installer's deals that need a loan go to the
finance department, in turn, skipping whoever left the company or is on vacation; the
experts' firm spreads inquiries over a division and its teams.

The emulated portal, the app over HTTP, Redis, a worker and the app's database are real. The
portal's people, structure and absence chart are set up through its admin surface, as HR
does in the UI.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any

import robots.assign_from_department as assign_from_department
from app import jobs
from app.context import RobotContext
from app.payloads import DocumentId
from app.registry import SCOPES
from app.store import Store
from fakeportal.crm import common, deals
from handlers import assignment

NEEDS_LOAN, LOAN_APPLICATION = "PREPARATION", "PREPAYMENT_INVOICE"
ROBOT = assign_from_department.ROBOT.code


def install(stack) -> None:
    """Install the app (its permissions include ``department``, which department.get needs)."""
    assert "department" in SCOPES
    stack.install()
    stack.services.store.set_setting(
        stack.member_id, "calendar", {"timezone": "Europe/Warsaw", "country": "PL"}
    )


def hire(stack, name: str, department: int, **fields: Any) -> int:
    first, last = name.split(" ", 1)
    made = stack.admin.create_user(
        member_id=stack.member_id,
        fields={"NAME": first, "LAST_NAME": last, "UF_DEPARTMENT": [department], **fields},
    )
    return int(made["ID"])


def finance(stack) -> dict[str, int]:
    """The solar installer's finance department: its head and three loan officers, one of
    whom has left the company."""
    head = hire(stack, "Anna Nowak", 1, WORK_POSITION="Head of finance")
    made = stack.admin.create_department(member_id=stack.member_id, name="Finance", head=head)
    department = int(made["ID"])
    stack.admin.update_user(
        member_id=stack.member_id, id=head, fields={"UF_DEPARTMENT": [department]}
    )
    return {
        "department": department,
        "head": head,
        "piotr": hire(stack, "Piotr Zielinski", department),
        "ewa": hire(stack, "Ewa Lewandowska", department),
        "tomasz": hire(stack, "Tomasz Wojcik", department),
        "fired": hire(stack, "Jan Kowalski", department, ACTIVE="N"),
    }


def department(stack, name: str, **fields: Any) -> int:
    return int(stack.admin.create_department(member_id=stack.member_id, name=name, **fields)["ID"])


def portal_today(stack) -> date:
    with stack.world.lock:
        return common.today(stack.portal)


def away(stack, user_id: int, days: int = 10) -> str:
    """``user_id`` is on vacation from yesterday for ``days`` days; the last day."""
    today = portal_today(stack)
    last = (today + timedelta(days=days)).isoformat()
    stack.admin.add_absence(
        member_id=stack.member_id,
        user_id=user_id,
        date_from=(today - timedelta(days=1)).isoformat(),
        date_to=last,
    )
    return last


def place(stack, department: int, **properties: str) -> None:
    stack.place_robot(ROBOT, NEEDS_LOAN, {"department": str(department), **properties})


def new_deal(stack, title: str, stage: str = NEEDS_LOAN, **fields: Any) -> int:
    with stack.world.lock:
        return deals.create_deal(
            stack.portal, {"TITLE": title, "STAGE_ID": stage, "ASSIGNED_BY_ID": 1, **fields}, 1
        )


def deal(stack, deal_id: int) -> dict[str, Any]:
    """The deal as crm.deal.get shows it, read through the admin surface (not a request)."""
    return stack.admin.get_deal(member_id=stack.member_id, id=deal_id)


def flow(stack, deal_id: int) -> dict[str, Any]:
    [one] = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    return one


def requests_so_far(stack) -> int:
    return stack.admin.requests(member_id=stack.member_id)["total"] - stack.test_calls


def notifications(stack) -> list[dict[str, Any]]:
    table = stack.admin.dump(member_id=stack.member_id, table="notification")["notification"]
    return list(table.values())


def test_deals_needing_a_loan_go_to_finance_in_turn(stack) -> None:
    install(stack)
    team = finance(stack)
    away(stack, team["ewa"])  # on vacation until the 20th
    place(
        stack,
        team["department"],
        rule="round_robin",
        stage_id=LOAN_APPLICATION,
        notify="Y",
        message="Please prepare the loan application.",
    )
    before = requests_so_far(stack)
    titles = ["PV 9.6 kWp, Nowak", "PV 6 kWp, Kaczmarek", "Heat pump, Mazur", "PV 4 kWp, Krol"]
    deal_ids = []
    for title in titles:  # one after another, as the sales team hands them over
        deal_ids.append(new_deal(stack, title))
        stack.settle()
    used = requests_so_far(stack) - before

    # In ID order, from the head on, skipping the fired officer and the one on vacation.
    expected = [team["head"], team["piotr"], team["tomasz"], team["head"]]
    assert [int(deal(stack, d)["ASSIGNED_BY_ID"]) for d in deal_ids] == expected
    assert {deal(stack, d)["STAGE_ID"] for d in deal_ids} == {LOAN_APPLICATION}
    for deal_id, user_id in zip(deal_ids, expected, strict=True):
        step = flow(stack, deal_id)["robots"][0]
        assert step["status"] == "completed"
        assert step["return_values"] == {"user": f"user_{user_id}"}
    notes = notifications(stack)
    assert [n["USER_ID"] for n in notes] == expected
    first = next(n for n in notes if n["TAG"].endswith(f"|{deal_ids[1]}"))
    assert first["MESSAGE"] == (
        f"Please prepare the loan application. [url=/crm/deal/details/{deal_ids[1]}/]"
        f"{titles[1]}[/url]"
    )
    assert first["TYPE"] == "system" and first["USER_ID"] == team["piotr"]

    # Per deal: a batch reading the structure, the people and the deal; one reading who is
    # away; one writing the deal and the notification; and the workflow's answer.
    assert used == 4 * len(titles), used
    runs = stack.services.store.runs(stack.member_id, kind="robot")
    assert [(r["name"], r["status"]) for r in runs] == [(ROBOT, "ok")] * 4

    # The position is in the database: a restarted process (a new Store) reads it.
    settings = stack.services.settings
    restarted = SimpleNamespace(
        store=Store(settings.database_url, settings.secret_key), member_id=stack.member_id
    )
    turn = assignment.position(restarted, team["department"])
    assert (turn.user_id, turn.turn) == (team["head"], 4)


def test_fewest_open_deals_counts_only_deals_in_progress(stack) -> None:
    install(stack)
    sales = 2  # seeded: Maria (2, its head), Alexey (3), Dmitry (5)
    for owner, stage in [(2, "NEW"), (2, "EXECUTING"), (3, "NEW"), (5, "WON"), (5, "LOSE")]:
        new_deal(stack, f"old deal of {owner}", stage, ASSIGNED_BY_ID=owner)
    place(stack, sales, rule="fewest_open")
    before = requests_so_far(stack)
    first = new_deal(stack, "Inquiry from the website")
    stack.settle()
    assert deal(stack, first)["ASSIGNED_BY_ID"] == "5"  # Dmitry: only closed deals
    assert requests_so_far(stack) - before == 4  # read, counts + absence, write, answer

    # Dmitry goes on vacation: Alexey has the fewest (one).
    away(stack, 5)
    second = new_deal(stack, "Inquiry by phone")
    stack.settle()
    assert deal(stack, second)["ASSIGNED_BY_ID"] == "3"
    # The deal being assigned does not count against whoever holds it now.
    with stack.world.lock:
        held = deals.create_deal(
            stack.portal, {"TITLE": "Held", "STAGE_ID": "NEW", "ASSIGNED_BY_ID": 3}, 1
        )
        deals.move_deal(stack.portal, held, NEEDS_LOAN, 1)
    stack.settle()
    # Maria 2, Alexey 2 (+ this one, not counted), Dmitry away: a tie, and after Alexey's
    # turn comes Maria's.
    assert deal(stack, held)["ASSIGNED_BY_ID"] == "2"


def test_the_department_head_and_a_division_with_its_teams(stack) -> None:
    install(stack)
    experts = department(stack, "Expert opinions", head=4)
    tax = department(stack, "Tax", parent=experts)
    audit = department(stack, "Audit", parent=experts)
    deep = department(stack, "Audit II", parent=audit)
    staff = [hire(stack, "Kasia Tax", tax), hire(stack, "Marek Audit", audit),
             hire(stack, "Ola Deep", deep)]  # fmt: skip

    # The division head (Olga, user 4, a member of Service) gets it with rule "head".
    stack.place_robot(ROBOT, "NEW", {"department": str(experts), "rule": "head"})
    before = requests_so_far(stack)
    inquiry = new_deal(stack, "Inquiry: roof statics", "NEW")
    stack.settle()
    assert deal(stack, inquiry)["ASSIGNED_BY_ID"] == "4"
    assert requests_so_far(stack) - before == 4  # read, the head's state + absence, write, answer

    # The division with its teams, in turn: everyone below it, at any depth.
    place(stack, experts, subdepartments="Y")
    before = requests_so_far(stack)
    got = []
    for n in range(4):
        deal_id = new_deal(stack, f"Inquiry {n}")
        stack.settle()
        got.append(int(deal(stack, deal_id)["ASSIGNED_BY_ID"]))
    assert got == [*staff, staff[0]]
    # One more read per deal for the sub-departments' people.
    assert requests_so_far(stack) - before == 5 * 4


def test_without_the_absence_chart_a_big_department_costs_one_read_and_one_write(stack) -> None:
    install(stack)
    call_centre = department(stack, "Call centre")
    agents = [hire(stack, f"Agent No{n}", call_centre) for n in range(53)]  # two pages
    away(stack, agents[0])  # not asked about: skip_absent is off
    place(stack, call_centre, skip_absent="N")
    before = requests_so_far(stack)
    first, second = new_deal(stack, "Callback request"), new_deal(stack, "Second request")
    stack.settle()
    assert [int(deal(stack, d)["ASSIGNED_BY_ID"]) for d in (first, second)] == agents[:2]
    # Per deal: the read batch, its second page of people, the write, the answer.
    assert requests_so_far(stack) - before == 2 * 4
    methods = stack.admin.requests(member_id=stack.member_id)["methods"]
    assert "im.user.list.get" not in methods


def test_what_the_admin_reads_when_nobody_can_take_the_deal(stack) -> None:
    install(stack)
    empty = department(stack, "Legal")
    place(stack, empty)
    deal_id = new_deal(stack, "Contract review")
    stack.settle()
    log = flow(stack, deal_id)["log"]
    assert any(
        f"failed: department \u00abLegal\u00bb ({empty}) has no active employees" in line
        for line in log
    ), log
    assert deal(stack, deal_id)["ASSIGNED_BY_ID"] == "1"  # left as it was: not the admin's now

    # Everyone of Service (Olga) on vacation.
    last = away(stack, 4)
    stack.place_robot(ROBOT, "NEW", {"department": "3"})
    other = new_deal(stack, "Warranty claim", "NEW", ASSIGNED_BY_ID=2)
    stack.settle()
    log = flow(stack, other)["log"]
    expected = (
        "failed: nobody of department \u00abService\u00bb (3) is at work today:"
        f" Olga Ivanova (user 4) until {last} away"
    )
    assert any(expected in line for line in log), log
    assert deal(stack, other)["ASSIGNED_BY_ID"] == "2"
    run = stack.services.store.runs(stack.member_id, kind="robot")[0]
    assert run["status"] == "failed" and "nobody of department" in run["error"]

    # Its head is away too: the head rule says so.
    stack.place_robot(ROBOT, "EXECUTING", {"department": "3", "rule": "head"})
    third = new_deal(stack, "Service visit", "EXECUTING")
    stack.settle()
    log = flow(stack, third)["log"]
    expected = (
        f"the head of department \u00abService\u00bb (3), Olga Ivanova (user 4), is away until"
        f" {last}"
    )
    assert any(expected in line for line in log), log

    # A stage of another funnel (crm.deal.update would ignore it): said, not ignored.
    stack.place_robot(ROBOT, "LOSE", {"department": "2", "stage_id": "C9:NEW"})
    lost = new_deal(stack, "Lost lead", "LOSE")
    stack.settle()
    log = flow(stack, lost)["log"]
    assert any("stage C9:NEW is in funnel 9, the deal in funnel 0" in line for line in log), log

    # A department that is not in the structure.
    stack.place_robot(ROBOT, "FINAL_INVOICE", {"department": "999"})
    fourth = new_deal(stack, "Invoice", "FINAL_INVOICE")
    stack.settle()
    log = flow(stack, fourth)["log"]
    assert any("department 999 is not in the company structure" in line for line in log), log


def test_a_portal_error_is_what_the_admin_reads(stack) -> None:
    install(stack)
    place(stack, 2)
    stack.admin.inject_fault(
        member_id=stack.member_id, status=403, code="ACCESS_DENIED",
        description="Access denied.", method="department.get",
    )  # fmt: skip
    deal_id = new_deal(stack, "Refused")
    stack.settle()
    log = flow(stack, deal_id)["log"]
    expected = "failed: the portal answered ACCESS_DENIED: Access denied."
    assert any(expected in line for line in log), log
    assert deal(stack, deal_id)["ASSIGNED_BY_ID"] == "1"
    assert assignment.position(stack.context(), 2) is None  # nobody's turn was used up


def test_a_failed_write_is_retried_and_gives_the_deal_to_the_same_person(stack) -> None:
    stack.services.settings = stack.services.settings.with_(
        portal_retry_delays=(0.01, 0.01), robot_retry_intervals=(1, 1)
    )
    install(stack)
    place(stack, 2, notify="Y")
    # The write batch fails three times: past the client's retries, the job runs again.
    stack.admin.inject_fault(
        member_id=stack.member_id, status=500, count=3, method="crm.deal.update"
    )
    deal_id = new_deal(stack, "Flaky portal")
    stack.settle()
    assert deal(stack, deal_id)["ASSIGNED_BY_ID"] == "2"
    runs = stack.services.store.runs(stack.member_id, kind="robot")
    assert [(r["status"], r["attempts"]) for r in reversed(runs)] == [("retrying", 1), ("ok", 2)]
    turn = assignment.position(stack.context(), 2)
    assert (turn.user_id, turn.previous_user_id) == (2, 0)  # the given-back turn, taken again
    assert [n["USER_ID"] for n in notifications(stack)] == [2]  # notified once
    second = new_deal(stack, "Next one")
    stack.settle()
    assert deal(stack, second)["ASSIGNED_BY_ID"] == "3"


def test_twenty_deals_at_once_on_four_workers_are_shared_evenly(stack, monkeypatch) -> None:
    """Four worker threads run the robot for twenty deals at the same moment, against the real
    portal emulator, Redis (the shared request budget) and the app's database."""
    install(stack)
    team = finance(stack)
    officers = sorted(team[k] for k in ("head", "piotr", "ewa", "tomasz"))
    with stack.world.lock:  # on a stage without the robot: the threads run it themselves
        deal_ids = [
            deals.create_deal(stack.portal, {"TITLE": f"Loan {n}", "STAGE_ID": "NEW"}, 1)
            for n in range(20)
        ]
    taken: list[assignment.Turn] = []
    real = assignment.next_in_turn

    def recording(*args: Any, **kwargs: Any) -> assignment.Turn:
        turn = real(*args, **kwargs)
        taken.append(turn)
        return turn

    monkeypatch.setattr(assignment, "next_in_turn", recording)
    stack.admin.requests(member_id=stack.member_id, reset=True)
    properties = assign_from_department.ROBOT.typed_properties(
        {"department": str(team["department"]), "rule": "round_robin"}
    )
    start = threading.Barrier(4)
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def worker(mine: list[int]) -> None:
        start.wait()
        for deal_id in mine:
            ctx = jobs.context(
                stack.services,
                stack.member_id,
                RobotContext,
                name=ROBOT,
                document=DocumentId("crm", "CCrmDocumentDeal", f"DEAL_{deal_id}"),
                properties=properties,
            )
            try:
                results[deal_id] = assign_from_department.run(ctx)["user"]
            except BaseException as exc:  # noqa: BLE001  (reported below)
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(deal_ids[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    # Three requests a deal, all under the portal's limit (the workers share one budget).
    counters = stack.admin.requests(member_id=stack.member_id)
    assert (counters["total"], counters["rejected_503"]) == (3 * 20, 0), counters
    shares = Counter(results.values())
    assert sorted(shares.values()) == [5, 5, 5, 5], shares
    assert set(shares) == {f"user_{u}" for u in officers}
    # In the order the turns were taken: everyone once before anyone twice.
    order = [t.user_id for t in sorted(taken, key=lambda t: t.turn)]
    assert [t.turn for t in sorted(taken, key=lambda t: t.turn)] == list(range(1, 21))
    for round_start in range(0, 20, 4):
        assert sorted(order[round_start : round_start + 4]) == officers, order
    # The portal agrees with what the robot returned.
    for deal_id, user in results.items():
        assert f"user_{deal(stack, deal_id)['ASSIGNED_BY_ID']}" == user
