"""User fields (UF_CRM_*) of deals, contacts and companies: crm.<entity>.userfield.*.

``FIELD_NAME`` gets the ``UF_CRM_`` prefix. Values are stored on the records under the
full upper-case name, coerced to the field's type (a list for multiple fields).
"""

from __future__ import annotations

import re
from typing import Any

from fakeportal.api import Call, Page, method
from fakeportal.exceptions import CoreError, ErrorNotFound, Uncoded
from fakeportal.state import Portal

from . import common, query

ENTITIES = {"DEAL": "CRM_DEAL", "CONTACT": "CRM_CONTACT", "COMPANY": "CRM_COMPANY"}
USER_TYPES = {
    "string",
    "integer",
    "double",
    "boolean",
    "date",
    "datetime",
    "enumeration",
    "money",
    "url",
    "address",
    "employee",
    "crm",
    "crm_status",
    "file",
    "iblock_section",
    "iblock_element",
    "resourcebooking",
}
KIND_BY_TYPE = {
    "integer": "int",
    "double": "float",
    "boolean": "int",
    "date": "date",
    "datetime": "datetime",
    "enumeration": "int",
    "employee": "int",
    "file": "int",
}
_NAME_OK = re.compile(r"^[A-Z0-9_]+$")


def table(portal: Portal) -> dict[int, dict[str, Any]]:
    return portal.table("userfield")


def user_fields(portal: Portal, entity: str) -> list[dict[str, Any]]:
    """The entity's user field definitions ("DEAL", "CONTACT", "COMPANY"), by SORT then ID."""
    entity_id = ENTITIES[entity.upper()]
    rows = [r for r in table(portal).values() if r["ENTITY_ID"] == entity_id]
    return sorted(rows, key=lambda r: (r["SORT"], r["ID"]))


def field_names(portal: Portal, entity: str) -> list[str]:
    return [r["FIELD_NAME"] for r in user_fields(portal, entity)]


def definition(portal: Portal, entity: str, name: str) -> dict[str, Any] | None:
    for row in user_fields(portal, entity):
        if row["FIELD_NAME"] == name.upper():
            return row
    return None


def kind(row: dict[str, Any]) -> str:
    return KIND_BY_TYPE.get(row["USER_TYPE_ID"], "str")


def coerce(portal: Portal, row: dict[str, Any], value: Any) -> Any:
    """A wire value stored in the field's type (lists for multiple fields)."""
    if row["MULTIPLE"] == "Y":
        if value is None or value == "":
            return []
        items = list(value.values()) if isinstance(value, dict) else value
        if not isinstance(items, list):
            items = [items]
        return [v for v in (_one(portal, row, v) for v in items) if v is not None]
    if isinstance(value, list):
        value = value[0] if value else None
    return _one(portal, row, value)


def _one(portal: Portal, row: dict[str, Any], value: Any) -> Any:
    if value is None or value == "":
        return None
    kind_ = kind(row)
    try:
        if row["USER_TYPE_ID"] == "boolean":
            return 1 if common.to_yn(value, "N") == "Y" else 0
        if kind_ == "int":
            return common.to_int(value)
        if kind_ == "float":
            return common.to_float(value)
        if kind_ == "date":
            return common.parse_date(portal, value)
        if kind_ == "datetime":
            return common.parse_datetime(portal, value)
    except (TypeError, ValueError):
        return None
    return str(value)


def item_name(name: str) -> str:
    """``UF_CRM_1721244707107`` -> ``ufCrm_1721244707107``; ``UF_CRM_HELLO`` -> ``ufCrmHello``."""
    rest = name.upper().removeprefix("UF_CRM_")
    if rest[:1].isdigit():
        return "ufCrm_" + rest
    return "ufCrm" + common.camel("X_" + rest)[1:]


def add_user_field(
    portal: Portal,
    entity: str,
    name: str,
    user_type: str = "string",
    *,
    label: str | None = None,
    multiple: bool = False,
    mandatory: bool = False,
    settings: dict[str, Any] | None = None,
    list_values: list[Any] | None = None,
    sort: int = 100,
    xml_id: str | None = None,
) -> int:
    """Create a user field; ``name`` with or without ``UF_CRM_``. Returns its ID.

    Raises the portal's errors (``CoreError``, ``Uncoded``) for bad names or types.
    """
    entity_id = ENTITIES[entity.upper()]
    name = str(name or "").strip().upper()
    if not name:
        raise Uncoded("The 'FIELD_NAME' field is not found.")
    full = name if name.startswith("UF_CRM_") else "UF_CRM_" + name
    if len(full) > 50:
        raise CoreError("Field name is too long (more than 50 characters).")
    if not _NAME_OK.match(full):
        raise CoreError(
            "Field name contains invalid characters. Allowed characters are: A-Z, 0-9 and _."
        )
    if not user_type:
        raise Uncoded("The 'USER_TYPE_ID' field is not found.")
    if user_type not in USER_TYPES:
        raise CoreError("Incorrect custom type specified.")
    if any(r["ENTITY_ID"] == entity_id and r["FIELD_NAME"] == full for r in table(portal).values()):
        raise CoreError(f"Field {full} already exists.")
    field_id = portal.next_id("userfield", start=101)
    row: dict[str, Any] = {
        "ID": field_id,
        "ENTITY_ID": entity_id,
        "FIELD_NAME": full,
        "USER_TYPE_ID": user_type,
        "XML_ID": xml_id,
        "SORT": sort,
        "MULTIPLE": "Y" if multiple else "N",
        "MANDATORY": "Y" if mandatory else "N",
        "SHOW_FILTER": "N",
        "SHOW_IN_LIST": "Y",
        "EDIT_IN_LIST": "Y",
        "IS_SEARCHABLE": "N",
        "SETTINGS": dict(settings or {}),
        "EDIT_FORM_LABEL": label or full,
        "LIST_COLUMN_LABEL": label or full,
        "LIST_FILTER_LABEL": label or full,
        "ERROR_MESSAGE": None,
        "HELP_MESSAGE": None,
    }
    if user_type == "enumeration":
        row["LIST"] = []
        _set_list(portal, row, list_values or [])
    table(portal)[field_id] = row
    return field_id


def _set_list(portal: Portal, row: dict[str, Any], items: Any) -> None:
    """Apply LIST items: new ones added, ``ID`` ones updated, ``DEL: Y`` ones removed."""
    if isinstance(items, dict):
        items = list(items.values())
    for index, item in enumerate(items or []):
        if not isinstance(item, dict):
            item = {"VALUE": item}
        item = common.upper_keys(item)
        existing = None
        if item.get("ID"):
            existing = next((e for e in row["LIST"] if str(e["ID"]) == str(item["ID"])), None)
        if existing is not None:
            if common.to_yn(item.get("DEL")) == "Y":
                row["LIST"].remove(existing)
                continue
            for key in ("VALUE", "SORT", "DEF", "XML_ID"):
                if key in item:
                    existing[key] = str(item[key])
            continue
        if not item.get("VALUE"):
            continue
        xml_id = str(item.get("XML_ID") or f"{row['FIELD_NAME'].lower()}_{index}")
        if any(e["XML_ID"] == xml_id for e in row["LIST"]):
            raise CoreError(f"List item with value XML_ID={xml_id} already exists.")
        row["LIST"].append(
            {
                "ID": str(portal.next_id("userfield_enum", start=1001)),
                "SORT": str(item.get("SORT") or (len(row["LIST"]) + 1) * 10),
                "VALUE": str(item["VALUE"]),
                "DEF": common.to_yn(item.get("DEF"), "N"),
                "XML_ID": xml_id,
            }
        )


def view(row: dict[str, Any]) -> dict[str, Any]:
    """The crm.*.userfield.get shape (scalars as strings)."""
    result = {
        k: (v if isinstance(v, (dict, list)) or v is None else str(v)) for k, v in row.items()
    }
    return result


def _register(entity: str) -> None:
    lower = entity.lower()
    entity_id = ENTITIES[entity]

    def _row(call: Call) -> dict[str, Any]:
        field_id = common.positive_id(call.get("id"))
        if field_id is None:
            raise Uncoded("ID is not defined or invalid")
        row = table(call.portal).get(field_id)
        if row is None or row["ENTITY_ID"] != entity_id:
            raise ErrorNotFound(f"The entity with ID '{field_id}' is not found")
        return row

    def uf_add(call: Call) -> int:
        fields = common.upper_keys(common.require_fields(call))
        return add_user_field(
            call.portal,
            entity,
            fields.get("FIELD_NAME") or "",
            str(fields.get("USER_TYPE_ID") or ""),
            label=fields.get("LABEL") or fields.get("EDIT_FORM_LABEL"),
            multiple=common.to_yn(fields.get("MULTIPLE"), "N") == "Y",
            mandatory=common.to_yn(fields.get("MANDATORY"), "N") == "Y",
            settings=fields.get("SETTINGS") if isinstance(fields.get("SETTINGS"), dict) else None,
            list_values=fields.get("LIST"),
            sort=common.to_int(fields.get("SORT")) or 100,
            xml_id=fields.get("XML_ID"),
        )

    def uf_get(call: Call) -> dict[str, Any]:
        return view(_row(call))

    def uf_list(call: Call) -> Page:
        rows = [r for r in table(call.portal).values() if r["ENTITY_ID"] == entity_id]
        predicate = query.compile_filter(
            call.portal,
            call.get("filter"),
            lambda n: n.upper(),
            lambda f: "int" if f in ("ID", "SORT") else "str",
        )
        rows = query.apply_order(
            call.portal,
            [r for r in rows if predicate(r)],
            call.get("order") or {"SORT": "ASC"},
            lambda n: n.upper(),
            lambda f: "int" if f in ("ID", "SORT") else "str",
        )
        return Page([view(r) for r in rows], len(rows), None)

    def uf_update(call: Call) -> bool:
        row = _row(call)
        fields = common.upper_keys(common.require_fields(call))
        for key in (
            "MANDATORY",
            "SHOW_FILTER",
            "SHOW_IN_LIST",
            "EDIT_IN_LIST",
            "IS_SEARCHABLE",
        ):
            if key in fields:
                row[key] = common.to_yn(fields[key], row[key])
        for key in (
            "XML_ID",
            "EDIT_FORM_LABEL",
            "LIST_COLUMN_LABEL",
            "LIST_FILTER_LABEL",
            "ERROR_MESSAGE",
            "HELP_MESSAGE",
        ):
            if key in fields:
                row[key] = fields[key]
        if "LABEL" in fields:
            for key in ("EDIT_FORM_LABEL", "LIST_COLUMN_LABEL", "LIST_FILTER_LABEL"):
                row[key] = fields["LABEL"]
        if "SORT" in fields:
            row["SORT"] = common.to_int(fields["SORT"]) or row["SORT"]
        if isinstance(fields.get("SETTINGS"), dict):
            row["SETTINGS"].update(fields["SETTINGS"])
        if "LIST" in fields and row["USER_TYPE_ID"] == "enumeration":
            _set_list(call.portal, row, fields["LIST"])
        return True

    def uf_delete(call: Call) -> bool:
        row = _row(call)
        del table(call.portal)[row["ID"]]
        record_table = call.portal.table(lower)
        for record in record_table.values():
            record.pop(row["FIELD_NAME"], None)
        return True

    method(f"crm.{lower}.userfield.add", scope="crm", validates=True)(uf_add)
    method(f"crm.{lower}.userfield.get", scope="crm", validates=True)(uf_get)
    method(f"crm.{lower}.userfield.list", scope="crm")(uf_list)
    method(f"crm.{lower}.userfield.update", scope="crm", validates=True)(uf_update)
    method(f"crm.{lower}.userfield.delete", scope="crm", validates=True)(uf_delete)


for _entity in ENTITIES:
    _register(_entity)
