"""Route a repeat client's new deal into the "Regular clients" funnel with their preferences.

The water delivery company places it on the first stage of "New clients": when the deal's
contact (or company) already has a won deal, the deal moves to the regular clients' funnel
and the preferences kept on the contact (payment form, delivery time, notes) are copied into
it. One batch reads the deal, its contact, the won deals and the field descriptions (through
``$result[...]`` references); the copies and the move go after the workflow's answer.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from app.context import RobotContext
from app.errors import PortalError, RobotFailed, transient
from app.registry import Property, Robot

_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_WON_SELECT = ["ID", "CATEGORY_ID", "CLOSEDATE"]
_READS = {
    "stages": "the target funnel's stages",
    "won_contact": "the contact's won deals",
    "won_company": "the company's won deals",
    "deal_fields": "the deal fields",
    "contact_fields": "the contact fields",
    "contact": "the deal's contact",
}


def parse_mapping(text: str | None) -> list[tuple[str, str]]:
    """``CONTACT_FIELD -> DEAL_FIELD`` lines (blank lines and ``#`` comments skipped)."""
    pairs: list[tuple[str, str]] = []
    for raw in (text or "").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [p.strip().upper() for p in re.split(r"->|=>|→", line)]
        if len(parts) != 2 or not all(_CODE.match(p) for p in parts):
            raise RobotFailed(f"field mapping: {line[:80]!r} is not 'CONTACT_FIELD -> DEAL_FIELD'")
        pairs.append((parts[0], parts[1]))
    return pairs


def parse_funnels(text: str | None) -> list[int]:
    """Comma-separated funnel ids (empty: every funnel)."""
    ids: list[int] = []
    for part in re.split(r"[,;\s]+", text or ""):
        if not part:
            continue
        if not part.isdigit():
            raise RobotFailed(f"funnels to look in: {part[:20]!r} is not a funnel id")
        ids.append(int(part))
    return list(dict.fromkeys(ids))


def _won_query(field: str, deal_id: int, funnels: list[int]) -> dict[str, Any]:
    flt: dict[str, Any] = {
        field: f"$result[deal][{field}]",
        "STAGE_SEMANTIC_ID": "S",
        "!ID": deal_id,
    }
    if funnels:
        flt["@CATEGORY_ID"] = funnels
    return {"filter": flt, "order": {"CLOSEDATE": "DESC", "ID": "DESC"}, "select": _WON_SELECT}


def _closed_key(row: dict[str, Any]) -> tuple[float, int]:
    try:
        closed = datetime.fromisoformat(str(row.get("CLOSEDATE") or "")).timestamp()
    except ValueError:
        closed = 0.0
    return closed, int(row.get("ID") or 0)


def _id(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _convert(
    value: Any, codes: tuple[str, str], source: dict[str, Any], target: dict[str, Any]
) -> Any:
    """The contact's value as the deal field takes it: enumeration items by their label."""
    if source.get("type") != "enumeration" or target.get("type") != "enumeration":
        return value
    labels = {str(i.get("ID")): i.get("VALUE") for i in source.get("items") or []}
    ids = {str(i.get("VALUE")).strip().lower(): i.get("ID") for i in target.get("items") or []}

    def one(item: Any) -> Any:
        label = labels.get(str(item))
        found = ids.get(str(label).strip().lower()) if label is not None else None
        if found is None:
            raise RobotFailed(
                f"field mapping: {codes[1]} has no item {label or item!r} of {codes[0]}"
            )
        return found

    return [one(v) for v in value] if isinstance(value, list) else one(value)


def _empty(value: Any) -> bool:
    return value in (None, "", [], {}, False)


def _check_fields(
    mapping: list[tuple[str, str]], contact_fields: dict[str, Any], deal_fields: dict[str, Any]
) -> None:
    unknown_contact = [c for c, _ in mapping if c not in contact_fields]
    unknown_deal = [d for _, d in mapping if d not in deal_fields]
    problems = []
    if unknown_contact:
        problems.append(f"unknown contact field(s): {', '.join(dict.fromkeys(unknown_contact))}")
    if unknown_deal:
        problems.append(f"unknown deal field(s): {', '.join(dict.fromkeys(unknown_deal))}")
    read_only = [d for _, d in mapping if (deal_fields.get(d) or {}).get("isReadOnly")]
    if read_only:
        problems.append(f"read-only deal field(s): {', '.join(dict.fromkeys(read_only))}")
    if problems:
        raise RobotFailed("field mapping: " + "; ".join(problems))


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    deal_id = ctx.deal_id
    funnel = p["category_id"]
    mapping = parse_mapping(p["field_map"])
    funnels = parse_funnels(p["look_in"])
    reads: dict[str, tuple[str, dict[str, Any]]] = {
        "deal": ("crm.deal.get", {"id": deal_id}),
        "stages": (
            "crm.status.list",
            {
                "order": {"SORT": "ASC"},
                "filter": {"ENTITY_ID": "DEAL_STAGE" if funnel == 0 else f"DEAL_STAGE_{funnel}"},
            },
        ),
        "won_contact": ("crm.deal.list", _won_query("CONTACT_ID", deal_id, funnels)),
    }
    if p["count_company"]:
        reads["won_company"] = ("crm.deal.list", _won_query("COMPANY_ID", deal_id, funnels))
    if mapping:
        reads["contact"] = ("crm.contact.get", {"id": "$result[deal][CONTACT_ID]"})
        reads["deal_fields"] = ("crm.deal.fields", {})
        reads["contact_fields"] = ("crm.contact.fields", {})
    try:
        got = ctx.portal.batch(reads)
    except PortalError as exc:
        if transient(exc):
            raise  # an outage: the job runner tries again
        raise RobotFailed(f"deal {deal_id} and its client cannot be read: the portal answered "
                          f"{exc.code or exc.status}: {exc.description}") from exc  # fmt: skip
    if "deal" in got.errors:
        raise RobotFailed(f"deal {deal_id} cannot be read: {got.errors['deal'].description}")
    deal = got.results.get("deal") or {}
    contact_id, company_id = _id(deal.get("CONTACT_ID")), _id(deal.get("COMPANY_ID"))
    # Without a contact (company) the reference is empty and its list means nothing.
    needed = ["stages"]
    needed += ["won_contact"] if contact_id else []
    needed += ["won_company"] if company_id and p["count_company"] else []
    needed += ["deal_fields", "contact_fields"] if mapping else []
    needed += ["contact"] if mapping and contact_id else []
    for label in needed:
        if label in got.errors:
            raise RobotFailed(f"{_READS[label]} cannot be read: "
                              f"{got.errors[label].description}")  # fmt: skip

    stages = [s["STATUS_ID"] for s in got.results.get("stages") or []]
    if not stages:
        raise RobotFailed(f"funnel {funnel} does not exist or has no stages")
    stage = (p["stage_id"] or "").strip() or stages[0]
    if stage not in stages:
        raise RobotFailed(f"stage {stage} is not a stage of funnel {funnel}")
    if mapping:
        _check_fields(mapping, got.results.get("contact_fields") or {},
                      got.results.get("deal_fields") or {})  # fmt: skip

    won = [r for r in got.results.get("won_contact") or [] if contact_id]
    won += [r for r in got.results.get("won_company") or [] if company_id and p["count_company"]]
    won = [r for r in won if _id(r.get("ID")) != deal_id]
    if not won:
        ctx.log.info("deal %s: a new client", deal_id)
        return {"repeat": False, "previous_deal_id": 0}
    previous = max(won, key=_closed_key)
    previous_id = _id(previous.get("ID"))

    copies: dict[str, Any] = {}
    contact = got.results.get("contact") or {}
    if mapping and contact_id:
        contact_fields = got.results["contact_fields"] or {}
        deal_fields = got.results["deal_fields"] or {}
        for source, target in mapping:
            value = contact.get(source)
            if _empty(value):
                continue
            copies[target] = _convert(
                value, (source, target), contact_fields[source], deal_fields[target]
            )
    # The writes follow the answer, in its request: the move ends this stage's automation.
    if copies:
        ctx.then("preferences", "crm.deal.update", {"id": deal_id, "fields": copies})
    if _id(deal.get("CATEGORY_ID")) != funnel or str(deal.get("STAGE_ID")) != stage:
        ctx.then(
            "move",
            "crm.item.update",
            {"entityTypeId": 2, "id": deal_id, "fields": {"categoryId": funnel, "stageId": stage}},
        )
    ctx.log.info("deal %s: a repeat client (deal %s); to %s, copied %s", deal_id, previous_id,
                 stage, ", ".join(copies) or "nothing")  # fmt: skip
    return {"repeat": True, "previous_deal_id": previous_id}


ROBOT = Robot(
    code="route_repeat_client",
    name={
        "en": "Route a repeat client to regular clients",
        "ru": "Направить повторного клиента в постоянные",
        "pl": "Przenieś powracającego klienta do stałych",
    },
    description={
        "en": "When the deal's contact (or company) already has a won deal, moves the deal to"
        " the regular clients' funnel and copies the contact's preferences into it.",
        "ru": "Если у контакта (или компании) сделки уже есть успешная сделка, переносит сделку"
        " в воронку постоянных клиентов и копирует в неё предпочтения контакта.",
        "pl": "Gdy kontakt (lub firma) dealu ma już wygrany deal, przenosi deal do lejka stałych"
        " klientów i kopiuje do niego preferencje kontaktu.",
    },
    run=run,
    properties={
        "category_id": Property(
            "int",
            {
                "en": "Regular clients funnel ID",
                "ru": "ID воронки постоянных клиентов",
                "pl": "ID lejka stałych klientów",
            },
            required=True,
        ),
        "stage_id": Property(
            "string",
            {
                "en": "Stage (the funnel's first stage when empty)",
                "ru": "Стадия (первая стадия воронки, если пусто)",
                "pl": "Etap (pierwszy etap lejka, gdy pusty)",
            },
            default="",
        ),
        "look_in": Property(
            "string",
            {
                "en": "Funnels to look for won deals in (IDs, comma-separated; empty: all)",
                "ru": "Воронки для поиска успешных сделок (ID через запятую; пусто: все)",
                "pl": "Lejki, w których szukać wygranych dealów (ID po przecinku;"
                " pusto: wszystkie)",
            },
            default="",
        ),
        "field_map": Property(
            "text",
            {
                "en": "Contact fields copied into the deal, one 'CONTACT_FIELD -> DEAL_FIELD'"
                " per line",
                "ru": "Поля контакта, копируемые в сделку, по одному 'CONTACT_FIELD -> DEAL_FIELD'"
                " в строке",
                "pl": "Pola kontaktu kopiowane do dealu, jedno 'CONTACT_FIELD -> DEAL_FIELD'"
                " w wierszu",
            },
            {
                "en": "UF_CRM_PAYMENT_FORM -> UF_CRM_DEAL_PAYMENT",
                "ru": "UF_CRM_PAYMENT_FORM -> UF_CRM_DEAL_PAYMENT",
                "pl": "UF_CRM_PAYMENT_FORM -> UF_CRM_DEAL_PAYMENT",
            },
            default="",
        ),
        "count_company": Property(
            "bool",
            {
                "en": "Count the company's won deals too",
                "ru": "Учитывать и успешные сделки компании",
                "pl": "Licz też wygrane deale firmy",
            },
            default=False,
        ),
    },
    returns={
        "repeat": Property(
            "bool",
            {"en": "Repeat client", "ru": "Повторный клиент", "pl": "Powracający klient"},
        ),
        "previous_deal_id": Property(
            "int",
            {
                "en": "Latest won deal ID",
                "ru": "ID последней успешной сделки",
                "pl": "ID ostatniego wygranego dealu",
            },
        ),
    },
)
