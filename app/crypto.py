"""Encryption of secrets at rest (tokens, gateway credentials) and signing of public URLs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from app.errors import AppError


class SecretBox:
    """Fernet with a key derived from SECRET_KEY: what is stored can only be read with it."""

    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < 16:
            raise AppError("SECRET_KEY must be set (at least 16 characters): it encrypts tokens")
        digest = hashlib.sha256(b"b24-robot-server:at-rest:" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))
        self._sign_key = hashlib.sha256(b"b24-robot-server:sign:" + secret_key.encode()).digest()

    def encrypt(self, value: str) -> str:
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise AppError("stored secret cannot be decrypted with this SECRET_KEY") from None

    def encrypt_json(self, value: Any) -> str:
        return self.encrypt(json.dumps(value, separators=(",", ":")))

    def decrypt_json(self, token: str) -> Any:
        return json.loads(self.decrypt(token))

    def sign(self, message: str) -> str:
        """A URL-safe signature of ``message`` (truncated HMAC-SHA256, 128 bits)."""
        mac = hmac.new(self._sign_key, message.encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message), signature)
