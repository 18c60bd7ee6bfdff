"""The demo: the emulated portal, the app's web, worker and cron processes, one solar deal.

Starts every process as production runs them (the portal emulator, gunicorn, ``rq worker
--with-scheduler``, ``rq cron``), with a redis-server of its own unless REDIS_URL answers.
Then, as a portal admin would: installs the app, creates the "Service" funnel, places the
copy robot on the Sales funnel's "won" stage, walks a solar deal to "won", and shows the
copy in the Service funnel and every call that crossed the wire. ``--once`` exits when done.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT))

from app.registry import SCOPES  # noqa: E402
from fakeportal.testing import AdminClient  # noqa: E402

SCOPE = ",".join(SCOPES)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"demo: {url} did not come up")


def wait_for(what: str, check: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise SystemExit(f"demo: timed out waiting for {what}")


class Processes:
    def __init__(self, logdir: Path) -> None:
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.logdir = logdir

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = open(self.logdir / f"{name}.log", "w")
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.procs.append((name, proc))

    def check(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                tail = (self.logdir / f"{name}.log").read_text()[-2000:]
                raise SystemExit(f"demo: {name} exited ({proc.returncode}):\n{tail}")

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def redis_for_demo(procs: Processes, env: dict[str, str]) -> str:
    url = os.environ.get("REDIS_URL")
    if url:
        try:
            redis.Redis.from_url(url).ping()
            return url
        except redis.RedisError:
            print(f"demo: REDIS_URL {url} does not answer; starting a redis-server of its own")
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("demo: redis-server is missing (scripts/setup installs it)")
    port = free_port()
    procs.start(
        "redis",
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        env,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for("redis", lambda: _ping(url), 10)
    return url


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.RedisError:
        return False


def rest(webhook: str, method: str, params: dict[str, Any] | None = None) -> Any:
    body = requests.post(webhook + method, json=params or {}, timeout=10).json()
    if "error" in body:
        raise SystemExit(f"demo: {method}: {body}")
    return body["result"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="exit when the walk-through is done")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="robot-server-demo-"))
    procs = Processes(workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("B24_", "APP_", "DATABASE_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    try:
        redis_url = redis_for_demo(procs, env)
        portal_port, app_port = free_port(), free_port()
        portal_url, app_url = f"http://127.0.0.1:{portal_port}", f"http://127.0.0.1:{app_port}"
        env.update(
            {
                "B24_CLIENT_ID": f"local.{secrets.token_hex(7)}.{secrets.randbelow(10**8):08d}",
                "B24_CLIENT_SECRET": secrets.token_urlsafe(32),
                "B24_OAUTH_URL": f"{portal_url}/oauth/token/",
                "APP_BASE_URL": app_url,
                "REDIS_URL": redis_url,
                "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{workdir / 'app.db'}"),
                "SECRET_KEY": secrets.token_urlsafe(32),
                "PYTHONUNBUFFERED": "1",
            }
        )
        print(f"demo: logs and database in {workdir}")
        procs.start(
            "portal", [str(BIN / "python"), "-m", "fakeportal", "--port", str(portal_port)], env
        )
        procs.start(
            "web",
            [
                str(BIN / "gunicorn"),
                "--bind",
                f"127.0.0.1:{app_port}",
                "--workers",
                "2",
                "--threads",
                "4",
                "app:create_app()",
            ],
            env,
        )
        procs.start(
            "worker",
            [
                str(BIN / "rq"),
                "worker",
                "--with-scheduler",
                "--url",
                redis_url,
                "robots",
                "events",
                "bulk",
            ],
            env,
        )
        procs.start("cron", [str(BIN / "rq"), "cron", "--url", redis_url, "app/cron.py"], env)
        wait_http(f"{portal_url}/_admin/")
        wait_http(f"{app_url}/healthz")
        procs.check()
        walk_through(AdminClient(portal_url), env, portal_url, app_url)
        if args.once:
            return 0
        print(f"\ndemo: running. Portal {portal_url}/_admin/ , app {app_url} . Ctrl-C stops.")
        while True:
            procs.check()
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        procs.stop()


def walk_through(admin: AdminClient, env: dict[str, str], portal_url: str, app_url: str) -> None:
    portal = admin.list_portals()[0]
    member_id = portal["member_id"]
    client_id = env["B24_CLIENT_ID"]
    admin.register_app(
        client_id=client_id,
        client_secret=env["B24_CLIENT_SECRET"],
        install_url=f"{app_url}/install",
        scope=SCOPE,
    )
    hook = admin.create_webhook(member_id=member_id)["url"]

    print(f"\n1. The admin installs the app into {portal['domain']}")
    admin.install_app(member_id=member_id, client_id=client_id)
    reg = wait_for("registrations", lambda: _registered(admin, member_id, client_id))
    print(f"   robots registered: {', '.join(reg['robots'])}")
    print(f"   events bound: {', '.join(sorted({e['event'] for e in reg['events']}))}")
    if reg.get("triggers"):
        print(f"   triggers: {', '.join(sorted(reg['triggers']))}")
    if reg.get("senders"):
        print(f"   SMS provider: {', '.join(reg['senders'])}")

    print("\n2. The admin creates the Service funnel and places 'Copy deal' on Sales → Won")
    service = rest(hook, "crm.category.add", {"entityTypeId": 2, "fields": {"name": "Service"}})
    service_id = int(service["category"]["id"])
    stages = rest(
        hook,
        "crm.status.list",
        {"filter": {"ENTITY_ID": f"DEAL_STAGE_{service_id}"}, "order": {"SORT": "ASC"}},
    )
    first = stages[0]["STATUS_ID"]
    admin.add_robot_rule(
        member_id=member_id,
        category_id=0,
        stage_id="WON",
        client_id=client_id,
        robot_code="copy_deal",
        properties={"category_id": str(service_id), "stage_id": first},
    )
    print(f"   Service funnel id {service_id}, first stage {first}")

    print("\n3. A sales rep walks a solar deal to 'won'")
    contact = rest(
        hook,
        "crm.contact.add",
        {
            "fields": {
                "NAME": "Anna",
                "LAST_NAME": "Nowak",
                "PHONE": [{"VALUE": "+48 600 100 200", "VALUE_TYPE": "WORK"}],
            }
        },
    )
    deal_id = rest(
        hook,
        "crm.deal.add",
        {
            "fields": {
                "TITLE": "PV 9.6 kWp + heat pump, Nowak",
                "CURRENCY_ID": "PLN",
                "CONTACT_IDS": [contact],
                "ASSIGNED_BY_ID": 1,
            }
        },
    )
    rest(
        hook,
        "crm.deal.productrows.set",
        {
            "id": deal_id,
            "rows": [
                {"PRODUCT_NAME": "PV panel 400 W", "PRICE": 900, "QUANTITY": 24},
                {"PRODUCT_NAME": "Heat pump 8 kW", "PRICE": 46800, "QUANTITY": 1},
            ],
        },
    )
    for stage in ("PREPARATION", "PREPAYMENT_INVOICE", "EXECUTING", "WON"):
        rest(hook, "crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": stage}})
        print(f"   deal #{deal_id} → {stage}")

    flows = wait_for("the copy robot", lambda: _finished(admin, member_id, deal_id))
    step = flows[0]["robots"][0]
    new_id = step["return_values"].get("deal_id") or step["return_values"].get("DEAL_ID")
    print(f"\n4. The workflow got its answer: {step['status']}, new deal id {new_id}")
    for line in flows[0]["log"]:
        print(f"   log: {line}")
    copy = rest(hook, "crm.deal.get", {"id": new_id})
    rows = rest(hook, "crm.deal.productrows.get", {"id": new_id})
    print(
        f"   copy #{copy['ID']} '{copy['TITLE']}' in funnel {copy['CATEGORY_ID']}, stage "
        f"{copy['STAGE_ID']}, {copy['OPPORTUNITY']} {copy['CURRENCY_ID']}"
    )
    for row in rows:
        print(f"     {row['PRODUCT_NAME']} × {row['QUANTITY']} @ {row['PRICE']}")

    print("\n5. Everything that crossed the wire (the sales rep's and admin's own calls too):")
    for rec in admin.wire_log(member_id=member_id):
        arrow = "→ portal" if rec["direction"] == "in" else "→ app   "
        print(f"   {arrow}  {rec['kind']:<7} {rec['name']:<34} HTTP {rec['status']}")
    counts = admin.requests(member_id=member_id)
    print(
        f"   REST requests answered: {counts['total']}, refused with 503: {counts['rejected_503']}"
    )


def _registered(admin: AdminClient, member_id: str, client_id: str) -> dict[str, Any] | None:
    for app in admin.apps(member_id=member_id):
        if app["client_id"] == client_id and app["robots"]:
            return app
    return None


def _finished(admin: AdminClient, member_id: str, deal_id: int) -> list[dict[str, Any]] | None:
    flows = admin.workflows(member_id=member_id, deal_id=deal_id)
    if flows and all(
        s["status"] not in ("waiting", "pending", "delayed") for s in flows[0]["robots"]
    ):
        return flows
    return None


if __name__ == "__main__":
    raise SystemExit(main())
