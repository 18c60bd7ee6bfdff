"""What the benchmarks share: a free port, a throwaway redis-server, the app served over
HTTP beside an emulated portal that knows it."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from werkzeug.serving import make_server

from app.registry import SCOPES
from app.services import Services
from app.settings import Settings
from fakeportal import serve
from fakeportal.server import Server
from fakeportal.state import AppDef, World
from server import build_services, create_app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def redis_server() -> Iterator[str]:
    """A redis-server on a free port, keeping nothing on disk; yields its URL."""
    port = free_port()
    proc = subprocess.Popen(
        [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            raise SystemExit("redis-server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@dataclass
class BenchApp:
    portal_server: Server
    settings: Settings
    services: Services
    app_url: str
    server: Any

    def stop(self) -> None:
        self.server.shutdown()
        self.portal_server.stop()

    def synced(self, *member_ids: str) -> bool:
        """Whether the app is installed into these portals and has registered its robots."""
        for member_id in member_ids:
            inst = self.services.store.installation(member_id)
            if inst is None or not inst.synced_at:
                return False
        return True

    def install_in_process(self, world: World, member_id: str) -> Any:
        """Install the app into a portal, its jobs run by an in-process SimpleWorker (kept
        for the benchmark's own jobs); returns the worker."""
        from rq import SimpleWorker

        from app.registry import QUEUES
        from fakeportal.automation import lifecycle, outbox

        s = self.services
        worker = SimpleWorker([s.queue(q) for q in QUEUES], connection=s.redis)
        lifecycle.install_app(world, member_id, self.settings.client_id)
        deadline = time.monotonic() + 60
        while not self.synced(member_id):
            if time.monotonic() > deadline:
                raise SystemExit("bench: the app did not install")
            outbox.wait_idle(world, 1.0, robots=False)
            worker.work(burst=True)
        return worker


def start_app(
    world: World, redis_url: str, workdir: Path, *, burst: int, rate: float, clock: Any = None
) -> BenchApp:
    """The emulated portal's server for ``world`` and the app (threaded, real HTTP), with the
    app registered at the portal's OAuth server. Install it with fakeportal's install_app."""
    portal_server = serve(world)
    holder: dict[str, Any] = {}
    server = make_server("127.0.0.1", 0, lambda e, s: holder["app"](e, s), threaded=True)
    app_url = f"http://127.0.0.1:{server.server_port}"
    settings = Settings(
        client_id=f"local.{secrets.token_hex(7)}.00000001",
        client_secret=secrets.token_urlsafe(24),
        oauth_url=f"{portal_server.url}/oauth/token/",
        base_url=app_url,
        redis_url=redis_url,
        database_url=f"sqlite:///{workdir / 'app.db'}",
        secret_key=secrets.token_urlsafe(32),
        portal_burst=burst,
        portal_rate=rate,
    )
    services = build_services(settings, clock=clock)
    holder["app"] = create_app(services=services)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    world.apps[settings.client_id] = AppDef(
        settings.client_id, settings.client_secret, f"{app_url}/install", list(SCOPES)
    )
    return BenchApp(portal_server, settings, services, app_url, server)


def worker_env(bench: BenchApp, redis_url: str) -> dict[str, str]:
    """The environment a ``robot-server worker`` of the bench app reads its settings from."""
    import os

    s = bench.settings
    return dict(
        os.environ,
        B24_CLIENT_ID=s.client_id,
        B24_CLIENT_SECRET=s.client_secret,
        B24_OAUTH_URL=s.oauth_url,
        APP_BASE_URL=bench.app_url,
        REDIS_URL=redis_url,
        DATABASE_URL=s.database_url,
        SECRET_KEY=s.secret_key,
        B24_PORTAL_BURST=str(s.portal_burst),
        B24_PORTAL_RATE=str(s.portal_rate),
    )


def start_workers(bench: BenchApp, redis_url: str, count: int) -> list[subprocess.Popen]:
    """``count`` ``robot-server worker`` processes with the bench app's settings, as the
    Procfile runs them."""
    import sys

    robot_server = str(Path(sys.executable).parent / "robot-server")
    return [
        subprocess.Popen(
            [robot_server, "worker", "robots", "events", "bulk"],
            cwd=Path(__file__).resolve().parents[1],
            env=worker_env(bench, redis_url),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]


def wait(check: Any, timeout: float, what: str) -> None:
    """Until ``check()`` is true, or exit saying what did not happen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SystemExit(f"bench: timed out waiting for {what}")
