"""``python -m fakeportal``: runs in the foreground, prints its URL and a webhook, serves REST."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).parents[2]


def test_python_m_fakeportal_demo_seed() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fakeportal", "--port", "0", "--seed", "demo"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].startswith("fakeportal listening on http://127.0.0.1:")
        hook = lines[2].split("webhook=")[1].strip()
        deals = requests.post(hook + "crm.deal.list", json={"select": ["ID", "TITLE"]}, timeout=5)
        assert deals.status_code == 200
        assert deals.json()["total"] == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
        if proc.stderr:
            proc.stderr.close()


def test_unknown_seed_exits_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fakeportal", "--port", "0", "--seed", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "unknown seed" in done.stderr
