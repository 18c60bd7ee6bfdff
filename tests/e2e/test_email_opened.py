"""The water delivery case: the client reads the proposal, the deal moves to "Contract, invoice".

The app is served over HTTP, the portal is the emulator; the tracking robot runs in a real
workflow, the pixel and the link are fetched over HTTP, the trigger fires in a worker job.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import requests

from app.calendar import FixedClock
from app.registry import QUEUES
from handlers import tracking

START = datetime(2025, 3, 4, 9, 0, tzinfo=UTC)
TARGET = "https://water.example/proposal?deal=1"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Thunderbird/128.0"


def _setup(stack: Any) -> dict[str, Any]:
    """Install, a water delivery funnel, the tracking robot on "Proposal sent", the trigger."""
    clock = FixedClock(START)
    stack.services.clock = clock
    stack.install()
    funnel = stack.admin.create_funnel(
        member_id=stack.member_id,
        name="Water delivery",
        stages=[
            ["NEW", "New order", "P"],
            ["PROPOSAL", "Proposal sent", "P"],
            ["CONTRACT", "Contract, invoice", "P"],
            ["DELIVERY", "Delivery", "P"],
            ["WON", "Delivered", "S"],
            ["LOSE", "Lost", "F"],
        ],
    )
    prefix = f"C{funnel['id']}:"
    stack.place_robot(
        "tracking_link",
        prefix + "PROPOSAL",
        {"message": "Proposal", "target_url": TARGET},
        category_id=funnel["id"],
    )
    stack.admin.add_trigger_rule(
        member_id=stack.member_id,
        category_id=funnel["id"],
        stage_id=prefix + "CONTRACT",
        client_id=stack.client_id,
        trigger_code="email_opened",
    )
    return {"clock": clock, "funnel": funnel["id"], "prefix": prefix}


def _proposal_sent(stack: Any, env: dict[str, Any], title: str) -> tuple[int, dict[str, str]]:
    """A deal enters "Proposal sent": the robot answers its workflow with the two URLs."""
    deal = stack.admin.create_deal(
        member_id=stack.member_id,
        fields={"TITLE": title, "CATEGORY_ID": env["funnel"], "STAGE_ID": env["prefix"] + "NEW"},
    )
    deal_id = int(deal["ID"])
    stack.admin.move_deal(
        member_id=stack.member_id, id=deal_id, stage_id=env["prefix"] + "PROPOSAL"
    )
    stack.settle()
    flows = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    steps = [s for w in flows for s in w["robots"] if s["code"] == "tracking_link"]
    assert len(steps) == 1 and steps[0]["status"] == "completed", steps
    return deal_id, steps[0]["return_values"]


def _stage(stack: Any, deal_id: int) -> str:
    return stack.admin.get_deal(member_id=stack.member_id, id=deal_id)["STAGE_ID"]


def _executed(stack: Any) -> int:
    methods = stack.admin.requests(member_id=stack.member_id)["methods"]
    return sum(n for m, n in methods.items() if m.lower() == "crm.automation.trigger.execute")


def _queued(stack: Any) -> int:
    return sum(stack.services.queue(q).count for q in QUEUES)


def _get(url: str, **kw: Any) -> requests.Response:
    headers = {"User-Agent": kw.pop("agent", BROWSER)}
    return requests.request(kw.pop("method", "GET"), url, headers=headers, timeout=10, **kw)


def _assert_gif(response: requests.Response) -> None:
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert "no-store" in response.headers["Cache-Control"]
    assert response.content == tracking.PIXEL_GIF


def test_the_proposal_read_three_times_moves_the_deal_once(stack) -> None:
    env = _setup(stack)
    deal_id, urls = _proposal_sent(stack, env, "Office cooler, 20 bottles a month")
    assert set(urls) == {"pixel_url", "link_url"}
    assert urls["pixel_url"].startswith(f"{stack.app_url}/t/") and urls["pixel_url"].endswith(
        ".gif"
    )
    assert urls["link_url"].startswith(f"{stack.app_url}/l/")
    assert stack.member_id not in urls["pixel_url"] + urls["link_url"]
    assert _stage(stack, deal_id) == env["prefix"] + "PROPOSAL"

    env["clock"].advance(timedelta(minutes=42))
    for _ in range(3):
        _assert_gif(_get(urls["pixel_url"]))
    stack.settle()

    assert _stage(stack, deal_id) == env["prefix"] + "CONTRACT"
    assert _executed(stack) == 1
    firings = stack.admin.triggers(member_id=stack.member_id)["firings"]
    assert [(f["code"], f["owner_id"], f["moved_to"]) for f in firings] == [
        ("email_opened", deal_id, env["prefix"] + "CONTRACT")
    ]
    opened = tracking.first_open(stack.services.store, stack.member_id, deal_id, "proposal")
    assert opened is not None
    assert opened["first_opened_at"] == (START + timedelta(minutes=42)).timestamp()
    assert opened["via"] == "pixel" and opened["status"] == "fired"
    runs = stack.services.store.runs(stack.member_id, kind="trigger")
    assert [(r["name"], r["status"], r["document"]) for r in runs] == [
        ("email_opened", "ok", f"DEAL_{deal_id}")
    ]

    # The client then clicks the link: redirected, no second trigger.
    env["clock"].advance(timedelta(minutes=3))
    click = _get(urls["link_url"], allow_redirects=False)
    assert click.status_code == 302 and click.headers["Location"] == TARGET
    assert _queued(stack) == 0
    # Even after the Redis dedupe keys are gone, the recorded open keeps it at once.
    for key in stack.services.redis.scan_iter("seen:opened:*"):
        stack.services.redis.delete(key)
    _assert_gif(_get(urls["pixel_url"]))
    _get(urls["link_url"], allow_redirects=False)
    assert _queued(stack) == 0
    opened = dict(deal_id=deal_id, message="proposal", via="pixel", opened_at=0.0)
    assert stack.run_job("tracking.opened", **opened) == {"fired": False, "why": "already fired"}
    stack.settle()
    assert _executed(stack) == 1
    assert _stage(stack, deal_id) == env["prefix"] + "CONTRACT"


def test_checkers_scanners_and_prefetches_do_not_count_a_click_does(stack) -> None:
    env = _setup(stack)
    deal_id, urls = _proposal_sent(stack, env, "Home delivery, 2 bottles a week")

    # A gateway scanning the message on delivery, seconds after it was sent.
    env["clock"].advance(timedelta(seconds=2))
    assert _get(urls["link_url"], allow_redirects=False).status_code == 302
    _assert_gif(_get(urls["pixel_url"]))
    env["clock"].advance(timedelta(minutes=5))
    # A link checker (HEAD), known scanners, no user agent.
    head = _get(urls["link_url"], method="HEAD", allow_redirects=False)
    assert head.status_code == 302 and head.headers["Location"] == TARGET
    scanner = "Mozilla/5.0 (compatible; Barracuda Sentinel (EE))"
    assert _get(urls["link_url"], agent=scanner, allow_redirects=False).status_code == 302
    _assert_gif(_get(urls["pixel_url"], agent="Microsoft Office Existence Discovery"))
    _assert_gif(_get(urls["pixel_url"], agent=""))
    assert _queued(stack) == 0
    stack.settle()
    assert _executed(stack) == 0
    assert _stage(stack, deal_id) == env["prefix"] + "PROPOSAL"
    assert tracking.first_open(stack.services.store, stack.member_id, deal_id, "proposal") is None

    # The client clicks the link (images blocked in the mail client): that counts, once.
    for _ in range(2):
        click = _get(urls["link_url"], allow_redirects=False)
        assert click.status_code == 302 and click.headers["Location"] == TARGET
    stack.settle()
    assert _executed(stack) == 1
    assert _stage(stack, deal_id) == env["prefix"] + "CONTRACT"
    opened = tracking.first_open(stack.services.store, stack.member_id, deal_id, "proposal")
    assert opened is not None and opened["via"] == "link"


def test_altered_and_guessed_tokens_fire_nothing_and_reveal_nothing(stack) -> None:
    env = _setup(stack)
    deal_id, urls = _proposal_sent(stack, env, "Cooler rental")
    env["clock"].advance(timedelta(hours=1))
    pixel_token = urls["pixel_url"].rsplit("/", 1)[1].removesuffix(".gif")
    link_token = urls["link_url"].rsplit("/", 1)[1]

    def altered(token: str, at: int) -> str:
        return token[:at] + ("B" if token[at] != "B" else "C") + token[at + 1 :]

    for bad in (altered(pixel_token, 0), altered(pixel_token, 20), "A" * 32, "guess", link_token):
        _assert_gif(_get(f"{stack.app_url}/t/{bad}.gif"))
    for bad in (altered(link_token, 5), altered(link_token, 31), "A" * 32, pixel_token):
        refused = _get(f"{stack.app_url}/l/{bad}", allow_redirects=False)
        assert refused.status_code == 404 and "Location" not in refused.headers
        assert refused.text == "Not found"
    assert _queued(stack) == 0
    assert not list(stack.services.redis.scan_iter("seen:opened:*"))
    stack.settle()
    assert _executed(stack) == 0
    assert _stage(stack, deal_id) == env["prefix"] + "PROPOSAL"


def test_a_link_with_no_target_thanks_the_client(stack) -> None:
    env = _setup(stack)
    stack.place_robot("tracking_link", env["prefix"] + "DELIVERY", {}, category_id=env["funnel"])
    deal = stack.admin.create_deal(
        member_id=stack.member_id,
        fields={"CATEGORY_ID": env["funnel"], "STAGE_ID": env["prefix"] + "DELIVERY"},
    )
    stack.settle()
    flows = stack.admin.workflows(member_id=stack.member_id, deal_id=int(deal["ID"]))
    urls = next(s for w in flows for s in w["robots"] if s["code"] == "tracking_link")
    env["clock"].advance(timedelta(minutes=1))
    landing = _get(urls["return_values"]["link_url"])
    assert landing.status_code == 200 and "Thank you" in landing.text
    assert landing.url == f"{stack.app_url}/l/thanks"
    stack.settle()
    opened = tracking.first_open(stack.services.store, stack.member_id, int(deal["ID"]), "email")
    assert opened is not None and opened["status"] == "fired"


def test_an_invalid_target_fails_the_robot_with_a_message(stack) -> None:
    env = _setup(stack)
    stack.place_robot(
        "tracking_link",
        env["prefix"] + "DELIVERY",
        {"target_url": "javascript:alert(1)"},
        category_id=env["funnel"],
    )
    deal = stack.admin.create_deal(
        member_id=stack.member_id,
        fields={"CATEGORY_ID": env["funnel"], "STAGE_ID": env["prefix"] + "DELIVERY"},
    )
    stack.settle()
    flows = stack.admin.workflows(member_id=stack.member_id, deal_id=int(deal["ID"]))
    log = " ".join(str(entry) for w in flows for entry in w["log"])
    assert "http:// or https://" in log
    step = next(s for w in flows for s in w["robots"] if s["code"] == "tracking_link")
    assert step["return_values"] == {}


def test_a_token_of_an_uninstalled_portal_fires_nothing(stack) -> None:
    env = _setup(stack)
    deal_id, urls = _proposal_sent(stack, env, "Office, 40 bottles")
    stack.admin.uninstall_app(member_id=stack.member_id, client_id=stack.client_id)
    stack.settle()
    assert stack.services.store.installation(stack.member_id) is None
    env["clock"].advance(timedelta(hours=2))
    _assert_gif(_get(urls["pixel_url"]))
    assert _get(urls["link_url"], allow_redirects=False).status_code == 302
    assert _queued(stack) == 0
    # A job queued before the uninstall finds the portal gone and calls nothing.
    opened = dict(deal_id=deal_id, message="proposal", via="pixel", opened_at=1.0)
    assert stack.run_job("tracking.opened", **opened) is None
    stack.settle()
    assert _executed(stack) == 0
    assert tracking.first_open(stack.services.store, stack.member_id, deal_id, "proposal") is None


def _run_scheduled_retries(stack: Any) -> int:
    """Move the jobs RQ scheduled for a retry into their queue now (no waiting in a test)."""
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry

    moved = 0
    for name in QUEUES:
        queue = stack.services.queue(name)
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_job_ids():
            job = Job.fetch(job_id, connection=stack.services.redis)
            registry.remove(job)
            queue.enqueue_job(job)
            moved += 1
    return moved


def test_a_portal_over_its_limits_gets_the_trigger_on_the_retry_once(stack) -> None:
    env = _setup(stack)
    deal_id, urls = _proposal_sent(stack, env, "Office cooler")
    env["clock"].advance(timedelta(minutes=10))
    stack.admin.inject_fault(
        member_id=stack.member_id,
        status=429,
        code="OPERATION_TIME_LIMIT",
        description="Method is blocked due to operation time limit.",
        count=1,
        method="crm.automation.trigger.execute",
    )
    _assert_gif(_get(urls["pixel_url"]))
    stack.settle()
    assert _stage(stack, deal_id) == env["prefix"] + "PROPOSAL"
    opened = tracking.first_open(stack.services.store, stack.member_id, deal_id, "proposal")
    assert opened is not None and opened["status"] == "opened"
    # More opens while the retry waits queue nothing more.
    _assert_gif(_get(urls["pixel_url"]))
    assert _queued(stack) == 0
    assert _run_scheduled_retries(stack) == 1
    stack.settle()
    assert _stage(stack, deal_id) == env["prefix"] + "CONTRACT"
    firings = stack.admin.triggers(member_id=stack.member_id)["firings"]
    assert len(firings) == 1
    runs = stack.services.store.runs(stack.member_id, kind="trigger")
    assert [r["status"] for r in reversed(runs)] == ["retrying", "ok"]
    opened = tracking.first_open(stack.services.store, stack.member_id, deal_id, "proposal")
    assert opened["status"] == "fired"
    assert opened["first_opened_at"] == (START + timedelta(minutes=10)).timestamp()


def test_a_refused_trigger_is_tried_again_on_a_later_open(stack) -> None:
    env = _setup(stack)
    deal_id, urls = _proposal_sent(stack, env, "Cooler and 10 bottles")
    # The trigger is gone from the portal (say, removed by hand): the call is refused.
    stack.services.portal(stack.member_id).call(
        "crm.automation.trigger.delete", {"CODE": "email_opened"}
    )
    env["clock"].advance(timedelta(minutes=10))
    _assert_gif(_get(urls["pixel_url"]))
    stack.settle()
    opened = tracking.first_open(stack.services.store, stack.member_id, deal_id, "proposal")
    assert opened is not None and opened["status"] == "failed"
    assert "not registered" in opened["error"]
    assert _stage(stack, deal_id) == env["prefix"] + "PROPOSAL"
    # Registrations are brought back (flask sync); the client reads the email again.
    stack.run_job("sync")
    stack.admin.add_trigger_rule(
        member_id=stack.member_id,
        category_id=env["funnel"],
        stage_id=env["prefix"] + "CONTRACT",
        client_id=stack.client_id,
        trigger_code="email_opened",
    )
    env["clock"].advance(timedelta(hours=3))
    _assert_gif(_get(urls["pixel_url"]))
    stack.settle()
    assert _stage(stack, deal_id) == env["prefix"] + "CONTRACT"
    opened = tracking.first_open(stack.services.store, stack.member_id, deal_id, "proposal")
    assert opened["status"] == "fired"
    assert opened["first_opened_at"] == (START + timedelta(minutes=10)).timestamp()
