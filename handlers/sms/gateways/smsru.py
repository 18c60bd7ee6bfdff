"""SMS.ru HTTP API: form POSTs with ``api_id`` in the body, JSON replies, numeric status codes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .base import N_, DeliveryStatus, Field, Gateway, GatewayError, SendResult, StatusReport, to_int

_STATUSES = {
    100: DeliveryStatus.QUEUED,  # in the queue
    101: DeliveryStatus.QUEUED,  # being passed to the operator
    102: DeliveryStatus.SENT,  # sent, on its way
    103: DeliveryStatus.DELIVERED,
    104: DeliveryStatus.UNDELIVERED,  # lifetime expired
    105: DeliveryStatus.UNDELIVERED,  # deleted by the operator
    106: DeliveryStatus.UNDELIVERED,  # phone failure
    107: DeliveryStatus.UNDELIVERED,  # unknown reason
    108: DeliveryStatus.UNDELIVERED,  # rejected
    110: DeliveryStatus.DELIVERED,  # read
    150: DeliveryStatus.UNDELIVERED,  # no route to the number
}
_STATUS_TEXT = {
    104: "lifetime expired",
    105: "deleted by the operator",
    106: "failure in the phone",
    107: "unknown reason",
    108: "rejected",
    150: "no route to this number",
}


class SmsRuGateway(Gateway):
    """SMS.ru HTTP API (sms.ru/sms/send, /sms/status), JSON replies (json=1)."""

    name = "smsru"
    title = "SMS.ru"
    fields = [
        Field("api_id", N_("API key (api_id)"), secret=True),
        Field("sender", N_("Sender name (from)"), required=False),
        Field("test", N_("Test mode (1 = do not really send)"), required=False),
        Field("base_url", N_("API address"), required=False, default="https://sms.ru"),
    ]
    callback_ack = "100"
    # Server trouble and rate limits: retrying later can succeed.
    transient_codes = frozenset(
        {206, 220, 230, 231, 232, 233, 500, 501, 502, 503, 504, 505, 506, 508}
    )

    def _call(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        """POST ``path``; the reply object, or its top-level ``ERROR`` as a GatewayError."""
        url = self.config["base_url"].rstrip("/") + path
        body = {"api_id": self.config["api_id"], "json": 1, **params}
        response = self._request("POST", url, data=body)  # api_id in the body, not the URL
        data = self._reply_object(response)
        if data.get("status") != "OK":
            raise self._code_error(data)
        return data

    def _code_error(self, entry: Mapping[str, Any]) -> GatewayError:
        """The GatewayError for a reply (or a per-number entry) whose status is not OK."""
        code = to_int(entry.get("status_code"))
        text = entry.get("status_text") or f"status code {code}"
        return self._error(text, transient=self._transient(code=code), code=code)

    def send(self, to: str, text: str, *, client_ref: str, callback_url: str | None) -> SendResult:
        number = to.lstrip("+")
        params: dict[str, Any] = {"to": number, "msg": text}
        if self.config["sender"]:
            params["from"] = self.config["sender"]
        if self.config["test"] in {"1", "true", "yes"}:
            params["test"] = 1
        data = self._call("/sms/send", params)
        entry = (data.get("sms") or {}).get(number)
        if not isinstance(entry, dict):
            raise self._error("no result for the number in the reply", transient=False)
        if entry.get("status") != "OK":
            raise self._code_error(entry)
        provider_id = str(entry.get("sms_id") or "")
        if not provider_id:
            raise self._error("accepted but no sms_id in the reply", transient=False)
        status = _STATUSES.get(to_int(entry.get("status_code")), DeliveryStatus.QUEUED)
        return self._accepted(to, client_ref, provider_id, status, data)

    def poll(self, provider_id: str) -> StatusReport:
        data = self._call("/sms/status", {"sms_id": provider_id})
        entry = (data.get("sms") or {}).get(provider_id)
        if not isinstance(entry, dict):
            raise self._error(f"message {provider_id} not in the reply", transient=False)
        code = to_int(entry.get("status_code"))
        if entry.get("status") != "OK" or code not in _STATUSES:
            raise self._code_error(entry)
        return self._report(provider_id, code, entry.get("status_text"))

    def _report(self, provider_id: str, code: int, text: Any = None) -> StatusReport:
        """A report for a known status ``code``; ``text`` is the gateway's reason, if any."""
        reason = text or _STATUS_TEXT.get(code, f"status code {code}")
        return self._status_report(provider_id, _STATUSES[code], reason)

    def parse_callback(
        self, form_or_json: Mapping[str, Any], query: Mapping[str, str]
    ) -> list[StatusReport]:
        reports = []
        for entry in _entries(form_or_json):
            lines = [line.strip() for line in entry.replace("\r\n", "\n").split("\n")]
            if len(lines) < 3 or lines[0] != "sms_status":
                continue  # other record types (incoming SMS, callback checks) are not ours
            code = to_int(lines[2])
            if code in _STATUSES and lines[1]:
                reports.append(self._report(lines[1], code))
        return reports


def _entries(form: Mapping[str, Any]) -> list[str]:
    """The ``data[N]`` records of an SMS.ru callback, flat (``data[0]``) or nested (``data``)."""
    nested = form.get("data")
    if isinstance(nested, str):
        return [nested]
    if isinstance(nested, list):
        return [str(v) for v in nested]
    if isinstance(nested, Mapping):
        return [str(nested[k]) for k in sorted(nested, key=lambda k: to_int(k, 10**9))]
    indexed = []
    for key in form:
        m = re.fullmatch(r"data\[(\d*)\]", str(key))
        if m:
            values = form.getlist(key) if hasattr(form, "getlist") else [form[key]]
            for value in values:
                indexed.append((int(m.group(1) or 10**9), str(value)))
    return [value for _, value in sorted(indexed, key=lambda item: item[0])]
