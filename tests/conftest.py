"""Shared fixtures: the emulated portal, a throwaway Redis server, the app's database."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

pytest_plugins = ["fakeportal.testing"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A redis-server of this test session (real Redis: Lua scripts, locks, RQ), stopped after."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH: run scripts/setup (apt-get install redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("redis-server did not start")
            time.sleep(0.02)
    try:
        yield url
    finally:
        client.close()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def database_server_url() -> Iterator[str | None]:
    """A fresh PostgreSQL database for the session when TEST_DATABASE_URL is set, else None."""
    base = os.environ.get("TEST_DATABASE_URL")
    if not base:
        yield None
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(base)
    name = f"robot_test_{secrets.token_hex(4)}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as db:
        db.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as db:
            db.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database_url(database_server_url: str | None, tmp_path: Path) -> Iterator[str]:
    """A database with no tables of ours: a fresh SQLite file, or the session's PostgreSQL
    database emptied before the test."""
    if database_server_url is None:
        yield f"sqlite:///{tmp_path / 'app.db'}"
        return
    from sqlalchemy import create_engine, text

    import handlers  # noqa: F401  (features add their tables to the metadata)
    from app.store import metadata

    engine = create_engine(database_server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as db:
        # Connections an earlier test left in its pools (or its worker processes) may hold
        # locks that DROP TABLE would wait for.
        db.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    metadata.drop_all(engine)
    engine.dispose()
    yield database_server_url
