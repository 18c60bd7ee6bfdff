"""Funnels (categories) and stages (crm.status rows) of deals and smart invoices.

Deal funnel 0 is the default one; its stages are bare (``NEW``, ``WON``); funnel N>0 stages
are ``C<N>:NEW``. Smart invoice (entityTypeId 31) stages are ``DT31_<cat>:N`` / ``:P`` (paid,
success) / ``:D`` (failure). Categories are kept per entity type; stages live in the
``status`` table with the other reference lists (deal types, sources).
"""

from __future__ import annotations

from typing import Any

from fakeportal.api import Call, Page, method
from fakeportal.exceptions import CodeZero, CoreError, EntityTypeNotSupported, NotFound, Uncoded
from fakeportal.state import Portal

from . import common, query

DEAL = 2
INVOICE = 31
CATEGORY_TYPES = (DEAL, INVOICE)

SEMANTIC_CODES = {"process": None, "success": "S", "failure": "F", "apology": "F"}
EXTRA_BY_CODE = {None: "process", "S": "success", "F": "failure"}

DEFAULT_DEAL_STAGES: list[tuple[str, str, str, str]] = [
    # (suffix, name, extra semantics, colour)
    ("NEW", "New", "process", "#39A8EF"),
    ("PREPARATION", "Preparing documents", "process", "#2FC6F6"),
    ("PREPAYMENT_INVOICE", "Prepayment invoice", "process", "#55D0E0"),
    ("EXECUTING", "In progress", "process", "#47E4C2"),
    ("FINAL_INVOICE", "Final invoice", "process", "#FFA900"),
    ("WON", "Deal won", "success", "#7BD500"),
    ("LOSE", "Deal lost", "failure", "#FF5752"),
    ("APOLOGY", "Analyze failure", "apology", "#FF5752"),
]
SYSTEM_SUFFIXES = {"NEW", "WON", "LOSE"}

DEFAULT_INVOICE_STAGES: list[tuple[str, str, str, str]] = [
    ("N", "New", "process", "#22B9FF"),
    ("S", "Sent to client", "process", "#55D0E0"),
    ("P", "Paid", "success", "#7BD500"),
    ("D", "Unpaid", "failure", "#FF5752"),
]
INVOICE_SYSTEM = {"N", "P", "D"}


# names ------------------------------------------------------------------------------------
def stage_entity_id(entity_type_id: int, category_id: int) -> str:
    if entity_type_id == DEAL:
        return "DEAL_STAGE" if category_id == 0 else f"DEAL_STAGE_{category_id}"
    return f"SMART_INVOICE_STAGE_{category_id}"


def stage_prefix(entity_type_id: int, category_id: int) -> str:
    if entity_type_id == DEAL:
        return "" if category_id == 0 else f"C{category_id}:"
    return f"DT{entity_type_id}_{category_id}:"


def parse_stage_entity(entity_id: str) -> tuple[int, int] | None:
    """``DEAL_STAGE_3`` -> (2, 3); ``SMART_INVOICE_STAGE_1`` -> (31, 1); else None."""
    entity_id = entity_id.upper()
    if entity_id == "DEAL_STAGE":
        return DEAL, 0
    for prefix, type_id in (("DEAL_STAGE_", DEAL), ("SMART_INVOICE_STAGE_", INVOICE)):
        if entity_id.startswith(prefix) and entity_id[len(prefix) :].isdigit():
            return type_id, int(entity_id[len(prefix) :])
    return None


def category_table(portal: Portal, entity_type_id: int) -> dict[int, dict[str, Any]]:
    return portal.table(f"category.{entity_type_id}")


def status_table(portal: Portal) -> dict[int, dict[str, Any]]:
    return portal.table("status")


# stages -----------------------------------------------------------------------------------
def stages(portal: Portal, entity_type_id: int, category_id: int) -> list[dict[str, Any]]:
    """A funnel's stage rows in their order."""
    entity_id = stage_entity_id(entity_type_id, category_id)
    rows = [r for r in status_table(portal).values() if r["ENTITY_ID"] == entity_id]
    return sorted(rows, key=lambda r: (r["SORT"], r["ID"]))


def find_stage(portal: Portal, entity_type_id: int, stage_id: str) -> dict[str, Any] | None:
    """The stage row with this STATUS_ID in any funnel of the entity type."""
    for row in status_table(portal).values():
        parsed = parse_stage_entity(row["ENTITY_ID"])
        if parsed and parsed[0] == entity_type_id and row["STATUS_ID"] == stage_id:
            return row
    return None


def stage_semantic(row: dict[str, Any]) -> str:
    """P (in progress), S (success) or F (failure)."""
    return row["SEMANTICS"] or "P"


def first_stage(portal: Portal, entity_type_id: int, category_id: int) -> str:
    rows = stages(portal, entity_type_id, category_id)
    if not rows:
        raise Uncoded(f"Category {category_id} has no stages")
    return rows[0]["STATUS_ID"]


def add_status(
    portal: Portal,
    entity_id: str,
    status_id: str,
    name: str,
    sort: int,
    *,
    semantics: str | None = None,
    extra: str | None = None,
    color: str | None = None,
    system: bool = False,
) -> int:
    """Store one reference-list row (a stage, a deal type, a source) and return its ID."""
    row_id = portal.next_id("status", start=101)
    parsed = parse_stage_entity(entity_id)
    status_table(portal)[row_id] = {
        "ID": row_id,
        "ENTITY_ID": entity_id,
        "STATUS_ID": status_id,
        "NAME": name,
        "NAME_INIT": name if system else "",
        "SORT": sort,
        "SYSTEM": "Y" if system else "N",
        "CATEGORY_ID": (parsed[1] if parsed and parsed[1] else None),
        "COLOR": color,
        "SEMANTICS": semantics,
        "EXTRA_SEMANTICS": extra or EXTRA_BY_CODE.get(semantics, "process"),
        "_STAGE": parsed is not None,
    }
    return row_id


def _norm_semantics(value: str | None) -> tuple[str | None, str]:
    """A caller's semantics (P/S/F, process/success/failure/apology) -> (code, extra)."""
    text = (value or "").strip()
    low = text.lower()
    if low in SEMANTIC_CODES:
        return SEMANTIC_CODES[low], low
    code = text.upper() or None
    if code == "P":
        code = None
    if code not in (None, "S", "F"):
        raise ValueError(f"unknown stage semantics {value!r}")
    return code, EXTRA_BY_CODE[code]


def add_stages(
    portal: Portal,
    entity_type_id: int,
    category_id: int,
    stage_list: list[tuple[str, str, str | None]] | list[tuple[str, str, str, str]],
    *,
    system: set[str] | None = None,
) -> None:
    """Create a funnel's stages from (suffix, name, semantics[, colour]) tuples."""
    entity_id = stage_entity_id(entity_type_id, category_id)
    prefix = stage_prefix(entity_type_id, category_id)
    for index, spec in enumerate(stage_list):
        suffix, name, sem = spec[0], spec[1], spec[2]
        color = spec[3] if len(spec) > 3 else None  # type: ignore[misc]
        code, extra = _norm_semantics(sem)
        status_id = suffix if suffix.startswith(prefix) else prefix + suffix
        add_status(
            portal,
            entity_id,
            status_id,
            name,
            (index + 1) * 10,
            semantics=code,
            extra=extra,
            color=color or "#ACE9FB",
            system=suffix in (system or set()),
        )


def create_category(
    portal: Portal,
    name: str,
    stages: list[tuple[str, str, str | None]] | None = None,
    *,
    entity_type_id: int = DEAL,
    sort: int = 500,
    is_default: bool = False,
    category_id: int | None = None,
) -> int:
    """Create a funnel and its stages (the portal's default set when ``stages`` is None).

    ``stages`` are ``(status_id_suffix, name, semantics)`` with semantics P/S/F or
    process/success/failure/apology; the ``C<N>:`` prefix is added.
    """
    table = category_table(portal, entity_type_id)
    if category_id is None:
        category_id = portal.next_id(f"category.{entity_type_id}", start=1)
    table[category_id] = {
        "id": category_id,
        "name": name,
        "sort": sort,
        "entityTypeId": entity_type_id,
        "isDefault": "Y" if is_default else "N",
        "originId": "",
        "originatorId": "",
    }
    if entity_type_id == DEAL:
        default_list, system = DEFAULT_DEAL_STAGES, SYSTEM_SUFFIXES
    else:
        default_list, system = DEFAULT_INVOICE_STAGES, INVOICE_SYSTEM
    add_stages(
        portal,
        entity_type_id,
        category_id,
        stages if stages is not None else default_list,
        system=system,
    )
    return category_id


def get_category(portal: Portal, entity_type_id: int, category_id: int) -> dict[str, Any] | None:
    return category_table(portal, entity_type_id).get(category_id)


def category_view(row: dict[str, Any]) -> dict[str, Any]:
    """The crm.category.* shape (the virtual default deal funnel has no origin fields)."""
    view = {k: row[k] for k in ("id", "name", "sort", "entityTypeId", "isDefault")}
    if not (row["entityTypeId"] == DEAL and row["id"] == 0):
        view["originId"] = row["originId"]
        view["originatorId"] = row["originatorId"]
    return view


# REST: crm.category.* ---------------------------------------------------------------------
def _entity_type(call: Call) -> int:
    value = call.get("entityTypeId")
    try:
        type_id = common.to_int(value)
    except (TypeError, ValueError):
        type_id = None
    if type_id in (1, 3, 4, 7):
        raise EntityTypeNotSupported(f"Entity type {type_id} is not supported")
    if type_id not in CATEGORY_TYPES:
        raise NotFound("SPA not found")
    return type_id


def _category_or_404(portal: Portal, type_id: int, value: Any) -> dict[str, Any]:
    try:
        category_id = common.to_int(value)
    except (TypeError, ValueError):
        category_id = None
    row = None if category_id is None else get_category(portal, type_id, category_id)
    if row is None:
        raise NotFound("Element not found")
    return row


def _sorted_categories(portal: Portal, type_id: int) -> list[dict[str, Any]]:
    rows = category_table(portal, type_id).values()
    return sorted(rows, key=lambda r: (r["sort"], r["id"]))


@method("crm.category.list", scope="crm")
def category_list(call: Call) -> Page:
    type_id = _entity_type(call)
    rows = [category_view(r) for r in _sorted_categories(call.portal, type_id)]
    page = query.paginate(rows, call.get("start"), wrap="categories")
    return page


@method("crm.category.get", scope="crm")
def category_get(call: Call) -> dict[str, Any]:
    type_id = _entity_type(call)
    return {"category": category_view(_category_or_404(call.portal, type_id, call.get("id")))}


@method("crm.category.add", scope="crm")
def category_add(call: Call) -> dict[str, Any]:
    type_id = _entity_type(call)
    fields = call.get("fields")
    if not isinstance(fields, dict):
        fields = {}
    name = str(fields.get("name") or "").strip()
    if not name:
        raise CodeZero("Field 'NAME' is required")
    try:
        sort = common.to_int(fields.get("sort")) or 500
    except (TypeError, ValueError):
        sort = 500
    new_id = create_category(call.portal, name, entity_type_id=type_id, sort=sort)
    if common.to_yn(fields.get("isDefault")) == "Y":
        _make_default(call.portal, type_id, new_id)
    return {"category": category_view(get_category(call.portal, type_id, new_id) or {})}


def _make_default(portal: Portal, type_id: int, category_id: int) -> None:
    for row in category_table(portal, type_id).values():
        row["isDefault"] = "Y" if row["id"] == category_id else "N"


@method("crm.category.update", scope="crm")
def category_update(call: Call) -> dict[str, Any]:
    type_id = _entity_type(call)
    row = _category_or_404(call.portal, type_id, call.get("id"))
    fields = call.get("fields")
    if not isinstance(fields, dict):
        fields = {}
    if "name" in fields:
        name = str(fields["name"] or "").strip()
        if not name:
            raise CodeZero("Field 'NAME' is required")
        row["name"] = name
    if "sort" in fields:
        try:
            row["sort"] = common.to_int(fields["sort"]) or row["sort"]
        except (TypeError, ValueError):
            pass
    if common.to_yn(fields.get("isDefault")) == "Y":
        _make_default(call.portal, type_id, row["id"])
    return {"category": category_view(row)}


@method("crm.category.delete", scope="crm")
def category_delete(call: Call) -> None:
    type_id = _entity_type(call)
    row = _category_or_404(call.portal, type_id, call.get("id"))
    if row["isDefault"] == "Y":
        raise CodeZero("You cannot delete the default category")
    if type_id == DEAL:
        deals = call.portal.table("deal").values()
        if any(d.get("CATEGORY_ID") == row["id"] for d in deals):
            raise CodeZero("Category cannot be deleted because it contains items")
    entity_id = stage_entity_id(type_id, row["id"])
    table = status_table(call.portal)
    for status_id in [k for k, v in table.items() if v["ENTITY_ID"] == entity_id]:
        del table[status_id]
    del category_table(call.portal, type_id)[row["id"]]
    return None


# REST: crm.status.* -----------------------------------------------------------------------
STATUS_FIELDS = (
    "ID",
    "ENTITY_ID",
    "STATUS_ID",
    "NAME",
    "NAME_INIT",
    "SORT",
    "SYSTEM",
    "CATEGORY_ID",
    "COLOR",
    "SEMANTICS",
)
STATUS_KINDS = {"ID": "int", "SORT": "int", "CATEGORY_ID": "int"}


def status_view(row: dict[str, Any], *, extra: bool = True) -> dict[str, Any]:
    """A crm.status row as the portal prints it (strings; EXTRA on stage rows)."""
    view: dict[str, Any] = {k: common.str_scalar(row.get(k)) for k in STATUS_FIELDS}
    if extra and row.get("_STAGE"):
        view["EXTRA"] = {"SEMANTICS": row["EXTRA_SEMANTICS"], "COLOR": row["COLOR"]}
    return view


def _status_resolve(name: str) -> str | None:
    upper = name.upper()
    return upper if upper in STATUS_FIELDS else None


@method("crm.status.list", scope="crm")
def status_list(call: Call) -> Page:
    # crm.status.list is not paged: every matching row comes back
    predicate = query.compile_filter(
        call.portal,
        call.get("filter"),
        _status_resolve,
        lambda f: STATUS_KINDS.get(f, "str"),
    )
    matched = [r for r in status_table(call.portal).values() if predicate(r)]
    ordered = query.apply_order(
        call.portal,
        matched,
        call.get("order") or {"SORT": "ASC"},
        _status_resolve,
        lambda f: STATUS_KINDS.get(f, "str"),
    )
    return Page([status_view(r) for r in ordered], len(ordered), None)


def _status_or_error(call: Call) -> dict[str, Any]:
    status_id = common.positive_id(call.get("id"))
    if status_id is None:
        raise Uncoded("ID is not defined or invalid.")
    row = status_table(call.portal).get(status_id)
    if row is None:
        raise Uncoded("Not found")
    return row


@method("crm.status.get", scope="crm", validates=True)
def status_get(call: Call) -> dict[str, Any]:
    return status_view(_status_or_error(call), extra=False)


KNOWN_ENTITIES = {"DEAL_TYPE", "SOURCE", "CONTACT_TYPE", "COMPANY_TYPE", "INDUSTRY", "STATUS"}


@method("crm.status.add", scope="crm", validates=True)
def status_add(call: Call) -> int:
    fields = common.require_fields(call)
    fields = common.upper_keys(fields)
    missing = [
        f"The field {k} is required." for k in ("ENTITY_ID", "STATUS_ID") if not fields.get(k)
    ]
    if missing:
        raise Uncoded("<br>".join(missing))
    entity_id = str(fields["ENTITY_ID"]).upper()
    parsed = parse_stage_entity(entity_id)
    if parsed is None and entity_id not in KNOWN_ENTITIES:
        raise Uncoded("Specified entity type is not supported.")
    if parsed and get_category(call.portal, parsed[0], parsed[1]) is None:
        raise Uncoded("Specified entity type is not supported.")
    name = str(fields.get("NAME") or "").strip()
    if not name:
        raise Uncoded("The field Title is required.")
    status_id = str(fields["STATUS_ID"])
    if parsed:
        prefix = stage_prefix(*parsed)
        if not status_id.startswith(prefix):
            status_id = prefix + status_id
    if any(
        r["ENTITY_ID"] == entity_id and r["STATUS_ID"] == status_id
        for r in status_table(call.portal).values()
    ):
        raise CoreError("The specified status ID already exists.")
    try:
        sort = common.to_int(fields.get("SORT")) or 10
    except (TypeError, ValueError):
        sort = 10
    semantics_raw = fields.get("SEMANTICS")
    try:
        code, extra = _norm_semantics(str(semantics_raw) if semantics_raw else None)
    except ValueError:
        code, extra = None, "process"
    if parsed and code is None:
        won = [r for r in stages(call.portal, *parsed) if r["SEMANTICS"] == "S"]
        if won and sort > won[0]["SORT"]:
            raise Uncoded(
                "Cannot create more stages after the final stage because the final successful"
                " stage already exists. Try using sort order values less than that of the"
                " final stage."
            )
    return add_status(
        call.portal,
        entity_id,
        status_id,
        name,
        sort,
        semantics=code,
        extra=extra,
        color=str(fields.get("COLOR") or "#ACE9FB") if parsed else fields.get("COLOR"),
    )


@method("crm.status.update", scope="crm", validates=True)
def status_update(call: Call) -> bool:
    row = _status_or_error(call)
    fields = common.upper_keys(common.require_fields(call))
    if "NAME" in fields:
        name = str(fields["NAME"] or "").strip()
        if not name:
            raise Uncoded("The field Title is required.")
        row["NAME"] = name
    if "SORT" in fields:
        try:
            row["SORT"] = common.to_int(fields["SORT"]) or row["SORT"]
        except (TypeError, ValueError):
            pass
    if "COLOR" in fields:
        row["COLOR"] = str(fields["COLOR"])
    return True


@method("crm.status.delete", scope="crm", validates=True)
def status_delete(call: Call) -> bool:
    row = _status_or_error(call)
    params = call.get("params")
    forced = isinstance(params, dict) and common.to_yn(params.get("FORCED")) == "Y"
    if row["SYSTEM"] == "Y" and not forced:
        raise Uncoded("Can't delete system status")
    if row.get("_STAGE"):
        type_id, _ = parse_stage_entity(row["ENTITY_ID"]) or (DEAL, 0)
        table = "deal" if type_id == DEAL else "invoice"
        if any(d.get("STAGE_ID") == row["STATUS_ID"] for d in call.portal.table(table).values()):
            raise Uncoded("There are active items in this stage.")
    del status_table(call.portal)[row["ID"]]
    return True


def entity_items(portal: Portal, entity_id: str) -> list[dict[str, Any]]:
    rows = [r for r in status_table(portal).values() if r["ENTITY_ID"] == entity_id.upper()]
    rows.sort(key=lambda r: (r["SORT"], r["ID"]))
    return [{"NAME": r["NAME"], "SORT": r["SORT"], "STATUS_ID": r["STATUS_ID"]} for r in rows]


@method("crm.status.entity.items", scope="crm", validates=True)
def status_entity_items(call: Call) -> list[dict[str, Any]]:
    entity_id = call.get("entityId")
    if not entity_id:
        raise Uncoded("The parameter entityId is required.")
    return entity_items(call.portal, str(entity_id))


@method("crm.dealcategory.stage.list", scope="crm", validates=True)
def dealcategory_stage_list(call: Call) -> list[dict[str, Any]]:
    try:
        category_id = common.to_int(call.get("id")) or 0
    except (TypeError, ValueError):
        category_id = 0
    if get_category(call.portal, DEAL, category_id) is None:
        raise Uncoded("Not found")
    return entity_items(call.portal, stage_entity_id(DEAL, category_id))
