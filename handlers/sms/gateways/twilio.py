"""Twilio Programmable Messaging: the Messages resource, HTTP basic auth, signed callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from .base import (
    N_,
    DeliveryStatus,
    Field,
    Gateway,
    SendResult,
    StatusReport,
    first_value,
    to_int,
)

_STATUSES = {
    "accepted": DeliveryStatus.QUEUED,
    "scheduled": DeliveryStatus.QUEUED,
    "queued": DeliveryStatus.QUEUED,
    "sending": DeliveryStatus.QUEUED,
    "sent": DeliveryStatus.SENT,
    "delivered": DeliveryStatus.DELIVERED,
    "read": DeliveryStatus.DELIVERED,
    "undelivered": DeliveryStatus.UNDELIVERED,
    "partially_delivered": DeliveryStatus.UNDELIVERED,
    "failed": DeliveryStatus.FAILED,
    "canceled": DeliveryStatus.FAILED,
}


class TwilioGateway(Gateway):
    """Twilio Messages resource (REST API 2010-04-01), HTTP basic auth."""

    name = "twilio"
    title = "Twilio"
    fields = [
        Field("account_sid", N_("Account SID")),
        Field("auth_token", N_("Auth token"), secret=True),
        Field("from_number", N_("From (number or sender id)"), required=False),
        Field("messaging_service_sid", N_("Messaging Service SID"), required=False),
        Field("base_url", N_("API address"), required=False, default="https://api.twilio.com"),
    ]
    callback_ack = ""
    # Too many requests / concurrency and queue limits: back off and retry.
    transient_codes = frozenset({20429})

    def validate_config(self) -> None:
        """A sender: a From number or a Messaging Service."""
        if not self.config["from_number"] and not self.config["messaging_service_sid"]:
            raise ValueError("twilio: set from_number or messaging_service_sid")

    def _url(self, suffix: str) -> str:
        base = self.config["base_url"].rstrip("/")
        return f"{base}/2010-04-01/Accounts/{self.config['account_sid']}/{suffix}"

    def _call(self, method: str, suffix: str, data: dict[str, str] | None = None) -> dict:
        """One call to the account's API; a 4xx/5xx becomes a GatewayError with Twilio's code."""
        response = self._request(
            method,
            self._url(suffix),
            data=data,
            auth=(self.config["account_sid"], self.config["auth_token"]),
            headers={"Accept": "application/json"},
        )
        status = response.status_code
        if status < 400:
            return self._reply_object(response)
        body = self._try_json(response)
        if not isinstance(body, dict):
            body = {}
        code = to_int(body.get("code"))
        message = body.get("message") or f"HTTP {status}"
        raise self._error(
            message,
            transient=self._transient(status, code),
            code=code if code != -1 else None,
            http_status=status,
        )

    def send(self, to: str, text: str, *, client_ref: str, callback_url: str | None) -> SendResult:
        data = {"To": to, "Body": text}
        if self.config["messaging_service_sid"]:
            data["MessagingServiceSid"] = self.config["messaging_service_sid"]
        if self.config["from_number"]:
            data["From"] = self.config["from_number"]
        if callback_url:
            data["StatusCallback"] = callback_url
        body = self._call("POST", "Messages.json", data)
        sid = str(body.get("sid") or "")
        if not sid:
            raise self._error("accepted but no sid in the reply", transient=False)
        report = self._report(
            sid, body.get("status"), body.get("error_code"), body.get("error_message")
        )
        if report.status is DeliveryStatus.FAILED:
            raise self._error(report.error or "failed", transient=False)
        return self._accepted(to, client_ref, sid, report.status, body)

    def poll(self, provider_id: str) -> StatusReport:
        body = self._call("GET", f"Messages/{provider_id}.json")
        return self._report(
            str(body.get("sid") or provider_id),
            body.get("status"),
            body.get("error_code"),
            body.get("error_message"),
        )

    def _report(self, sid: str, status: Any, error_code: Any, error_message: Any) -> StatusReport:
        """A report from a message's ``status``, ``error_code`` and ``error_message``."""
        mapped = _STATUSES.get(str(status or "").lower(), DeliveryStatus.QUEUED)
        error = str(error_message or status)
        if error_code not in (None, ""):
            error = f"error {error_code}: {error}"
        return self._status_report(sid, mapped, error)

    def parse_callback(
        self, form_or_json: Mapping[str, Any], query: Mapping[str, str]
    ) -> list[StatusReport]:
        sid = first_value(form_or_json, keys=("MessageSid", "SmsSid"))
        status = first_value(form_or_json, keys=("MessageStatus", "SmsStatus"))
        if not sid or not status:
            return []
        error_code = first_value(form_or_json, keys=("ErrorCode",))
        error_message = first_value(form_or_json, keys=("ErrorMessage",))
        return [self._report(str(sid), status, error_code, error_message)]

    def verify_callback(
        self, url: str, params: Mapping[str, Any], headers: Mapping[str, str]
    ) -> bool:
        """Check ``X-Twilio-Signature``: HMAC-SHA1 (auth token) of URL + sorted POST params."""
        signature = next((v for k, v in headers.items() if k.lower() == "x-twilio-signature"), None)
        if not signature:
            return False
        payload = url
        for key in sorted(set(params)):
            if hasattr(params, "getlist"):
                values = params.getlist(key)
            else:
                value = params[key]
                values = value if isinstance(value, list | tuple) else [value]
            for item in sorted({str(v) for v in values}):
                payload += f"{key}{item}"
        digest = hmac.new(
            self.config["auth_token"].encode(), payload.encode(), hashlib.sha1
        ).digest()
        expected = base64.b64encode(digest).decode()
        return hmac.compare_digest(expected.encode(), str(signature).encode())
