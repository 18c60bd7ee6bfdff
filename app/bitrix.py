"""The portal client: the one place the app talks to a portal's REST API.

``PortalClient(member_id, store=..., settings=..., redis=...)`` offers ``call``, ``batch``,
``list`` and ``list_due`` to plain synchronous code (RQ jobs). Underneath it is
fast_bitrix24's ``BitrixAsync``: its request objects build the calls, batch command strings
(``http_build_query``) and ``get_all`` paging, and its request handler's ``acquire`` still
guards every HTTP request (concurrency cap, per-method operating-time window). What
fast_bitrix24 does not do, or does in a way a server cannot live with, is done here:

- **Transport and errors.** Each operation opens its own aiohttp session with
  ``raise_for_status=False`` and passes it in as ``client=``; ``_PortalRequestHandler``
  (a ``ServerRequestHandler`` subclass) replaces ``request_attempt`` so the body of a 4xx is
  read and raised as ``PortalError(code, description, status, method)`` instead of a bare
  ``ClientResponseError``.
- **Retries.** It also replaces ``single_request``: 5xx, timeouts and connection errors are
  retried after ``retry_delays`` and then raise ``PortalUnavailable`` (fast_bitrix24 retries
  10 times, about 17 s, then raises ``RuntimeError``); its autothrottle sleeps are switched
  off so the only waits are ours.
- **OAuth.** No ``token_func`` is given (fast_bitrix24 calls it on every 401 with no limit).
  On a 401 the handler refreshes through ``settings.oauth_url`` under a per-portal Redis
  lock, re-reading the store first (another process may have refreshed already: refresh
  tokens rotate, so a second refresh with the used token would be ``invalid_grant``), saves
  the new pair and retries; after ``settings.max_token_refreshes`` it raises ``AuthFailed``.
  The refresh runs synchronously (stdlib urllib: urllib3 would log the secret-bearing URL at
  DEBUG), so it pauses only this operation's own coroutines, which all wait for the token.
- **Rate budget.** The handler's in-process ``LeakyBucketThrottler`` is swapped for an
  adapter over ``app.ratelimit.PortalBudget``, a Redis leaky bucket shared by every process,
  so the one bucket that waits is the shared one (one slot of headroom below the portal's
  burst absorbs the delay between taking a slot and the portal counting it). A 503
  ``QUERY_LIMIT_EXCEEDED`` that comes anyway fills the shared bucket and is retried.
- **Operating time.** fast_bitrix24 records ``time.operating`` (the portal's running
  10-minute total) as if it were one request's cost, so its window throttler stalls a client
  for minutes after a few hundred calls; the handler records ``time.processing`` instead.
- **Parameters.** Python booleans become ``"Y"``/``"N"`` (fast_bitrix24 would send
  ``"True"``); ``call`` and ``list_due`` go through ``call(raw=True)`` so the JSON arrives as
  sent (``null`` kept) and the whole ``result`` comes back (plain ``call`` routes through
  ``batch`` and unwraps one-key dicts).
- **Event loops.** The sync ``Bitrix`` returns a Task when a loop is running; instead each
  operation runs in ``asyncio.run`` in the calling thread, or in a helper thread when that
  thread already runs a loop. Nothing outlives a call, so forked RQ workers are safe.
- **Logging.** fast_bitrix24 logs every call's parameters at INFO; its logger is set to
  WARNING, and this module logs method, status and duration (never tokens).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import aiohttp
import redis
from fast_bitrix24 import BitrixAsync
from fast_bitrix24.server_response import ErrorInServerResponseException
from fast_bitrix24.srh import ServerRequestHandler
from fast_bitrix24.utils import http_build_query

from app.errors import AuthFailed, PortalError, PortalUnavailable
from app.oauth import exchange_refresh_token
from app.ratelimit import PortalBudget
from app.settings import Settings

log = logging.getLogger(__name__)
logging.getLogger("fast_bitrix24").setLevel(logging.WARNING)

T = TypeVar("T")

BATCH_LIMIT = 50  # commands in one batch request
PAGE_SIZE = 50  # rows in one list page
LOCK_PREFIX = "b24:oauth-lock:"
USER_AGENT = "b24-robot-server"
DEFAULT_RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
_REFERENCE = re.compile(r"\$result\[([^\]]+)\]")


# Every request of the app carries this key; its offline event bindings carry it too, so the
# portal does not queue the app's own changes for it (no loops), PROTOCOL §6.
AUTH_CONNECTOR = "robot_server"


@dataclass
class Tokens:
    """A portal's OAuth pair and the REST endpoint they are good for."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    client_endpoint: str


class TokenStore(Protocol):
    """Where a portal's tokens live between calls (app.store keeps them encrypted)."""

    def load_tokens(self, member_id: str) -> Tokens | None: ...

    def save_tokens(self, member_id: str, tokens: Tokens) -> None: ...


@dataclass
class BatchResult:
    """What one ``batch`` answered, per command label."""

    results: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, PortalError] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    nexts: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, label: str) -> Any:
        """The command's result; its error if it failed."""
        if label in self.errors:
            raise self.errors[label]
        return self.results[label]

    def raise_for_errors(self) -> None:
        """Raise the first failed command's error, if any failed."""
        for error in self.errors.values():
            raise error


class _Unauthorized(Exception):
    """The portal answered 401 (the token is expired, unknown or revoked)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(code)
        self.code = code
        self.description = description


class _Transient(Exception):
    """A failure worth another try: 5xx, a timeout, a dropped connection."""

    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(f"{code}: {description}")
        self.status = status
        self.code = code
        self.description = description


def to_portal(value: Any) -> Any:
    """Parameters as the portal wants them: booleans as "Y"/"N", tuples and sets as lists."""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, Mapping):
        return {str(key): to_portal(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_portal(item) for item in value]
    return value


def _without_none(value: Any) -> Any:
    """Drop nulls before building a query string (PHP's http_build_query skips them too)."""
    if isinstance(value, dict):
        return {key: _without_none(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_none(item) for item in value if item is not None]
    return value


def _references(value: Any) -> set[str]:
    """Labels named by ``$result[label]`` references anywhere in a command's parameters."""
    if isinstance(value, str):
        return set(_REFERENCE.findall(value))
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        found: set[str] = set()
        for item in value:
            found |= _references(item)
        return found
    return set()


def _as_dict(value: Any) -> dict[str, Any]:
    """A PHP associative array: an empty one arrives as ``[]``."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(index): item for index, item in enumerate(value)}
    return {}


def _error_fields(body: Any, status: int, text: str) -> tuple[str, str]:
    if isinstance(body, dict) and ("error" in body or "error_description" in body):
        return str(body.get("error") or ""), str(body.get("error_description") or "")
    return f"HTTP_{status}", text[:200].strip() or f"HTTP {status}"


def _rows(result: Any) -> list[Any]:
    """A list page's rows, unwrapped from ``{"items": [...]}`` style results."""
    if isinstance(result, list):
        return result
    if isinstance(result, dict) and len(result) == 1:
        (inner,) = result.values()
        if isinstance(inner, list):
            return inner
    if isinstance(result, dict) and not result:
        return []
    raise PortalError("UNEXPECTED_RESULT", f"not a list page: {type(result).__name__}", 200)


def _sorted_by_id(rows: list[Any]) -> list[Any]:
    """Rows in ID order when they all carry a numeric ID (get_all returns them unordered)."""
    for key in ("ID", "id"):
        try:
            return sorted(rows, key=lambda row: int(row[key]))
        except (KeyError, TypeError, ValueError):
            continue
    return rows


def _portal_error(exc: ErrorInServerResponseException, method: str) -> PortalError:
    """fast_bitrix24's batch error (a dict of label -> error) as a PortalError."""
    errors = exc.args[0] if exc.args else {}
    for error in _as_dict(errors).values():
        if isinstance(error, dict):
            return PortalError(
                str(error.get("error") or ""),
                str(error.get("error_description") or ""),
                400,
                method,
            )
        return PortalError("", str(error), 400, method)
    return PortalError("", str(exc), 400, method)


class _SharedBucket:
    """fast_bitrix24's throttler interface over the shared Redis budget."""

    def __init__(self, budget: PortalBudget) -> None:
        self.budget = budget

    @asynccontextmanager
    async def acquire(self) -> Any:
        try:
            await self.budget.take_async()
        except TimeoutError as exc:
            raise PortalUnavailable(str(exc)) from None
        yield

    def add_request_record(self) -> None:
        """The slot was counted when taken."""


class _PortalRequestHandler(ServerRequestHandler):
    """fast_bitrix24's request handler with our transport, errors, retries and OAuth."""

    def __init__(self, owner: PortalClient, session: aiohttp.ClientSession, tokens: Tokens) -> None:
        super().__init__(
            webhook=tokens.client_endpoint,
            token_func=None,
            respect_velocity_policy=True,
            request_pool_size=owner.settings.portal_burst,
            requests_per_second=owner.settings.portal_rate,
            operating_time_limit=owner.operating_time_limit,
            client=session,
            ssl=True,
        )
        self.owner = owner
        self.tokens = tokens
        self.token = tokens.access_token
        self.refreshes = 0
        self.leaky_bucket_throttler = _SharedBucket(owner.budget)
        self.method_throttlers = owner._method_throttlers  # kept across operations

    async def autothrottle(self) -> None:
        """No adaptive sleeps: the shared budget and our retry delays are the only waits."""

    async def single_request(self, method: str, params: Any = None) -> dict[str, Any]:
        method = method.strip().lower()
        failures = 0
        while True:
            sent_with = self.token
            try:
                return await self.request_attempt(method, params)
            except _Unauthorized as exc:
                if self.token != sent_with:
                    continue  # another request of this operation refreshed meanwhile
                if self.refreshes >= self.owner.settings.max_token_refreshes:
                    raise AuthFailed(exc.code, exc.description, 401, method) from None
                self.refreshes += 1
                self._use(self.owner._refresh(sent_with, exc.code))
            except _Transient as exc:
                if exc.code == "QUERY_LIMIT_EXCEEDED":
                    self.owner.budget.fill()
                if failures >= len(self.owner.retry_delays):
                    raise PortalUnavailable(
                        f"{exc.code}: {exc.description} (after {failures + 1} attempts)", method
                    ) from None
                delay = self.owner.retry_delays[failures]
                failures += 1
                log.warning(
                    "portal %s %s: %s, retry %d in %.2f s",
                    self.owner.member_id,
                    method,
                    exc.code,
                    failures,
                    delay,
                )
                await asyncio.sleep(delay)

    def _use(self, tokens: Tokens) -> None:
        self.tokens = tokens
        self.token = tokens.access_token
        self.webhook = self.standardize_webhook(tokens.client_endpoint)

    async def request_attempt(self, method: str, params: Any = None) -> dict[str, Any]:
        async with self.acquire(method):
            payload = dict(params) if params else {}
            payload["auth"] = self.token
            payload["auth_connector"] = AUTH_CONNECTOR  # our own changes come back as no event
            self.owner.requests_made += 1
            started = time.monotonic()
            try:
                async with self.session.post(
                    self.webhook + method, json=payload, ssl=self.ssl
                ) as response:
                    status = response.status
                    text = await response.text()
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.warning(
                    "portal %s %s: %s after %.0f ms",
                    self.owner.member_id,
                    method,
                    type(exc).__name__,
                    (time.monotonic() - started) * 1000,
                )
                raise _Transient(0, "NETWORK_ERROR", f"{type(exc).__name__}: {exc}") from exc
            log.info(
                "portal %s %s -> %d in %.0f ms",
                self.owner.member_id,
                method,
                status,
                (time.monotonic() - started) * 1000,
            )
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if status >= 400 or not isinstance(body, dict) or "error" in body:
                code, description = _error_fields(body, status, text)
                if status == 401:
                    raise _Unauthorized(code, description)
                if status >= 500 or body is None:
                    raise _Transient(status, code or f"HTTP_{status}", description)
                raise PortalError(code, description, status if status >= 400 else 400, method)
            self.add_throttler_records(method, params, body)
            return body

    def add_throttler_records(self, method: str, params: Any, json: dict[str, Any]) -> None:
        """Record each method's own processing time in its operating-time window."""
        result = json.get("result")
        if method == "batch" and isinstance(result, dict):
            commands = _as_dict((params or {}).get("cmd"))
            times = _as_dict(result.get("result_time"))
            for label, command in commands.items():
                spent = _as_dict(times.get(label)).get("processing")
                if spent is not None:
                    self._record(str(command).split("?")[0].lower(), float(spent))
            return
        spent = _as_dict(json.get("time")).get("processing")
        if spent is not None:
            self._record(method, float(spent))

    def _record(self, method: str, seconds: float) -> None:
        throttler = self.method_throttlers.get(method)
        if throttler is not None:
            throttler.add_request_record(seconds)


class UserToken:
    """A TokenStore holding one user's own access token (a page's opener): never refreshed,
    never saved; the portal's answer to it tells what that user may do."""

    def __init__(self, access_token: str, client_endpoint: str) -> None:
        self._tokens = Tokens(access_token, "", 0.0, client_endpoint)

    def load_tokens(self, member_id: str) -> Tokens | None:
        return self._tokens

    def save_tokens(self, member_id: str, tokens: Tokens) -> None:
        raise AuthFailed("USER_TOKEN", "a user's token is not refreshed", 401)


class PortalClient:
    """A portal's REST API for sync code: OAuth refresh, shared rate budget, typed errors."""

    def __init__(
        self,
        member_id: str,
        *,
        store: TokenStore,
        settings: Settings,
        redis: redis.Redis,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        request_timeout: float = 65.0,
        oauth_timeout: float = 15.0,
        operating_time_limit: int = 480,
    ) -> None:
        self.member_id = member_id
        self.store = store
        self.settings = settings
        self.redis = redis
        self.retry_delays = tuple(retry_delays)
        self.request_timeout = request_timeout
        self.oauth_timeout = oauth_timeout
        self.operating_time_limit = operating_time_limit
        self.budget = PortalBudget(
            redis, member_id, burst=settings.portal_burst, rate=settings.portal_rate
        )
        self.requests_made = 0  # REST requests sent to the portal (a batch is one)
        self.oauth_requests_made = 0  # refresh requests sent to the OAuth server
        self._method_throttlers: dict[str, Any] = {}

    # public API ---------------------------------------------------------------------------
    def call(self, method: str, params: Mapping[str, Any] | None = None) -> Any:
        """Call one method; returns its ``result``."""
        payload = to_portal(dict(params or {}))
        reply = self._run(lambda bitrix: bitrix.call(method, payload, raw=True))
        return reply.get("result")

    def batch(
        self, commands: Mapping[str, tuple[str, Mapping[str, Any]]], *, halt: bool = False
    ) -> BatchResult:
        """Run commands in batches of 50 (one HTTP request each), results by label.

        Parameters may hold ``$result[label][...]`` references to earlier commands of the
        same batch request; they are passed through as strings for the portal to fill in.
        """
        labels = list(commands)
        requests_cmd: list[dict[str, str]] = []
        for first in range(0, len(labels), BATCH_LIMIT):
            cmd: dict[str, str] = {}
            for label in labels[first : first + BATCH_LIMIT]:
                method, params = commands[label]
                prepared = _without_none(to_portal(dict(params or {})))
                for ref in _references(prepared):
                    if ref in commands and ref not in cmd:
                        raise ValueError(
                            f"batch command {label!r} refers to $result[{ref}] which is not "
                            "an earlier command of the same 50-command request"
                        )
                cmd[label] = f"{method}?{http_build_query(prepared)}"
            requests_cmd.append(cmd)
        outcome = BatchResult()
        for cmd in requests_cmd:
            payload = {"halt": 1 if halt else 0, "cmd": cmd}
            reply = self._run(
                lambda bitrix, payload=payload: bitrix.call("batch", payload, raw=True)
            )
            self._collect(reply, {label: commands[label][0] for label in cmd}, outcome)
            if halt and outcome.errors:
                break
        return outcome

    def list(self, method: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        """Every row of a list method (fast_bitrix24 ``get_all``), in ID order when rows have IDs.

        ``order`` and ``start`` are not accepted (get_all pages by ID itself).
        """
        prepared = to_portal(dict(params or {}))
        if {key.lower() for key in prepared} & {"order", "start"}:
            raise ValueError("list() pages by ID itself: no 'order' or 'start' (use call)")

        async def work(bitrix: BitrixAsync) -> Any:
            try:
                return await bitrix.get_all(method, prepared or None)
            except ErrorInServerResponseException as exc:
                raise _portal_error(exc, method) from None

        rows = self._run(work)
        if isinstance(rows, dict):
            rows = _rows(rows) if len(rows) == 1 else [rows]
        return _sorted_by_id(list(rows or []))

    def list_due(
        self, method: str, params: Mapping[str, Any] | None = None, *, id_key: str = "ID"
    ) -> Iterator[dict]:
        """Rows one page at a time without COUNT: ``start=-1``, ordered by ``id_key``.

        Each next page asks for ``>id_key`` the last row's id; a short page ends it.
        """
        base = to_portal(dict(params or {}))
        filter_key = next((key for key in base if key.lower() == "filter"), "filter")
        for key in [key for key in base if key.lower() in {"order", "start"}]:
            del base[key]
        user_filter = dict(base.get(filter_key) or {})
        base["order"] = {id_key: "ASC"}
        base["start"] = -1
        last: Any = None
        while True:
            page = dict(base)
            if last is not None:
                page[filter_key] = {**user_filter, f">{id_key}": last}
            reply = self._run(lambda bitrix, page=page: bitrix.call(method, page, raw=True))
            rows = _rows(reply.get("result"))
            yield from rows
            if len(rows) < PAGE_SIZE:
                return
            last = rows[-1][id_key]

    # plumbing -------------------------------------------------------------------------------
    def _run(self, work: Callable[[BitrixAsync], Awaitable[T]]) -> T:
        """Run one operation on a fresh event loop, whether or not this thread runs one."""
        tokens = self.store.load_tokens(self.member_id)
        if tokens is None:
            raise AuthFailed("NO_TOKENS", "no tokens stored for this portal", 401)

        async def main() -> T:
            timeout = aiohttp.ClientTimeout(total=self.request_timeout)
            headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
            async with aiohttp.ClientSession(
                timeout=timeout, headers=headers, raise_for_status=False
            ) as session:
                bitrix = BitrixAsync(
                    tokens.client_endpoint,
                    verbose=False,
                    request_pool_size=self.settings.portal_burst,
                    requests_per_second=self.settings.portal_rate,
                    operating_time_limit=self.operating_time_limit,
                    client=session,
                )
                bitrix.srh = _PortalRequestHandler(self, session, tokens)
                return await work(bitrix)

        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(main())
        with concurrent.futures.ThreadPoolExecutor(1, "portal-client") as pool:
            return pool.submit(asyncio.run, main()).result()

    def _collect(self, reply: dict[str, Any], methods: dict[str, str], into: BatchResult) -> None:
        inner = _as_dict(reply.get("result"))
        into.results.update(_as_dict(inner.get("result")))
        for label, error in _as_dict(inner.get("result_error")).items():
            method = methods.get(label, "batch")
            if isinstance(error, dict):
                into.errors[label] = PortalError(
                    str(error.get("error") or ""),
                    str(error.get("error_description") or ""),
                    400,
                    method,
                )
            else:
                into.errors[label] = PortalError("", str(error), 400, method)
        for label, total in _as_dict(inner.get("result_total")).items():
            into.totals[label] = int(total)
        for label, start in _as_dict(inner.get("result_next")).items():
            into.nexts[label] = int(start)

    def _refresh(self, rejected: str, code: str) -> Tokens:
        """New tokens after ``rejected`` was refused: at most one refresh per portal at once.

        Under the portal's Redis lock the store is read again: when its access token is no
        longer the rejected one, another worker has refreshed and its pair is used as is.
        """
        lock = self.redis.lock(f"{LOCK_PREFIX}{self.member_id}", timeout=60, blocking_timeout=60)
        if not lock.acquire():
            raise PortalUnavailable("timed out waiting for the token refresh lock", "oauth")
        try:
            current = self.store.load_tokens(self.member_id)
            if current is None:
                raise AuthFailed("NO_TOKENS", "no tokens stored for this portal", 401, "oauth")
            if current.access_token != rejected:
                log.info("portal %s: tokens already refreshed elsewhere", self.member_id)
                return current
            log.info("portal %s: refreshing tokens after %s", self.member_id, code)
            fresh = self._request_tokens(current)
            self.store.save_tokens(self.member_id, fresh)
            return fresh
        finally:
            try:
                lock.release()
            except redis.exceptions.LockError:
                log.warning("portal %s: token refresh lock expired before release", self.member_id)

    def _request_tokens(self, current: Tokens) -> Tokens:
        """One refresh request to the OAuth server (app.oauth)."""
        self.oauth_requests_made += 1
        body = exchange_refresh_token(self.settings, current.refresh_token, self.oauth_timeout)
        log.info("portal %s: tokens refreshed", self.member_id)
        expires = body.get("expires")
        expires_at = (
            float(expires) if expires else time.time() + float(body.get("expires_in", 3600))
        )
        return Tokens(
            access_token=str(body["access_token"]),
            refresh_token=str(body["refresh_token"]),
            expires_at=expires_at,
            client_endpoint=str(body.get("client_endpoint") or current.client_endpoint),
        )
