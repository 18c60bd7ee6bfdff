"""Portal events through the app: bound at install, verified, queued, handled in a job."""

from __future__ import annotations

import pytest
import requests

from app.context import EventContext
from app.payloads import EventCall
from app.registry import Capability, Catalogue, EventRouter
from fakeportal.automation import outbox, rules
from fakeportal.crm import deals
from server import CATALOGUE

router = EventRouter()
SEEN: list[tuple[str, str, bool]] = []


@router.on("ONCRMDEALUPDATE")
def note_stage(ctx: EventContext, event: EventCall) -> None:
    """Reads the deal (the event carries only its ID) and notes its stage on the timeline."""
    deal = ctx.portal.call("crm.deal.get", {"id": event.fields["ID"]})
    SEEN.append((deal["ID"], deal["STAGE_ID"], event.by_user))
    ctx.portal.call(
        "crm.timeline.comment.add",
        {
            "fields": {
                "ENTITY_ID": deal["ID"],
                "ENTITY_TYPE": "deal",
                "COMMENT": f"Stage is now {deal['STAGE_ID']}",
            }
        },
    )


@pytest.fixture
def stack_catalogue() -> Catalogue:
    return CATALOGUE.extended(Capability("test_events", router=router))


def test_event_handlers_are_bound_and_run_in_jobs(stack) -> None:
    SEEN.clear()
    stack.install()
    bindings = stack.services.portal(stack.member_id).call("event.get")
    offline = [b for b in bindings if str(b.get("offline")) == "1"]
    # Kept by the portal for us, under the connector our own writes carry (no loops).
    assert sorted(b["event"] for b in offline) == stack.services.catalogue.events.events
    assert "ONCRMDEALUPDATE" in stack.services.catalogue.events.events
    assert {b["connector_id"] for b in offline} == {"robot_server"}
    online = {(b["event"], b["handler"]) for b in bindings if str(b.get("offline")) != "1"}
    url = f"{stack.app_url}/events"
    assert online == {("ONAPPUNINSTALL", url), ("ONOFFLINEEVENT", url)}

    deal_id = stack.portal_call("crm.deal.add", {"fields": {"TITLE": "Water, 20 bottles"}})
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": "PREPARATION"}})
    stack.settle()
    assert SEEN == [(str(deal_id), "PREPARATION", True)]
    notes = stack.portal_call(
        "crm.timeline.comment.list", {"filter": {"ENTITY_TYPE": "deal", "ENTITY_ID": deal_id}}
    )
    assert [n["COMMENT"] for n in notes] == ["Stage is now PREPARATION"]
    run = stack.services.store.runs(stack.member_id, kind="event")[0]
    assert (run["name"], run["document"], run["status"]) == ("ONCRMDEALUPDATE", str(deal_id), "ok")
    assert run["key"].startswith("offline:")  # drained from the portal's offline queue
    posts = stack.admin.wire_log(member_id=stack.member_id, kind="event")
    assert {p["request"]["form"].get("event") for p in posts} <= {"ONOFFLINEEVENT"}
    queue = stack.services.portal(stack.member_id).call(
        "event.offline.list", {"auth_connector": "robot_server"}
    )
    assert queue == []  # cleared once handled; the app's own comment queued nothing


def test_a_change_made_by_automation_comes_without_user_tokens(stack) -> None:
    """A trigger moved the deal: the event carries no user token, the handler still runs
    with the installation's own tokens."""
    SEEN.clear()
    stack.install()
    rules.add_trigger_rule(
        stack.world,
        member_id=stack.member_id,
        category_id=0,
        stage_id="EXECUTING",
        client_id=stack.client_id,
        trigger_code="email_opened",
    )
    with stack.world.lock:
        deal_id = deals.create_deal(stack.portal, {"TITLE": "Proposal"}, user_id=1)
    stack.services.portal(stack.member_id).call(
        "crm.automation.trigger.execute",
        {"CODE": "email_opened", "OWNER_TYPE_ID": 2, "OWNER_ID": deal_id},
    )
    stack.settle()
    assert (str(deal_id), "EXECUTING", False) in SEEN


def test_replayed_and_forged_events_queue_nothing(stack) -> None:
    stack.install()
    inst = stack.portal.apps[stack.client_id]
    form = {
        "event": "ONCRMDEALUPDATE",
        "event_handler_id": "7",
        "data[FIELDS][ID]": "1",
        "ts": "1700000000",
        "auth[member_id]": stack.member_id,
        "auth[domain]": stack.portal.domain,
        "auth[application_token]": inst.application_token,
    }
    url = f"{stack.app_url}/events"
    assert requests.post(url, data=form, timeout=5).json()["status"] == "queued"
    assert requests.post(url, data=form, timeout=5).json()["status"] == "duplicate"
    forged = requests.post(url, data={**form, "auth[application_token]": "x" * 32}, timeout=5)
    assert forged.status_code == 401
    assert stack.services.queue("events").count == 1


FLAKY = {"fail": True}
flaky_router = EventRouter()


@flaky_router.on("ONCRMDEALADD")
def flaky(ctx: EventContext, event: EventCall) -> None:
    if FLAKY["fail"]:
        raise RuntimeError("handler bug")
    SEEN.append((event.fields["ID"], "ADDED", event.by_user))


def test_a_failed_event_handler_is_recorded_and_replayed(stack) -> None:
    SEEN.clear()
    flaky_capability = Capability("test_flaky", router=flaky_router)
    stack.services.catalogue = stack.services.catalogue.extended(flaky_capability)
    stack.install()
    deal_id = stack.portal_call("crm.deal.add", {"fields": {"TITLE": "Water, 40 bottles"}})
    stack.settle()
    failed = [
        r
        for r in stack.services.store.runs(stack.member_id, kind="event")
        if r["name"] == "ONCRMDEALADD"
    ]
    assert [r["status"] for r in failed] == ["failed"] and "handler bug" in failed[0]["error"]

    FLAKY["fail"] = False  # the bug is fixed and deployed
    result = stack.cli("replay-failed")
    assert result.exit_code == 0 and "replayed 1 failed event" in result.output, result.output
    stack.settle()
    assert (str(deal_id), "ADDED", True) in SEEN
    statuses = [
        r["status"]
        for r in stack.services.store.runs(stack.member_id, kind="event")
        if r["name"] == "ONCRMDEALADD"
    ]
    assert sorted(statuses) == ["ok", "replayed"]


def test_events_while_the_app_is_down_are_handled_once_when_it_is_back(stack) -> None:
    """Web and workers are away while deals change: no delivery reaches the app, the portal
    keeps the events, and the worker's start-up drain handles each change once."""
    SEEN.clear()
    stack.install()
    stack.stop_web()
    first = stack.portal_call("crm.deal.add", {"fields": {"TITLE": "Office, 20 bottles"}})
    second = stack.portal_call("crm.deal.add", {"fields": {"TITLE": "Home, 2 bottles"}})
    stack.portal_call("crm.deal.update", {"id": first, "fields": {"STAGE_ID": "PREPARATION"}})
    stack.portal_call("crm.deal.update", {"id": second, "fields": {"STAGE_ID": "PREPARATION"}})
    stack.portal_call("crm.deal.update", {"id": first, "fields": {"STAGE_ID": "EXECUTING"}})
    outbox.wait_idle(stack.world, 5.0)
    stack.run_jobs()
    assert SEEN == []
    wake_ups = stack.admin.wire_log(member_id=stack.member_id, kind="event")
    assert wake_ups and all(w["status"] != 200 for w in wake_ups), wake_ups

    stack.start_web()
    assert stack.enqueue("fan_out", {"job": "drain"}, member_id="")  # what a worker does at start
    stack.settle()
    assert sorted(SEEN) == [(str(first), "EXECUTING", True), (str(second), "PREPARATION", True)]
    runs = [r for r in stack.services.store.runs(stack.member_id, kind="event")]
    assert [r["status"] for r in runs] == ["ok", "ok"]
    assert (
        stack.services.portal(stack.member_id).call(
            "event.offline.list", {"auth_connector": "robot_server"}
        )
        == []
    )


def test_a_drain_killed_before_clearing_loses_nothing_and_does_nothing_twice(
    stack, monkeypatch
) -> None:
    from app import jobs

    SEEN.clear()
    stack.install()
    stack.stop_web()  # no wake-up: the test drains by hand
    deal_id = stack.portal_call("crm.deal.add", {"fields": {"TITLE": "Cooler"}})
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": "PREPARATION"}})

    class Killed(BaseException):
        """The worker dies: no handler of the app's runs after this."""

    def killed(*args: object) -> None:
        raise Killed

    monkeypatch.setattr(jobs, "_settle_rows", killed)
    with pytest.raises(Killed):
        stack.run_job("drain")
    assert SEEN == [(str(deal_id), "PREPARATION", True)]  # handled, not yet cleared
    monkeypatch.undo()

    stack.run_job("drain")  # the next drain re-reads the reserved batch
    assert SEEN == [(str(deal_id), "PREPARATION", True)]  # and does not handle it twice
    assert (
        stack.services.portal(stack.member_id).call(
            "event.offline.list", {"auth_connector": "robot_server"}
        )
        == []
    )
    assert [r["status"] for r in stack.services.store.runs(stack.member_id, kind="event")] == ["ok"]


def test_a_storm_is_drained_page_by_page_with_one_request_a_page(stack) -> None:
    """120 changes queued while the app was away: three pages of 50, each page cleared in the
    same request that reads the next."""
    counted: list[str] = []
    quiet = EventRouter()  # a handler that costs no request, so the drain's own are counted
    quiet.on("ONCRMDEALUPDATE")(lambda ctx, event: counted.append(event.fields["ID"]))
    stack.install()
    stack.services.catalogue = CATALOGUE.extended(Capability("test_quiet", router=quiet))
    stack.stop_web()
    with stack.world.lock:
        ids = [
            deals.create_deal(stack.portal, {"TITLE": f"Order {n}"}, user_id=1) for n in range(120)
        ]
        for deal_id in ids:
            deals.move_deal(stack.portal, deal_id, "PREPARATION", user_id=1)
    stack.start_web()
    stack.admin.requests(member_id=stack.member_id, reset=True)
    report = stack.run_job("drain")
    assert report == {"pages": 3, "events": 120, "ok": 120, "failed": 0}
    assert sorted(int(d) for d in counted) == ids
    counters = stack.admin.requests(member_id=stack.member_id)
    assert counters["total"] == 4  # get; clear+get; clear+get; clear
    assert counters["methods"]["event.offline.get"] == 3
    assert counters["methods"]["event.offline.clear"] == 3


def test_a_batch_reserved_whose_id_was_lost_is_found_by_the_clocks_drain(stack) -> None:
    """The answer to a read was lost after the portal reserved the rows: no drain knows the
    batch's id, the rows are invisible to plain reads; the minute's drain finds them."""
    SEEN.clear()
    stack.install()
    stack.stop_web()
    deal_id = stack.portal_call("crm.deal.add", {"fields": {"TITLE": "Cooler"}})
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": "PREPARATION"}})
    lost = stack.services.portal(stack.member_id).call(
        "event.offline.get", {"clear": 0, "limit": 50, "auth_connector": "robot_server"}
    )
    assert lost["process_id"] and len(lost["events"]) == 1  # reserved; its id is forgotten
    assert stack.run_job("drain") == {"pages": 0, "events": 0, "ok": 0, "failed": 0}
    assert SEEN == []
    assert stack.run_job("drain", recover=True)["ok"] == 1
    assert SEEN == [(str(deal_id), "PREPARATION", True)]
    assert (
        stack.services.portal(stack.member_id).call(
            "event.offline.list", {"auth_connector": "robot_server"}
        )
        == []
    )
