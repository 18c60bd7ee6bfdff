"""The whole product on one machine: the emulated portal, the app over HTTP, Redis, a worker.

``stack`` gives a portal with the app registered (not yet installed), the app served by a
real threaded HTTP server, a real Redis and RQ's SimpleWorker, which runs the queued jobs in
this process when ``stack.settle()`` is called, until nothing is left to do on either side.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import requests
from click.testing import CliRunner
from rq import SimpleWorker
from werkzeug.serving import make_server

from app import jobs
from app.cli import command_line
from app.context import Context
from app.registry import QUEUES, SCOPES, Catalogue
from app.services import Services
from app.settings import Settings
from fakeportal.automation import outbox, rules
from fakeportal.server import Server
from fakeportal.state import Portal, World
from fakeportal.testing import AdminClient
from server import CATALOGUE, build_services, create_app


class _Deferred:
    """A WSGI app set after the server is bound (the app needs its own URL)."""

    app: Any = None

    def __call__(self, environ: Any, start_response: Any) -> Any:
        return self.app(environ, start_response)


@dataclass
class Stack:
    world: World
    portal: Portal
    admin: AdminClient
    services: Services
    client_id: str
    app_url: str
    worker: SimpleWorker
    services_app: Any = None  # the Flask app (CLI runner, test client)
    jobs_run: int = 0
    test_calls: int = 0  # REST calls the test itself made (they count in the portal's totals)
    extra: dict[str, Any] = field(default_factory=dict)

    def portal_call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call the emulated portal's REST API as a user would (an incoming webhook)."""
        if "webhook" not in self.extra:
            self.extra["webhook"] = self.admin.create_webhook(member_id=self.member_id)["url"]
        self.test_calls += 1
        response = requests.post(self.extra["webhook"] + method, json=params or {}, timeout=10)
        body = response.json()
        if response.status_code != 200 or "error" in body:
            raise AssertionError(f"{method}: HTTP {response.status_code}: {body}")
        return body["result"]

    @property
    def member_id(self) -> str:
        return self.portal.member_id

    def install(self, mode: str = "event") -> dict[str, Any]:
        result = self.admin.install_app(
            member_id=self.member_id, client_id=self.client_id, mode=mode
        )
        self.settle()
        return result

    def place_robot(
        self,
        code: str,
        stage_id: str,
        properties: dict[str, Any] | None = None,
        *,
        category_id: int = 0,
        **options: Any,
    ) -> dict[str, Any]:
        """Place one of the app's robots on a funnel stage, as an admin does in the designer."""
        return rules.add_robot_rule(
            self.world,
            member_id=self.member_id,
            category_id=category_id,
            stage_id=stage_id,
            client_id=self.client_id,
            robot_code=code,
            properties=properties,
            **options,
        )

    def enqueue(self, job: str, args: dict[str, Any], member_id: str | None = None) -> bool:
        """Queue one of the app's jobs as the app does (for this portal by default)."""
        mid = self.member_id if member_id is None else member_id
        return jobs.enqueue(self.services, job, mid, args)

    def context(self) -> Context:
        """This portal's context, as a page or a job of the app gets it."""
        return jobs.context(self.services, self.member_id, Context)

    def stop_web(self) -> None:
        """The app's web process goes away: its port refuses connections."""
        self.extra["web"].shutdown()
        self.extra["web"].server_close()
        self.extra["web"] = None

    def start_web(self) -> None:
        """The app's web process is back on the same address."""
        port = int(self.app_url.rsplit(":", 1)[1])
        server = make_server("127.0.0.1", port, self.extra["wsgi"], threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self.extra["web"] = server

    def run_job(self, job: str, **args: Any) -> Any:
        """Run one of the app's jobs for this portal now, through the job runner."""
        return jobs.execute(self.services, job, self.member_id, args)

    def cli(self, *args: str) -> Any:
        """Run a ``robot-server`` command against this stack's services."""
        return CliRunner().invoke(command_line(lambda _settings: self.services), list(args))

    def open_settings(self, user_id: int = 1) -> dict[str, Any]:
        """The portal opens the app's page (its iframe's form POST) for ``user_id``."""
        return self.admin.open_app_page(
            member_id=self.member_id, client_id=self.client_id,
            url=f"{self.app_url}/settings", user_id=user_id,
        )  # fmt: skip

    def registrations(self) -> dict[str, Any]:
        apps = self.admin.apps(member_id=self.member_id)
        return next(a for a in apps if a["client_id"] == self.client_id)

    def run_jobs(self) -> int:
        """Run every queued job once (SimpleWorker in burst mode); how many ran."""
        before = self.worker.successful_job_count + self.worker.failed_job_count
        self.worker.work(burst=True, with_scheduler=True)
        after = self.worker.successful_job_count + self.worker.failed_job_count
        self.jobs_run += after - before
        return after - before

    def settle(self, timeout: float = 20.0, *, robots: bool = True) -> None:
        """Until the portal's outbox is empty, no robot waits (``robots=False``: robots may
        wait, as for a task's completion), and no job is queued."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ran = self.run_jobs()
            idle = outbox.wait_idle(self.world, 0.3, robots=robots)["idle"]
            queued = sum(self.services.queue(q).count for q in QUEUES)
            if not ran and idle and not queued:
                return
        raise AssertionError("the stack did not settle in time")


@pytest.fixture
def app_settings(redis_url: str, database_url: str, fakeportal_server: Server) -> Settings:
    return Settings(
        client_id=f"local.{secrets.token_hex(7)}.12345678",
        client_secret=secrets.token_urlsafe(24),
        oauth_url=f"{fakeportal_server.url}/oauth/token/",
        base_url="",  # set once the app's server is bound
        redis_url=redis_url,
        database_url=database_url,
        secret_key=secrets.token_urlsafe(32),
    )


@pytest.fixture
def stack_clock() -> Any:
    """The app's clock: None is the system clock; a test module overrides it (FixedClock)."""
    return None


@pytest.fixture
def stack_catalogue() -> Catalogue:
    """What the app offers: the product's catalogue; a test module may extend it."""
    return CATALOGUE


@pytest.fixture
def stack(
    fake_world: World,
    fakeportal_server: Server,
    app_settings: Settings,
    redis_url: str,
    stack_clock: Any,
    stack_catalogue: Catalogue,
) -> Iterator[Stack]:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    deferred = _Deferred()
    server = make_server("127.0.0.1", 0, deferred, threaded=True)
    app_url = f"http://127.0.0.1:{server.server_port}"
    settings = app_settings.with_(base_url=app_url)
    services = build_services(settings, catalogue=stack_catalogue, clock=stack_clock)
    deferred.app = create_app(services=services)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    admin = AdminClient(fakeportal_server.url)
    portal = fake_world.add_portal(
        domain="solar.bitrix24.test", timezone="Europe/Warsaw", country="PL", language="en"
    )
    admin.register_app(
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        install_url=f"{app_url}/install",
        scope=list(SCOPES),
    )
    worker = SimpleWorker([services.queue(q) for q in QUEUES], connection=services.redis)
    the_stack = Stack(
        fake_world,
        portal,
        admin,
        services,
        settings.client_id,
        app_url,
        worker,
        services_app=deferred.app,
        extra={"web": server, "wsgi": deferred},
    )
    try:
        yield the_stack
    finally:
        if the_stack.extra["web"] is not None:
            the_stack.extra["web"].shutdown()
        thread.join(timeout=5)
        conn.close()
