"""The app's configuration, read from the environment in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from dotenv import load_dotenv

DEFAULT_OAUTH_URL = "https://oauth.bitrix.info/oauth/token/"


@dataclass(frozen=True)
class Settings:
    """Everything the app reads from its environment (see .env.example)."""

    client_id: str = ""
    client_secret: str = field(default="", repr=False)
    oauth_url: str = DEFAULT_OAUTH_URL
    base_url: str = "http://127.0.0.1:5000"  # public URL of this app; every handler URL uses it
    redis_url: str = "redis://127.0.0.1:6379/0"
    database_url: str = "sqlite:///robot-server.db"
    secret_key: str = field(default="", repr=False)
    # The portal's request budget (Bitrix24: 50 burst, 2/s drain; Enterprise: 250, 5/s).
    portal_burst: int = 50
    portal_rate: float = 2.0
    # Token refreshes allowed for one call before giving up (fast_bitrix24 alone never stops).
    max_token_refreshes: int = 2
    # One portal request: 5xx, timeouts and connection errors retried after these waits
    # (seconds), then the job fails with PortalUnavailable and RQ retries the job.
    portal_retry_delays: tuple[float, ...] = (0.5, 1, 2, 4, 8)
    # Robot runs: transient portal failures are retried within the workflow's timeout.
    robot_retry_intervals: tuple[int, ...] = (5, 15, 60, 180)
    # Event handlers: transient portal failures are retried after these waits.
    event_retry_intervals: tuple[int, ...] = (10, 60, 300)

    @classmethod
    def from_env(
        cls, env: dict[str, str] | None = None, *, env_file: str | None = None, **overrides: Any
    ) -> Settings:
        """Read settings from the process environment, after loading ``env_file`` (or a
        ``.env`` found from the current folder); variables already set win."""
        if env is None:
            if env_file is not None and not os.path.isfile(env_file):
                raise FileNotFoundError(f"no such env file: {env_file}")
            load_dotenv(env_file)
            env = dict(os.environ)
        values: dict[str, Any] = {
            "client_id": env.get("B24_CLIENT_ID", ""),
            "client_secret": env.get("B24_CLIENT_SECRET", ""),
            "oauth_url": env.get("B24_OAUTH_URL", DEFAULT_OAUTH_URL),
            "base_url": env.get("APP_BASE_URL", cls.base_url).rstrip("/"),
            "redis_url": env.get("REDIS_URL", cls.redis_url),
            "database_url": env.get("DATABASE_URL", cls.database_url),
            "secret_key": env.get("SECRET_KEY", ""),
            "portal_burst": int(env.get("B24_PORTAL_BURST", cls.portal_burst)),
            "portal_rate": float(env.get("B24_PORTAL_RATE", cls.portal_rate)),
        }
        values.update(overrides)
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def url(self, path: str) -> str:
        """The public URL of one of the app's endpoints."""
        return f"{self.base_url}/{path.lstrip('/')}"
