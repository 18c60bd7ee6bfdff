"""Copy a deal into another funnel: fields, user fields, product rows and contacts, linked back.

The solar installer copies every won deal into its "Service" funnel; the water delivery
company opens the client's next order in "Regular clients". One batch reads everything the
copy needs, one batch writes the copy, its rows and contacts and a timeline comment on both.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from app.context import RobotContext
from app.errors import RobotFailed
from app.registry import Property, Robot

# Fields a copy takes over; everything the portal computes (ids, dates, stage semantics,
# authorship) is left for the portal to set.
COPIED_FIELDS = (
    "TITLE",
    "TYPE_ID",
    "CURRENCY_ID",
    "OPPORTUNITY",
    "IS_MANUAL_OPPORTUNITY",
    "TAX_VALUE",
    "COMPANY_ID",
    "CONTACT_ID",
    "ASSIGNED_BY_ID",
    "SOURCE_ID",
    "SOURCE_DESCRIPTION",
    "COMMENTS",
    "ADDITIONAL_INFO",
    "OPENED",
    "PROBABILITY",
    "BEGINDATE",
    "LOCATION_ID",
    "UTM_SOURCE",
    "UTM_MEDIUM",
    "UTM_CAMPAIGN",
    "UTM_CONTENT",
    "UTM_TERM",
)
ROW_FIELDS = (
    "PRODUCT_ID",
    "PRODUCT_NAME",
    "PRICE",
    "PRICE_EXCLUSIVE",
    "PRICE_NETTO",
    "PRICE_BRUTTO",
    "QUANTITY",
    "DISCOUNT_TYPE_ID",
    "DISCOUNT_RATE",
    "DISCOUNT_SUM",
    "TAX_RATE",
    "TAX_INCLUDED",
    "MEASURE_CODE",
    "MEASURE_NAME",
    "SORT",
)


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    deal_id = ctx.deal_id
    funnel = p["category_id"]
    reads: dict[str, tuple[str, dict[str, Any]]] = {"deal": ("crm.deal.get", {"id": deal_id})}
    if p["copy_products"]:
        reads["rows"] = ("crm.deal.productrows.get", {"id": deal_id})
    if p["copy_contacts"]:
        reads["contacts"] = ("crm.deal.contact.items.get", {"id": deal_id})
    reads["stages"] = (
        "crm.status.list",
        {
            "order": {"SORT": "ASC"},
            "filter": {"ENTITY_ID": "DEAL_STAGE" if funnel == 0 else f"DEAL_STAGE_{funnel}"},
        },
    )
    got = ctx.portal.batch(reads)
    if "deal" in got.errors:
        raise RobotFailed(f"deal {deal_id} cannot be read: {got.errors['deal'].description}")
    got.raise_for_errors()
    deal = got.results["deal"]
    stages = [s["STATUS_ID"] for s in got.results["stages"] or []]
    if not stages:
        raise RobotFailed(f"funnel {funnel} does not exist or has no stages")
    stage = p["stage_id"] or stages[0]
    if stage not in stages:
        raise RobotFailed(f"stage {stage} is not a stage of funnel {funnel}")

    fields = {k: deal[k] for k in COPIED_FIELDS if deal.get(k) not in (None, "")}
    if p["copy_user_fields"]:
        fields.update(
            {k: v for k, v in deal.items() if k.startswith("UF_") and v not in (None, "", [])}
        )
    if p["title_suffix"]:
        fields["TITLE"] = f"{deal.get('TITLE') or ''} {p['title_suffix']}".strip()
    fields.update(extra_fields(ctx, deal))
    fields["CATEGORY_ID"] = funnel
    fields["STAGE_ID"] = stage

    writes: dict[str, tuple[str, dict[str, Any]]] = {
        "copy": ("crm.deal.add", {"fields": fields, "params": {"REGISTER_SONET_EVENT": "Y"}})
    }
    rows = [
        {k: r[k] for k in ROW_FIELDS if k in r and r[k] is not None}
        for r in (got.results.get("rows") or [])
    ]
    if rows:
        writes["rows"] = ("crm.deal.productrows.set", {"id": "$result[copy]", "rows": rows})
    contacts = [
        {
            "CONTACT_ID": c["CONTACT_ID"],
            "SORT": c.get("SORT", 10),
            "IS_PRIMARY": c.get("IS_PRIMARY", "N"),
        }
        for c in (got.results.get("contacts") or [])
    ]
    if contacts:
        writes["contacts"] = (
            "crm.deal.contact.items.set",
            {"id": "$result[copy]", "items": contacts},
        )
    title = deal.get("TITLE") or f"#{deal_id}"
    writes["note_copy"] = (
        "crm.timeline.comment.add",
        {
            "fields": {
                "ENTITY_ID": "$result[copy]",
                "ENTITY_TYPE": "deal",
                "COMMENT": f'Copied from deal #{deal_id} "{title}".',
            }
        },
    )
    writes["note_original"] = (
        "crm.timeline.comment.add",
        {
            "fields": {
                "ENTITY_ID": deal_id,
                "ENTITY_TYPE": "deal",
                "COMMENT": "Copied to deal #$result[copy] in another funnel.",
            }
        },
    )
    done = ctx.portal.batch(writes, halt=True)
    if "copy" in done.errors:
        raise RobotFailed(f"the copy was refused: {done.errors['copy'].description}")
    done.raise_for_errors()
    new_id = int(done.results["copy"])
    ctx.log.info("deal %s copied to %s in funnel %s", deal_id, new_id, funnel)
    return {"deal_id": new_id}


def extra_fields(ctx: RobotContext, deal: dict[str, Any]) -> dict[str, Any]:
    """Fields computed for the copy: the warranty end date, when asked for.

    The date is ``warranty_date`` when given, else the original's CLOSEDATE (today in the
    portal's calendar when it has none) plus ``warranty_months``. No request is made.
    """
    p = ctx.properties
    field = p.get("warranty_field") or ""
    months = p.get("warranty_months") or 0
    given = p.get("warranty_date")
    if not field:
        if months or given:
            raise RobotFailed("a warranty period or date needs the field to write it to")
        return {}
    field = field.strip().upper()
    if not field.startswith("UF_"):
        raise RobotFailed(f"warranty field {field[:60]!r} must be a deal user field (UF_...)")
    calendar = ctx.calendar
    if given is not None:
        end = given
    elif months:
        end = calendar.add_months(
            _portal_date(calendar, deal.get("CLOSEDATE")) or calendar.today(ctx.clock), months
        )
    else:
        raise RobotFailed("a warranty field needs a warranty period (months) or an end date")
    return {field: calendar.format_date(end)}


def _portal_date(calendar: Any, value: Any) -> date | None:
    """The date a deal field shows: the portal prints dates in its own offset
    (``2024-11-12T00:00:00+01:00``), so the written date is the portal's date."""
    if not isinstance(value, str) or not value.strip():
        return None
    if re.match(r"^\d{4}-\d{2}-\d{2}", value.strip()):
        return date.fromisoformat(value.strip()[:10])
    try:
        parsed = calendar.parse(value)
    except ValueError:
        return None
    return parsed.date() if isinstance(parsed, datetime) else parsed


ROBOT = Robot(
    code="copy_deal",
    name={
        "en": "Copy deal to another funnel",
        "ru": "Копировать сделку в другую воронку",
        "pl": "Kopiuj deal do innego lejka",
    },
    description={
        "en": "Creates a copy of the deal with its products and contacts"
        " in the chosen funnel and stage.",
        "ru": "Создаёт копию сделки с товарами и контактами в выбранной воронке и стадии.",
        "pl": "Tworzy kopię dealu z produktami i kontaktami w wybranym lejku i etapie.",
    },
    run=run,
    properties={
        "category_id": Property(
            "int", {"en": "Target funnel ID", "ru": "ID воронки", "pl": "ID lejka"}, required=True
        ),
        "stage_id": Property(
            "string",
            {
                "en": "Target stage (first stage when empty)",
                "ru": "Стадия (первая, если пусто)",
                "pl": "Etap (pierwszy, gdy pusty)",
            },
            default="",
        ),
        "copy_products": Property(
            "bool",
            {"en": "Copy product rows", "ru": "Копировать товары", "pl": "Kopiuj produkty"},
            default=True,
        ),
        "copy_contacts": Property(
            "bool",
            {"en": "Copy contacts", "ru": "Копировать контакты", "pl": "Kopiuj kontakty"},
            default=True,
        ),
        "copy_user_fields": Property(
            "bool",
            {
                "en": "Copy custom fields",
                "ru": "Копировать пользовательские поля",
                "pl": "Kopiuj pola własne",
            },
            default=True,
        ),
        "title_suffix": Property(
            "string",
            {
                "en": "Text added to the title",
                "ru": "Добавить к названию",
                "pl": "Dopisek do tytułu",
            },
            default="",
        ),
        "warranty_field": Property(
            "string",
            {
                "en": "Warranty end date field (UF_CRM_...)",
                "ru": "Поле окончания гарантии (UF_CRM_...)",
                "pl": "Pole końca gwarancji (UF_CRM_...)",
            },
            default="",
        ),
        "warranty_months": Property(
            "int",
            {
                "en": "Warranty period, months (from the close date)",
                "ru": "Срок гарантии, месяцев (от даты закрытия)",
                "pl": "Okres gwarancji, miesiące (od daty zamknięcia)",
            },
            default=0,
        ),
        "warranty_date": Property(
            "date",
            {
                "en": "Warranty end date (instead of a period)",
                "ru": "Дата окончания гарантии (вместо срока)",
                "pl": "Data końca gwarancji (zamiast okresu)",
            },
        ),
    },
    returns={
        "deal_id": Property(
            "int", {"en": "New deal ID", "ru": "ID новой сделки", "pl": "ID nowego dealu"}
        ),
    },
)
