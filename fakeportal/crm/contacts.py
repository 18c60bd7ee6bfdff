"""Contacts and companies: crm.contact.* and crm.company.* (add/get/list/update/delete/fields).

Both print every scalar as a string, like crm.deal.*. PHONE/EMAIL/WEB/IM are multifields:
lists of ``{ID, VALUE_TYPE, VALUE, TYPE_ID}``; on update an item with ``ID`` changes (or with
an empty VALUE / ``DELETE: Y`` removes) that value, an item without ``ID`` adds one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fakeportal.api import Call, Page, method
from fakeportal.exceptions import Uncoded
from fakeportal.state import Portal

from . import common, query, userfields
from .deals import _field_info, fields_description

MULTIFIELDS = ("PHONE", "EMAIL", "WEB", "IM")
ADDRESS = (
    "ADDRESS",
    "ADDRESS_2",
    "ADDRESS_CITY",
    "ADDRESS_POSTAL_CODE",
    "ADDRESS_REGION",
    "ADDRESS_PROVINCE",
    "ADDRESS_COUNTRY",
    "ADDRESS_COUNTRY_CODE",
)
UTM = ("UTM_SOURCE", "UTM_MEDIUM", "UTM_CAMPAIGN", "UTM_CONTENT", "UTM_TERM")


@dataclass(frozen=True)
class Entity:
    """What differs between contacts and companies."""

    name: str  # CONTACT / COMPANY
    table: str
    fields: tuple[str, ...]  # crm.<entity>.get order, before the multifields
    writable: tuple[str, ...]
    kinds: dict[str, str]
    title_field: str


CONTACT = Entity(
    name="CONTACT",
    table="contact",
    fields=(
        "ID",
        "POST",
        "COMMENTS",
        "HONORIFIC",
        "NAME",
        "SECOND_NAME",
        "LAST_NAME",
        "PHOTO",
        "LEAD_ID",
        "TYPE_ID",
        "SOURCE_ID",
        "SOURCE_DESCRIPTION",
        "COMPANY_ID",
        "BIRTHDATE",
        "EXPORT",
        "HAS_PHONE",
        "HAS_EMAIL",
        "HAS_IMOL",
        "DATE_CREATE",
        "DATE_MODIFY",
        "ASSIGNED_BY_ID",
        "CREATED_BY_ID",
        "MODIFY_BY_ID",
        "OPENED",
        "ORIGINATOR_ID",
        "ORIGIN_ID",
        "ORIGIN_VERSION",
        "FACE_ID",
        "LAST_ACTIVITY_TIME",
        *ADDRESS,
        *UTM,
        "LAST_ACTIVITY_BY",
    ),
    writable=(
        "POST",
        "COMMENTS",
        "HONORIFIC",
        "NAME",
        "SECOND_NAME",
        "LAST_NAME",
        "TYPE_ID",
        "SOURCE_ID",
        "SOURCE_DESCRIPTION",
        "COMPANY_ID",
        "BIRTHDATE",
        "EXPORT",
        "ASSIGNED_BY_ID",
        "OPENED",
        "ORIGINATOR_ID",
        "ORIGIN_ID",
        "ORIGIN_VERSION",
        *ADDRESS,
        *UTM,
    ),
    kinds={
        "ID": "int",
        "LEAD_ID": "int",
        "COMPANY_ID": "int",
        "BIRTHDATE": "date",
        "DATE_CREATE": "datetime",
        "DATE_MODIFY": "datetime",
        "LAST_ACTIVITY_TIME": "datetime",
        "ASSIGNED_BY_ID": "int",
        "CREATED_BY_ID": "int",
        "MODIFY_BY_ID": "int",
        "LAST_ACTIVITY_BY": "int",
        "FACE_ID": "int",
    },
    title_field="NAME",
)

COMPANY = Entity(
    name="COMPANY",
    table="company",
    fields=(
        "ID",
        "COMPANY_TYPE",
        "TITLE",
        "LOGO",
        "LEAD_ID",
        "HAS_PHONE",
        "HAS_EMAIL",
        "HAS_IMOL",
        "ASSIGNED_BY_ID",
        "CREATED_BY_ID",
        "MODIFY_BY_ID",
        "BANKING_DETAILS",
        "INDUSTRY",
        "REVENUE",
        "CURRENCY_ID",
        "EMPLOYEES",
        "COMMENTS",
        "DATE_CREATE",
        "DATE_MODIFY",
        "OPENED",
        "IS_MY_COMPANY",
        "ORIGINATOR_ID",
        "ORIGIN_ID",
        "ORIGIN_VERSION",
        "LAST_ACTIVITY_TIME",
        *ADDRESS,
        *UTM,
        "LAST_ACTIVITY_BY",
    ),
    writable=(
        "COMPANY_TYPE",
        "TITLE",
        "ASSIGNED_BY_ID",
        "BANKING_DETAILS",
        "INDUSTRY",
        "REVENUE",
        "CURRENCY_ID",
        "EMPLOYEES",
        "COMMENTS",
        "OPENED",
        "IS_MY_COMPANY",
        "ORIGINATOR_ID",
        "ORIGIN_ID",
        "ORIGIN_VERSION",
        *ADDRESS,
        *UTM,
    ),
    kinds={
        "ID": "int",
        "LEAD_ID": "int",
        "REVENUE": "money",
        "DATE_CREATE": "datetime",
        "DATE_MODIFY": "datetime",
        "LAST_ACTIVITY_TIME": "datetime",
        "ASSIGNED_BY_ID": "int",
        "CREATED_BY_ID": "int",
        "MODIFY_BY_ID": "int",
        "LAST_ACTIVITY_BY": "int",
    },
    title_field="TITLE",
)

YN_FIELDS = {"EXPORT", "OPENED", "IS_MY_COMPANY"}


def _kind(portal: Portal, entity: Entity, field: str) -> str:
    if field.startswith("UF_"):
        row = userfields.definition(portal, entity.name, field)
        return userfields.kind(row) if row else "str"
    if field.startswith("_") and field[1:] in MULTIFIELDS:
        return "str"
    return entity.kinds.get(field, "str")


# multifields ------------------------------------------------------------------------------
def _multi_items(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list):
        value = [value] if value else []
    items = []
    for item in value:
        if isinstance(item, dict):
            items.append(common.upper_keys(item))
        elif item not in (None, ""):
            items.append({"VALUE": item})
    return items


def _apply_multifield(portal: Portal, record: dict[str, Any], type_id: str, value: Any) -> None:
    current: list[dict[str, Any]] = record.setdefault(type_id, [])
    for item in _multi_items(value):
        item_id = common.positive_id(item.get("ID"))
        existing = next((m for m in current if item_id is not None and m["ID"] == item_id), None)
        text = "" if item.get("VALUE") is None else str(item.get("VALUE")).strip()
        if existing is not None:
            if not text or common.to_yn(item.get("DELETE")) == "Y":
                current.remove(existing)
            else:
                existing["VALUE"] = text
                if item.get("VALUE_TYPE"):
                    existing["VALUE_TYPE"] = str(item["VALUE_TYPE"]).upper()
            continue
        if not text:
            continue
        current.append(
            {
                "ID": portal.next_id("multifield", start=1001),
                "VALUE_TYPE": str(item.get("VALUE_TYPE") or "WORK").upper(),
                "VALUE": text,
                "TYPE_ID": type_id,
            }
        )
    record["_" + type_id] = [m["VALUE"] for m in current]


def _multi_view(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "ID": str(m["ID"]),
            "VALUE_TYPE": m["VALUE_TYPE"],
            "VALUE": m["VALUE"],
            "TYPE_ID": m["TYPE_ID"],
        }
        for m in items
    ]


# model ------------------------------------------------------------------------------------
def _apply(portal: Portal, entity: Entity, record: dict[str, Any], fields: dict[str, Any]) -> None:
    for key in entity.writable:
        if key not in fields:
            continue
        value = fields[key]
        kind = entity.kinds.get(key, "str")
        try:
            if key in YN_FIELDS:
                record[key] = common.to_yn(value, record.get(key) or "N")
            elif kind == "int":
                record[key] = common.to_int(value)
            elif kind == "money":
                record[key] = common.to_float(value)
            elif kind == "date":
                record[key] = common.parse_date(portal, value)
            else:
                record[key] = None if value is None else str(value)
        except (TypeError, ValueError):
            continue
    for type_id in MULTIFIELDS:
        if type_id in fields:
            _apply_multifield(portal, record, type_id, fields[type_id])
    record["HAS_PHONE"] = "Y" if record.get("PHONE") else "N"
    record["HAS_EMAIL"] = "Y" if record.get("EMAIL") else "N"
    record["HAS_IMOL"] = "Y" if record.get("IM") else "N"
    for key, value in fields.items():
        if key.startswith("UF_CRM_"):
            row = userfields.definition(portal, entity.name, key)
            if row is not None:
                record[row["FIELD_NAME"]] = userfields.coerce(portal, row, value)


def create(
    portal: Portal, entity: Entity, fields: dict[str, Any], user_id: int | None = None
) -> int:
    fields = common.upper_keys(fields)
    record_id = portal.next_id(entity.table)
    actor = user_id if user_id is not None else 1
    now = common.now(portal)
    record: dict[str, Any] = {name: None for name in entity.fields}
    record.update(
        {
            "ID": record_id,
            "DATE_CREATE": now,
            "DATE_MODIFY": now,
            "ASSIGNED_BY_ID": actor,
            "CREATED_BY_ID": actor,
            "MODIFY_BY_ID": actor,
            "OPENED": "Y",
            "LAST_ACTIVITY_TIME": now,
            "LAST_ACTIVITY_BY": actor,
        }
    )
    if entity is CONTACT:
        record.update({"EXPORT": "Y", "TYPE_ID": "CLIENT", "SOURCE_ID": "CALL", "COMPANY_ID": 0})
    else:
        record.update(
            {"COMPANY_TYPE": "CUSTOMER", "IS_MY_COMPANY": "N", "REVENUE": 0.0, "CURRENCY_ID": None}
        )
    for type_id in MULTIFIELDS:
        record[type_id] = []
    _apply(portal, entity, record, fields)
    if entity is COMPANY and not record.get("TITLE"):
        raise Uncoded("The field 'Company Name' is required.")
    if entity is CONTACT and not any(record.get(k) for k in ("NAME", "LAST_NAME", "SECOND_NAME")):
        record["NAME"] = "Untitled" if portal.language != "ru" else "Без имени"
    portal.table(entity.table)[record_id] = record
    common.crm_event(portal, f"ONCRM{entity.name}ADD", {"ID": str(record_id)}, user_id)
    return record_id


def require(portal: Portal, entity: Entity, record_id: Any) -> dict[str, Any]:
    key = common.positive_id(record_id)
    if key is None:
        raise Uncoded("ID is not defined or invalid")
    record = portal.table(entity.table).get(key)
    if record is None:
        raise Uncoded("Not found")
    return record


def update(
    portal: Portal, entity: Entity, record_id: Any, fields: dict[str, Any], user_id: int | None
) -> bool:
    record = require(portal, entity, record_id)
    _apply(portal, entity, record, common.upper_keys(fields))
    if entity is COMPANY and not record.get("TITLE"):
        raise Uncoded("The field 'Company Name' is required.")
    record["DATE_MODIFY"] = common.now(portal)
    if user_id is not None:
        record["MODIFY_BY_ID"] = user_id
    common.crm_event(portal, f"ONCRM{entity.name}UPDATE", {"ID": str(record["ID"])}, user_id)
    return True


def delete(portal: Portal, entity: Entity, record_id: Any, user_id: int | None) -> bool:
    record = require(portal, entity, record_id)
    del portal.table(entity.table)[record["ID"]]
    if entity is CONTACT:
        from .deals import contact_bindings, set_bindings

        for deal in portal.table("deal").values():
            bindings = [b for b in contact_bindings(deal) if b["CONTACT_ID"] != record["ID"]]
            if len(bindings) != len(deal.get("_CONTACTS") or []):
                set_bindings(deal, bindings)
    common.crm_event(portal, f"ONCRM{entity.name}DELETE", {"ID": str(record["ID"])}, user_id)
    return True


def view(
    portal: Portal, entity: Entity, record: dict[str, Any], fields: list[str] | None = None
) -> dict[str, Any]:
    """The crm.<entity>.get form: strings, multifields only when they have values."""
    if fields is None:
        fields = (
            list(entity.fields) + list(MULTIFIELDS) + userfields.field_names(portal, entity.name)
        )
    result: dict[str, Any] = {}
    for name in fields:
        if name in MULTIFIELDS:
            if record.get(name):
                result[name] = _multi_view(record[name])
            continue
        kind = _kind(portal, entity, name)
        result[name] = common.str_scalar(
            record.get(name), "money" if kind == "money" else kind, portal
        )
    return result


def resolve(portal: Portal, entity: Entity, name: str) -> str | None:
    upper = name.strip().upper()
    if upper in entity.fields:
        return upper
    if upper in MULTIFIELDS:
        return "_" + upper
    if upper.startswith("UF_") and userfields.definition(portal, entity.name, upper):
        return upper
    return None


def _select_resolve(portal: Portal, entity: Entity, name: str) -> str | None:
    upper = name.strip().upper()
    return upper if upper in MULTIFIELDS else resolve(portal, entity, name)


# public helpers ---------------------------------------------------------------------------
def create_contact(portal: Portal, fields: dict[str, Any], user_id: int | None = None) -> int:
    """Create a contact as crm.contact.add does (``PHONE: [{"VALUE": ..}]`` etc.)."""
    return create(portal, CONTACT, fields, user_id)


def create_company(portal: Portal, fields: dict[str, Any], user_id: int | None = None) -> int:
    return create(portal, COMPANY, fields, user_id)


def get_contact(portal: Portal, contact_id: int) -> dict[str, Any]:
    """A contact as crm.contact.get returns it."""
    return view(portal, CONTACT, require(portal, CONTACT, contact_id))


def get_company(portal: Portal, company_id: int) -> dict[str, Any]:
    return view(portal, COMPANY, require(portal, COMPANY, company_id))


FIELD_TYPES = {
    "CONTACT": {
        **{name: ("string", {}) for name in CONTACT.fields},
        "ID": ("integer", {"isReadOnly": True}),
        "TYPE_ID": ("crm_status", {"statusType": "CONTACT_TYPE"}),
        "SOURCE_ID": ("crm_status", {"statusType": "SOURCE"}),
        "COMPANY_ID": ("crm_company", {"isDeprecated": True}),
        "BIRTHDATE": ("date", {}),
        "DATE_CREATE": ("datetime", {"isReadOnly": True}),
        "DATE_MODIFY": ("datetime", {"isReadOnly": True}),
        "ASSIGNED_BY_ID": ("user", {}),
        "CREATED_BY_ID": ("user", {"isReadOnly": True}),
        "MODIFY_BY_ID": ("user", {"isReadOnly": True}),
        "PHONE": ("crm_multifield", {"isMultiple": True}),
        "EMAIL": ("crm_multifield", {"isMultiple": True}),
        "WEB": ("crm_multifield", {"isMultiple": True}),
        "IM": ("crm_multifield", {"isMultiple": True}),
    },
    "COMPANY": {
        **{name: ("string", {}) for name in COMPANY.fields},
        "ID": ("integer", {"isReadOnly": True}),
        "COMPANY_TYPE": ("crm_status", {"statusType": "COMPANY_TYPE"}),
        "REVENUE": ("double", {}),
        "CURRENCY_ID": ("crm_currency", {}),
        "DATE_CREATE": ("datetime", {"isReadOnly": True}),
        "DATE_MODIFY": ("datetime", {"isReadOnly": True}),
        "ASSIGNED_BY_ID": ("user", {}),
        "CREATED_BY_ID": ("user", {"isReadOnly": True}),
        "MODIFY_BY_ID": ("user", {"isReadOnly": True}),
        "TITLE": ("string", {"isRequired": True}),
        "PHONE": ("crm_multifield", {"isMultiple": True}),
        "EMAIL": ("crm_multifield", {"isMultiple": True}),
        "WEB": ("crm_multifield", {"isMultiple": True}),
        "IM": ("crm_multifield", {"isMultiple": True}),
    },
}


# REST -------------------------------------------------------------------------------------
def _register(entity: Entity) -> None:
    lower = entity.name.lower()

    def add(call: Call) -> int:
        return create(call.portal, entity, common.require_fields(call), common.acting_user(call))

    def get(call: Call) -> dict[str, Any]:
        return view(call.portal, entity, require(call.portal, entity, call.get("id")))

    def upd(call: Call) -> bool:
        require(call.portal, entity, call.get("id"))
        fields = common.require_fields(call)
        return update(call.portal, entity, call.get("id"), fields, common.acting_user(call))

    def dele(call: Call) -> bool:
        return delete(call.portal, entity, call.get("id"), common.acting_user(call))

    def lst(call: Call) -> Page:
        portal = call.portal
        rows, total, nxt = query.run_list(
            portal,
            portal.table(entity.table).values(),
            filter_=call.get("filter"),
            order=call.get("order"),
            start=call.get("start"),
            resolve=lambda n: resolve(portal, entity, n),
            kinds=lambda f: _kind(portal, entity, f),
            unknown=lambda k: portal.unknown_params.append((call.method, f"filter[{k}]")),
        )
        chosen = query.select_fields(
            call.get("select"),
            entity.fields,
            userfields.field_names(portal, entity.name),
            lambda n: _select_resolve(portal, entity, n),
            default=("*",),
        )
        return Page([view(portal, entity, r, chosen) for r in rows], total, nxt)

    def flds(call: Call) -> dict[str, Any]:
        result = fields_description(call.portal, entity.name, FIELD_TYPES[entity.name])
        return result

    method(f"crm.{lower}.add", scope="crm", validates=True)(add)
    method(f"crm.{lower}.get", scope="crm", validates=True)(get)
    method(f"crm.{lower}.update", scope="crm", validates=True)(upd)
    method(f"crm.{lower}.delete", scope="crm", validates=True)(dele)
    method(f"crm.{lower}.list", scope="crm")(lst)
    method(f"crm.{lower}.fields", scope="crm")(flds)


_register(CONTACT)
_register(COMPANY)

__all__ = ["_field_info", "create_company", "create_contact", "get_company", "get_contact"]
