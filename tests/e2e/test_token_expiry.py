"""Four worker processes hit an expired token at once: exactly one refresh, nobody locked out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from fakeportal.automation import outbox
from fakeportal.crm import categories, deals

ROOT = Path(__file__).resolve().parents[2]


def worker_env(stack) -> dict[str, str]:
    s = stack.services.settings
    env = dict(os.environ)
    env.update(
        {
            "B24_CLIENT_ID": s.client_id,
            "B24_CLIENT_SECRET": s.client_secret,
            "B24_OAUTH_URL": s.oauth_url,
            "APP_BASE_URL": s.base_url,
            "REDIS_URL": s.redis_url,
            "DATABASE_URL": s.database_url,
            "SECRET_KEY": s.secret_key,
        }
    )
    return env


def test_four_workers_after_token_expiry_refresh_once(stack) -> None:
    stack.install()
    service = categories.create_category(stack.portal, "Service", [("NEW", "New", "P")])
    stack.place_robot(
        "copy_deal",
        "WON",
        {"category_id": str(service), "copy_products": "N", "copy_contacts": "N"},
    )
    with stack.world.lock:
        ids = [deals.create_deal(stack.portal, {"TITLE": f"Deal {i}"}, user_id=1) for i in range(4)]
        for deal_id in ids:
            deals.move_deal(stack.portal, deal_id, "WON", user_id=1)
    outbox.wait_idle(stack.world, 10)
    assert stack.services.queue("robots").count == 4
    stack.admin.expire_tokens(member_id=stack.member_id)
    since = len(stack.portal.wire)

    bin_dir = Path(sys.executable).parent
    workers = [
        subprocess.Popen(
            [
                str(bin_dir / "rq"),
                "worker",
                "--burst",
                "--url",
                stack.services.settings.redis_url,
                "robots",
            ],
            cwd=ROOT,
            env=worker_env(stack),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    for proc in workers:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
    stack.settle()

    oauth = stack.admin.wire_log(member_id=stack.member_id, since=since, kind="oauth")
    assert len(oauth) == 1, oauth
    assert oauth[0]["status"] == 200
    rest = stack.admin.wire_log(member_id=stack.member_id, since=since, direction="in", kind="rest")
    assert all(r["status"] != 400 for r in rest)
    for deal_id in ids:
        flow = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)[0]
        assert flow["robots"][0]["status"] == "completed"
        assert int(flow["robots"][0]["return_values"]["deal_id"]) > 0
    runs = stack.services.store.runs(stack.member_id, kind="robot")
    assert sorted(r["status"] for r in runs) == ["ok"] * 4
