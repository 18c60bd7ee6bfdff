"""Callback acknowledgement: the robot endpoint against a bare Flask endpoint, side by side.

Both endpoints live in the same Flask app, served by gunicorn as in production (2 workers,
4 threads each; the load comes from this process). The robot endpoint
does everything it does in production: parse the PHP form, look up the installation and
compare its application_token, de-duplicate in Redis and enqueue an RQ job. The bare one
answers "ok". Prints latency percentiles (one client, sequential) and throughput (several
client threads) for each, and their ratio.

    .venv/bin/python bench/ack_latency.py [--requests 2000] [--threads 8]
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import free_port, redis_server  # noqa: E402

from app.settings import Settings  # noqa: E402
from server import build_services  # noqa: E402


def robot_form(member_id: str, token: str, n: int) -> dict[str, str]:
    return {
        "workflow_id": f"wf{n}",
        "code": "copy_deal",
        "document_id[0]": "crm",
        "document_id[1]": "CCrmDocumentDeal",
        "document_id[2]": f"DEAL_{n}",
        "document_type[0]": "crm",
        "document_type[1]": "CCrmDocumentDeal",
        "document_type[2]": "DEAL",
        "event_token": f"wf{n}|A{n}|{secrets.token_hex(16)}.{secrets.token_hex(32)}",
        "properties[category_id]": "1",
        "properties[stage_id]": "",
        "use_subscription": "Y",
        "timeout_duration": "600",
        "ts": str(int(time.time())),
        "auth[access_token]": secrets.token_hex(16),
        "auth[expires]": str(int(time.time()) + 3600),
        "auth[expires_in]": "3600",
        "auth[scope]": "crm,bizproc",
        "auth[domain]": "bench.bitrix24.test",
        "auth[server_endpoint]": "https://oauth.bitrix.info/rest/",
        "auth[status]": "L",
        "auth[client_endpoint]": "https://bench.bitrix24.test/rest/",
        "auth[member_id]": member_id,
        "auth[user_id]": "1",
        "auth[application_token]": token,
    }


def wait_up(url: str) -> None:
    for _ in range(100):
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def measure(url: str, forms: list[dict[str, str]] | None, count: int, threads: int) -> dict:
    session = requests.Session()
    latencies: list[float] = []
    for i in range(count):
        started = time.perf_counter()
        r = session.post(url, data=forms[i] if forms else {"x": "1"}, timeout=10)
        latencies.append(time.perf_counter() - started)
        assert r.status_code == 200, r.text
    local = threading.local()

    def one(i: int) -> None:
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        r = s.post(url, data=forms[count + i] if forms else {"x": "1"}, timeout=10)
        assert r.status_code == 200, r.text

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(count)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "throughput": count / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--web-workers", type=int, default=2)
    args = parser.parse_args()
    resources = ExitStack()
    redis_url = resources.enter_context(redis_server())
    tmp = Path(tempfile.mkdtemp())
    try:
        settings = Settings(
            client_id="bench",
            client_secret="x",
            base_url="http://127.0.0.1",
            redis_url=redis_url,
            database_url=f"sqlite:///{tmp / 'bench.db'}",
            secret_key=secrets.token_urlsafe(32),
        )
        services = build_services(settings)
        member_id, token = secrets.token_hex(16), secrets.token_hex(16)
        services.store.save_installation(
            member_id=member_id,
            domain="bench.bitrix24.test",
            client_endpoint="https://bench.bitrix24.test/rest/",
            server_endpoint="",
            application_token=token,
            access_token="a",
            refresh_token="r",
            expires_at=0,
        )
        web_port = free_port()
        env = dict(
            os.environ,
            SECRET_KEY=settings.secret_key,
            DATABASE_URL=settings.database_url,
            REDIS_URL=settings.redis_url,
            B24_CLIENT_ID="bench",
            APP_BASE_URL="http://127.0.0.1",
        )
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        web = subprocess.Popen(
            [
                gunicorn,
                "--bind",
                f"127.0.0.1:{web_port}",
                "--workers",
                str(args.web_workers),
                "--threads",
                "4",
                "--pythonpath",
                str(ROOT / "bench"),
                "--log-level",
                "warning",
                "ack_app:app",
            ],
            cwd=ROOT,
            env=env,
        )
        base = f"http://127.0.0.1:{web_port}"
        wait_up(f"{base}/healthz")
        n = args.requests
        forms = [robot_form(member_id, token, i) for i in range(2 * n)]
        measure(f"{base}/bare", None, 100, args.threads)  # warm-up
        bare = measure(f"{base}/bare", None, n, args.threads)
        robot = measure(f"{base}/robots/copy_deal", forms, n, args.threads)
        queued = services.queue("robots").count
        print(
            f"callback acknowledgement, {n} requests each;"
            f" {args.threads} client threads for throughput"
        )
        print(f"{'endpoint':<22}{'p50 ms':>9}{'p99 ms':>9}{'req/s':>10}")
        for name, r in (("bare Flask", bare), ("robot callback", robot)):
            print(f"{name:<22}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['throughput']:>10.0f}")
        print(
            "throughput ratio robot/bare:"
            f" {robot['throughput'] / bare['throughput']:.2f} (goal >= 0.8)"
        )
        print(f"jobs queued: {queued} (expected {2 * n})")
        web.terminate()
        web.wait(timeout=10)
    finally:
        resources.close()


if __name__ == "__main__":
    main()
