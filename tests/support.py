"""What several test modules share: the recorded Bitrix24 payloads, a webhook client."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests
from fast_bitrix24 import Bitrix

from fakeportal.state import Portal, World

EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "bitrix24_examples.json").read_text("utf-8")
)


class WebhookClient:
    """A portal user's incoming webhook: ``call`` posts JSON with requests and returns
    (status, body); ``ok`` asserts success and returns ``result``; ``bitrix`` is a
    fast_bitrix24 client on the same webhook."""

    def __init__(self, world: World, portal: Portal, webhook: str) -> None:
        self.world = world
        self.portal = portal
        self.webhook = webhook
        self.bitrix = Bitrix(webhook, verbose=False)

    def call(self, method: str, **params: Any) -> tuple[int, dict[str, Any]]:
        response = requests.post(self.webhook + method, json=params, timeout=10)
        return response.status_code, response.json()

    def ok(self, method: str, **params: Any) -> Any:
        status, body = self.call(method, **params)
        assert status == 200, body
        return body["result"]
