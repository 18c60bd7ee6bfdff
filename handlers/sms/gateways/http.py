"""A generic HTTP gateway: any SMS API, described by settings (parameters, paths), not code."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import requests

from .base import N_, DeliveryStatus, Field, Gateway, SendResult, StatusReport


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


def _present(value: Any) -> bool:
    """Whether an error path found an error (not missing, empty, false or zero)."""
    return value not in (None, "", False, 0)


class GenericHttpGateway(Gateway):
    """Any HTTP SMS API, described by settings instead of code.

    The request is either named parameters (``to_param``, ``text_param``, ...) sent as a form,
    a query string or JSON, or a JSON template whose strings may hold ``{to}``, ``{to_digits}``,
    ``{text}``, ``{client_ref}`` and ``{callback_url}``. Replies are read with dotted paths.
    """

    name = "http"
    title = N_("HTTP gateway")
    fields = [
        Field("url", N_("Send URL")),
        Field("method", N_("HTTP method (POST or GET)"), required=False, default="POST"),
        Field("body_format", N_("Body: form, json or query"), required=False, default="form"),
        Field("to_param", N_("Recipient parameter name"), required=False, default="to"),
        Field("text_param", N_("Text parameter name"), required=False, default="text"),
        Field("ref_param", N_("Message id parameter name"), required=False, default=""),
        Field("callback_param", N_("Callback URL parameter name"), required=False, default=""),
        Field("extra_params", N_("Extra fixed parameters (a=b, c=d)"), required=False),
        Field(
            "json_template", N_("JSON body template (instead of parameter names)"), required=False
        ),
        Field("auth_header", N_("Auth header name"), required=False, default="Authorization"),
        Field("auth_value", N_("Auth header value"), secret=True, required=False),
        Field("idempotency_header", N_("Idempotency header (gets the message id)"), required=False),
        Field("id_path", N_("Path to the message id in the reply"), required=False, default="id"),
        Field("status_path", N_("Path to the status in the reply"), required=False),
        Field("error_path", N_("Path to an error text in the reply"), required=False),
        Field(
            "status_map",
            N_("Gateway status=portal status (sent=sent, ok=delivered)"),
            required=False,
        ),
        Field("poll_url", N_("Status URL with {id}"), required=False),
        Field(
            "callback_id_key",
            N_("Callback field with the message id"),
            required=False,
            default="id",
        ),
        Field(
            "callback_status_key",
            N_("Callback field with the status"),
            required=False,
            default="status",
        ),
        Field(
            "callback_error_key",
            N_("Callback field with the error"),
            required=False,
            default="error",
        ),
    ]
    supports_client_ref = True
    # A request timeout (408) as well as rate limits: an unknown API may answer either.
    transient_http = frozenset({408, 429})

    def dedupes_by_client_ref(self) -> bool:
        return bool(self.config["idempotency_header"])

    def validate_config(self) -> None:
        """Normalize method and body format; parse the extra params, status map and template."""
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
        raw = data if isinstance(data, dict) else {"reply": data}
        return self._accepted(to, client_ref, str(provider_id), status, raw)

    def _read(self, response: requests.Response) -> Any:
        """The reply's JSON; an error status or a found ``error_path`` is a GatewayError."""
        status = response.status_code
        data = self._try_json(response)
        error = dig(data, self.config["error_path"]) if self.config["error_path"] else None
        if status >= 400 or _present(error):
            text = error if _present(error) else None
            if text is None:
                text = (response.text[:200].strip() or "(empty body)") if data is None else data
            raise self._error(
                f"HTTP {status}: {text}", transient=self._transient(status), http_status=status
            )
        if data is None:
            raise self._error(
                f"HTTP {status}, not JSON: {response.text[:200].strip() or '(empty body)'}",
                transient=False,
                http_status=status,
            )
        return data

    def _map_status(self, raw: Any, default: DeliveryStatus) -> DeliveryStatus:
        """``raw`` through the status map, else as a portal status word, else ``default``."""
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
        return self._status_report(provider_id, self._map_status(raw, DeliveryStatus.SENT), raw)

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
        error = dig(form_or_json, c["callback_error_key"]) or query.get(c["callback_error_key"])
        return [self._status_report(str(provider_id), status, error or raw)]
