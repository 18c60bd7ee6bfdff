"""Callbacks from a portal, parsed from PHP bracket forms into typed payloads.

Everything a portal POSTs to an app is ``application/x-www-form-urlencoded`` with PHP
bracket keys (``auth[member_id]``, ``document_id[0]``, ``properties[code][1]``); every value
is a string. ``parse_form`` re-nests the keys; the ``from_form`` constructors check what each
callback must carry and raise ``BadRequest`` with a message that says what is wrong.
Payloads are plain data: ``to_dict`` / ``from_dict`` carry them into RQ jobs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any
from urllib.parse import parse_qsl

from app.errors import BadRequest

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
MAX_FIELDS = 2000
MAX_DEPTH = 8


def parse_form(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Re-nest PHP bracket keys: dicts whose keys are exactly 0..n-1 become lists."""
    root: dict[str, Any] = {}
    count = 0
    for key, value in pairs:
        count += 1
        if count > MAX_FIELDS:
            raise BadRequest(f"too many form fields (more than {MAX_FIELDS})")
        match = _KEY.match(key)
        if not match:
            raise BadRequest(f"malformed form key {key[:60]!r}")
        parts = [match.group(1)] + re.findall(r"\[([^\[\]]*)\]", match.group(2))
        if len(parts) > MAX_DEPTH:
            raise BadRequest(f"form key nested too deep: {key[:60]!r}")
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":
                part = str(sum(1 for k in node if k.isdigit()))
            if last:
                if isinstance(node.get(part), dict):
                    raise BadRequest(f"form key {key[:60]!r} is both a value and a group")
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise BadRequest(f"form key {key[:60]!r} is both a value and a group")
                node = child
    return _listify(root)


def read_form() -> dict[str, Any]:
    """The form of the current Flask request, re-nested. The portal sends urlencoded bodies;
    those are read with the standard library's parser (faster than building a MultiDict on
    the hot path)."""
    from flask import request

    if request.mimetype == "application/x-www-form-urlencoded":
        try:
            body = request.get_data(cache=True).decode("utf-8")
            pairs = parse_qsl(
                body, keep_blank_values=True, strict_parsing=False, max_num_fields=MAX_FIELDS
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise BadRequest(f"unreadable form: {exc}") from None
        return parse_form(pairs)
    if request.mimetype == "multipart/form-data":
        return parse_form(request.form.items(multi=True))
    raise BadRequest("expected a form POST (application/x-www-form-urlencoded)")


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    converted = {k: _listify(v) for k, v in node.items()}
    if converted and all(k.isdigit() for k in converted):
        keys = sorted(converted, key=int)
        if [int(k) for k in keys] == list(range(len(keys))):
            return [converted[k] for k in keys]
    return converted


def _text(data: Mapping[str, Any], key: str, *, required: bool = True, where: str = "") -> str:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise BadRequest(f"missing {where}{key}")
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{where}{key} must be a single value")
    return value


def _int(data: Mapping[str, Any], key: str, default: int = 0, where: str = "") -> int:
    raw = _text(data, key, required=False, where=where)
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequest(f"{where}{key} must be a whole number, got {raw[:20]!r}") from None


@dataclass(frozen=True)
class Auth:
    """The ``auth[...]`` block: which portal, and (not always) a user's tokens."""

    member_id: str
    domain: str
    application_token: str
    client_endpoint: str = ""
    server_endpoint: str = ""
    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    expires: int = 0
    expires_in: int = 0
    scope: str = ""
    status: str = ""
    user_id: int = 0
    with_user_token: bool = False  # the portal sent a user's access token with the callback

    def redacted(self) -> Auth:
        """Without the tokens: jobs use the installation's stored tokens, and job arguments
        sit in Redis and in worker logs."""
        return replace(self, access_token="", refresh_token="", application_token="")

    @classmethod
    def from_form(cls, data: Mapping[str, Any], *, require_app_token: bool = True) -> Auth:
        auth = data.get("auth")
        if not isinstance(auth, dict):
            raise BadRequest("missing auth[...]")
        w = "auth."
        return cls(
            member_id=_text(auth, "member_id", where=w),
            domain=_text(auth, "domain", required=False, where=w),
            application_token=_text(auth, "application_token", required=require_app_token, where=w),
            client_endpoint=_text(auth, "client_endpoint", required=False, where=w),
            server_endpoint=_text(auth, "server_endpoint", required=False, where=w),
            access_token=_text(auth, "access_token", required=False, where=w),
            refresh_token=_text(auth, "refresh_token", required=False, where=w),
            expires=_int(auth, "expires", where=w),
            expires_in=_int(auth, "expires_in", where=w),
            scope=_text(auth, "scope", required=False, where=w),
            status=_text(auth, "status", required=False, where=w),
            user_id=_int(auth, "user_id", where=w),
            with_user_token=bool(auth.get("access_token")),
        )


@dataclass(frozen=True)
class DocumentId:
    """``document_id[0..2]``: module, entity class, id (``DEAL_123``)."""

    module: str
    entity: str
    id: str

    @property
    def type_name(self) -> str:
        """``DEAL``, ``CONTACT``, ``LEAD``... (the part before the last ``_``)."""
        return self.id.rsplit("_", 1)[0] if "_" in self.id else ""

    @property
    def number(self) -> int:
        """The numeric id: the part after the last ``_``."""
        tail = self.id.rsplit("_", 1)[-1]
        if not tail.isdigit():
            raise BadRequest(f"document_id {self.id[:40]!r} has no numeric id")
        return int(tail)

    @classmethod
    def from_value(cls, value: Any, name: str = "document_id") -> DocumentId:
        if (
            not isinstance(value, list)
            or len(value) != 3
            or not all(isinstance(v, str) for v in value)
        ):
            raise BadRequest(f"{name} must be three values ({name}[0..2])")
        return cls(*value)


@dataclass(frozen=True)
class RobotCall:
    """The portal runs one of our robots in a workflow and (maybe) waits for the answer."""

    code: str
    workflow_id: str
    event_token: str
    document_id: DocumentId
    auth: Auth
    properties: dict[str, Any]
    document_type: tuple[str, ...] = ()
    use_subscription: bool = True
    timeout_duration: int = 0
    ts: int = 0

    @classmethod
    def from_form(cls, data: Mapping[str, Any]) -> RobotCall:
        props = data.get("properties", {})
        if props == "":
            props = {}
        if not isinstance(props, dict):
            raise BadRequest("properties must be named values (properties[code])")
        doc_type = data.get("document_type", [])
        return cls(
            code=_text(data, "code"),
            workflow_id=_text(data, "workflow_id"),
            event_token=_text(data, "event_token"),
            document_id=DocumentId.from_value(data.get("document_id")),
            auth=Auth.from_form(data),
            properties=props,
            document_type=tuple(doc_type) if isinstance(doc_type, list) else (),
            use_subscription=_text(data, "use_subscription", required=False) != "N",
            timeout_duration=_int(data, "timeout_duration"),
            ts=_int(data, "ts"),
        )

    @property
    def dedupe_key(self) -> str:
        return f"robot:{self.event_token}"


@dataclass(frozen=True)
class EventCall:
    """A bound event delivered by the portal (ONCRMDEALUPDATE, ONAPPUNINSTALL, ...)."""

    event: str
    data: dict[str, Any]
    auth: Auth
    ts: int = 0
    event_handler_id: str = ""
    message_id: str = ""  # an offline event's MESSAGE_ID (one per event and object)

    @classmethod
    def from_form(cls, data: Mapping[str, Any]) -> EventCall:
        body = data.get("data", {})
        if body == "":
            body = {}
        if not isinstance(body, dict):
            raise BadRequest("data must be named values (data[...])")
        return cls(
            event=_text(data, "event").upper(),
            data=body,
            auth=Auth.from_form(data),
            ts=_int(data, "ts"),
            event_handler_id=_text(data, "event_handler_id", required=False),
        )

    @classmethod
    def from_offline(cls, row: Mapping[str, Any], auth: Auth) -> EventCall:
        """One row of ``event.offline.get`` (``EVENT_DATA``, ``EVENT_ADDITIONAL``) as the
        event its online delivery would have been; ``auth`` names the portal, no tokens."""
        data = row.get("EVENT_DATA")
        extra = row.get("EVENT_ADDITIONAL")
        user_id = _int(extra, "user_id") if isinstance(extra, Mapping) else 0
        return cls(
            event=str(row.get("EVENT_NAME") or "").upper(),
            data=dict(data) if isinstance(data, Mapping) else {},
            auth=replace(auth, user_id=user_id, with_user_token=bool(user_id)),
            event_handler_id="offline",
            message_id=str(row.get("MESSAGE_ID") or ""),
        )

    @property
    def fields(self) -> dict[str, Any]:
        fields = self.data.get("FIELDS", {})
        return fields if isinstance(fields, dict) else {}

    @property
    def by_user(self) -> bool:
        """False when a robot or workflow made the change (no user tokens come with it;
        an offline event names no user then)."""
        return self.auth.with_user_token

    @property
    def dedupe_key(self) -> str:
        # The portal sends one delivery per (handler, event, object, moment).
        return f"event:{self.event}:{self.event_handler_id}:{sorted(self.fields.items())}:{self.ts}"


@dataclass(frozen=True)
class InstallCall:
    """Either way a portal installs the app: the ONAPPINSTALL event or the install page POST."""

    member_id: str
    domain: str
    application_token: str
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires: int
    client_endpoint: str
    server_endpoint: str
    scope: str
    status: str
    user_id: int
    language: str
    version: str
    from_page: bool

    @classmethod
    def from_form(cls, data: Mapping[str, Any], query: Mapping[str, str]) -> InstallCall:
        if data.get("event"):
            if str(data["event"]).upper() != "ONAPPINSTALL":
                raise BadRequest(f"unexpected event {str(data['event'])[:40]!r} at /install")
            auth = Auth.from_form(data)
            if not auth.access_token or not auth.refresh_token:
                raise BadRequest("ONAPPINSTALL without auth.access_token/refresh_token")
            body = data.get("data") if isinstance(data.get("data"), dict) else {}
            expires = auth.expires or (int(data.get("ts") or 0) + (auth.expires_in or 3600))
            return cls(
                member_id=auth.member_id,
                domain=auth.domain,
                application_token=auth.application_token,
                access_token=auth.access_token,
                refresh_token=auth.refresh_token,
                expires=expires,
                client_endpoint=auth.client_endpoint or f"https://{auth.domain}/rest/",
                server_endpoint=auth.server_endpoint,
                scope=auth.scope,
                status=auth.status,
                user_id=auth.user_id,
                language=str(body.get("LANGUAGE_ID") or "en"),
                version=str(body.get("VERSION") or ""),
                from_page=False,
            )
        # The install page: the portal's frame POSTs AUTH_ID, REFRESH_ID, APPLICATION_TOKEN...
        domain = _text(query, "DOMAIN", required=False) or _text(data, "DOMAIN", required=False)
        if not domain:
            raise BadRequest("missing DOMAIN (query) for the install page")
        protocol = "https" if (query.get("PROTOCOL") or "1") == "1" else "http"
        expires_in = _int(data, "AUTH_EXPIRES", 3600)
        return cls(
            member_id=_text(data, "member_id"),
            domain=domain,
            application_token=_text(data, "APPLICATION_TOKEN"),
            access_token=_text(data, "AUTH_ID"),
            refresh_token=_text(data, "REFRESH_ID"),
            expires=int(time.time()) + expires_in,
            client_endpoint=f"{protocol}://{domain}/rest/",
            server_endpoint=_text(data, "SERVER_ENDPOINT", required=False),
            scope=_text(data, "APPLICATION_SCOPE", required=False),
            status=_text(data, "status", required=False),
            user_id=0,
            language=_text(query, "LANG", required=False) or "en",
            version="",
            from_page=True,
        )


@dataclass(frozen=True)
class SmsCall:
    """The portal hands a message to our SMS provider."""

    code: str
    message_id: str
    message_to: str
    message_body: str
    auth: Auth
    module_id: str = ""
    document_id: tuple[str, ...] = ()
    bindings: tuple[dict[str, str], ...] = ()
    ts: int = 0

    @classmethod
    def from_form(cls, data: Mapping[str, Any]) -> SmsCall:
        message_id = _text(data, "message_id")
        if not re.fullmatch(r"[0-9a-fA-F]{32}", message_id):
            raise BadRequest("message_id must be 32 hex characters")
        props = data.get("properties") if isinstance(data.get("properties"), dict) else {}
        to = _text(data, "message_to", required=False) or _text(
            props, "phone_number", where="properties."
        )
        body = _text(data, "message_body", required=False) or _text(
            props, "message_text", where="properties."
        )
        doc = data.get("document_id")
        bindings = data.get("bindings")
        return cls(
            code=_text(data, "code"),
            message_id=message_id.lower(),
            message_to=to,
            message_body=body,
            auth=Auth.from_form(data),
            module_id=_text(data, "module_id", required=False),
            document_id=tuple(doc) if isinstance(doc, list) else (),
            bindings=tuple(b for b in bindings if isinstance(b, dict))
            if isinstance(bindings, list)
            else (),
            ts=_int(data, "ts"),
        )

    @property
    def dedupe_key(self) -> str:
        return f"sms:{self.message_id}"


def to_dict(payload: Any) -> dict[str, Any]:
    """A payload as primitives, for an RQ job argument (tokens left out).

    Like dataclasses.asdict, without its deep copies: the values are strings, numbers and
    the containers parse_form built for this payload alone (this runs on every callback).
    """
    if isinstance(getattr(payload, "auth", None), Auth):
        payload = replace(payload, auth=payload.auth.redacted())
    return _primitive(payload)


def _primitive(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _primitive(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return [_primitive(v) for v in value]
    if isinstance(value, dict):
        return {k: _primitive(v) for k, v in value.items()}
    return value


def robot_call_from_dict(data: dict[str, Any]) -> RobotCall:
    return RobotCall(
        **{
            **data,
            "document_id": DocumentId(**data["document_id"]),
            "auth": Auth(**data["auth"]),
            "document_type": tuple(data.get("document_type") or ()),
        }
    )


def event_call_from_dict(data: dict[str, Any]) -> EventCall:
    return EventCall(**{**data, "auth": Auth(**data["auth"])})


def sms_call_from_dict(data: dict[str, Any]) -> SmsCall:
    return SmsCall(
        **{
            **data,
            "auth": Auth(**data["auth"]),
            "document_id": tuple(data.get("document_id") or ()),
            "bindings": tuple(data.get("bindings") or ()),
        }
    )
