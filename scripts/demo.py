"""The demo: the emulated portal, the app's web, worker and cron processes, one solar deal.

Starts the portal emulator and, unless REDIS_URL answers, a redis-server of its own; then
the app's processes from the Procfile's lines, exactly as production runs them. Then, as a
portal admin would: installs the app, creates the "Service" funnel, places the copy robot on
the Sales funnel's "won" stage, walks a solar deal to "won", and shows the copy in the
Service funnel and every call that crossed the wire. ``--once`` exits when done.

Whatever ends it (``--once`` done, Ctrl-C, SIGTERM, SIGHUP, a failure while starting), the
demo stops everything it started, the app's processes first and Redis last, each with its
whole process group, and removes its temporary folder. After a failure it keeps the logs
and says where.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import redis
import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROCFILE = ROOT / "Procfile"
sys.path.insert(0, str(ROOT))

# Seconds each process gets between SIGTERM and SIGKILL.
GRACE = 5.0
# What the operator's commands need to reach the running demo, written to demo.env.
ENV_FILE_KEYS = (
    "REDIS_URL",
    "DATABASE_URL",
    "SECRET_KEY",
    "B24_CLIENT_ID",
    "B24_CLIENT_SECRET",
    "B24_OAUTH_URL",
    "APP_BASE_URL",
)
# Procfile process types started by the demo, in this order (stopped in the reverse order);
# any other type but ``release`` starts after them.
FIRST = ("web", "worker", "cron")
REQUIRED = ("web", "worker")


class Failed(Exception):
    """The demo cannot go on; ``process`` names the process whose log tells why."""

    def __init__(self, message: str, process: str | None = None) -> None:
        super().__init__(message)
        self.process = process


class Stop(Exception):
    """SIGINT, SIGTERM or SIGHUP asked the demo to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Signals:
    """Turns the first SIGINT/SIGTERM/SIGHUP into ``Stop``, raised once; a second one hurries.

    Inside ``deferred()`` (while a child is being started and recorded) the first signal is
    only noted and ``Stop`` is raised when the block ends, so no child goes unrecorded.
    """

    CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __init__(self) -> None:
        self.received: int | None = None
        self.hurry = False
        self._deferring = 0
        self._raised = False

    def install(self) -> None:
        for signum in self.CAUGHT:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            self.hurry = True
            os.write(2, b"\ndemo: stopping now (SIGKILL)\n")
            return
        self.received = signum
        if not self._deferring:
            self._raise()

    def _raise(self) -> None:
        assert self.received is not None
        self._raised = True
        raise Stop(self.received)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self.received is not None and not self._raised:
            self._raise()


# --- the Procfile ----------------------------------------------------------------------

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VAR = re.compile(
    rf"\$(?:\{{(?P<braced>{_NAME})(?:(?P<op>:?-)(?P<default>[^${{}}]*))?\}}|(?P<bare>{_NAME}))"
)
_ASSIGNMENT = re.compile(rf"(?P<name>{_NAME})=(?P<value>.*)", re.S)
_OPERATORS = set("();<>|&")


def read_procfile(path: Path = PROCFILE) -> dict[str, str]:
    """``{process type: command}`` from ``name: command`` lines; blanks, ``#`` comments skipped."""
    entries: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_-]+)\s*:\s*(.+)", line)
        if match is None:
            raise Failed(f"{path.name}:{number}: not a 'name: command' line: {raw!r}")
        entries[match[1]] = match[2]
    return entries


def expand(text: str, env: dict[str, str]) -> str:
    """``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` from ``env``, as sh does."""
    for dollar in re.finditer(r"\$", text):
        if not _VAR.match(text, dollar.start()):
            raise ValueError(f"unsupported shell syntax at {text[dollar.start() :]!r}")

    def value(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        current = env.get(name)
        if match["op"] == ":-" and not current:
            return match["default"]
        if match["op"] == "-" and current is None:
            return match["default"]
        return current or ""

    return _VAR.sub(value, text)


def procfile_command(command: str, env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """A Procfile command as (argv, env): words split as sh does, variables expanded from
    ``env``, leading ``NAME=value`` words added to the process's environment. Pipes, lists,
    redirections and command substitution are refused: the demo runs no shell."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError as exc:
        raise ValueError(f"{command!r}: {exc}") from None
    if "`" in command or any(word and set(word) <= _OPERATORS for word in words):
        raise ValueError(f"{command!r}: pipes, lists, redirections, `...` need a shell")
    env = dict(env)
    while words and (assignment := _ASSIGNMENT.fullmatch(words[0])):
        env[assignment["name"]] = expand(assignment["value"], env)
        words.pop(0)
    if not words:
        raise ValueError(f"{command!r}: no command")
    return [expand(word, env) for word in words], env


# --- processes -------------------------------------------------------------------------


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process is left in process group ``pgid``."""
    proc = Path("/proc")
    if not (proc / "self" / "stat").exists():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            return True
    return False


def _killpg(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass


class Processes:
    """The demo's children, each in a session (and process group) of its own, logging to
    ``<logdir>/<name>.log``; ``stop()`` stops them in the reverse order of their start."""

    def __init__(self, logdir: Path, signals: Signals) -> None:
        self.procs: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        self.logdir = logdir
        self.signals = signals

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        with self.signals.deferred():
            log = open(self.logdir / f"{name}.log", "wb")
            try:
                proc = subprocess.Popen(
                    argv,
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            except OSError as exc:
                log.close()
                raise Failed(f"{name}: cannot start {argv[0]}: {exc}") from None
            self.procs.append((name, proc, log))

    def check(self) -> None:
        for name, proc, _ in self.procs:
            if proc.poll() is not None:
                raise Failed(f"{name} exited ({proc.returncode})", name)

    def stop(self) -> None:
        """Stop every child, the last started first; safe to call again if interrupted."""
        while self.procs:
            name, proc, log = self.procs[-1]
            self._stop(name, proc)
            log.close()
            self.procs.pop()

    def _stop(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        pgid = proc.pid  # start_new_session: the child leads its own group
        if proc.poll() is not None and not _group_alive(pgid):
            return
        _killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline and not self.signals.hurry:
            if proc.poll() is not None and not _group_alive(pgid):
                return
            time.sleep(0.05)
        if not self.signals.hurry:
            print(f"demo: {name} still running {GRACE:g} s after SIGTERM; sending SIGKILL")
        _killpg(pgid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
            _killpg(pgid, signal.SIGKILL)


# --- the demo --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(
    what: str,
    check: Callable[[], Any],
    timeout: float = 30,
    alive: Callable[[], None] | None = None,
) -> Any:
    """Poll ``check`` until it returns something true; ``alive()`` raises if a child died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise Failed(f"timed out waiting for {what}")


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=1)
        return True
    except requests.RequestException:
        return False


def _ping(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url).ping())
    except redis.RedisError:
        return False


def _dotenv_value(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:+@%,-]*", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def write_env_file(path: Path, env: dict[str, str]) -> None:
    """``KEY=value`` lines (python-dotenv reads them), readable by the owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)
        file.writelines(f"{key}={_dotenv_value(env[key])}\n" for key in ENV_FILE_KEYS)


def _shown(path: Path) -> str:
    """``path`` relative to the project when it is inside (commands are run from there)."""
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


class Demo:
    def __init__(self, args: argparse.Namespace, signals: Signals) -> None:
        self.args = args
        self.signals = signals
        self.workdir: Path | None = None
        self.procs: Processes | None = None
        self.failed = True  # until run() returns or a signal stops it
        self.failed_process: str | None = None
        self._logs_kept = False

    def run(self) -> int:
        with self.signals.deferred():
            self.workdir = Path(tempfile.mkdtemp(prefix="robot-server-demo-"))
            self.procs = Processes(self.workdir, self.signals)
        workdir, procs = self.workdir, self.procs
        procfile = read_procfile(self.args.procfile)
        missing = [name for name in REQUIRED if name not in procfile]
        if missing:
            raise Failed(f"{self.args.procfile} has no {' or '.join(missing)} process")
        order = [n for n in FIRST if n in procfile]
        order += [n for n in procfile if n not in order and n != "release"]

        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("B24_", "APP_", "DATABASE_"))
        }
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        redis_url = self.redis_for_demo(procs, env)
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
                "PORT": str(app_port),
                "BIND": "127.0.0.1",  # the demo's web answers this machine only
                "PYTHONUNBUFFERED": "1",
            }
        )
        env_file = workdir / "demo.env"
        write_env_file(env_file, env)
        print(f"demo: logs and database in {workdir}")
        procs.start(
            "portal", [str(BIN / "python"), "-m", "fakeportal", "--port", str(portal_port)], env
        )
        for name in order:
            try:
                argv, proc_env = procfile_command(procfile[name], env)
            except ValueError as exc:
                raise Failed(f"Procfile {name}: {exc}") from None
            found = shutil.which(argv[0], path=proc_env.get("PATH"))
            if found is None:
                raise Failed(f"Procfile {name}: {argv[0]} is not on PATH ({BIN} first)")
            print(f"demo: {name}: {shlex.join(argv)}")
            procs.start(name, [found, *argv[1:]], proc_env)
        wait_for("the portal", lambda: _answers(f"{portal_url}/_admin/"), 20, procs.check)
        wait_for("the app", lambda: _answers(f"{app_url}/healthz"), 20, procs.check)
        procs.check()
        walk_through(env, portal_url, app_url, procs.check)
        if self.args.once:
            self.failed = False
            return 0
        robot_server = _shown(BIN / "robot-server")
        print(f"\ndemo: the app's commands reach this demo with --env-file {env_file}, e.g.")
        if robot_server.startswith(".venv"):
            print(f"  cd {ROOT}")
        print(f"  {robot_server} --env-file {env_file} portals")
        print(f"\ndemo: running. Portal {portal_url}/_admin/ , app {app_url} . Ctrl-C stops.")
        while True:
            procs.check()
            time.sleep(1)

    @staticmethod
    def redis_for_demo(procs: Processes, env: dict[str, str]) -> str:
        url = os.environ.get("REDIS_URL")
        if url:
            if _ping(url):
                return url
            print(f"demo: REDIS_URL {url} does not answer; starting a redis-server of its own")
        binary = shutil.which("redis-server")
        if binary is None:
            raise Failed("redis-server is missing (scripts/setup installs it)")
        port = free_port()
        procs.start(
            "redis",
            [
                binary,
                *("--port", str(port), "--bind", "127.0.0.1"),
                *("--save", "", "--appendonly", "no", "--daemonize", "no"),
            ],
            env,
        )
        url = f"redis://127.0.0.1:{port}/0"
        wait_for("redis", lambda: _ping(url), 10, procs.check)
        return url

    def cleanup(self) -> None:
        """Stop every child, keep the logs if asked or after a failure, remove the folder.
        Safe to call again when a signal interrupted it."""
        if self.procs is not None:
            self.procs.stop()
        workdir = self.workdir
        if workdir is None or not workdir.exists():
            return
        logs = sorted(workdir.glob("*.log"))
        keep = self.args.keep_logs
        if not self._logs_kept and self.failed and logs:
            shown = [workdir / f"{self.failed_process}.log"] if self.failed_process else logs
            for log in shown:
                if tail := _tail(log, 40 if self.failed_process else 15):
                    print(f"\n--- {log.name} (last lines) ---\n{tail}", file=sys.stderr)
            if keep is None:
                keep = Path(tempfile.mkdtemp(prefix="robot-server-demo-logs-"))
        if keep is not None and not self._logs_kept:
            keep.mkdir(parents=True, exist_ok=True)
            for log in logs:
                shutil.copy2(log, keep / log.name)
            self._logs_kept = True
            print(f"demo: the processes' logs are in {keep}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--once", action="store_true", help="exit when the walk-through is done")
    parser.add_argument(
        "--keep-logs",
        type=Path,
        metavar="DIR",
        default=os.environ.get("DEMO_KEEP_LOGS") or None,
        help="copy the processes' logs into DIR when the demo stops (env DEMO_KEEP_LOGS)",
    )
    parser.add_argument(
        "--procfile", type=Path, default=PROCFILE, help="the Procfile to run (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)
    signals = Signals()
    signals.install()
    demo = Demo(args, signals)
    try:
        try:
            demo.run()
        except Stop as stop:
            demo.failed = False
            print(f"\ndemo: {stop}: stopping")
        except Failed as exc:
            demo.failed_process = exc.process
            print(f"demo: {exc}", file=sys.stderr)
        except Exception:
            traceback.print_exc()
        finally:
            demo.cleanup()
    except Stop:  # the first signal arrived while cleaning up: go on cleaning up
        demo.cleanup()
    return 1 if demo.failed else 0


def rest(webhook: str, method: str, params: dict[str, Any] | None = None) -> Any:
    body = requests.post(webhook + method, json=params or {}, timeout=10).json()
    if "error" in body:
        raise Failed(f"{method}: {body}")
    return body["result"]


def walk_through(
    env: dict[str, str], portal_url: str, app_url: str, alive: Callable[[], None]
) -> None:
    from app.registry import SCOPES
    from fakeportal.testing import AdminClient

    admin = AdminClient(portal_url)
    portal = admin.list_portals()[0]
    member_id = portal["member_id"]
    client_id = env["B24_CLIENT_ID"]
    admin.register_app(
        client_id=client_id,
        client_secret=env["B24_CLIENT_SECRET"],
        install_url=f"{app_url}/install",
        scope=",".join(SCOPES),
    )
    hook = admin.create_webhook(member_id=member_id)["url"]

    print(f"\n1. The admin installs the app into {portal['domain']}")
    admin.install_app(member_id=member_id, client_id=client_id)
    reg = wait_for("registrations", lambda: _registered(admin, member_id, client_id), alive=alive)
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

    flows = wait_for("the copy robot", lambda: _finished(admin, member_id, deal_id), alive=alive)
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


def _registered(admin: Any, member_id: str, client_id: str) -> dict[str, Any] | None:
    for app in admin.apps(member_id=member_id):
        if app["client_id"] == client_id and app["robots"]:
            return app
    return None


def _finished(admin: Any, member_id: str, deal_id: int) -> list[dict[str, Any]] | None:
    flows = admin.workflows(member_id=member_id, deal_id=deal_id)
    if flows and all(
        s["status"] not in ("waiting", "pending", "delayed") for s in flows[0]["robots"]
    ):
        return flows
    return None


if __name__ == "__main__":
    raise SystemExit(main())
