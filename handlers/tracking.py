"""Email-read tracking: a pixel and a tracked link per deal and message.

The ``tracking_link`` robot issues the URLs (``issue``); the admin puts them into the portal's
own "Send email" template. The first real open of a deal's message fires the ``email_opened``
trigger on the deal, once ever: Redis dedupes the burst of fetches (mail clients load images
many times), the ``tracking_opens`` table keeps the once-ness after the Redis key expires.

URLs carry ``<link id><signature>``: the link id is an HMAC of (portal, deal, message,
target), so it names nothing in clear; the row it keys holds the portal, the deal and the
redirect target (which is thus never taken from the URL: no open redirect). A token whose
signature does not verify is answered without touching the database.

What does not count as an open (it answers the same, it fires nothing):
- HEAD requests (link checkers);
- known mail-security scanners and link previewers, by user agent (``SCANNER_AGENTS``), and
  requests with no user agent;
- fetches within ``QUIET_SECONDS`` of the URLs being issued: the "Send email" robot runs right
  after this one, so such a fetch is a gateway scanning the message on delivery (or an image
  prefetch such as Apple Mail Privacy Protection), not the client reading it.
Image proxies that fetch on a real open (Gmail's ``GoogleImageProxy``) do count.
"""

from __future__ import annotations

import base64
import hmac
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Response, redirect, request
from redis.exceptions import RedisError
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from app.context import Context, EventContext, JobContext, Web
from app.crypto import SecretBox
from app.errors import PortalError, transient
from app.payloads import EventCall
from app.registry import Capability, EventRouter, Job, Route, Trigger
from app.store import Store, metadata

log = logging.getLogger(__name__)

TRIGGER_CODE = "email_opened"
EMAIL_OPENED = Trigger(
    code=TRIGGER_CODE,
    name={
        "en": "Client opened the email",
        "ru": "Клиент открыл письмо",
        "pl": "Klient otworzył e-mail",
    },
)
DEAL_OWNER_TYPE = 2
DEFAULT_MESSAGE = "email"
MESSAGE_MAX = 64
TARGET_MAX = 2000
ID_LEN = 16  # characters of the link id (96 bits)
SIG_LEN = 16  # characters of the signature (96 bits)
QUIET_SECONDS = 5.0
RETRY = (10, 60, 300, 1800)
SCANNER_AGENTS = (
    "barracuda",
    "mimecast",
    "proofpoint",
    "urldefense",
    "safelinks",
    "existence discovery",  # Microsoft Office checking that a link exists
    "forcepoint",
    "trendmicro",
    "sophos",
    "bingpreview",
    "skypeuripreview",
    "slackbot",
    "facebookexternalhit",
    "telegrambot",
    "whatsapp",
)
# A real GIF89a, 1x1, one transparent pixel (42 bytes).
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = "no-store, no-cache, must-revalidate, max-age=0"
THANKS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Thank you</title></head>
<body><p>Thank you.</p></body></html>"""

tracking_links = Table(
    "tracking_links",
    metadata,
    Column("id", String(ID_LEN), primary_key=True),
    Column("member_id", String(64), nullable=False, index=True),
    Column("deal_id", BigInteger, nullable=False),
    Column("message", String(MESSAGE_MAX), nullable=False),
    Column("target_url", Text, nullable=True),
    Column("created_at", Float, nullable=False),
)

tracking_opens = Table(
    "tracking_opens",
    metadata,
    Column("member_id", String(64), primary_key=True),
    Column("deal_id", BigInteger, primary_key=True),
    Column("message", String(MESSAGE_MAX), primary_key=True),
    Column("first_opened_at", Float, nullable=False),
    Column("via", String(8), nullable=False),  # pixel | link
    Column("status", String(16), nullable=False),  # opened, firing, fired, failed
    Column("fired_at", Float, nullable=True),
    Column("error", Text, nullable=True),
)


# Tokens ------------------------------------------------------------------------------------


def link_id(box: SecretBox, member_id: str, deal_id: int, message: str, target: str) -> str:
    """The id of one tracked message of one deal: stable, opaque (an HMAC, names nothing)."""
    return box.sign(f"tracking:link|{member_id}|{deal_id}|{message}|{target}")[:ID_LEN]


def make_token(box: SecretBox, kind: str, link: str) -> str:
    """``kind`` "t" (pixel) or "l" (link): the id, then its signature for that kind."""
    return link + box.sign(f"tracking:{kind}|{link}")[:SIG_LEN]


def read_token(box: SecretBox, kind: str, token: str) -> str | None:
    """The link id a token carries, or None when it is not one we signed for ``kind``."""
    if len(token) != ID_LEN + SIG_LEN or not token.isascii():
        return None
    link, signature = token[:ID_LEN], token[ID_LEN:]
    expected = box.sign(f"tracking:{kind}|{link}")[:SIG_LEN]
    return link if hmac.compare_digest(expected, signature) else None


def clean_message(label: str | None) -> str:
    """The message label as stored: trimmed, lower case, "email" when empty."""
    text = " ".join((label or "").split()).lower()
    if len(text) > MESSAGE_MAX:
        raise ValueError(f"the message label is longer than {MESSAGE_MAX} characters")
    return text or DEFAULT_MESSAGE


def clean_target(url: str | None) -> str:
    """A redirect target: empty, or an absolute http(s) URL with a host."""
    text = (url or "").strip()
    if not text:
        return ""
    if len(text) > TARGET_MAX or any(c.isspace() or ord(c) < 32 for c in text):
        raise ValueError("the link target is not a valid URL")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError("the link target must be an http:// or https:// URL")
    return text


@dataclass(frozen=True)
class Link:
    """A tracked message of a deal, as stored."""

    id: str
    member_id: str
    deal_id: int
    message: str
    target_url: str
    created_at: float

    @property
    def key(self) -> str:
        return f"opened:{self.member_id}:{self.deal_id}:{self.message}"


@dataclass(frozen=True)
class Issued:
    pixel_token: str
    link_token: str


def issue(ctx: Context, deal_id: int, message: str, target: str) -> Issued:
    """Store the tracked message (once; a rerun keeps the first) and sign its two tokens."""
    box, member_id = ctx.store.box, ctx.member_id
    link = link_id(box, member_id, deal_id, message, target)
    row = {
        "id": link,
        "member_id": member_id,
        "deal_id": deal_id,
        "message": message,
        "target_url": target or None,
        "created_at": ctx.clock.now().timestamp(),
    }
    try:
        with ctx.store.engine.begin() as db:
            known = db.execute(select(tracking_links.c.id).where(tracking_links.c.id == link))
            if known.first() is None:
                db.execute(insert(tracking_links).values(**row))
    except IntegrityError:
        pass  # issued at the same moment by a rerun: the row is there
    return Issued(make_token(box, "t", link), make_token(box, "l", link))


def find_link(store: Store, kind: str, token: str) -> Link | None:
    """The tracked message a token names, or None (forged, altered, or forgotten)."""
    link = read_token(store.box, kind, token)
    if link is None:
        return None
    with store.engine.connect() as db:
        row = db.execute(select(tracking_links).where(tracking_links.c.id == link)).first()
    if row is None:
        return None
    return Link(
        id=row.id,
        member_id=row.member_id,
        deal_id=int(row.deal_id),
        message=row.message,
        target_url=row.target_url or "",
        created_at=row.created_at,
    )


def first_open(store: Store, member_id: str, deal_id: int, message: str) -> dict | None:
    """The recorded first open of a deal's message (with the trigger's status), or None."""
    with store.engine.connect() as db:
        row = (
            db.execute(select(tracking_opens).where(*_open_key(member_id, deal_id, message)))
            .mappings()
            .first()
        )
    return dict(row) if row else None


def _open_key(member_id: str, deal_id: int, message: str) -> tuple[Any, ...]:
    return (
        tracking_opens.c.member_id == member_id,
        tracking_opens.c.deal_id == deal_id,
        tracking_opens.c.message == message,
    )


# HTTP --------------------------------------------------------------------------------------


def counts_as_open(link: Link, now: float) -> bool:
    """Whether this request is the client reading, not a checker, scanner or prefetch."""
    if request.method != "GET":
        return False
    agent = (request.user_agent.string or "").lower()
    if not agent or any(name in agent for name in SCANNER_AGENTS):
        return False
    return now - link.created_at >= QUIET_SECONDS


def _opened(web: Web, link: Link, via: str, now: float) -> bool:
    """Queue the trigger for the first open of this deal's message; True when queued."""
    if not web.installed(link.member_id):
        return False
    done = first_open(web.store, link.member_id, link.deal_id, link.message)
    if done is not None and done["status"] in ("fired", "firing"):
        return False
    return web.enqueue(
        "tracking.opened",
        link.member_id,
        key=link.key,
        deal_id=link.deal_id,
        message=link.message,
        via=via,
        opened_at=now,
    )


def pixel(web: Web, token: str) -> Response:
    """Always the same 1x1 GIF, at once; a valid token's first real open fires the trigger."""
    try:
        link = find_link(web.store, "t", token)
        now = web.clock.now().timestamp()
        if link is not None and counts_as_open(link, now):
            _opened(web, link, "pixel", now)
    except RedisError as exc:  # the image is still answered; a later open will count
        log.error("open not queued, queue unavailable: %s", type(exc).__name__)
    response = Response(PIXEL_GIF, mimetype="image/gif")
    response.headers["Cache-Control"] = NO_STORE
    response.headers["Pragma"] = "no-cache"
    return response


def link(web: Web, token: str) -> Response:
    """A valid token redirects (and a real click fires the trigger); anything else is a 404."""
    found = find_link(web.store, "l", token)
    if found is None:
        return Response("Not found", status=404, mimetype="text/plain")
    now = web.clock.now().timestamp()
    if counts_as_open(found, now):
        try:
            _opened(web, found, "link", now)
        except RedisError as exc:
            log.error("click not queued, queue unavailable: %s", type(exc).__name__)
    response = redirect(found.target_url or web.url("l/thanks"), code=302)
    response.headers["Cache-Control"] = NO_STORE
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def thanks(web: Web) -> Response:
    """Where a tracked link with no target lands."""
    response = Response(THANKS_PAGE, mimetype="text/html")
    response.headers["Cache-Control"] = NO_STORE
    return response


ROUTES = (
    Route("/l/thanks", "tracking_thanks", thanks),
    Route("/t/<token>.gif", "tracking_pixel", pixel),
    Route("/l/<token>", "tracking_link", link),
)


# The job -----------------------------------------------------------------------------------


def fire_opened(
    ctx: JobContext, deal_id: int, message: str, via: str, opened_at: float
) -> dict[str, Any]:
    """Job ``tracking.opened``: record the first open of a deal's message and fire
    ``email_opened`` on the deal, once.

    The row in ``tracking_opens`` is claimed (status "firing") before the portal call, so two
    jobs never both fire; a failed call releases it. A worker killed during the call leaves
    the claim in place: the trigger fires at most once, never twice.
    """
    member_id, engine = ctx.member_id, ctx.store.engine
    run = ctx.run
    run.kind, run.name, run.document = "trigger", TRIGGER_CODE, f"DEAL_{deal_id}"
    run.inputs = {"message": message, "via": via, "opened_at": opened_at}
    where = _open_key(member_id, deal_id, message)
    try:
        with engine.begin() as db:
            if db.execute(select(tracking_opens.c.status).where(*where)).first() is None:
                db.execute(
                    insert(tracking_opens).values(
                        member_id=member_id,
                        deal_id=deal_id,
                        message=message,
                        first_opened_at=opened_at,
                        via=via,
                        status="opened",
                    )
                )
    except IntegrityError:
        pass  # recorded by another job at the same moment; the claim below decides
    with engine.begin() as db:
        claimed = db.execute(
            update(tracking_opens)
            .where(*where, tracking_opens.c.status.in_(("opened", "failed")))
            .values(status="firing", error=None)
        ).rowcount
    if not claimed:
        run.keep = False
        return {"fired": False, "why": "already fired"}
    try:
        ctx.portal.call(
            "crm.automation.trigger.execute",
            {"CODE": TRIGGER_CODE, "OWNER_TYPE_ID": DEAL_OWNER_TYPE, "OWNER_ID": deal_id},
        )
    except PortalError as exc:
        retrying = transient(exc) and ctx.will_retry
        with engine.begin() as db:
            db.execute(
                update(tracking_opens)
                .where(*where)
                .values(status="opened" if retrying else "failed", error=str(exc)[:500])
            )
        if not retrying:
            ctx.release(run.key)  # a later open may try again (after the app is updated, say)
            ctx.log.warning("email_opened not fired: %s", exc)
        raise
    with engine.begin() as db:
        db.execute(
            update(tracking_opens)
            .where(*where)
            .values(status="fired", fired_at=ctx.clock.now().timestamp())
        )
    ctx.log.info("email_opened fired for %r (%s)", message, via)
    return {"fired": True}


router = EventRouter()


@router.on("ONCRMDEALDELETE")
def deal_deleted(ctx: EventContext, event: EventCall) -> None:
    """The deal is gone: its tracked messages and opens go too (its links then do nothing)."""
    deal_id = int(event.fields.get("ID") or 0)
    with ctx.store.engine.begin() as db:
        for table in (tracking_links, tracking_opens):
            db.execute(
                table.delete().where(table.c.member_id == ctx.member_id, table.c.deal_id == deal_id)
            )


CAPABILITY = Capability(
    name="tracking",
    router=router,
    triggers=(EMAIL_OPENED,),
    routes=ROUTES,
    jobs=(Job("tracking.opened", fire_opened, retry=RETRY, kind="trigger"),),
)
