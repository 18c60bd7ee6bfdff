"""Deals: the stored model, its rules (funnels, stages, closing) and the crm.deal.* methods.

A deal record keeps canonical upper-case names and Python values; ``deal_view`` renders the
``crm.deal.*`` form where every scalar is a string. Every change sends ``crm.event`` and,
when the deal enters a stage, ``deal.stage_entered`` (after the change is stored).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fakeportal import signals
from fakeportal.api import Call, Page, method
from fakeportal.exceptions import FieldValueNotValid, Uncoded
from fakeportal.state import Portal

from . import categories, common, query, stagehistory, userfields
from .categories import DEAL

# crm.deal.get order; these are also what select "*" means
DEAL_FIELDS: tuple[str, ...] = (
    "ID",
    "TITLE",
    "TYPE_ID",
    "STAGE_ID",
    "PROBABILITY",
    "CURRENCY_ID",
    "OPPORTUNITY",
    "IS_MANUAL_OPPORTUNITY",
    "TAX_VALUE",
    "LEAD_ID",
    "COMPANY_ID",
    "CONTACT_ID",
    "QUOTE_ID",
    "BEGINDATE",
    "CLOSEDATE",
    "ASSIGNED_BY_ID",
    "CREATED_BY_ID",
    "MODIFY_BY_ID",
    "DATE_CREATE",
    "DATE_MODIFY",
    "OPENED",
    "CLOSED",
    "COMMENTS",
    "ADDITIONAL_INFO",
    "LOCATION_ID",
    "CATEGORY_ID",
    "STAGE_SEMANTIC_ID",
    "IS_NEW",
    "IS_RECURRING",
    "IS_RETURN_CUSTOMER",
    "IS_REPEATED_APPROACH",
    "SOURCE_ID",
    "SOURCE_DESCRIPTION",
    "ORIGINATOR_ID",
    "ORIGIN_ID",
    "MOVED_BY_ID",
    "MOVED_TIME",
    "LAST_ACTIVITY_TIME",
    "UTM_SOURCE",
    "UTM_MEDIUM",
    "UTM_CAMPAIGN",
    "UTM_CONTENT",
    "UTM_TERM",
    "LAST_ACTIVITY_BY",
)

KINDS: dict[str, str] = {
    "ID": "int",
    "PROBABILITY": "int",
    "OPPORTUNITY": "money",
    "TAX_VALUE": "money",
    "LEAD_ID": "int",
    "COMPANY_ID": "int",
    "CONTACT_ID": "int",
    "CONTACT_IDS": "list_int",
    "QUOTE_ID": "int",
    "BEGINDATE": "date",
    "CLOSEDATE": "date",
    "ASSIGNED_BY_ID": "int",
    "CREATED_BY_ID": "int",
    "MODIFY_BY_ID": "int",
    "DATE_CREATE": "datetime",
    "DATE_MODIFY": "datetime",
    "CATEGORY_ID": "int",
    "MOVED_BY_ID": "int",
    "MOVED_TIME": "datetime",
    "LAST_ACTIVITY_TIME": "datetime",
    "LAST_ACTIVITY_BY": "int",
    "LOCATION_ID": "str",
}

# fields a caller may write (crm.deal.add/update); the rest are the portal's own
WRITABLE_STR = (
    "TITLE",
    "TYPE_ID",
    "CURRENCY_ID",
    "COMMENTS",
    "SOURCE_ID",
    "SOURCE_DESCRIPTION",
    "ADDITIONAL_INFO",
    "LOCATION_ID",
    "ORIGINATOR_ID",
    "ORIGIN_ID",
    "UTM_SOURCE",
    "UTM_MEDIUM",
    "UTM_CAMPAIGN",
    "UTM_CONTENT",
    "UTM_TERM",
)
WRITABLE_YN = (
    "IS_MANUAL_OPPORTUNITY",
    "OPENED",
    "IS_RECURRING",
    "IS_RETURN_CUSTOMER",
    "IS_REPEATED_APPROACH",
)
WRITABLE_INT = ("PROBABILITY", "COMPANY_ID", "ASSIGNED_BY_ID", "LEAD_ID")
WRITABLE_MONEY = ("OPPORTUNITY", "TAX_VALUE")
WRITABLE_DATE = ("BEGINDATE", "CLOSEDATE")

CURRENCIES = {"RUB", "USD", "EUR", "UAH", "BYN", "KZT", "GBP", "CNY", "PLN", "BRL", "INR", "TRY"}
BASE_CURRENCY = {
    "RU": "RUB",
    "BY": "BYN",
    "KZ": "KZT",
    "UA": "UAH",
    "US": "USD",
    "DE": "EUR",
    "PL": "PLN",
    "BR": "BRL",
    "IN": "INR",
    "GB": "GBP",
}


def table(portal: Portal) -> dict[int, dict[str, Any]]:
    return portal.table("deal")


def kind_of(portal: Portal, field: str) -> str:
    if field.startswith("UF_"):
        row = userfields.definition(portal, "DEAL", field)
        return userfields.kind(row) if row else "str"
    return KINDS.get(field, "str")


def _default_title(portal: Portal, deal_id: int) -> str:
    return f"Сделка #{deal_id}" if portal.language == "ru" else f"Deal #{deal_id}"


# contacts bound to a deal -------------------------------------------------------------------
def contact_bindings(record: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(record.setdefault("_CONTACTS", []), key=lambda b: b["SORT"])


def set_bindings(record: dict[str, Any], bindings: list[dict[str, Any]]) -> None:
    """Store bindings; exactly one is primary when any exist; CONTACT_ID follows it."""
    bindings = sorted(bindings, key=lambda b: b["SORT"])
    if bindings and not any(b["IS_PRIMARY"] == "Y" for b in bindings):
        bindings[0]["IS_PRIMARY"] = "Y"
    seen_primary = False
    for b in bindings:
        if b["IS_PRIMARY"] == "Y":
            if seen_primary:
                b["IS_PRIMARY"] = "N"
            seen_primary = True
    record["_CONTACTS"] = bindings
    primary = next((b for b in bindings if b["IS_PRIMARY"] == "Y"), None)
    record["CONTACT_ID"] = primary["CONTACT_ID"] if primary else None
    record["CONTACT_IDS"] = [b["CONTACT_ID"] for b in bindings]


def binding(contact_id: int, sort: int, primary: bool = False) -> dict[str, Any]:
    return {
        "CONTACT_ID": contact_id,
        "SORT": sort,
        "ROLE_ID": 0,
        "IS_PRIMARY": "Y" if primary else "N",
    }


def _ids(value: Any) -> list[int]:
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        value = [value]
    result: list[int] = []
    for v in value:
        cid = common.positive_id(v)
        if cid is not None and cid not in result:
            result.append(cid)
    return result


# writing ----------------------------------------------------------------------------------
def _apply(portal: Portal, record: dict[str, Any], fields: dict[str, Any]) -> None:
    """Copy the writable fields a caller sent onto a record (unknown ones are ignored)."""
    for key in WRITABLE_STR:
        if key in fields:
            value = fields[key]
            record[key] = None if value is None else str(value)
    if "CURRENCY_ID" in fields and record.get("CURRENCY_ID"):
        currency = str(record["CURRENCY_ID"]).upper()
        if currency not in CURRENCIES:
            raise Uncoded('Invalid value for the "Currency" field')
        record["CURRENCY_ID"] = currency
    for key in WRITABLE_YN:
        if key in fields:
            record[key] = common.to_yn(fields[key], record.get(key) or "N")
    for key in WRITABLE_INT:
        if key in fields:
            try:
                record[key] = common.to_int(fields[key])
            except (TypeError, ValueError):
                pass
    for key in WRITABLE_MONEY:
        if key in fields:
            try:
                record[key] = common.to_float(fields[key]) or 0.0
            except (TypeError, ValueError):
                pass
    if "OPPORTUNITY" in fields and "IS_MANUAL_OPPORTUNITY" not in fields:
        if portal.table("productrow") and _has_rows(portal, record["ID"]):
            record["IS_MANUAL_OPPORTUNITY"] = "Y"
    for key in WRITABLE_DATE:
        if key in fields:
            try:
                record[key] = common.parse_date(portal, fields[key])
            except (TypeError, ValueError):
                pass
    if "CONTACT_IDS" in fields:
        ids = _ids(fields["CONTACT_IDS"])
        set_bindings(record, [binding(cid, (i + 1) * 10, i == 0) for i, cid in enumerate(ids)])
    elif "CONTACT_ID" in fields:
        cid = common.positive_id(fields["CONTACT_ID"])
        current = [b for b in contact_bindings(record) if b["CONTACT_ID"] != cid]
        for b in current:
            b["IS_PRIMARY"] = "N"
        if cid is not None:
            current.insert(0, binding(cid, 0, True))
        for i, b in enumerate(current):
            b["SORT"] = (i + 1) * 10
        set_bindings(record, current)
    for key, value in fields.items():
        if key.startswith("UF_CRM_"):
            row = userfields.definition(portal, "DEAL", key)
            if row is not None:
                record[row["FIELD_NAME"]] = userfields.coerce(portal, row, value)


def _has_rows(portal: Portal, deal_id: int) -> bool:
    return any(
        r["OWNER_TYPE"] == "D" and r["OWNER_ID"] == deal_id
        for r in portal.table("productrow").values()
    )


def _enter_stage(
    portal: Portal,
    record: dict[str, Any],
    stage: dict[str, Any],
    user_id: int | None,
    *,
    new_funnel: bool = False,
) -> None:
    """Put a record in a stage: semantics, closing, the moved-by/-time marks, its history."""
    now = common.now(portal)
    created = not record.get("STAGE_ID")
    record["STAGE_ID"] = stage["STATUS_ID"]
    semantic = categories.stage_semantic(stage)
    was_closed = record.get("CLOSED") == "Y"
    record["STAGE_SEMANTIC_ID"] = semantic
    record["CLOSED"] = "Y" if semantic in ("S", "F") else "N"
    if record["CLOSED"] == "Y" and not was_closed:
        record["CLOSEDATE"] = common.today(portal)
    first = categories.first_stage(portal, DEAL, record["CATEGORY_ID"])
    record["IS_NEW"] = "Y" if stage["STATUS_ID"] == first else "N"
    record["MOVED_TIME"] = now
    record["MOVED_BY_ID"] = user_id if user_id is not None else record.get("MODIFY_BY_ID")
    if record.get("ID"):
        kind = stagehistory.CREATED if created else stagehistory.MOVED
        if new_funnel:
            kind = stagehistory.FUNNEL
        elif not created and semantic in ("S", "F"):
            kind = stagehistory.FINAL
        stagehistory.record(portal, record, kind)


def _stage_in(portal: Portal, category_id: int, stage_id: Any) -> dict[str, Any] | None:
    """The stage row when ``stage_id`` belongs to that funnel, else None."""
    if not stage_id:
        return None
    row = categories.find_stage(portal, DEAL, str(stage_id))
    if row is None:
        return None
    parsed = categories.parse_stage_entity(row["ENTITY_ID"])
    return row if parsed == (DEAL, category_id) else None


def create_deal(portal: Portal, fields: dict[str, Any], user_id: int | None = None) -> int:
    """Create a deal as crm.deal.add does; returns its ID.

    ``fields`` use crm.deal.add names (any case). ``user_id`` is the acting user (None: the
    change is made by automation on behalf of nobody; the creator is then user 1).
    """
    fields = common.upper_keys(fields)
    category_id = None
    if fields.get("CATEGORY_ID") not in (None, ""):
        try:
            category_id = common.to_int(fields["CATEGORY_ID"])
        except (TypeError, ValueError):
            category_id = None
        if category_id is None or categories.get_category(portal, DEAL, category_id) is None:
            raise Uncoded(f"Category with ID '{fields['CATEGORY_ID']}' is not found")
    stage = None
    if fields.get("STAGE_ID"):
        found = categories.find_stage(portal, DEAL, str(fields["STAGE_ID"]))
        if found is not None:
            found_category = (categories.parse_stage_entity(found["ENTITY_ID"]) or (DEAL, 0))[1]
            if category_id is None:
                category_id = found_category
            if found_category == category_id:
                stage = found
    category_id = category_id or 0
    if stage is None:
        stage = categories.find_stage(
            portal, DEAL, categories.first_stage(portal, DEAL, category_id)
        )
    assert stage is not None
    deal_id = portal.next_id("deal")
    actor = user_id if user_id is not None else 1
    now = common.now(portal)
    record: dict[str, Any] = {name: None for name in DEAL_FIELDS}
    record.update(
        {
            "ID": deal_id,
            "TYPE_ID": "SALE",
            "CURRENCY_ID": BASE_CURRENCY.get(portal.country, "USD"),
            "OPPORTUNITY": 0.0,
            "IS_MANUAL_OPPORTUNITY": "N",
            "TAX_VALUE": 0.0,
            "COMPANY_ID": 0,
            "BEGINDATE": common.today(portal),
            "CLOSEDATE": common.today(portal) + timedelta(days=7),
            "ASSIGNED_BY_ID": actor,
            "CREATED_BY_ID": actor,
            "MODIFY_BY_ID": actor,
            "DATE_CREATE": now,
            "DATE_MODIFY": now,
            "OPENED": "Y",
            "CLOSED": "N",
            "COMMENTS": "",
            "CATEGORY_ID": category_id,
            "IS_RECURRING": "N",
            "IS_RETURN_CUSTOMER": "N",
            "IS_REPEATED_APPROACH": "N",
            "LAST_ACTIVITY_TIME": now,
            "LAST_ACTIVITY_BY": actor,
            "_CONTACTS": [],
            "CONTACT_IDS": [],
        }
    )
    _apply(portal, record, fields)
    if not record.get("TITLE"):
        record["TITLE"] = _default_title(portal, deal_id)
    if record.get("ASSIGNED_BY_ID") is None:
        record["ASSIGNED_BY_ID"] = actor
    _enter_stage(portal, record, stage, actor)
    if record["CLOSED"] == "Y" and "CLOSEDATE" in fields and fields["CLOSEDATE"]:
        record["CLOSEDATE"] = common.parse_date(portal, fields["CLOSEDATE"])
    table(portal)[deal_id] = record
    common.crm_event(portal, "ONCRMDEALADD", {"ID": str(deal_id)}, user_id)
    signals.send("deal.stage_entered", portal, deal_id, record["STAGE_ID"], category_id, user_id)
    return deal_id


def require_deal(portal: Portal, deal_id: Any) -> dict[str, Any]:
    """The stored deal, or the portal's errors for a bad or unknown id."""
    key = common.positive_id(deal_id)
    if key is None:
        raise Uncoded("ID is not defined or invalid")
    record = table(portal).get(key)
    if record is None:
        raise Uncoded("Not found")
    return record


def _touch(portal: Portal, record: dict[str, Any], user_id: int | None) -> None:
    record["DATE_MODIFY"] = common.now(portal)
    if user_id is not None:
        record["MODIFY_BY_ID"] = user_id


def update_deal(
    portal: Portal, deal_id: int, fields: dict[str, Any], user_id: int | None = None
) -> bool:
    """Update as crm.deal.update does: CATEGORY_ID is immutable, a STAGE_ID of another funnel
    is ignored. Sends ONCRMDEALUPDATE (and deal.stage_entered when the stage changed)."""
    record = require_deal(portal, deal_id)
    fields = common.upper_keys(fields)
    _apply(portal, record, fields)
    _touch(portal, record, user_id)
    entered = None
    stage = _stage_in(portal, record["CATEGORY_ID"], fields.get("STAGE_ID"))
    if stage is not None and stage["STATUS_ID"] != record["STAGE_ID"]:
        _enter_stage(portal, record, stage, user_id)
        entered = stage["STATUS_ID"]
    common.crm_event(portal, "ONCRMDEALUPDATE", {"ID": str(record["ID"])}, user_id)
    if entered is not None:
        signals.send(
            "deal.stage_entered", portal, record["ID"], entered, record["CATEGORY_ID"], user_id
        )
    return True


def change_category(
    portal: Portal,
    deal_id: int,
    category_id: int,
    stage_id: str | None = None,
    user_id: int | None = None,
    extra_fields: dict[str, Any] | None = None,
) -> None:
    """Move a deal to another funnel (its first stage unless ``stage_id`` is of that funnel).

    Sends ONCRMDEALMOVETOCATEGORY (not ONCRMDEALUPDATE) and deal.stage_entered.
    """
    record = require_deal(portal, deal_id)
    if categories.get_category(portal, DEAL, category_id) is None:
        raise FieldValueNotValid('Invalid value for field "categoryId"')
    stage = _stage_in(portal, category_id, stage_id)
    if stage is None:
        stage = categories.find_stage(
            portal, DEAL, categories.first_stage(portal, DEAL, category_id)
        )
    assert stage is not None
    if extra_fields:
        _apply(portal, record, common.upper_keys(extra_fields))
    record["CATEGORY_ID"] = category_id
    _touch(portal, record, user_id)
    _enter_stage(portal, record, stage, user_id, new_funnel=True)
    common.crm_event(
        portal,
        "ONCRMDEALMOVETOCATEGORY",
        {"ID": str(record["ID"]), "CATEGORY_ID": str(category_id), "STAGE_ID": stage["STATUS_ID"]},
        user_id,
    )
    signals.send(
        "deal.stage_entered", portal, record["ID"], stage["STATUS_ID"], category_id, user_id
    )


def move_deal(portal: Portal, deal_id: int, stage_id: str, user_id: int | None = None) -> None:
    """Put a deal in a stage, moving it to the stage's funnel when that is another one."""
    record = require_deal(portal, deal_id)
    stage = categories.find_stage(portal, DEAL, stage_id)
    if stage is None:
        raise Uncoded(f"Stage '{stage_id}' is not found")
    parsed = categories.parse_stage_entity(stage["ENTITY_ID"]) or (DEAL, 0)
    if parsed[1] != record["CATEGORY_ID"]:
        change_category(portal, record["ID"], parsed[1], stage_id, user_id)
    else:
        update_deal(portal, record["ID"], {"STAGE_ID": stage_id}, user_id)


def delete_deal(portal: Portal, deal_id: int, user_id: int | None = None) -> bool:
    record = require_deal(portal, deal_id)
    del table(portal)[record["ID"]]
    rows = portal.table("productrow")
    for row_id in [
        k for k, r in rows.items() if r["OWNER_TYPE"] == "D" and r["OWNER_ID"] == record["ID"]
    ]:
        del rows[row_id]
    common.crm_event(portal, "ONCRMDEALDELETE", {"ID": str(record["ID"])}, user_id)
    return True


def recalc_opportunity(portal: Portal, deal_id: int) -> None:
    """Deal amount follows its product rows unless the amount is manual."""
    record = table(portal).get(deal_id)
    if record is None or record.get("IS_MANUAL_OPPORTUNITY") == "Y":
        return
    total = 0.0
    for row in portal.table("productrow").values():
        if row["OWNER_TYPE"] == "D" and row["OWNER_ID"] == deal_id:
            total += row["PRICE"] * row["QUANTITY"]
    record["OPPORTUNITY"] = round(total, 2)


# reading ----------------------------------------------------------------------------------
def deal_view(
    portal: Portal, record: dict[str, Any], fields: list[str] | None = None
) -> dict[str, Any]:
    """The crm.deal.* form: every scalar a string, null as null, dates with the offset."""
    if fields is None:
        fields = list(DEAL_FIELDS) + userfields.field_names(portal, "DEAL")
    view: dict[str, Any] = {}
    for name in fields:
        kind = kind_of(portal, name)
        value = record.get(name)
        if name.startswith("UF_") and value is None:
            row = userfields.definition(portal, "DEAL", name)
            value = [] if row and row["MULTIPLE"] == "Y" else None
        view[name] = common.str_scalar(value, "money" if kind == "money" else kind, portal)
    return view


def get_deal(portal: Portal, deal_id: int) -> dict[str, Any]:
    """A deal as crm.deal.get returns it."""
    return deal_view(portal, require_deal(portal, deal_id))


def resolve(portal: Portal, name: str) -> str | None:
    """A field name as sent (any case) -> its canonical name, None when unknown."""
    upper = name.strip().upper()
    if upper in DEAL_FIELDS:
        return upper
    if upper.startswith("UF_") and userfields.definition(portal, "DEAL", upper):
        return upper
    return None


def list_deals(
    portal: Portal,
    *,
    filter_: Any = None,
    order: Any = None,
    select: Any = None,
    start: Any = 0,
    method_name: str = "crm.deal.list",
) -> Page:
    """crm.deal.list: filter, order, select (default ``*`` + ``UF_*``), 50-row pages."""

    def unknown(key: str) -> None:
        portal.unknown_params.append((method_name, f"filter[{key}]"))

    rows, total, nxt = query.run_list(
        portal,
        table(portal).values(),
        filter_=filter_,
        order=order,
        start=start,
        resolve=lambda n: resolve(portal, n),
        kinds=lambda f: kind_of(portal, f),
        unknown=unknown,
    )
    chosen = query.select_fields(
        select,
        DEAL_FIELDS,
        userfields.field_names(portal, "DEAL"),
        lambda n: resolve(portal, n),
    )
    return Page([deal_view(portal, r, chosen) for r in rows], total, nxt)


# REST -------------------------------------------------------------------------------------
def _check_params(call: Call) -> None:
    params = call.get("params")
    if params is not None and params != "" and not isinstance(params, (dict, list)):
        raise Uncoded("Parameter 'params' must be array.")


@method("crm.deal.add", scope="crm", validates=True)
def deal_add(call: Call) -> int:
    fields = common.require_fields(call)
    _check_params(call)
    return create_deal(call.portal, fields, common.acting_user(call))


@method("crm.deal.get", scope="crm", validates=True)
def deal_get(call: Call) -> dict[str, Any]:
    return get_deal(call.portal, call.get("id"))


@method("crm.deal.update", scope="crm", validates=True)
def deal_update(call: Call) -> bool:
    require_deal(call.portal, call.get("id"))
    fields = common.require_fields(call)
    _check_params(call)
    return update_deal(call.portal, call.get("id"), fields, common.acting_user(call))


@method("crm.deal.delete", scope="crm", validates=True)
def deal_delete(call: Call) -> bool:
    return delete_deal(call.portal, call.get("id"), common.acting_user(call))


@method("crm.deal.list", scope="crm")
def deal_list(call: Call) -> Page:
    return list_deals(
        call.portal,
        filter_=call.get("filter"),
        order=call.get("order"),
        select=call.get("select"),
        start=call.get("start"),
    )


def _field_info(type_: str, **flags: Any) -> dict[str, Any]:
    info = {
        "type": type_,
        "isRequired": False,
        "isReadOnly": False,
        "isImmutable": False,
        "isMultiple": False,
        "isDynamic": False,
    }
    info.update(flags)
    return info


FIELD_TYPES: dict[str, tuple[str, dict[str, Any]]] = {
    "ID": ("integer", {"isReadOnly": True}),
    "TITLE": ("string", {}),
    "TYPE_ID": ("crm_status", {"statusType": "DEAL_TYPE"}),
    "CATEGORY_ID": ("crm_category", {"isImmutable": True}),
    "STAGE_ID": ("crm_status", {"statusType": "DEAL_STAGE"}),
    "STAGE_SEMANTIC_ID": ("string", {"isReadOnly": True}),
    "IS_NEW": ("char", {"isReadOnly": True}),
    "IS_RECURRING": ("char", {}),
    "IS_RETURN_CUSTOMER": ("char", {}),
    "IS_REPEATED_APPROACH": ("char", {}),
    "PROBABILITY": ("integer", {}),
    "CURRENCY_ID": ("crm_currency", {}),
    "OPPORTUNITY": ("double", {}),
    "IS_MANUAL_OPPORTUNITY": ("char", {}),
    "TAX_VALUE": ("double", {}),
    "COMPANY_ID": ("crm_company", {}),
    "CONTACT_ID": ("crm_contact", {"isDeprecated": True}),
    "CONTACT_IDS": ("crm_contact", {"isMultiple": True}),
    "QUOTE_ID": ("crm_quote", {"isReadOnly": True}),
    "BEGINDATE": ("date", {}),
    "CLOSEDATE": ("date", {}),
    "OPENED": ("char", {}),
    "CLOSED": ("char", {}),
    "COMMENTS": ("string", {}),
    "ASSIGNED_BY_ID": ("user", {}),
    "CREATED_BY_ID": ("user", {"isReadOnly": True}),
    "MODIFY_BY_ID": ("user", {"isReadOnly": True}),
    "MOVED_BY_ID": ("user", {"isReadOnly": True}),
    "DATE_CREATE": ("datetime", {"isReadOnly": True}),
    "DATE_MODIFY": ("datetime", {"isReadOnly": True}),
    "MOVED_TIME": ("datetime", {"isReadOnly": True}),
    "SOURCE_ID": ("crm_status", {"statusType": "SOURCE"}),
    "SOURCE_DESCRIPTION": ("string", {}),
    "LEAD_ID": ("crm_lead", {"isReadOnly": True}),
    "ADDITIONAL_INFO": ("string", {}),
    "LOCATION_ID": ("location", {}),
    "ORIGINATOR_ID": ("string", {}),
    "ORIGIN_ID": ("string", {}),
    "UTM_SOURCE": ("string", {}),
    "UTM_MEDIUM": ("string", {}),
    "UTM_CAMPAIGN": ("string", {}),
    "UTM_CONTENT": ("string", {}),
    "UTM_TERM": ("string", {}),
    "LAST_ACTIVITY_TIME": ("datetime", {"isReadOnly": True}),
    "LAST_ACTIVITY_BY": ("user", {"isReadOnly": True}),
}


def fields_description(
    portal: Portal, entity: str, types: dict[str, tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    """The crm.<entity>.fields reply: standard fields, then the user fields."""
    result: dict[str, Any] = {}
    for name, (type_, flags) in types.items():
        result[name] = _field_info(type_, **flags, title=name.replace("_", " ").title())
    for row in userfields.user_fields(portal, entity):
        info = _field_info(
            row["USER_TYPE_ID"],
            isRequired=row["MANDATORY"] == "Y",
            isMultiple=row["MULTIPLE"] == "Y",
            isDynamic=True,
            title=row["FIELD_NAME"],
            listLabel=row["LIST_COLUMN_LABEL"],
            formLabel=row["EDIT_FORM_LABEL"],
            filterLabel=row["LIST_FILTER_LABEL"],
            settings=row["SETTINGS"],
        )
        if row["USER_TYPE_ID"] == "enumeration":
            info["items"] = [{"ID": e["ID"], "VALUE": e["VALUE"]} for e in row["LIST"]]
        result[row["FIELD_NAME"]] = info
    return result


@method("crm.deal.fields", scope="crm")
def deal_fields(call: Call) -> dict[str, Any]:
    return fields_description(call.portal, "DEAL", FIELD_TYPES)


# crm.deal.contact.* -----------------------------------------------------------------------
def _binding_view(b: dict[str, Any]) -> dict[str, Any]:
    return {
        "CONTACT_ID": b["CONTACT_ID"],
        "SORT": b["SORT"],
        "ROLE_ID": b["ROLE_ID"],
        "IS_PRIMARY": b["IS_PRIMARY"],
    }


def _contact_or_error(portal: Portal, value: Any) -> int:
    contact_id = common.positive_id(value)
    if contact_id is None:
        raise Uncoded("The parameter 'CONTACT_ID' is invalid or not defined.")
    if contact_id not in portal.table("contact"):
        raise Uncoded(f"The contact with ID '{contact_id}' is not found")
    return contact_id


def _bindings_changed(call: Call, record: dict[str, Any]) -> None:
    _touch(call.portal, record, common.acting_user(call))
    common.crm_event(
        call.portal, "ONCRMDEALUPDATE", {"ID": str(record["ID"])}, common.acting_user(call)
    )


@method("crm.deal.contact.items.get", scope="crm", validates=True)
def deal_contact_items_get(call: Call) -> list[dict[str, Any]]:
    record = require_deal(call.portal, call.get("id"))
    return [_binding_view(b) for b in contact_bindings(record)]


@method("crm.deal.contact.items.set", scope="crm", validates=True)
def deal_contact_items_set(call: Call) -> bool:
    record = require_deal(call.portal, call.get("id"))
    items = call.get("items")
    if isinstance(items, dict):
        items = list(items.values())
    if not isinstance(items, list):
        raise Uncoded("The parameter 'items' must be array.")
    result: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise Uncoded("The parameter 'items' must be array.")
        item = common.upper_keys(item)
        contact_id = _contact_or_error(call.portal, item.get("CONTACT_ID"))
        sort = common.to_int(item.get("SORT")) or (index + 1) * 10
        result.append(binding(contact_id, sort, common.to_yn(item.get("IS_PRIMARY")) == "Y"))
    set_bindings(record, result)
    _bindings_changed(call, record)
    return True


@method("crm.deal.contact.items.delete", scope="crm", validates=True)
def deal_contact_items_delete(call: Call) -> bool:
    record = require_deal(call.portal, call.get("id"))
    set_bindings(record, [])
    _bindings_changed(call, record)
    return True


@method("crm.deal.contact.add", scope="crm", validates=True)
def deal_contact_add(call: Call) -> bool:
    record = require_deal(call.portal, call.get("id"))
    fields = common.upper_keys(common.require_fields(call))
    contact_id = _contact_or_error(call.portal, fields.get("CONTACT_ID"))
    current = [b for b in contact_bindings(record) if b["CONTACT_ID"] != contact_id]
    primary = common.to_yn(fields.get("IS_PRIMARY")) == "Y"
    if primary:
        for b in current:
            b["IS_PRIMARY"] = "N"
    sort = common.to_int(fields.get("SORT")) or (max((b["SORT"] for b in current), default=0) + 10)
    current.append(binding(contact_id, sort, primary))
    set_bindings(record, current)
    _bindings_changed(call, record)
    return True


@method("crm.deal.contact.delete", scope="crm", validates=True)
def deal_contact_delete(call: Call) -> bool:
    record = require_deal(call.portal, call.get("id"))
    fields = common.upper_keys(common.require_fields(call))
    contact_id = common.positive_id(fields.get("CONTACT_ID"))
    if contact_id is None:
        raise Uncoded("The parameter 'CONTACT_ID' is invalid or not defined.")
    set_bindings(record, [b for b in contact_bindings(record) if b["CONTACT_ID"] != contact_id])
    _bindings_changed(call, record)
    return True


@method("crm.deal.contact.fields", scope="crm")
def deal_contact_fields(call: Call) -> dict[str, Any]:
    return {
        "CONTACT_ID": _field_info("integer", isRequired=True, title="Contact ID"),
        "SORT": _field_info("integer", title="Sort index"),
        "ROLE_ID": _field_info("integer", isReadOnly=True, title="Role ID"),
        "IS_PRIMARY": _field_info("char", title="Primary contact"),
    }
