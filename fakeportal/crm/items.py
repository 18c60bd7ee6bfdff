"""crm.item.* for deals (entityTypeId 2) and smart invoices (31): camelCase keys, real JSON
numbers, user fields as ``ufCrm_<suffix>`` unless ``useOriginalUfNames=Y``.

Deals are the same records crm.deal.* serves (deals.py holds the rules); ``categoryId`` +
``stageId`` in crm.item.update moves a deal to another funnel (ONCRMDEALMOVETOCATEGORY
instead of ONCRMDEALUPDATE). Smart invoices are stored here, camelCase, with their own stages
``DT31_<cat>:N/S/P/D``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fakeportal import signals
from fakeportal.api import Call, Page, method
from fakeportal.exceptions import FieldValueNotValid, InvalidArgValue, NotFound, ParamErrorString
from fakeportal.state import Portal

from . import categories, common, deals, query, userfields
from .categories import DEAL, INVOICE

# deal field (canonical) -> crm.item name, in the order crm.item.get prints them
DEAL_ITEM_FIELDS: dict[str, str] = {
    "ID": "id",
    "DATE_CREATE": "createdTime",
    "DATE_MODIFY": "updatedTime",
    "CREATED_BY_ID": "createdBy",
    "MODIFY_BY_ID": "updatedBy",
    "ASSIGNED_BY_ID": "assignedById",
    "OPENED": "opened",
    "LEAD_ID": "leadId",
    "COMPANY_ID": "companyId",
    "CONTACT_ID": "contactId",
    "QUOTE_ID": "quoteId",
    "TITLE": "title",
    "CATEGORY_ID": "categoryId",
    "STAGE_ID": "stageId",
    "STAGE_SEMANTIC_ID": "stageSemanticId",
    "IS_NEW": "isNew",
    "IS_RECURRING": "isRecurring",
    "IS_RETURN_CUSTOMER": "isReturnCustomer",
    "IS_REPEATED_APPROACH": "isRepeatedApproach",
    "CLOSED": "closed",
    "TYPE_ID": "typeId",
    "OPPORTUNITY": "opportunity",
    "IS_MANUAL_OPPORTUNITY": "isManualOpportunity",
    "TAX_VALUE": "taxValue",
    "CURRENCY_ID": "currencyId",
    "PROBABILITY": "probability",
    "COMMENTS": "comments",
    "BEGINDATE": "begindate",
    "CLOSEDATE": "closedate",
    "LOCATION_ID": "locationId",
    "SOURCE_ID": "sourceId",
    "SOURCE_DESCRIPTION": "sourceDescription",
    "ORIGINATOR_ID": "originatorId",
    "ORIGIN_ID": "originId",
    "ADDITIONAL_INFO": "additionalInfo",
    "MOVED_BY_ID": "movedBy",
    "MOVED_TIME": "movedTime",
    "LAST_ACTIVITY_BY": "lastActivityBy",
    "LAST_ACTIVITY_TIME": "lastActivityTime",
    "UTM_SOURCE": "utmSource",
    "UTM_MEDIUM": "utmMedium",
    "UTM_CAMPAIGN": "utmCampaign",
    "UTM_CONTENT": "utmContent",
    "UTM_TERM": "utmTerm",
    "CONTACT_IDS": "contactIds",
}
DEAL_BY_ITEM = {v: k for k, v in DEAL_ITEM_FIELDS.items()}

INVOICE_FIELDS: dict[str, str] = {
    # camelCase name -> query kind
    "id": "int",
    "xmlId": "str",
    "title": "str",
    "createdBy": "int",
    "updatedBy": "int",
    "movedBy": "int",
    "createdTime": "datetime",
    "updatedTime": "datetime",
    "movedTime": "datetime",
    "categoryId": "int",
    "opened": "str",
    "stageId": "str",
    "previousStageId": "str",
    "begindate": "date",
    "closedate": "date",
    "companyId": "int",
    "contactId": "int",
    "opportunity": "money",
    "isManualOpportunity": "str",
    "taxValue": "money",
    "currencyId": "str",
    "mycompanyId": "int",
    "sourceId": "str",
    "sourceDescription": "str",
    "assignedById": "int",
    "accountNumber": "str",
    "comments": "str",
    "parentId2": "int",
    "stageSemanticId": "str",
    "contactIds": "list_int",
    "entityTypeId": "int",
}
INVOICE_WRITABLE_STR = (
    "title",
    "xmlId",
    "currencyId",
    "sourceId",
    "sourceDescription",
    "accountNumber",
    "comments",
)
INVOICE_WRITABLE_INT = ("companyId", "mycompanyId", "assignedById", "parentId2")


def _entity_type(call: Call) -> int:
    try:
        type_id = common.to_int(call.get("entityTypeId"))
    except (TypeError, ValueError):
        type_id = None
    if type_id not in (DEAL, INVOICE):
        raise NotFound("SPA not found")
    return type_id


def _use_original(call: Call) -> bool:
    return common.to_yn(call.get("useOriginalUfNames"), "N") == "Y"


def _item_id(call: Call) -> int:
    item_id = common.positive_id(call.get("id"))
    if item_id is None:
        raise NotFound("Item not found")
    return item_id


# deals as items ---------------------------------------------------------------------------
def deal_uf_map(portal: Portal, original: bool) -> dict[str, str]:
    """UF_CRM_X -> the name crm.item shows (``ufCrm_X`` or the original)."""
    return {
        name: (name if original else userfields.item_name(name))
        for name in userfields.field_names(portal, "DEAL")
    }


def deal_item(
    portal: Portal, record: dict[str, Any], original: bool = False, select: list[str] | None = None
) -> dict[str, Any]:
    """A deal in the crm.item form."""
    item: dict[str, Any] = {}
    for upper, name in DEAL_ITEM_FIELDS.items():
        value = record.get(upper)
        if upper == "CONTACT_IDS":
            value = list(value or [])
        elif upper in ("CONTACT_ID", "COMPANY_ID") and value is None:
            value = 0
        item[name] = common.json_scalar(value, deals.kind_of(portal, upper), portal)
    for upper, name in deal_uf_map(portal, original).items():
        value = record.get(upper)
        row = userfields.definition(portal, "DEAL", upper)
        if value is None and row and row["MULTIPLE"] == "Y":
            value = []
        item[name] = common.json_scalar(value, "str", portal)
    item["isWon"] = "Y" if record.get("STAGE_SEMANTIC_ID") == "S" else "N"
    item["isLose"] = "Y" if record.get("STAGE_SEMANTIC_ID") == "F" else "N"
    item["entityTypeId"] = DEAL
    if select is not None:
        item = {k: v for k, v in item.items() if k in select}
    return item


def _deal_fields_from_item(portal: Portal, fields: dict[str, Any]) -> dict[str, Any]:
    """crm.item field names -> crm.deal names (unknown names are dropped)."""
    uf_back = {v: k for k, v in deal_uf_map(portal, False).items()}
    result: dict[str, Any] = {}
    for key, value in fields.items():
        if key in DEAL_BY_ITEM:
            result[DEAL_BY_ITEM[key]] = value
        elif key in uf_back:
            result[uf_back[key]] = value
        elif key.upper().startswith("UF_CRM_"):
            result[key.upper()] = value
    if "OPENED" in result:
        result["OPENED"] = common.to_yn(result["OPENED"], "Y")
    return result


def _deal_resolver(portal: Portal, original: bool) -> Any:
    uf_back = {v: k for k, v in deal_uf_map(portal, original).items()}

    def resolve(name: str) -> str | None:
        if name in DEAL_BY_ITEM:
            return DEAL_BY_ITEM[name]
        if name in uf_back:
            return uf_back[name]
        upper = name.upper()
        if upper in DEAL_ITEM_FIELDS:
            return upper
        return None

    return resolve


# smart invoices ---------------------------------------------------------------------------
def invoice_table(portal: Portal) -> dict[int, dict[str, Any]]:
    return portal.table("invoice")


def _invoice_stage(portal: Portal, category_id: int, stage_id: Any) -> dict[str, Any] | None:
    if not stage_id:
        return None
    row = categories.find_stage(portal, INVOICE, str(stage_id))
    if row is None or categories.parse_stage_entity(row["ENTITY_ID"]) != (INVOICE, category_id):
        return None
    return row


def _default_invoice_category(portal: Portal) -> int:
    rows = categories.category_table(portal, INVOICE).values()
    default = next((r for r in rows if r["isDefault"] == "Y"), None)
    return default["id"] if default else min(r["id"] for r in rows)


def _apply_invoice(portal: Portal, record: dict[str, Any], fields: dict[str, Any]) -> None:
    for key in INVOICE_WRITABLE_STR:
        if key in fields:
            record[key] = None if fields[key] is None else str(fields[key])
    for key in INVOICE_WRITABLE_INT:
        if key in fields:
            try:
                record[key] = common.to_int(fields[key])
            except (TypeError, ValueError) as exc:
                raise FieldValueNotValid(f'Invalid value for field "{key}"') from exc
    if "opportunity" in fields:
        record["opportunity"] = common.to_float(fields["opportunity"]) or 0.0
    if "opened" in fields:
        record["opened"] = common.to_yn(fields["opened"], "Y")
    for key in ("begindate", "closedate"):
        if key in fields:
            record[key] = common.parse_date(portal, fields[key])
    if "contactIds" in fields:
        ids = deals._ids(fields["contactIds"])
        record["contactIds"] = ids
        record["contactId"] = ids[0] if ids else None
    elif "contactId" in fields:
        cid = common.positive_id(fields["contactId"])
        record["contactId"] = cid
        record["contactIds"] = [cid] if cid else []


def _enter_invoice_stage(
    portal: Portal, record: dict[str, Any], stage: dict[str, Any], user_id: int | None
) -> None:
    record["previousStageId"] = record.get("stageId")
    record["stageId"] = stage["STATUS_ID"]
    record["stageSemanticId"] = categories.stage_semantic(stage)
    record["movedTime"] = common.now(portal)
    record["movedBy"] = user_id if user_id is not None else record.get("updatedBy")


def create_invoice(portal: Portal, fields: dict[str, Any], user_id: int | None = None) -> int:
    """Create a smart invoice from crm.item camelCase fields; returns its id."""
    category_id = fields.get("categoryId")
    if category_id in (None, ""):
        category_id = _default_invoice_category(portal)
    else:
        category_id = common.to_int(category_id)
        if categories.get_category(portal, INVOICE, category_id) is None:
            raise FieldValueNotValid('Invalid value for field "categoryId"')
    stage = _invoice_stage(portal, category_id, fields.get("stageId"))
    if fields.get("stageId") and stage is None:
        raise FieldValueNotValid('Invalid value for field "stageId"')
    if stage is None:
        stage = categories.find_stage(
            portal, INVOICE, categories.first_stage(portal, INVOICE, category_id)
        )
    assert stage is not None
    item_id = portal.next_id("invoice")
    actor = user_id if user_id is not None else 1
    now = common.now(portal)
    record: dict[str, Any] = {name: None for name in INVOICE_FIELDS}
    record.update(
        {
            "id": item_id,
            "title": None,
            "createdBy": actor,
            "updatedBy": actor,
            "createdTime": now,
            "updatedTime": now,
            "categoryId": category_id,
            "opened": "Y",
            "begindate": common.today(portal),
            "closedate": common.today(portal) + timedelta(days=7),
            "opportunity": 0.0,
            "isManualOpportunity": "N",
            "taxValue": 0.0,
            "currencyId": deals.BASE_CURRENCY.get(portal.country, "USD"),
            "assignedById": actor,
            "accountNumber": str(item_id),
            "contactIds": [],
            "entityTypeId": INVOICE,
        }
    )
    _apply_invoice(portal, record, fields)
    if not record.get("title"):
        record["title"] = f"Invoice #{item_id}"
    _enter_invoice_stage(portal, record, stage, actor)
    invoice_table(portal)[item_id] = record
    common.crm_event(
        portal,
        "ONCRMDYNAMICITEMADD_31",
        {"ID": str(item_id), "ENTITY_TYPE_ID": str(INVOICE)},
        user_id,
    )
    return item_id


def update_invoice(
    portal: Portal, item_id: int, fields: dict[str, Any], user_id: int | None = None
) -> None:
    record = invoice_table(portal).get(item_id)
    if record is None:
        raise NotFound("Item not found")
    category_id = record["categoryId"]
    if fields.get("categoryId") not in (None, ""):
        category_id = common.to_int(fields["categoryId"])
        if categories.get_category(portal, INVOICE, category_id) is None:
            raise FieldValueNotValid('Invalid value for field "categoryId"')
    stage = None
    if fields.get("stageId"):
        stage = _invoice_stage(portal, category_id, fields["stageId"])
        if stage is None:
            raise FieldValueNotValid('Invalid value for field "stageId"')
    elif category_id != record["categoryId"]:
        stage = categories.find_stage(
            portal, INVOICE, categories.first_stage(portal, INVOICE, category_id)
        )
    _apply_invoice(portal, record, fields)
    record["categoryId"] = category_id
    record["updatedTime"] = common.now(portal)
    if user_id is not None:
        record["updatedBy"] = user_id
    if stage is not None and stage["STATUS_ID"] != record["stageId"]:
        _enter_invoice_stage(portal, record, stage, user_id)
    common.crm_event(
        portal,
        "ONCRMDYNAMICITEMUPDATE_31",
        {"ID": str(item_id), "ENTITY_TYPE_ID": str(INVOICE)},
        user_id,
    )


def invoice_item(
    portal: Portal, record: dict[str, Any], select: list[str] | None = None
) -> dict[str, Any]:
    item = {
        name: common.json_scalar(record.get(name), kind, portal)
        for name, kind in INVOICE_FIELDS.items()
    }
    if select is not None:
        item = {k: v for k, v in item.items() if k in select}
    return item


def _invoice_resolve(name: str) -> str | None:
    return name if name in INVOICE_FIELDS else None


# REST -------------------------------------------------------------------------------------
def _fields(call: Call) -> dict[str, Any]:
    fields = call.get("fields")
    if not isinstance(fields, dict):
        raise ParamErrorString("Could not find value for parameter {fields}")
    return fields


def _original_fields(portal: Portal, fields: dict[str, Any], original: bool) -> dict[str, Any]:
    """With useOriginalUfNames=Y the caller sends UF_CRM_* names: map them to item names."""
    if not original:
        return fields
    return {
        (userfields.item_name(k) if k.upper().startswith("UF_CRM_") else k): v
        for k, v in fields.items()
    }


@method("crm.item.add", scope="crm")
def item_add(call: Call) -> dict[str, Any]:
    type_id = _entity_type(call)
    original = _use_original(call)
    fields = _original_fields(call.portal, _fields(call), original)
    user = common.acting_user(call)
    if type_id == INVOICE:
        new_id = create_invoice(call.portal, fields, user)
        return {"item": invoice_item(call.portal, invoice_table(call.portal)[new_id])}
    deal_fields = _deal_fields_from_item(call.portal, fields)
    if "CATEGORY_ID" in deal_fields:
        category = common.to_int(deal_fields["CATEGORY_ID"])
        if categories.get_category(call.portal, DEAL, category or 0) is None:
            raise FieldValueNotValid('Invalid value for field "categoryId"')
        if (
            deal_fields.get("STAGE_ID")
            and deals._stage_in(call.portal, category or 0, deal_fields["STAGE_ID"]) is None
        ):
            raise FieldValueNotValid('Invalid value for field "stageId"')
    new_id = deals.create_deal(call.portal, deal_fields, user)
    return {"item": deal_item(call.portal, deals.table(call.portal)[new_id], original)}


@method("crm.item.get", scope="crm")
def item_get(call: Call) -> dict[str, Any]:
    type_id = _entity_type(call)
    item_id = _item_id(call)
    if type_id == INVOICE:
        record = invoice_table(call.portal).get(item_id)
        if record is None:
            raise NotFound("Item not found")
        return {"item": invoice_item(call.portal, record)}
    record = deals.table(call.portal).get(item_id)
    if record is None:
        raise NotFound("Item not found")
    return {"item": deal_item(call.portal, record, _use_original(call))}


@method("crm.item.update", scope="crm")
def item_update(call: Call) -> dict[str, Any]:
    type_id = _entity_type(call)
    item_id = _item_id(call)
    original = _use_original(call)
    fields = _original_fields(call.portal, _fields(call), original)
    user = common.acting_user(call)
    if type_id == INVOICE:
        update_invoice(call.portal, item_id, fields, user)
        return {"item": invoice_item(call.portal, invoice_table(call.portal)[item_id])}
    record = deals.table(call.portal).get(item_id)
    if record is None:
        raise NotFound("Item not found")
    update_deal_item(call.portal, item_id, fields, user)
    return {"item": deal_item(call.portal, record, original)}


def update_deal_item(
    portal: Portal, deal_id: int, fields: dict[str, Any], user_id: int | None = None
) -> None:
    """crm.item.update of a deal: a new categoryId moves funnels (ONCRMDEALMOVETOCATEGORY);
    a stageId outside the deal's funnel is an error."""
    record = deals.require_deal(portal, deal_id)
    deal_fields = _deal_fields_from_item(portal, fields)
    category = record["CATEGORY_ID"]
    if deal_fields.get("CATEGORY_ID") not in (None, ""):
        try:
            category = common.to_int(deal_fields["CATEGORY_ID"])
        except (TypeError, ValueError):
            category = None
        if category is None or categories.get_category(portal, DEAL, category) is None:
            raise FieldValueNotValid('Invalid value for field "categoryId"')
    stage_id = deal_fields.get("STAGE_ID")
    if stage_id and deals._stage_in(portal, category, stage_id) is None:
        raise FieldValueNotValid('Invalid value for field "stageId"')
    deal_fields.pop("CATEGORY_ID", None)
    if category != record["CATEGORY_ID"]:
        deal_fields.pop("STAGE_ID", None)
        deals.change_category(portal, deal_id, category, stage_id, user_id, deal_fields)
    else:
        deals.update_deal(portal, deal_id, deal_fields, user_id)


@method("crm.item.delete", scope="crm")
def item_delete(call: Call) -> list[Any]:
    type_id = _entity_type(call)
    item_id = _item_id(call)
    user = common.acting_user(call)
    if type_id == INVOICE:
        if invoice_table(call.portal).pop(item_id, None) is None:
            raise NotFound("Item not found")
        common.crm_event(
            call.portal,
            "ONCRMDYNAMICITEMDELETE_31",
            {"ID": str(item_id), "ENTITY_TYPE_ID": str(INVOICE)},
            user,
        )
        return []
    if item_id not in deals.table(call.portal):
        raise NotFound("Item not found")
    deals.delete_deal(call.portal, item_id, user)
    return []


def _select_names(select: Any, all_names: list[str]) -> list[str] | None:
    if isinstance(select, dict):
        select = list(select.values())
    if isinstance(select, str):
        select = [select]
    if not select or "*" in select:
        return None
    names = [str(s) for s in select]
    return names if "id" in names else ["id", *names]


@method("crm.item.list", scope="crm")
def item_list(call: Call) -> Page:
    type_id = _entity_type(call)
    original = _use_original(call)
    portal = call.portal

    def unknown(key: str) -> None:
        field = query.split_op(key)[1]
        raise InvalidArgValue(f"Invalid filter: field '{field}' is not allowed in filter")

    if type_id == INVOICE:
        rows, total, nxt = query.run_list(
            portal,
            invoice_table(portal).values(),
            filter_=call.get("filter"),
            order=call.get("order"),
            start=call.get("start"),
            resolve=_invoice_resolve,
            kinds=lambda f: INVOICE_FIELDS.get(f, "str"),
            id_field="id",
            unknown=unknown,
        )
        select = _select_names(call.get("select"), list(INVOICE_FIELDS))
        return Page([invoice_item(portal, r, select) for r in rows], total, nxt, "items")
    resolve = _deal_resolver(portal, original)
    order = call.get("order")
    if isinstance(order, dict):
        for key, direction in order.items():
            if resolve(str(key)) is None:
                raise InvalidArgValue(f"Invalid order: field '{key}' is not allowed in order")
            if str(direction).upper() not in ("ASC", "DESC"):
                raise InvalidArgValue(
                    "Invalid order: allowed sort directions are ASC, DESC. But got "
                    f"'{direction}' for field '{key}'"
                )
    rows, total, nxt = query.run_list(
        portal,
        deals.table(portal).values(),
        filter_=call.get("filter"),
        order=order,
        start=call.get("start"),
        resolve=resolve,
        kinds=lambda f: deals.kind_of(portal, f),
        unknown=unknown,
    )
    select = _select_names(call.get("select"), [])
    return Page([deal_item(portal, r, original, select) for r in rows], total, nxt, "items")


@method("crm.item.fields", scope="crm")
def item_fields(call: Call) -> dict[str, Any]:
    type_id = _entity_type(call)
    result: dict[str, Any] = {}
    if type_id == INVOICE:
        for name, kind in INVOICE_FIELDS.items():
            result[name] = {
                "type": kind,
                "isRequired": False,
                "isReadOnly": name == "id",
                "isImmutable": False,
                "isMultiple": kind.startswith("list"),
                "isDynamic": False,
                "title": name,
                "upperName": _upper(name),
            }
        return {"fields": result}
    described = deals.fields_description(call.portal, "DEAL", deals.FIELD_TYPES)
    uf_names = deal_uf_map(call.portal, _use_original(call))
    for upper, info in described.items():
        name = DEAL_ITEM_FIELDS.get(upper) or uf_names.get(upper)
        if name is None:
            continue
        result[name] = {**info, "upperName": upper}
    return {"fields": result}


def _upper(name: str) -> str:
    out = ""
    for ch in name:
        out += "_" + ch if ch.isupper() else ch.upper()
    return out


def move_invoice(portal: Portal, item_id: int, stage_id: str, user_id: int | None = None) -> None:
    """Put a smart invoice in a stage of its funnel (used by automation and the admin surface)."""
    update_invoice(portal, item_id, {"stageId": stage_id}, user_id)


__all__ = [
    "create_invoice",
    "deal_item",
    "move_invoice",
    "update_deal_item",
    "update_invoice",
    "signals",
]
