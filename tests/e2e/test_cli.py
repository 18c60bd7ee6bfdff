"""The operator's console script, run as an operator runs it: a process, settings from a file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROBOT_SERVER = str(Path(sys.executable).parent / "robot-server")


def run(*args: str, cwd: Path, env_file: Path | None = None) -> subprocess.CompletedProcess:
    argv = [ROBOT_SERVER, *(["--env-file", str(env_file)] if env_file else []), *args]
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(cwd)}  # no settings from this shell
    return subprocess.run(argv, cwd=cwd, env=clean, capture_output=True, text=True, timeout=60)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("robot-server: error: "), result.stderr
    return lines[0]


def test_without_settings_the_commands_say_what_is_missing(tmp_path: Path) -> None:
    assert "SECRET_KEY must be set" in one_line_error(run("portals", cwd=tmp_path))
    missing = one_line_error(run("runs", cwd=tmp_path, env_file=tmp_path / "nope.env"))
    assert "no such env file" in missing


@pytest.fixture
def env_file(stack, tmp_path: Path) -> Path:
    """The running stack's settings as an operator writes them into a file."""
    s = stack.services.settings
    path = tmp_path / "robot-server.env"
    path.write_text(
        f"DATABASE_URL={s.database_url}\nREDIS_URL={s.redis_url}\nSECRET_KEY={s.secret_key}\n"
        f"B24_CLIENT_ID={s.client_id}\nB24_CLIENT_SECRET={s.client_secret}\n"
        f"B24_OAUTH_URL={s.oauth_url}\nAPP_BASE_URL={s.base_url}\n"
    )
    return path


def test_portals_runs_and_a_sweep_by_hand(stack, env_file: Path, tmp_path: Path) -> None:
    stack.install()
    portals = run("portals", cwd=tmp_path, env_file=env_file)
    assert portals.returncode == 0, portals.stderr
    assert stack.member_id in portals.stdout and "solar.bitrix24.test  active" in portals.stdout

    swept = run("sweep", "date_watch", cwd=tmp_path, env_file=env_file)
    assert swept.returncode == 0, swept.stderr
    assert f'{stack.member_id}: {{"done": 0, "due": 0, "failed": 0, "watches": 0}}' in swept.stdout
    [run_row] = stack.services.store.runs(stack.member_id, kind="schedule")
    assert (run_row["name"], run_row["status"]) == ("date_watch", "ok")

    runs = run("runs", "--limit", "5", cwd=tmp_path, env_file=env_file)
    assert runs.returncode == 0 and "schedule date_watch" in runs.stdout

    unknown = one_line_error(run("sweep", "nightly", cwd=tmp_path, env_file=env_file))
    names = ", ".join(sorted(stack.services.catalogue.schedules))
    assert "date_watch, " in names  # the operator reads which schedules there are
    assert f"unknown schedule 'nightly' (one of: {names})" in unknown
