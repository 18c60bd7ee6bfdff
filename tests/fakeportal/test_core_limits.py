"""Limits and faults over real HTTP: leaky bucket 503, operating time 429, injected faults."""

from __future__ import annotations

import time
from typing import Any

import requests
from fast_bitrix24 import Bitrix

from fakeportal import admin
from fakeportal.server import Server
from fakeportal.state import Portal, World
from fakeportal.testing import AdminClient


def test_leaky_bucket_answers_503_and_batch_counts_once(
    fake_world: World, fake_portal: Portal, fake_webhook: str
) -> None:
    admin.set_limits(fake_world, fake_portal.member_id, bucket_size=3, drain_per_second=0.001)
    batch = requests.post(
        fake_webhook + "batch", json={"cmd": {f"c{i}": "server.time" for i in range(10)}}
    )
    assert batch.status_code == 200
    assert len(batch.json()["result"]["result"]) == 10
    assert requests.post(fake_webhook + "server.time").status_code == 200
    assert requests.post(fake_webhook + "server.time").status_code == 200
    over = requests.post(fake_webhook + "server.time")
    assert over.status_code == 503
    assert over.json() == {
        "error": "QUERY_LIMIT_EXCEEDED",
        "error_description": "Too many requests",
    }
    counters = admin.requests_(fake_world, fake_portal.member_id)
    assert counters["total"] == 4 and counters["rejected_503"] == 1
    assert counters["methods"]["server.time"] == 13 and counters["methods"]["batch"] == 1


def test_bucket_drains_on_real_time(
    fake_world: World, fake_portal: Portal, fake_webhook: str
) -> None:
    admin.set_limits(fake_world, fake_portal.member_id, bucket_size=2, drain_per_second=50.0)
    statuses = [requests.post(fake_webhook + "server.time").status_code for _ in range(2)]
    time.sleep(0.05)  # 50/s drains the two requests
    statuses.append(requests.post(fake_webhook + "server.time").status_code)
    assert statuses == [200, 200, 200]


def test_world_limits_apply_to_every_portal(fake_world: World, fake_webhook: str) -> None:
    admin.set_limits(fake_world, bucket_size=1, drain_per_second=0.001)
    assert requests.post(fake_webhook + "server.time").status_code == 200
    assert requests.post(fake_webhook + "server.time").status_code == 503
    fake_world.reset()
    assert fake_world.config["bucket_size"] == 50


def test_operating_limit_blocks_method_until_window_moves(
    fake_world: World, fake_portal: Portal, fake_webhook: str
) -> None:
    admin.set_limits(
        fake_world,
        fake_portal.member_id,
        operating_limit=480,
        extra_cost={"server.time": 250},
    )
    first = requests.post(fake_webhook + "server.time").json()["time"]
    assert 250 <= first["operating"] < 251
    assert first["operating_reset_at"] == int(first["start"]) + 600 or (
        abs(first["operating_reset_at"] - (first["start"] + 600)) <= 1
    )
    second = requests.post(fake_webhook + "server.time").json()["time"]
    assert second["operating"] >= 500
    blocked = requests.post(fake_webhook + "server.time")
    assert blocked.status_code == 429
    assert blocked.json() == {
        "error": "OPERATION_TIME_LIMIT",
        "error_description": "Method is blocked due to operation time limit.",
    }
    # other methods are not blocked; inside a batch the blocked one fails alone
    assert requests.post(fake_webhook + "profile").status_code == 200
    batch = requests.post(
        fake_webhook + "batch", json={"cmd": {"t": "server.time", "p": "profile"}}
    ).json()["result"]
    assert batch["result_error"]["t"]["error"] == "OPERATION_TIME_LIMIT"
    assert "p" in batch["result"]
    admin.advance_clock(fake_world, 601)
    assert requests.post(fake_webhook + "server.time").status_code == 200


def test_operating_time_is_per_app(
    fakeportal_server: Server, fake_world: World, fake_portal: Portal, fake_webhook: str
) -> None:
    admin.set_limits(fake_world, operating_limit=10, extra_cost={"profile": 20})
    assert requests.post(fake_webhook + "profile").status_code == 200
    assert requests.post(fake_webhook + "profile").status_code == 429
    app = admin.register_app(fake_world, scope="user")
    tokens = admin.issue_tokens(fake_world, app["client_id"], fake_portal.member_id)
    reply = requests.post(
        f"{fakeportal_server.url}/rest/profile", json={"auth": tokens["access_token"]}
    )
    assert reply.status_code == 200


def test_fault_injection_status_count_and_method(
    fake_world: World, fake_portal: Portal, fake_webhook: str
) -> None:
    admin.inject_fault(fake_world, fake_portal.member_id, status=500, count=2, method="profile")
    assert requests.post(fake_webhook + "server.time").status_code == 200
    first = requests.post(fake_webhook + "profile")
    assert first.status_code == 500
    assert first.json() == {
        "error": "INTERNAL_SERVER_ERROR",
        "error_description": "Internal server error",
    }
    # a batch holding the method gets the fault as a whole
    assert requests.post(fake_webhook + "batch", json={"cmd": {"p": "profile"}}).status_code == 500
    assert requests.post(fake_webhook + "profile").status_code == 200
    admin.inject_fault(
        fake_world, fake_portal.member_id, status=503, code="OVERLOAD_LIMIT", count=-1
    )
    for _ in range(3):
        assert requests.post(fake_webhook + "server.time").json()["error"] == "OVERLOAD_LIMIT"
    admin.clear_faults(fake_world, fake_portal.member_id)
    assert requests.post(fake_webhook + "server.time").status_code == 200
    assert admin.requests_(fake_world, fake_portal.member_id)["rejected_503"] == 3


def test_delay_fault(fake_world: World, fake_portal: Portal, fake_webhook: str) -> None:
    admin.inject_fault(fake_world, fake_portal.member_id, status=None, delay=0.3)
    started = time.monotonic()
    reply = requests.post(fake_webhook + "server.time")
    assert reply.status_code == 200 and time.monotonic() - started >= 0.3
    try:
        admin.inject_fault(fake_world, fake_portal.member_id, status=None, delay=1.0)
        requests.post(fake_webhook + "server.time", timeout=0.2)
        raise AssertionError("expected a client timeout")
    except requests.Timeout:
        pass


def test_fast_bitrix24_retries_injected_503(
    fake_world: World, fake_portal: Portal, fake_webhook: str
) -> None:
    admin.inject_fault(fake_world, fake_portal.member_id, status=503, count=2)
    client = Bitrix(fake_webhook, verbose=False)
    assert client.call("server.time", {"x": 1}).startswith("20")
    log = admin.wire_log(fake_world, fake_portal.member_id)
    assert [r["status"] for r in log] == [503, 503, 200]


def test_admin_over_http(fakeportal_server: Server, fake_world: World) -> None:
    client = AdminClient(fakeportal_server.url)
    assert "inject_fault" in client.actions()
    portal = client.create_portal(domain="http.bitrix24.test", timezone="Asia/Yekaterinburg")
    assert portal["client_endpoint"] == f"{fakeportal_server.url}/rest/"
    hook = client.create_webhook(member_id=portal["member_id"], user_id=1)["url"]
    reply: dict[str, Any] = requests.post(hook + "server.time").json()
    assert reply["result"].endswith("+05:00")
    assert reply["time"]["date_start"].endswith("+05:00")
    counters = client.requests(member_id=portal["member_id"], reset=True)
    assert counters["total"] == 1
    assert client.requests(member_id=portal["member_id"])["total"] == 0
    log = client.wire_log(member_id=portal["member_id"], since=0)
    assert log[0]["name"] == "server.time" and log[0]["index"] == 0
    assert client.advance_clock(seconds=60)["offset"] == 60
    assert [p["domain"] for p in client.list_portals()] == ["http.bitrix24.test"]
    bad = requests.post(f"{fakeportal_server.url}/_admin/create_portal", json={"bogus": 1})
    assert bad.status_code == 400 and "error" in bad.json()
    missing = requests.post(f"{fakeportal_server.url}/_admin/requests", json={"member_id": "x"})
    assert missing.status_code == 400
    assert client.reset() is True and client.list_portals() == []
