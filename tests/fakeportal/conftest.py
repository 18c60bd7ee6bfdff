"""The emulated portal's fixtures for every test under tests/fakeportal/."""

from __future__ import annotations

from typing import Any

import pytest

from fakeportal import admin
from fakeportal.state import Portal, World

# fakeportal_server, fake_world, fake_portal, fake_webhook, fake_admin come from the
# fakeportal.testing plugin (tests/conftest.py).


@pytest.fixture
def oauth_app(fake_world: World, fake_portal: Portal) -> dict[str, Any]:
    """A registered app (crm, user scopes) with a token pair for user 1 on ``fake_portal``."""
    app = admin.register_app(fake_world, scope=["crm", "user"])
    tokens = admin.issue_tokens(fake_world, app["client_id"], fake_portal.member_id)
    return {**app, "tokens": tokens}
