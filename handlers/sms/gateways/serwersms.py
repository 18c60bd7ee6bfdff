"""SerwerSMS.pl, HTTPS API v2: JSON bodies, a Bearer token or user name and password."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

from .base import N_, DeliveryStatus, Field, Gateway, SendResult, StatusReport, first_value

_STATUSES = {
    "delivered": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "sent": DeliveryStatus.SENT,
    "unsent": DeliveryStatus.FAILED,
    "in_progress": DeliveryStatus.QUEUED,
    "pending": DeliveryStatus.QUEUED,
    "saved": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
}
_UNIQUE_ID = re.compile(r"^[A-Za-z0-9]{3,50}$")
_GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
)


class SerwerSmsGateway(Gateway):
    """SerwerSMS.pl, HTTPS API v2 (api2.serwersms.pl), JSON bodies."""

    name = "serwersms"
    title = "SerwerSMS.pl"
    fields = [
        Field("token", N_("API token (Bearer)"), secret=True, required=False),
        Field("username", N_("API user name (instead of a token)"), required=False),
        Field("password", N_("API user password"), secret=True, required=False),
        Field("sender", N_("Sender name (empty sends SMS ECO)"), required=False),
        Field("base_url", N_("API address"), required=False, default="https://api2.serwersms.pl/"),
    ]
    supports_client_ref = True
    # No transient_codes: the documented error codes are all account or input problems.

    def validate_config(self) -> None:
        """A token, or else both user name and password."""
        if not self.config["token"] and not (self.config["username"] and self.config["password"]):
            raise ValueError("serwersms: set either token or both username and password")

    @staticmethod
    def unique_id(client_ref: str) -> str:
        """The portal's message id as SerwerSMS accepts it (a-z A-Z 0-9, 3 to 50 chars).

        The portal's 32-hex message_id fits as is; anything else becomes a stable SHA-1 hex.
        """
        if _UNIQUE_ID.match(client_ref):
            return client_ref
        return hashlib.sha1(client_ref.encode()).hexdigest()

    def _call(self, action: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``action``; the reply object, or its ``error`` as a permanent GatewayError."""
        url = self.config["base_url"].rstrip("/") + f"/{action}.json"
        headers = {"Accept": "application/json"}
        if self.config["token"]:
            headers["Authorization"] = f"Bearer {self.config['token']}"
        else:
            body = {
                **body,
                "username": self.config["username"],
                "password": self.config["password"],
            }
        response = self._request("POST", url, json=body, headers=headers)
        status = response.status_code
        data = self._reply_object(response, action)
        error = data.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message") or error.get("type") or "error"
            raise self._error(
                f"{message} ({error.get('type', '')})".replace(" ()", ""),
                transient=self._transient(code=code),
                code=code,
                http_status=status,
            )
        if status >= 400:
            raise self._error(f"HTTP {status} from {action}", transient=False, http_status=status)
        return data

    def send(self, to: str, text: str, *, client_ref: str, callback_url: str | None) -> SendResult:
        body: dict[str, Any] = {
            "phone": to,
            "text": text,
            "details": True,
            "unique_id": self.unique_id(client_ref),
        }
        if self.config["sender"]:
            body["sender"] = self.config["sender"]
            if not _is_gsm7(text):
                body["utf"] = True  # SMS FULL only: diacritics, Cyrillic...
        data = self._call("messages/send_sms", body)
        items = data.get("items") or []
        item = items[0] if items and isinstance(items[0], dict) else {}
        if item.get("status") == "unsent" or (not item and not data.get("queued")):
            message = item.get("error_message") or "message not queued"
            raise self._error(message, transient=False, code=item.get("error_code"))
        provider_id = str(item.get("id") or "")
        if not provider_id:
            raise self._error("queued but no message id in the reply", transient=False)
        status = _STATUSES.get(str(item.get("status")), DeliveryStatus.QUEUED)
        return self._accepted(to, client_ref, provider_id, status, data)

    def poll(self, provider_id: str) -> StatusReport:
        data = self._call("messages/reports", {"id": [provider_id]})
        for item in data.get("items") or []:
            if isinstance(item, dict) and str(item.get("id")) == str(provider_id):
                return self._report(item)
        raise self._error(f"message {provider_id} not found", transient=False)

    def _report(self, item: Mapping[str, Any]) -> StatusReport:
        """A report from a ``messages/reports`` item (or a callback read into one)."""
        raw_status = str(item.get("status") or "").lower()
        status = _STATUSES.get(raw_status, DeliveryStatus.SENT)
        reason = item.get("reason") or item.get("error_message")
        return self._status_report(str(item.get("id")), status, reason or raw_status)

    def parse_callback(
        self, form_or_json: Mapping[str, Any], query: Mapping[str, str]
    ) -> list[StatusReport]:
        # The report URL is set once in the SerwerSMS panel; reports name the message by the
        # id returned at sending and carry the same status words as messages/reports.
        items = form_or_json.get("items") if isinstance(form_or_json, Mapping) else None
        if isinstance(items, list):
            return [self._report(i) for i in items if isinstance(i, Mapping) and i.get("id")]
        provider_id = first_value(form_or_json, query, keys=("id", "sms_id", "smsid"))
        raw_status = first_value(form_or_json, query, keys=("status", "stan"))
        if not provider_id or not raw_status:
            return []
        reason = first_value(form_or_json, query, keys=("reason", "error_message"))
        return [self._report({"id": provider_id, "status": raw_status, "reason": reason})]


def _is_gsm7(text: str) -> bool:
    """Whether ``text`` fits the GSM 7-bit basic alphabet (no ``utf`` needed)."""
    return all(ch in _GSM7_BASIC for ch in text)
