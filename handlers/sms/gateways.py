"""SMS gateways: send a message, ask for its status, read delivery reports.

The app is the portal's SMS provider; a job hands each message to the gateway the portal admin
configured and reports the outcome back with ``messageservice.message.status.update``. Every
gateway speaks its own API; this module turns each into the same small interface and maps the
gateway's statuses onto the portal's five (``DeliveryStatus``) and its failures onto
``GatewayError`` (``transient`` = worth retrying with backoff).

Credentials never leave this module in a message or a log line: every error text and every
``raw`` reply passes through the gateway's redaction of its secret config values, and requests
carry secrets in headers or bodies, never in URLs. See README.md for the API facts each
gateway follows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import requests
import urllib3

from .phone import mask_phone

__all__ = [
    "GATEWAYS",
    "DeliveryStatus",
    "Field",
    "Gateway",
    "GatewayError",
    "GenericHttpGateway",
    "SendResult",
    "SerwerSmsGateway",
    "SmsRuGateway",
    "StatusReport",
    "TwilioGateway",
    "gateway_for",
]

log = logging.getLogger(__name__)

REDACTED = "***"


class DeliveryStatus(StrEnum):
    """The portal's message statuses (messageservice.message.status.update STATUS)."""

    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    FAILED = "failed"

    @property
    def final(self) -> bool:
        """No later status is expected once a message is here."""
        return self in (DeliveryStatus.DELIVERED, DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED)


@dataclass
class SendResult:
    """A message the gateway accepted: its id there and the status it started in."""

    provider_id: str
    status: DeliveryStatus
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass
class StatusReport:
    """The state of one message, from polling or from a delivery report."""

    provider_id: str
    status: DeliveryStatus
    error: str | None = None


class GatewayError(Exception):
    """The gateway refused or could not be reached.

    ``transient`` is True for failures worth retrying with backoff (network errors, timeouts,
    5xx, rate limits) and False for those no retry fixes (bad credentials, invalid number,
    insufficient funds); ``message`` is the gateway's own explanation where it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        transient: bool,
        gateway: str = "",
        code: str | None = None,
        http_status: int | None = None,
        maybe_sent: bool = False,
    ) -> None:
        super().__init__(f"{gateway}: {message}" if gateway else message)
        self.message = message
        self.transient = transient
        self.gateway = gateway
        self.code = code
        self.http_status = http_status
        #: The request may have reached the gateway (no answer came): a retry could send twice.
        self.maybe_sent = maybe_sent


@dataclass(frozen=True)
class Field:
    """One setting of a gateway, as the admin settings form shows it."""

    name: str
    label: str
    secret: bool = False
    required: bool = True
    default: str = ""
    help: str = ""


class Gateway(ABC):
    """One SMS gateway account: its config, an HTTP session and the gateway's API."""

    name: ClassVar[str]
    title: ClassVar[str]
    fields: ClassVar[list[Field]]
    #: What our callback endpoint must answer so the gateway stops re-sending a report.
    callback_ack: ClassVar[str] = "OK"
    #: Whether ``send`` passes ``client_ref`` to the gateway as the message's own id.
    supports_client_ref: ClassVar[bool] = False

    def __init__(
        self,
        config: Mapping[str, str],
        session: requests.Session | None = None,
        timeout: float = 10,
    ) -> None:
        values = {f.name: str(config.get(f.name) or f.default or "").strip() for f in self.fields}
        missing = [f.name for f in self.fields if f.required and not values[f.name]]
        if missing:
            raise ValueError(f"{self.name}: missing settings: {', '.join(missing)}")
        self.config = values
        self.session = session or requests.Session()
        self.timeout = timeout
        self.validate_config()

    def validate_config(self) -> None:
        """Check combinations of settings; raise ValueError naming fields, never values."""
        return None

    def __repr__(self) -> str:
        shown = {f.name: (REDACTED if f.secret else self.config[f.name]) for f in self.fields}
        return f"{type(self).__name__}({shown})"

    # --- the interface ---------------------------------------------------------------------

    @abstractmethod
    def send(self, to: str, text: str, *, client_ref: str, callback_url: str | None) -> SendResult:
        """Hand one message to the gateway; ``to`` is E.164, ``client_ref`` the portal's id."""

    @abstractmethod
    def poll(self, provider_id: str) -> StatusReport:
        """Ask the gateway for a message's current status."""

    @abstractmethod
    def parse_callback(
        self, form_or_json: Mapping[str, Any], query: Mapping[str, str]
    ) -> list[StatusReport]:
        """Read a delivery report the gateway sent to our callback URL."""

    def verify_callback(
        self, url: str, params: Mapping[str, Any], headers: Mapping[str, str]
    ) -> bool:
        """Whether a callback really comes from the gateway (True where it signs nothing)."""
        return True

    def dedupes_by_client_ref(self) -> bool:
        """Whether the gateway refuses a second message with the same ``client_ref``.

        Only then is it safe to repeat a send whose outcome is unknown (no answer came).
        """
        return False

    # --- shared plumbing -------------------------------------------------------------------

    def _secrets(self) -> list[str]:
        values = [self.config[f.name] for f in self.fields if f.secret and self.config[f.name]]
        # Longest first, so a secret containing another is hidden whole.
        return sorted(set(values), key=len, reverse=True)

    def redact(self, text: str) -> str:
        """``text`` with every secret config value replaced by ``***``."""
        for secret in self._secrets():
            text = text.replace(secret, REDACTED)
        return text

    def _redact_obj(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {k: self._redact_obj(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact_obj(v) for v in value]
        return value

    def _error(
        self,
        message: str,
        *,
        transient: bool,
        code: object = None,
        http_status: int | None = None,
        maybe_sent: bool = False,
    ) -> GatewayError:
        err = GatewayError(
            self.redact(str(message)),
            transient=transient,
            gateway=self.name,
            code=None if code is None else str(code),
            http_status=http_status,
            maybe_sent=maybe_sent,
        )
        log.warning(
            "sms gateway %s error (%s%s): %s",
            self.name,
            "transient" if transient else "permanent",
            f", code {err.code}" if err.code else "",
            err.message,
        )
        return err

    def _request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One HTTP call; network trouble becomes a transient GatewayError."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise self._error(
                f"no answer within {self.timeout:g}s",
                transient=True,
                maybe_sent=not _never_reached(exc),
            ) from None
        except requests.RequestException as exc:
            # The exception text may quote the URL; our URLs carry no secrets, redact anyway.
            raise self._error(
                f"network error: {type(exc).__name__}: {exc}",
                transient=True,
                maybe_sent=not _never_reached(exc),
            ) from None

    def _json(self, response: requests.Response) -> Any:
        """The reply's JSON; a 5xx or 429 without JSON is transient, other garbage is not."""
        try:
            return response.json()
        except ValueError:
            status = response.status_code
            transient = status >= 500 or status == 429
            snippet = response.text[:200].strip() or "(empty body)"
            raise self._error(
                f"HTTP {status}, not JSON: {snippet}", transient=transient, http_status=status
            ) from None

    def _log_sent(self, to: str, client_ref: str, result: SendResult) -> None:
        log.info(
            "sms gateway %s accepted message %s for %s as %s (%s)",
            self.name,
            client_ref,
            mask_phone(to),
            result.provider_id,
            result.status.value,
        )


def _never_reached(exc: requests.RequestException) -> bool:
    """True when the request surely never reached the gateway (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def _first(*mappings: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for mapping in mappings:
        for key in keys:
            value = mapping.get(key)
            if isinstance(value, list):
                value = value[0] if value else None
            if value not in (None, ""):
                return value
    return None


# =====================================================================================
# SerwerSMS.pl (HTTPS API v2)
# =====================================================================================

_SERWERSMS_STATUSES = {
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


class SerwerSmsGateway(Gateway):
    """SerwerSMS.pl, HTTPS API v2 (api2.serwersms.pl), JSON bodies."""

    name = "serwersms"
    title = "SerwerSMS.pl"
    fields = [
        Field("token", "API token (Bearer)", secret=True, required=False),
        Field("username", "API user name (instead of a token)", required=False),
        Field("password", "API user password", secret=True, required=False),
        Field("sender", "Sender name (empty sends SMS ECO)", required=False),
        Field("base_url", "API address", required=False, default="https://api2.serwersms.pl/"),
    ]
    supports_client_ref = True

    def validate_config(self) -> None:
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
        if status >= 500 or status == 429:
            raise self._error(f"HTTP {status} from {action}", transient=True, http_status=status)
        data = self._json(response)
        if not isinstance(data, dict):
            raise self._error(f"unexpected reply to {action}", transient=False, http_status=status)
        error = data.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            message = error.get("message") or error.get("type") or "error"
            raise self._error(
                f"{message} ({error.get('type', '')})".replace(" ()", ""),
                transient=False,  # the documented codes are all account/input problems
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
        result = SendResult(
            provider_id=provider_id,
            status=_SERWERSMS_STATUSES.get(str(item.get("status")), DeliveryStatus.QUEUED),
            raw=self._redact_obj(data),
        )
        self._log_sent(to, client_ref, result)
        return result

    def poll(self, provider_id: str) -> StatusReport:
        data = self._call("messages/reports", {"id": [provider_id]})
        for item in data.get("items") or []:
            if isinstance(item, dict) and str(item.get("id")) == str(provider_id):
                return self._report(item)
        raise self._error(f"message {provider_id} not found", transient=False)

    def _report(self, item: Mapping[str, Any]) -> StatusReport:
        raw_status = str(item.get("status") or "").lower()
        status = _SERWERSMS_STATUSES.get(raw_status, DeliveryStatus.SENT)
        reason = item.get("reason") or item.get("error_message")
        error = None
        if status in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED):
            error = str(reason or raw_status)
        return StatusReport(provider_id=str(item.get("id")), status=status, error=error)

    def parse_callback(
        self, form_or_json: Mapping[str, Any], query: Mapping[str, str]
    ) -> list[StatusReport]:
        # The report URL is set once in the SerwerSMS panel; reports name the message by the
        # id returned at sending and carry the same status words as messages/reports.
        items = form_or_json.get("items") if isinstance(form_or_json, Mapping) else None
        if isinstance(items, list):
            return [self._report(i) for i in items if isinstance(i, Mapping) and i.get("id")]
        provider_id = _first(form_or_json, query, keys=("id", "sms_id", "smsid"))
        raw_status = _first(form_or_json, query, keys=("status", "stan"))
        if not provider_id or not raw_status:
            return []
        reason = _first(form_or_json, query, keys=("reason", "error_message"))
        return [self._report({"id": provider_id, "status": raw_status, "reason": reason})]


def _is_gsm7(text: str) -> bool:
    basic = (
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€"
    )
    return all(ch in basic for ch in text)


# =====================================================================================
# SMS.ru
# =====================================================================================

_SMSRU_STATUSES = {
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
_SMSRU_STATUS_TEXT = {
    104: "lifetime expired",
    105: "deleted by the operator",
    106: "failure in the phone",
    107: "unknown reason",
    108: "rejected",
    150: "no route to this number",
}
# Server trouble and rate limits: retrying later can succeed.
_SMSRU_TRANSIENT = {206, 220, 230, 231, 232, 233, 500, 501, 502, 503, 504, 505, 506, 508}


class SmsRuGateway(Gateway):
    """SMS.ru HTTP API (sms.ru/sms/send, /sms/status), JSON replies (json=1)."""

    name = "smsru"
    title = "SMS.ru"
    fields = [
        Field("api_id", "api_id", secret=True),
        Field("sender", "Sender name (from)", required=False),
        Field("test", "Test mode (1 = do not really send)", required=False),
        Field("base_url", "API address", required=False, default="https://sms.ru"),
    ]
    callback_ack = "100"

    def _call(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        url = self.config["base_url"].rstrip("/") + path
        body = {"api_id": self.config["api_id"], "json": 1, **params}
        response = self._request("POST", url, data=body)  # api_id in the body, not the URL
        status = response.status_code
        if status >= 500 or status == 429:
            raise self._error(f"HTTP {status}", transient=True, http_status=status)
        data = self._json(response)
        if not isinstance(data, dict):
            raise self._error("unexpected reply", transient=False, http_status=status)
        if data.get("status") != "OK":
            raise self._code_error(data)
        return data

    def _code_error(self, entry: Mapping[str, Any]) -> GatewayError:
        code = _int(entry.get("status_code"))
        text = entry.get("status_text") or f"status code {code}"
        return self._error(text, transient=code in _SMSRU_TRANSIENT, code=code)

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
        status = _SMSRU_STATUSES.get(_int(entry.get("status_code")), DeliveryStatus.QUEUED)
        result = SendResult(provider_id=provider_id, status=status, raw=self._redact_obj(data))
        self._log_sent(to, client_ref, result)
        return result

    def poll(self, provider_id: str) -> StatusReport:
        data = self._call("/sms/status", {"sms_id": provider_id})
        entry = (data.get("sms") or {}).get(provider_id)
        if not isinstance(entry, dict):
            raise self._error(f"message {provider_id} not in the reply", transient=False)
        code = _int(entry.get("status_code"))
        if entry.get("status") != "OK" or code not in _SMSRU_STATUSES:
            raise self._code_error(entry)
        return self._report(provider_id, code, entry.get("status_text"))

    def _report(self, provider_id: str, code: int, text: Any = None) -> StatusReport:
        status = _SMSRU_STATUSES[code]
        error = None
        if status in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED):
            error = str(text or _SMSRU_STATUS_TEXT.get(code, f"status code {code}"))
        return StatusReport(provider_id=provider_id, status=status, error=error)

    def parse_callback(
        self, form_or_json: Mapping[str, Any], query: Mapping[str, str]
    ) -> list[StatusReport]:
        reports = []
        for entry in _smsru_entries(form_or_json):
            lines = [line.strip() for line in entry.replace("\r\n", "\n").split("\n")]
            if len(lines) < 3 or lines[0] != "sms_status":
                continue  # other record types (incoming SMS, callback checks) are not ours
            code = _int(lines[2])
            if code in _SMSRU_STATUSES and lines[1]:
                reports.append(self._report(lines[1], code))
        return reports


def _smsru_entries(form: Mapping[str, Any]) -> list[str]:
    """The ``data[N]`` records of an SMS.ru callback, flat (``data[0]``) or nested (``data``)."""
    nested = form.get("data")
    if isinstance(nested, str):
        return [nested]
    if isinstance(nested, list):
        return [str(v) for v in nested]
    if isinstance(nested, Mapping):
        return [str(nested[k]) for k in sorted(nested, key=lambda k: _int(k, 10**9))]
    indexed = []
    for key in form:
        m = re.fullmatch(r"data\[(\d*)\]", str(key))
        if m:
            values = form.getlist(key) if hasattr(form, "getlist") else [form[key]]
            for value in values:
                indexed.append((int(m.group(1) or 10**9), str(value)))
    return [value for _, value in sorted(indexed, key=lambda item: item[0])]


def _int(value: Any, default: int = -1) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


# =====================================================================================
# Twilio Programmable Messaging
# =====================================================================================

_TWILIO_STATUSES = {
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
# Too many requests / concurrency and queue limits: back off and retry.
_TWILIO_TRANSIENT_CODES = {20429}


class TwilioGateway(Gateway):
    """Twilio Messages resource (REST API 2010-04-01), HTTP basic auth."""

    name = "twilio"
    title = "Twilio"
    fields = [
        Field("account_sid", "Account SID"),
        Field("auth_token", "Auth token", secret=True),
        Field("from_number", "From (number or sender id)", required=False),
        Field("messaging_service_sid", "Messaging Service SID", required=False),
        Field("base_url", "API address", required=False, default="https://api.twilio.com"),
    ]
    callback_ack = ""

    def validate_config(self) -> None:
        if not self.config["from_number"] and not self.config["messaging_service_sid"]:
            raise ValueError("twilio: set from_number or messaging_service_sid")

    def _url(self, suffix: str) -> str:
        base = self.config["base_url"].rstrip("/")
        return f"{base}/2010-04-01/Accounts/{self.config['account_sid']}/{suffix}"

    def _call(self, method: str, suffix: str, data: dict[str, str] | None = None) -> dict:
        response = self._request(
            method,
            self._url(suffix),
            data=data,
            auth=(self.config["account_sid"], self.config["auth_token"]),
            headers={"Accept": "application/json"},
        )
        status = response.status_code
        if status < 400:
            body = self._json(response)
            if not isinstance(body, dict):
                raise self._error("unexpected reply", transient=False, http_status=status)
            return body
        try:
            body = response.json()
        except ValueError:
            body = {}
        code = _int(body.get("code")) if isinstance(body, dict) else -1
        message = (body.get("message") if isinstance(body, dict) else None) or f"HTTP {status}"
        transient = status >= 500 or status == 429 or code in _TWILIO_TRANSIENT_CODES
        raise self._error(
            message,
            transient=transient,
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
        result = SendResult(provider_id=sid, status=report.status, raw=self._redact_obj(body))
        self._log_sent(to, client_ref, result)
        return result

    def poll(self, provider_id: str) -> StatusReport:
        body = self._call("GET", f"Messages/{provider_id}.json")
        return self._report(
            str(body.get("sid") or provider_id),
            body.get("status"),
            body.get("error_code"),
            body.get("error_message"),
        )

    @staticmethod
    def _report(sid: str, status: Any, error_code: Any, error_message: Any) -> StatusReport:
        mapped = _TWILIO_STATUSES.get(str(status or "").lower(), DeliveryStatus.QUEUED)
        error = None
        if mapped in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED):
            error = str(error_message or status)
            if error_code not in (None, ""):
                error = f"error {error_code}: {error}"
        return StatusReport(provider_id=sid, status=mapped, error=error)

    def parse_callback(
        self, form_or_json: Mapping[str, Any], query: Mapping[str, str]
    ) -> list[StatusReport]:
        sid = _first(form_or_json, keys=("MessageSid", "SmsSid"))
        status = _first(form_or_json, keys=("MessageStatus", "SmsStatus"))
        if not sid or not status:
            return []
        error_code = _first(form_or_json, keys=("ErrorCode",))
        error_message = _first(form_or_json, keys=("ErrorMessage",))
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


# =====================================================================================
# Generic HTTP gateway
# =====================================================================================


def dig(obj: Any, path: str) -> Any:
    """A value from nested JSON by a dotted path: ``result.id``, ``messages[0].id``, ``$.a.0``."""
    path = path.strip()
    if path.startswith("$"):
        path = path[1:].lstrip(".")
    if not path:
        return obj
    current = obj
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        index = part[1:-1] if part.startswith("[") else part
        if isinstance(current, list) and index.lstrip("-").isdigit():
            i = int(index)
            current = current[i] if -len(current) <= i < len(current) else None
        elif isinstance(current, Mapping):
            current = current.get(index)
        else:
            return None
        if current is None:
            return None
    return current


def _parse_mapping(text: str, what: str) -> dict[str, str]:
    """``{"a": "b"}`` or ``a=b, c=d`` as a dict of lower-cased keys."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"http: {what} is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise ValueError(f"http: {what} must be a JSON object")
        return {str(k).lower(): str(v) for k, v in loaded.items()}
    pairs = {}
    for chunk in re.split(r"[,\n;]", text):
        if not chunk.strip():
            continue
        if "=" not in chunk:
            raise ValueError(f"http: {what} entry {chunk.strip()!r} is not key=value")
        key, value = chunk.split("=", 1)
        pairs[key.strip().lower()] = value.strip()
    return pairs


class GenericHttpGateway(Gateway):
    """Any HTTP SMS API, described by settings instead of code.

    The request is either named parameters (``to_param``, ``text_param``, ...) sent as a form,
    a query string or JSON, or a JSON template whose strings may hold ``{to}``, ``{to_digits}``,
    ``{text}``, ``{client_ref}`` and ``{callback_url}``. Replies are read with dotted paths.
    """

    name = "http"
    title = "HTTP gateway"
    fields = [
        Field("url", "Send URL"),
        Field("method", "HTTP method (POST or GET)", required=False, default="POST"),
        Field("body_format", "Body: form, json or query", required=False, default="form"),
        Field("to_param", "Recipient parameter name", required=False, default="to"),
        Field("text_param", "Text parameter name", required=False, default="text"),
        Field("ref_param", "Message id parameter name", required=False, default=""),
        Field("callback_param", "Callback URL parameter name", required=False, default=""),
        Field("extra_params", "Extra fixed parameters (a=b, c=d)", required=False),
        Field("json_template", "JSON body template (instead of parameter names)", required=False),
        Field("auth_header", "Auth header name", required=False, default="Authorization"),
        Field("auth_value", "Auth header value", secret=True, required=False),
        Field("idempotency_header", "Idempotency header (gets the message id)", required=False),
        Field("id_path", "Path to the message id in the reply", required=False, default="id"),
        Field("status_path", "Path to the status in the reply", required=False),
        Field("error_path", "Path to an error text in the reply", required=False),
        Field(
            "status_map", "Gateway status=portal status (sent=sent, ok=delivered)", required=False
        ),
        Field("poll_url", "Status URL with {id}", required=False),
        Field(
            "callback_id_key", "Callback field with the message id", required=False, default="id"
        ),
        Field(
            "callback_status_key",
            "Callback field with the status",
            required=False,
            default="status",
        ),
        Field(
            "callback_error_key", "Callback field with the error", required=False, default="error"
        ),
    ]
    supports_client_ref = True

    def dedupes_by_client_ref(self) -> bool:
        return bool(self.config["idempotency_header"])

    def validate_config(self) -> None:
        c = self.config
        c["method"] = c["method"].upper()
        c["body_format"] = c["body_format"].lower()
        if c["method"] not in {"POST", "GET", "PUT"}:
            raise ValueError("http: method must be POST, GET or PUT")
        if c["body_format"] not in {"form", "json", "query"}:
            raise ValueError("http: body_format must be form, json or query")
        if not c["url"].startswith(("http://", "https://")):
            raise ValueError("http: url must start with http:// or https://")
        self._extra = _parse_mapping(c["extra_params"], "extra_params")
        self._status_map: dict[str, DeliveryStatus] = {}
        for key, value in _parse_mapping(c["status_map"], "status_map").items():
            try:
                self._status_map[key] = DeliveryStatus(value.lower())
            except ValueError:
                raise ValueError(
                    f"http: status_map value {value!r} is not one of "
                    + ", ".join(s.value for s in DeliveryStatus)
                ) from None
        self._template: Any = None
        if c["json_template"]:
            try:
                self._template = json.loads(c["json_template"])
            except ValueError as exc:
                raise ValueError(f"http: json_template is not valid JSON: {exc}") from None

    # -- request building

    def _fill(self, template: Any, values: Mapping[str, str]) -> Any:
        if isinstance(template, str):
            out = template
            for key, value in values.items():
                out = out.replace("{" + key + "}", value)
            return out
        if isinstance(template, list):
            return [self._fill(v, values) for v in template]
        if isinstance(template, dict):
            return {k: self._fill(v, values) for k, v in template.items()}
        return template

    def _headers(self, client_ref: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.config["auth_value"]:
            headers[self.config["auth_header"] or "Authorization"] = self.config["auth_value"]
        if client_ref and self.config["idempotency_header"]:
            headers[self.config["idempotency_header"]] = client_ref
        return headers

    def send(self, to: str, text: str, *, client_ref: str, callback_url: str | None) -> SendResult:
        c = self.config
        values = {
            "to": to,
            "to_digits": to.lstrip("+"),
            "text": text,
            "client_ref": client_ref,
            "callback_url": callback_url or "",
        }
        kwargs: dict[str, Any] = {"headers": self._headers(client_ref)}
        if self._template is not None:
            kwargs["json"] = self._fill(self._template, values)
        else:
            params: dict[str, str] = dict(self._extra)
            params[c["to_param"] or "to"] = to
            params[c["text_param"] or "text"] = text
            if c["ref_param"]:
                params[c["ref_param"]] = client_ref
            if c["callback_param"] and callback_url:
                params[c["callback_param"]] = callback_url
            if c["body_format"] == "json":
                kwargs["json"] = params
            elif c["body_format"] == "query" or c["method"] == "GET":
                kwargs["params"] = params
            else:
                kwargs["data"] = params
        response = self._request(c["method"], c["url"], **kwargs)
        data = self._read(response)
        provider_id = dig(data, c["id_path"]) if c["id_path"] else None
        if provider_id in (None, ""):
            raise self._error(f"no message id at {c['id_path']!r} in the reply", transient=False)
        status = DeliveryStatus.QUEUED
        if c["status_path"]:
            status = self._map_status(dig(data, c["status_path"]), DeliveryStatus.QUEUED)
        if status is DeliveryStatus.FAILED:
            raise self._error(f"gateway reports the message failed: {data}", transient=False)
        result = SendResult(
            provider_id=str(provider_id),
            status=status,
            raw=self._redact_obj(data if isinstance(data, dict) else {"reply": data}),
        )
        self._log_sent(to, client_ref, result)
        return result

    def _read(self, response: requests.Response) -> Any:
        status = response.status_code
        data: Any
        try:
            data = response.json()
        except ValueError:
            data = None
        error = dig(data, self.config["error_path"]) if self.config["error_path"] else None
        if status >= 400 or error not in (None, "", False, 0):
            transient = status >= 500 or status in (408, 429)
            text = error if error not in (None, "", False, 0) else None
            if text is None:
                text = (response.text[:200].strip() or "(empty body)") if data is None else data
            raise self._error(f"HTTP {status}: {text}", transient=transient, http_status=status)
        if data is None:
            raise self._error(
                f"HTTP {status}, not JSON: {response.text[:200].strip() or '(empty body)'}",
                transient=False,
                http_status=status,
            )
        return data

    def _map_status(self, raw: Any, default: DeliveryStatus) -> DeliveryStatus:
        if raw is None:
            return default
        key = str(raw).strip().lower()
        if key in self._status_map:
            return self._status_map[key]
        try:
            return DeliveryStatus(key)
        except ValueError:
            return default

    def poll(self, provider_id: str) -> StatusReport:
        c = self.config
        if not c["poll_url"]:
            raise self._error(
                "no poll_url configured; delivery comes by callback only", transient=False
            )
        url = c["poll_url"].replace("{id}", requests.utils.quote(provider_id, safe=""))
        response = self._request("GET", url, headers=self._headers())
        data = self._read(response)
        raw = dig(data, c["status_path"] or "status")
        if raw is None:
            raise self._error(f"no status in the reply for {provider_id}", transient=False)
        status = self._map_status(raw, DeliveryStatus.SENT)
        error = None
        if status in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED):
            error = str(raw)
        return StatusReport(provider_id=provider_id, status=status, error=error)

    def parse_callback(
        self, form_or_json: Mapping[str, Any], query: Mapping[str, str]
    ) -> list[StatusReport]:
        c = self.config
        provider_id = dig(form_or_json, c["callback_id_key"]) or query.get(c["callback_id_key"])
        raw = dig(form_or_json, c["callback_status_key"]) or query.get(c["callback_status_key"])
        if isinstance(provider_id, list):
            provider_id = provider_id[0] if provider_id else None
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if provider_id in (None, "") or raw in (None, ""):
            return []
        status = self._map_status(raw, DeliveryStatus.SENT)
        error = None
        if status in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED):
            error_value = dig(form_or_json, c["callback_error_key"]) or query.get(
                c["callback_error_key"]
            )
            error = str(error_value or raw)
        return [StatusReport(provider_id=str(provider_id), status=status, error=error)]


# =====================================================================================

GATEWAYS: dict[str, type[Gateway]] = {
    SerwerSmsGateway.name: SerwerSmsGateway,
    SmsRuGateway.name: SmsRuGateway,
    TwilioGateway.name: TwilioGateway,
    GenericHttpGateway.name: GenericHttpGateway,
}


def gateway_for(
    name: str,
    config: Mapping[str, str],
    session: requests.Session | None = None,
    timeout: float = 10,
) -> Gateway:
    """The configured gateway ``name``; ValueError for an unknown name or bad settings."""
    try:
        cls = GATEWAYS[name]
    except KeyError:
        raise ValueError(
            f"unknown SMS gateway {name!r}; known: {', '.join(sorted(GATEWAYS))}"
        ) from None
    return cls(config, session=session, timeout=timeout)
