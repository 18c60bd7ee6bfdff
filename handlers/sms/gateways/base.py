"""What every SMS gateway shares: the portal's statuses, the error type, and the HTTP plumbing.

A gateway module only describes its API (URLs, fields, its status words and error codes);
sending a request, reading a reply, classifying failures as transient or permanent, building
results and reports, and hiding secrets are done here, once.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

import requests
import urllib3

from ..phone import mask_phone

# The package's name, as before the gateways were split into modules: log config keeps working.
log = logging.getLogger(__package__)

REDACTED = "***"


def N_(text: str) -> str:
    """Marks a message for the catalogue; translated where it is shown.

    Gateway titles and field labels are marked with it (``pybabel extract -k N_``, see
    babel.cfg and scripts/translations) but stay plain English here: this layer runs
    without Flask, and the settings page translates them when it renders (sms/section.py).
    """
    return text


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


#: Statuses of a message that did not arrive: only their reports carry an error text.
NOT_ARRIVED = (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED)


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
    """One setting of a gateway, as the admin settings form shows it.

    ``label`` and ``help`` are English, marked with ``N_``; the page translates them.
    """

    name: str
    label: str
    secret: bool = False
    required: bool = True
    default: str = ""
    help: str = ""


class Gateway(ABC):
    """One SMS gateway account: its config, an HTTP session and the gateway's API."""

    name: ClassVar[str]
    #: What the settings page calls the gateway (a brand name, or English marked with ``N_``).
    title: ClassVar[str]
    fields: ClassVar[list[Field]]
    #: What our callback endpoint must answer so the gateway stops re-sending a report.
    callback_ack: ClassVar[str] = "OK"
    #: Whether ``send`` passes ``client_ref`` to the gateway as the message's own id.
    supports_client_ref: ClassVar[bool] = False
    #: HTTP statuses worth a retry besides every 5xx (rate limits).
    transient_http: ClassVar[frozenset[int]] = frozenset({429})
    #: The gateway's own error codes worth a retry (server trouble, rate limits).
    transient_codes: ClassVar[frozenset[int]] = frozenset()

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

    # --- secrets ---------------------------------------------------------------------------

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

    # --- failures --------------------------------------------------------------------------

    def _transient(self, http_status: int | None = None, code: object = None) -> bool:
        """Whether a refusal is worth retrying: a 5xx or rate-limit status, or such a code."""
        if http_status is not None and (http_status >= 500 or http_status in self.transient_http):
            return True
        return code is not None and to_int(code) in self.transient_codes

    def _error(
        self,
        message: str,
        *,
        transient: bool,
        code: object = None,
        http_status: int | None = None,
        maybe_sent: bool = False,
    ) -> GatewayError:
        """A GatewayError of this gateway, redacted and logged."""
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

    # --- requests and replies --------------------------------------------------------------

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
            snippet = response.text[:200].strip() or "(empty body)"
            raise self._error(
                f"HTTP {status}, not JSON: {snippet}",
                transient=self._transient(status),
                http_status=status,
            ) from None

    @staticmethod
    def _try_json(response: requests.Response) -> Any:
        """The reply's JSON, or None where the body is not JSON (an error page, say)."""
        try:
            return response.json()
        except ValueError:
            return None

    def _reply_object(self, response: requests.Response, what: str = "") -> dict[str, Any]:
        """The reply as a JSON object, for APIs that always answer with one.

        A 5xx or rate-limit status is transient whatever the body says; a body that is not a
        JSON object is permanent (a retry gets the same). ``what`` names the call in errors.
        """
        status = response.status_code
        if self._transient(status):
            where = f" from {what}" if what else ""
            raise self._error(f"HTTP {status}{where}", transient=True, http_status=status)
        data = self._json(response)
        if not isinstance(data, dict):
            where = f" to {what}" if what else ""
            raise self._error(f"unexpected reply{where}", transient=False, http_status=status)
        return data

    # --- results ---------------------------------------------------------------------------

    def _accepted(
        self,
        to: str,
        client_ref: str,
        provider_id: str,
        status: DeliveryStatus,
        raw: Mapping[str, Any],
    ) -> SendResult:
        """The result of a send the gateway took, with secrets redacted from its reply; logged
        with a masked number and never the text."""
        result = SendResult(provider_id=provider_id, status=status, raw=self._redact_obj(raw))
        log.info(
            "sms gateway %s accepted message %s for %s as %s (%s)",
            self.name,
            client_ref,
            mask_phone(to),
            result.provider_id,
            result.status.value,
        )
        return result

    @staticmethod
    def _status_report(provider_id: str, status: DeliveryStatus, error: object) -> StatusReport:
        """A report of ``status``; ``error`` (the reason) is kept only if the message failed."""
        return StatusReport(
            provider_id=provider_id,
            status=status,
            error=str(error) if status in NOT_ARRIVED else None,
        )


def _never_reached(exc: requests.RequestException) -> bool:
    """True when the request surely never reached the gateway (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and exc.args:
        reason = getattr(exc.args[0], "reason", None)
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def first_value(*mappings: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The first non-empty value under any of ``keys`` (a list gives its first item)."""
    for mapping in mappings:
        for key in keys:
            value = mapping.get(key)
            if isinstance(value, list):
                value = value[0] if value else None
            if value not in (None, ""):
                return value
    return None


def to_int(value: Any, default: int = -1) -> int:
    """``value`` as an int (gateways send codes as numbers or strings), else ``default``."""
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default
