"""The portal client against the emulated portal over real HTTP, with a real Redis."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
import redis
import requests

import fakeportal
from app.bitrix import PortalClient, Tokens
from app.errors import AuthFailed, PortalError, PortalUnavailable
from app.ratelimit import PortalBudget
from app.settings import Settings
from fakeportal import crm
from fakeportal.state import Portal, World
from fakeportal.testing import AdminClient

FAST_RETRIES = (0.01, 0.02, 0.03)


class MemoryStore:
    """TokenStore in a dict, shared by threads."""

    def __init__(self) -> None:
        self._tokens: dict[str, Tokens] = {}
        self._lock = threading.Lock()
        self.saves = 0

    def load_tokens(self, member_id: str) -> Tokens | None:
        with self._lock:
            tokens = self._tokens.get(member_id)
            return replace(tokens) if tokens else None

    def save_tokens(self, member_id: str, tokens: Tokens) -> None:
        with self._lock:
            self._tokens[member_id] = replace(tokens)
            self.saves += 1


@dataclass
class Env:
    """One fresh portal with the app installed, its tokens in a store, and settings."""

    world: World
    portal: Portal
    admin: AdminClient
    store: MemoryStore
    settings: Settings
    redis: redis.Redis

    @property
    def member_id(self) -> str:
        return self.portal.member_id

    def client(self, **kwargs: Any) -> PortalClient:
        kwargs.setdefault("retry_delays", FAST_RETRIES)
        return PortalClient(
            self.member_id, store=self.store, settings=self.settings, redis=self.redis, **kwargs
        )

    def refreshes_served(self) -> int:
        """Refreshes the OAuth server granted for this portal."""
        log = self.admin.wire_log(member_id=self.member_id, kind="oauth")
        return len([r for r in log if r["status"] == 200])

    def last_request(self, kind: str = "rest") -> Any:
        return self.admin.wire_log(member_id=self.member_id, kind=kind)[-1]["request"]

    def requests(self, method: str | None = None) -> list[Any]:
        log = self.admin.wire_log(member_id=self.member_id)
        return [r["request"] for r in log if r["direction"] == "in" and r["name"] == method]

    def counters(self) -> dict[str, Any]:
        return self.admin.requests(member_id=self.member_id)

    def limit(self, **values: Any) -> None:
        self.admin.set_limits(member_id=self.member_id, **values)

    def fault(self, **values: Any) -> None:
        self.admin.inject_fault(member_id=self.member_id, **values)

    def expire_tokens(self) -> None:
        self.admin.expire_tokens(member_id=self.member_id)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make_env(
    fakeportal_server: fakeportal.Server,
    fake_world: World,
    fake_admin: AdminClient,
    redis_client: redis.Redis,
) -> Callable[..., Env]:
    """A factory of fresh portals (each with its own member_id, so its own Redis keys)."""

    def make(**settings: Any) -> Env:
        portal = fake_world.portal(fake_admin.create_portal()["member_id"])
        app = fake_admin.register_app(scope=["crm", "bizproc", "user"])
        issued = fake_admin.issue_tokens(client_id=app["client_id"], member_id=portal.member_id)
        store = MemoryStore()
        store.save_tokens(
            portal.member_id,
            Tokens(
                issued["access_token"],
                issued["refresh_token"],
                float(issued["expires"]),
                issued["client_endpoint"],
            ),
        )
        store.saves = 0
        config = Settings(
            client_id=app["client_id"],
            client_secret=app["client_secret"],
            oauth_url=f"{fakeportal_server.url}/oauth/token/",
            portal_burst=50,
            portal_rate=50.0,
        ).with_(**settings)
        return Env(fake_world, portal, fake_admin, store, config, redis_client)

    return make


@pytest.fixture
def env(make_env: Callable[..., Env]) -> Env:
    return make_env()


def add_status(client: PortalClient, n: int) -> int:
    return client.call(
        "crm.status.add",
        {"fields": {"ENTITY_ID": "SOURCE", "STATUS_ID": f"SRC_{n}", "NAME": f"Source {n}"}},
    )


# calls and errors ------------------------------------------------------------------------
def test_call_returns_the_result_and_counts_requests(env: Env) -> None:
    client = env.client()
    new_id = add_status(client, 1)
    assert isinstance(new_id, int)
    row = client.call("crm.status.get", {"id": new_id})
    assert row["STATUS_ID"] == "SRC_1" and row["NAME"] == "Source 1"
    assert client.requests_made == 2
    assert env.counters()["total"] == 2


def test_booleans_go_out_as_y_n(env: Env) -> None:
    client = env.client()
    client.call("server.time", {"flag": True, "nested": {"off": False, "list": [True]}})
    assert env.last_request() == {
        "flag": "Y",
        "nested": {"off": "N", "list": ["Y"]},
        "auth_connector": "robot_server",  # every request: the app's own changes are no events
    }
    client.batch({"t": ("server.time", {"flag": False})})
    assert env.last_request("batch")["cmd"]["t"] == "server.time?flag=N&"


def test_4xx_surfaces_the_portals_code_and_description(env: Env) -> None:
    client = env.client()
    with pytest.raises(PortalError) as info:
        client.call("crm.status.get", {"id": 987654})
    assert (info.value.code, info.value.description, info.value.status) == ("", "Not found", 400)
    assert info.value.method == "crm.status.get"
    with pytest.raises(PortalError) as info:
        client.call("no.such.method")
    assert (info.value.code, info.value.status) == ("ERROR_METHOD_NOT_FOUND", 404)
    assert info.value.description == "Method not found!"
    assert not isinstance(info.value, (AuthFailed, PortalUnavailable))
    assert client.requests_made == 2  # a 4xx is not retried


def test_works_when_the_calling_thread_runs_an_event_loop(env: Env) -> None:
    client = env.client()

    async def inside_a_loop() -> Any:
        return client.call("crm.status.get", {"id": add_status(client, 7)})

    row = asyncio.run(inside_a_loop())
    assert row["STATUS_ID"] == "SRC_7"


# batch -----------------------------------------------------------------------------------
def test_batch_results_errors_and_references(env: Env) -> None:
    client = env.client()
    fields = {"ENTITY_ID": "SOURCE", "STATUS_ID": "REF_1", "NAME": "Referenced"}
    result = client.batch(
        {
            "add": ("crm.status.add", {"fields": fields}),
            "get": ("crm.status.get", {"id": "$result[add]"}),
            "bad": ("crm.status.get", {"id": 999999}),
        }
    )
    assert client.requests_made == 1
    assert isinstance(result.results["add"], int)
    assert result["get"]["STATUS_ID"] == "REF_1"
    assert set(result.errors) == {"bad"}
    assert result.errors["bad"].description == "Not found"
    assert result.errors["bad"].method == "crm.status.get"
    with pytest.raises(PortalError, match="Not found"):
        result.raise_for_errors()
    with pytest.raises(PortalError):
        result["bad"]


def test_batch_halt_stops_at_the_first_error(env: Env) -> None:
    client = env.client()
    result = client.batch(
        {
            "bad": ("crm.status.get", {"id": 999999}),
            "after": ("server.time", {}),
        },
        halt=True,
    )
    assert set(result.errors) == {"bad"} and "after" not in result.results


def test_batch_over_50_commands_is_split(env: Env) -> None:
    client = env.client()
    commands = {f"t{i}": ("server.time", {}) for i in range(120)}
    result = client.batch(commands)
    assert client.requests_made == 3
    assert set(result.results) == set(commands) and not result.errors


def test_batch_reference_across_requests_is_refused(env: Env) -> None:
    client = env.client()
    commands: dict[str, tuple[str, dict]] = {f"t{i}": ("server.time", {}) for i in range(50)}
    commands["late"] = ("crm.status.get", {"id": "$result[t0]"})
    with pytest.raises(ValueError, match="t0"):
        client.batch(commands)
    assert client.requests_made == 0


# lists -----------------------------------------------------------------------------------
def add_deals(env: Env, count: int) -> list[int]:
    with env.world.lock:
        return [
            crm.create_deal(env.portal, {"TITLE": f"Deal {n}", "OPPORTUNITY": n})
            for n in range(count)
        ]


def test_list_reads_every_page(env: Env) -> None:
    ids = add_deals(env, 120)
    client = env.client()
    rows = client.list("crm.deal.list", {"select": ["ID", "TITLE"]})
    assert [int(row["ID"]) for row in rows] == ids  # all of them, in ID order
    assert rows[0]["TITLE"] == "Deal 0"
    assert client.requests_made == 2  # page one, then one batch for pages two and three
    assert env.last_request("batch")["cmd"]  # the rest came through fast_bitrix24's batch


def test_list_with_a_filter_and_an_empty_result(env: Env) -> None:
    add_deals(env, 60)
    client = env.client()
    rows = client.list("crm.deal.list", {"filter": {">=OPPORTUNITY": 55}, "select": ["ID"]})
    assert len(rows) == 5
    assert client.list("crm.deal.list", {"filter": {"TITLE": "nothing"}}) == []
    with pytest.raises(ValueError):
        client.list("crm.deal.list", {"order": {"ID": "DESC"}})


def test_list_due_pages_with_start_minus_one(env: Env) -> None:
    ids = add_deals(env, 120)
    client = env.client()
    rows = list(client.list_due("crm.deal.list", {"select": ["ID"], "filter": {">=ID": ids[0]}}))
    assert [int(row["ID"]) for row in rows] == ids
    assert client.requests_made == 3  # 50 + 50 + 20 rows, no COUNT
    pages = env.requests("crm.deal.list")
    assert [page["start"] for page in pages] == [-1, -1, -1]
    assert pages[0]["order"] == {"ID": "ASC"}
    assert pages[1]["filter"] == {">=ID": ids[0], ">ID": str(ids[49])}  # crm.deal ids are strings
    assert pages[2]["filter"][">ID"] == str(ids[99])


def test_list_due_unwraps_items_with_camel_case_ids(env: Env) -> None:
    ids = add_deals(env, 55)
    client = env.client()
    rows = list(
        client.list_due("crm.item.list", {"entityTypeId": 2, "select": ["id"]}, id_key="id")
    )
    assert [row["id"] for row in rows] == ids
    assert client.requests_made == 2


# OAuth -----------------------------------------------------------------------------------
def test_expired_token_is_refreshed_once_persisted_and_the_call_retried(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = env.client()
    old = env.store.load_tokens(env.member_id)
    env.expire_tokens()
    new_id = add_status(client, 2)
    assert isinstance(new_id, int)
    saved = env.store.load_tokens(env.member_id)
    assert saved is not None and old is not None
    assert saved.access_token != old.access_token and saved.refresh_token != old.refresh_token
    assert saved.client_endpoint == env.portal.client_endpoint
    assert saved.expires_at > time.time()
    assert env.store.saves == 1 and client.oauth_requests_made == 1
    assert env.refreshes_served() == 1
    assert client.requests_made == 2  # the 401, then the retry
    # the next call uses the new token straight away
    client.call("server.time")
    assert client.requests_made == 3 and client.oauth_requests_made == 1
    # the log tells what happened, and never a token or the client secret
    assert "refreshing tokens after expired_token" in caplog.text
    assert "server.time -> 200" in caplog.text
    secrets = [old.access_token, old.refresh_token, saved.access_token, saved.refresh_token]
    for secret in [*secrets, env.settings.client_secret]:
        assert secret not in caplog.text


def test_concurrent_workers_refresh_exactly_once(env: Env) -> None:
    env.expire_tokens()
    clients = [env.client() for _ in range(4)]
    barrier = threading.Barrier(len(clients))
    results: list[Any] = []
    errors: list[BaseException] = []

    def work(client: PortalClient) -> None:
        barrier.wait()
        try:
            results.append(client.call("server.time"))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert errors == [] and len(results) == 4
    assert sum(c.oauth_requests_made for c in clients) == 1  # nobody refreshed twice
    assert env.refreshes_served() == 1  # and that one was granted (no invalid_grant)
    assert env.store.saves == 1


def test_refused_refresh_raises_auth_failed(env: Env) -> None:
    tokens = env.store.load_tokens(env.member_id)
    assert tokens is not None
    env.store.save_tokens(env.member_id, replace(tokens, refresh_token="already-used"))
    env.expire_tokens()
    client = env.client()
    with pytest.raises(AuthFailed) as info:
        client.call("server.time")
    assert info.value.code == "invalid_grant" and info.value.status == 400
    assert client.requests_made == 1 and client.oauth_requests_made == 1


def test_unknown_client_answered_with_200_is_still_refused(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(client_id="local.unknown.1")
    env.expire_tokens()
    with pytest.raises(AuthFailed) as info:
        env.client().call("server.time")
    assert info.value.code == "wrong_client"


def test_a_portal_that_keeps_answering_401_is_given_up_on(env: Env) -> None:
    env.fault(status=401, code="expired_token", description="expired", count=-1)
    client = env.client()
    with pytest.raises(AuthFailed) as info:
        client.call("server.time")
    assert info.value.code == "expired_token" and info.value.status == 401
    assert client.oauth_requests_made == env.settings.max_token_refreshes == 2
    assert client.requests_made == 3


# limits and failures ---------------------------------------------------------------------
def test_shared_budget_keeps_many_clients_under_the_portals_bucket(
    make_env: Callable[..., Env],
) -> None:
    # control: the portal's small bucket really refuses a burst sent without a budget
    control = make_env()
    control.limit(bucket_size=5, drain_per_second=20)
    token = control.store.load_tokens(control.member_id)
    assert token is not None
    statuses = [
        requests.post(
            f"{token.client_endpoint}server.time", json={"auth": token.access_token}
        ).status_code
        for _ in range(10)
    ]
    assert 503 in statuses

    env = make_env(portal_burst=5, portal_rate=20.0)
    env.limit(bucket_size=5, drain_per_second=20)
    clients = [env.client(retry_delays=()) for _ in range(4)]  # a 503 would raise
    errors: list[BaseException] = []

    def work(client: PortalClient) -> None:
        try:
            for _ in range(8):
                client.call("server.time")
        except BaseException as exc:
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=work, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    elapsed = time.monotonic() - started
    assert errors == []
    assert env.counters()["rejected_503"] == 0
    assert env.counters()["total"] == 32
    assert elapsed >= (32 - 5) / 20  # it waited for the bucket to drain
    assert sum(c.budget.waited for c in clients) > 0


def test_query_limit_exceeded_is_retried(
    make_env: Callable[..., Env],
) -> None:
    env = make_env(portal_rate=50.0)
    env.fault(status=503, count=1)  # QUERY_LIMIT_EXCEEDED
    client = env.client()
    assert isinstance(client.call("server.time"), str)
    assert client.requests_made == 2


def test_5xx_is_retried_then_portal_unavailable(env: Env) -> None:
    client = env.client()
    env.fault(status=500, count=2)
    assert isinstance(client.call("server.time"), str)
    assert client.requests_made == 3

    env.fault(status=502, count=-1)
    client = env.client()
    with pytest.raises(PortalUnavailable) as info:
        client.call("server.time")
    assert client.requests_made == len(FAST_RETRIES) + 1
    assert "BAD_GATEWAY" in info.value.description
    env.admin.clear_faults(member_id=env.member_id)


def test_unreachable_portal_is_portal_unavailable(env: Env) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tokens = env.store.load_tokens(env.member_id)
    assert tokens is not None
    env.store.save_tokens(
        env.member_id, replace(tokens, client_endpoint=f"http://127.0.0.1:{port}/rest/")
    )
    client = env.client()
    with pytest.raises(PortalUnavailable, match="ClientConnectorError"):
        client.call("server.time")
    assert client.requests_made == len(FAST_RETRIES) + 1


def test_budget_counts_slots_in_redis(redis_client: redis.Redis) -> None:
    a = PortalBudget(redis_client, "budget-test", burst=4, rate=10.0)
    b = PortalBudget(redis_client, "budget-test", burst=4, rate=10.0)
    assert [a.try_take(), b.try_take(), a.try_take()] == [0.0, 0.0, 0.0]  # 3 = 4 - headroom
    wait = b.try_take()
    assert 0.05 < wait <= 0.1
    waited = b.take()
    assert 0.05 < waited < 0.3
    a.fill()
    assert a.try_take() > 0.05
