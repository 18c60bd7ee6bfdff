"""Shared fixtures: the database the app's tests use (SQLite, or PostgreSQL when asked)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest


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
    from sqlalchemy import create_engine

    from app.store import metadata

    engine = create_engine(database_server_url)
    metadata.drop_all(engine)
    engine.dispose()
    yield database_server_url
