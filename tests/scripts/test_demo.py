"""scripts/demo.py: runs the Procfile's commands and, whatever ends it, leaves nothing behind.

The slow tests run the demo as a subprocess (its own redis-server, TMPDIR in tmp_path) and
watch /proc while it runs: every process that was ever a descendant of the demo, and every
process in a session of one of them, must be gone once the demo has exited.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import re
import shlex
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dotenv import dotenv_values

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.py"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
ENV_KEYS = {
    "REDIS_URL",
    "DATABASE_URL",
    "SECRET_KEY",
    "B24_CLIENT_ID",
    "B24_CLIENT_SECRET",
    "B24_OAUTH_URL",
    "APP_BASE_URL",
}
SECRET_KEYS = ("SECRET_KEY", "B24_CLIENT_SECRET")

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def load_demo():
    spec = importlib.util.spec_from_file_location("demo_script", DEMO)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- /proc ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    pid: int
    state: str
    ppid: int
    pgrp: int
    sid: int
    start: int  # clock ticks after boot: tells a PID from a later process reusing it
    cmdline: tuple[str, ...] = ()


def read_proc(pid: int, cmdline: bool = False) -> Proc | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes() if cmdline else b""
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return Proc(
        pid,
        fields[0],
        int(fields[1]),
        int(fields[2]),
        int(fields[3]),
        int(fields[19]),
        tuple(a.decode(errors="replace") for a in argv.split(b"\0") if a),
    )


def all_procs() -> list[Proc]:
    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (proc := read_proc(int(entry.name))) is not None:
            procs.append(proc)
    return procs


def alive(proc: Proc) -> bool:
    now = read_proc(proc.pid)
    return now is not None and now.start == proc.start and now.state not in "ZX"


class Watch:
    """Records every descendant of ``root`` (with its session) until ``stop()``."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.seen: dict[tuple[int, int], Proc] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            children: dict[int, list[int]] = {}
            for proc in all_procs():
                children.setdefault(proc.ppid, []).append(proc.pid)
            todo = list(children.get(self.root, []))
            while todo:
                pid = todo.pop()
                todo.extend(children.get(pid, []))
                proc = read_proc(pid, cmdline=True)
                if proc is not None and proc.state not in "ZX":
                    self.seen.setdefault((proc.pid, proc.start), proc)
            self._done.wait(0.1)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def sessions(self) -> set[int]:
        return {proc.sid for proc in self.seen.values()}

    def leftovers(self) -> list[Proc]:
        """Live processes that were descendants, or are in a descendant's session."""
        left = {p.pid: p for p in self.seen.values() if alive(p)}
        sessions = self.sessions() - {os.getsid(0)}
        for proc in all_procs():
            if proc.sid in sessions and proc.state not in "ZX" and proc.pid != os.getpid():
                left.setdefault(proc.pid, read_proc(proc.pid, cmdline=True) or proc)
        return sorted(left.values(), key=lambda p: p.pid)


def describe(procs: list[Proc]) -> str:
    return "\n".join(f"  {p.pid} (sid {p.sid}): {' '.join(p.cmdline)}" for p in procs)


# --- running the demo -------------------------------------------------------------------


@dataclass
class Run:
    proc: subprocess.Popen[str]
    watch: Watch
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    out: list[str] = field(default_factory=list)
    err: list[str] = field(default_factory=list)

    def wait_line(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} in {timeout} s:\n{self.output()}")
            if line is None:
                self.proc.wait(timeout=30)
                pytest.fail(f"the demo exited ({self.proc.returncode}) early:\n{self.output()}")
            if match := re.search(pattern, line):
                return match

    def finish(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the demo did not exit within {timeout} s:\n{self.output()}")
        time.sleep(0.3)  # the watch takes a last look
        self.watch.stop()
        return code

    def output(self) -> str:
        return "".join(self.out) + "\n--- stderr ---\n" + "".join(self.err)


@pytest.fixture
def run_demo(tmp_path: Path) -> Iterator:
    runs: list[Run] = []

    def start(*args: str, **extra_env: str) -> Run:
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
        (tmp_path / "tmp").mkdir(exist_ok=True)
        env.update(TMPDIR=str(tmp_path / "tmp"), **extra_env)
        proc = subprocess.Popen(
            [PYTHON, str(DEMO), *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # Ctrl-C at the terminal does not reach it; we signal it
        )
        run = Run(proc, Watch(proc.pid))
        runs.append(run)

        def pump(stream, sink: list[str], lines: queue.Queue | None) -> None:
            for line in stream:
                sink.append(line)
                if lines is not None:
                    lines.put(line)
            if lines is not None:
                lines.put(None)

        threading.Thread(target=pump, args=(proc.stdout, run.out, run.lines), daemon=True).start()
        threading.Thread(target=pump, args=(proc.stderr, run.err, None), daemon=True).start()
        return run

    try:
        yield start
    finally:
        for run in runs:  # whatever a failing demo left behind must not outlive the test
            if run.proc.poll() is None:
                run.proc.kill()
                run.proc.wait()
            run.watch.stop()
            for proc in run.watch.leftovers():
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def assert_nothing_left(run: Run, tmpdir: Path, workdir: Path | None) -> None:
    children = [p for p in run.watch.seen.values() if p.ppid == run.proc.pid]
    assert len(children) >= 5, f"the watch saw too few children:\n{describe(children)}"
    left = run.watch.leftovers()
    assert not left, f"still running after the demo exited:\n{describe(left)}\n{run.output()}"
    if workdir is not None:
        assert not workdir.exists(), f"{workdir} is left behind"
    assert not list(tmpdir.iterdir()), f"left in TMPDIR: {sorted(tmpdir.iterdir())}"


def procfile_expectations(env: dict[str, str]) -> dict[str, list[str | None]]:
    """Each Procfile process type's argv[1:] with ${VAR:-default} filled in from ``env``."""

    def fill(word: str) -> str:
        return re.sub(
            r"\$\{(\w+):-([^}]*)\}|\$\{(\w+)\}|\$(\w+)",
            lambda m: env.get(m[1] or m[3] or m[4]) or (m[2] or ""),
            word,
        )

    expected = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        if (m := re.fullmatch(r"\s*([\w-]+)\s*:\s*(.+)", line)) and m[1] != "release":
            words = shlex.split(m[2])
            while re.fullmatch(r"\w+=.*", words[0]):
                words.pop(0)
            expected[m[1]] = [words[0], *[fill(w) for w in words[1:]]]
    return expected


# --- the tests --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_every_process_and_removes_the_temporary_folder(
    run_demo, tmp_path: Path, signum: int
) -> None:
    run = run_demo()
    workdir = Path(run.wait_line(r"logs and database in (\S+)", 60)[1])
    ready = run.wait_line(r"running\. .*Ctrl-C stops", 120)
    assert ready
    time.sleep(1)  # the watch sees the settled process tree
    printed = "".join(run.out)
    env_file = re.search(r"--env-file (\S+) portals", printed)
    env_stat = os.stat(env_file[1]) if env_file else None
    env_values = dotenv_values(env_file[1]) if env_file else {}
    running = {p.pid: p for p in run.watch.seen.values() if alive(p)}

    os.kill(run.proc.pid, signum)
    run.finish(timeout=60)

    assert_nothing_left(run, tmp_path / "tmp", workdir)
    assert run.proc.returncode == 0, run.output()

    # what the operator types to point the app's commands at the running demo
    assert env_file, f"no '--env-file <file> portals' command printed:\n{printed}"
    assert re.search(
        rf"^\s*\S*robot-server --env-file {re.escape(env_file[1])} portals$", printed, re.M
    )
    assert Path(env_file[1]).parent == workdir
    assert stat.S_IMODE(env_stat.st_mode) == 0o600
    assert set(env_values) == ENV_KEYS
    for key in SECRET_KEYS:
        assert env_values[key] and env_values[key] not in run.output(), f"{key} was printed"

    # the web, worker and cron processes are the Procfile's commands
    app_port = re.search(r":(\d+)$", env_values["APP_BASE_URL"])[1]
    expected = procfile_expectations(
        {**os.environ, **env_values, "PORT": app_port, "BIND": "127.0.0.1"}
    )
    assert {"web", "worker", "cron"} <= set(expected)
    for name, (program, *args) in expected.items():
        assert any(
            Path(program).name in {Path(a).name for a in p.cmdline[: len(p.cmdline) - len(args)]}
            and list(p.cmdline[len(p.cmdline) - len(args) :]) == args
            for p in running.values()
        ), f"no process runs the Procfile's {name}: {program} {shlex.join(args)}\n" + describe(
            list(running.values())
        )


@pytest.mark.slow
def test_once_stops_the_worker_before_redis_and_leaves_nothing(run_demo, tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    run = run_demo("--once", DEMO_KEEP_LOGS=str(logs))
    workdir = Path(run.wait_line(r"logs and database in (\S+)", 60)[1])
    code = run.finish(timeout=180)

    assert code == 0, run.output()
    assert "copy #" in "".join(run.out)
    assert_nothing_left(run, tmp_path / "tmp", workdir)
    worker_log = (logs / "worker.log").read_text()
    assert "warm shut down requested" in worker_log  # the log covers the worker's stop
    for refused in ("Error 111", "connection refused"):
        assert refused.lower() not in worker_log.lower(), worker_log[-3000:]


@pytest.mark.slow
def test_a_failure_while_starting_stops_everything_and_keeps_only_the_logs(
    run_demo, tmp_path: Path
) -> None:
    procfile = tmp_path / "Procfile"
    procfile.write_text(
        (ROOT / "Procfile").read_text() + 'broken: python -c "import sys; sys.exit(3)"\n'
    )
    run = run_demo("--procfile", str(procfile))
    workdir = Path(run.wait_line(r"logs and database in (\S+)", 60)[1])
    code = run.finish(timeout=120)

    assert code == 1, run.output()
    assert "broken exited (3)" in "".join(run.err)
    kept = [p for p in (tmp_path / "tmp").iterdir()]
    assert len(kept) == 1 and kept[0].name.startswith("robot-server-demo-logs-"), kept
    assert f"logs are in {kept[0]}" in "".join(run.err)
    assert {p.name for p in kept[0].iterdir()} >= {"redis.log", "web.log", "broken.log"}
    assert all(p.suffix == ".log" for p in kept[0].iterdir())  # no database, no secrets
    for p in kept[0].iterdir():
        p.unlink()
    kept[0].rmdir()
    assert_nothing_left(run, tmp_path / "tmp", workdir)


# --- the Procfile and demo.env, without running anything -----------------------------------


def test_procfile_commands_expand_like_sh() -> None:
    demo = load_demo()
    env = {"PORT": "8123", "EMPTY": "", "PATH": "/bin"}
    argv, _ = demo.procfile_command(
        'gunicorn --bind 0.0.0.0:${PORT:-5000} -w ${WEB_CONCURRENCY:-2} "app:create_app()"', env
    )
    assert argv == ["gunicorn", "--bind", "0.0.0.0:8123", "-w", "2", "app:create_app()"]
    assert demo.expand("${EMPTY:-d} ${EMPTY-d} ${NONE-d} $PORT ${PORT}x", env) == "d  d 8123 8123x"
    argv, proc_env = demo.procfile_command("FOO=a$PORT rq worker --url ${REDIS_URL:-r://h}", env)
    assert argv == ["rq", "worker", "--url", "r://h"] and proc_env["FOO"] == "a8123"
    for shell in ("a && b", "a | b", "a; b", "a > log", "echo $(date)", "echo `date`", "${X:=1}"):
        with pytest.raises(ValueError):
            demo.procfile_command(shell, env)


def test_the_real_procfile_has_what_the_demo_needs() -> None:
    demo = load_demo()
    entries = demo.read_procfile()
    assert {"web", "worker"} <= set(entries)
    for command in entries.values():
        demo.procfile_command(command, {"PATH": "/bin"})


def test_demo_env_is_private_and_reads_back(tmp_path: Path) -> None:
    demo = load_demo()
    env = {key: f"value-of-{key}" for key in demo.ENV_FILE_KEYS}
    env["SECRET_KEY"] = "a'b\\c $HOME #x"
    env["DATABASE_URL"] = "sqlite:////tmp/x y/app.db"
    path = tmp_path / "demo.env"
    demo.write_env_file(path, {**env, "OTHER": "not written"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dotenv_values(path) == env
