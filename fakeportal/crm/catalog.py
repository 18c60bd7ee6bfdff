"""The trade catalogue: catalog.product.get and catalog.product.list (PROTOCOL.md §17).

A portal has one product catalogue here, the CRM's, in information block
``CATALOG_IBLOCK_ID``; products are put in with ``create_product(portal, fields)`` (or the
``create_product`` admin action) and changed with ``update_product``. Keys are camelCase,
as the catalogue API speaks. Selling prices are not here (the portal keeps them in
``catalog.price.*``, not emulated); the purchase price is ``purchasingPrice`` in
``purchasingCurrency``, null when never set.

What the docs show, and so the emulator does:

- ``catalog.product.get {id*}`` -> ``{"product": {...}}``, ``purchasingPrice`` a **string**
  with six decimals (``"1000.000000"``); ``catalog.product.list {select*, filter*, order,
  start}`` -> ``{"products": [...]}`` + ``total``/``next``, only the selected fields, and
  ``purchasingPrice`` a **number** (``1000``). A reader must take both.
- ``list`` needs ``id`` and ``iblockId`` in ``select`` and ``iblockId`` in ``filter`` (code
  ``0``); the filter takes the usual prefixes and an array for IN (``{"id": [3, 5]}``);
  default order ``id`` ascending.
- Errors: ``100`` no ``id``; ``0`` "product does not exist." (PROTOCOL.md says code 0, the
  current docs an empty code: the emulator answers ``"0"``); ``200040300000`` no such
  iblock; ``200040300010`` no right to view the catalogue. catalog.product.get is for
  administrators (PROTOCOL.md §17): anyone else gets ``200040300010``. The list needs the
  right to view the catalogue, which every user has until the ``catalog_access`` admin action
  takes it away.
- Scope ``catalog`` (there is no schema file for these methods).
"""

from __future__ import annotations

from typing import Any

from fakeportal.admin import find_portal
from fakeportal.api import Call, Page, admin, flag, method
from fakeportal.exceptions import (
    CatalogAccessDenied,
    CodeZero,
    IblockNotFound,
    ParamError,
)
from fakeportal.state import Portal, World

from . import common, query

CATALOG_IBLOCK_ID = 25  # the CRM product catalogue's information block
PRODUCT_TYPES = {1, 2, 3, 4, 5, 6, 7}  # simple, bundle, with SKUs, SKU, offer, invalid, service
DENIED_KEY = "catalog.denied"  # portal.extra: user ids without the right to view the catalogue

# Field -> kind, in the order catalog.product.get shows them (the docs' example).
FIELDS: dict[str, str] = {
    "active": "yn",
    "available": "yn",
    "bundle": "yn",
    "canBuyZero": "yn",
    "code": "str",
    "createdBy": "int",
    "dateActiveFrom": "datetime",
    "dateActiveTo": "datetime",
    "dateCreate": "datetime",
    "detailPicture": "raw",
    "detailText": "str",
    "detailTextType": "str",
    "height": "float",
    "iblockId": "int",
    "iblockSectionId": "int",
    "id": "int",
    "length": "float",
    "measure": "int",
    "modifiedBy": "int",
    "name": "str",
    "previewPicture": "raw",
    "previewText": "str",
    "previewTextType": "str",
    "purchasingCurrency": "str",
    "purchasingPrice": "float",
    "quantity": "float",
    "quantityReserved": "float",
    "quantityTrace": "yn",
    "sort": "int",
    "subscribe": "yn",
    "timestampX": "datetime",
    "type": "int",
    "vatId": "int",
    "vatIncluded": "yn",
    "weight": "float",
    "width": "float",
    "xmlId": "str",
}
# Fields only catalog.product.list shows (when selected).
LIST_ONLY: dict[str, str] = {
    "barcodeMulti": "yn",
    "recurSchemeLength": "int",
    "recurSchemeType": "str",
    "trialPriceId": "int",
    "withoutOrder": "yn",
}
ALL_FIELDS = {**FIELDS, **LIST_ONLY}
_BY_LOWER = {name.lower(): name for name in ALL_FIELDS}
READ_ONLY = {"id", "iblockId", "dateCreate", "timestampX", "createdBy", "modifiedBy"}


def table(portal: Portal) -> dict[int, dict[str, Any]]:
    return portal.table("catalog_product")


def _value(kind: str, value: Any, portal: Portal) -> Any:
    """A caller's value stored in the field's kind (None for empty)."""
    if value is None or value == "":
        return None
    if kind == "int":
        return common.to_int(value)
    if kind == "float":
        return common.to_float(value)
    if kind == "yn":
        return common.to_yn(value, "N")
    if kind == "datetime":
        return common.parse_datetime(portal, value)
    if kind == "raw":
        return value
    return str(value)


def _store(portal: Portal, record: dict[str, Any], fields: dict[str, Any]) -> None:
    for raw, value in fields.items():
        name = _BY_LOWER.get(str(raw).lower())
        if name is None or name in READ_ONLY:
            continue
        try:
            record[name] = _value(ALL_FIELDS[name], value, portal)
        except (TypeError, ValueError):
            raise ValueError(f"product field {name}: {value!r} is not valid") from None
    if record.get("type") not in PRODUCT_TYPES:
        raise ValueError(f"product type {record.get('type')!r} is not one of 1..7")
    if record.get("purchasingPrice") is not None and not record.get("purchasingCurrency"):
        raise ValueError("a purchasing price needs its currency (purchasingCurrency)")


def create_product(portal: Portal, fields: dict[str, Any], user_id: int = 1) -> int:
    """A product of the portal's catalogue (camelCase fields, as catalog.product.add takes
    them: ``name``, ``purchasingPrice``, ``purchasingCurrency``, ``type``...); its id."""
    if not str(fields.get("name") or "").strip():
        raise ValueError("a product needs a name")
    now = common.now(portal)
    product_id = portal.next_id("catalog_product", start=101)
    record: dict[str, Any] = {
        "active": "Y",
        "available": "Y",
        "bundle": "N",
        "canBuyZero": "Y",
        "code": None,
        "createdBy": user_id,
        "dateActiveFrom": None,
        "dateActiveTo": None,
        "dateCreate": now,
        "detailPicture": None,
        "detailText": None,
        "detailTextType": "text",
        "height": None,
        "iblockId": CATALOG_IBLOCK_ID,
        "iblockSectionId": None,
        "id": product_id,
        "length": None,
        "measure": 5,
        "modifiedBy": user_id,
        "name": "",
        "previewPicture": None,
        "previewText": None,
        "previewTextType": "text",
        "purchasingCurrency": None,
        "purchasingPrice": None,
        "quantity": 0.0,
        "quantityReserved": 0.0,
        "quantityTrace": "N",
        "sort": 500,
        "subscribe": "N",
        "timestampX": now,
        "type": 1,
        "vatId": None,
        "vatIncluded": "N",
        "weight": None,
        "width": None,
        "xmlId": str(product_id),
        "barcodeMulti": "N",
        "recurSchemeLength": None,
        "recurSchemeType": None,
        "trialPriceId": None,
        "withoutOrder": "N",
    }
    _store(portal, record, fields)
    table(portal)[product_id] = record
    return product_id


def update_product(
    portal: Portal, product_id: int, fields: dict[str, Any], user_id: int = 1
) -> None:
    """Change a product's fields (an admin editing the catalogue)."""
    record = table(portal).get(int(product_id))
    if record is None:
        raise ValueError(f"no product {product_id}")
    _store(portal, record, fields)
    record["modifiedBy"] = user_id
    record["timestampX"] = common.now(portal)


def product(portal: Portal, product_id: Any) -> dict[str, Any] | None:
    """The stored product, or None."""
    pid = common.positive_id(product_id)
    return None if pid is None else table(portal).get(pid)


def _render(portal: Portal, kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "datetime":
        return common.iso(portal, value)
    if kind == "float":
        return int(value) if float(value).is_integer() else value
    return value


def get_view(portal: Portal, record: dict[str, Any]) -> dict[str, Any]:
    """The catalog.product.get shape: ``purchasingPrice`` as a six-decimal string."""
    view = {name: _render(portal, kind, record.get(name)) for name, kind in FIELDS.items()}
    price = record.get("purchasingPrice")
    view["purchasingPrice"] = None if price is None else f"{price:.6f}"
    return view


def list_view(portal: Portal, record: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """A catalog.product.list row: the selected fields, ``purchasingPrice`` a number."""
    return {name: _render(portal, ALL_FIELDS[name], record.get(name)) for name in fields}


def may_view(portal: Portal, user_id: int) -> bool:
    return user_id not in portal.extra.get(DENIED_KEY, set())


# REST ---------------------------------------------------------------------------------------
@method("catalog.product.get", scope="catalog", validates=True)
def product_get(call: Call) -> dict[str, Any]:
    if call.get("id") in (None, ""):
        raise ParamError("Could not find value for parameter {id}")
    if not call.caller.is_admin or not may_view(call.portal, call.caller.user_id):
        raise CatalogAccessDenied()
    record = product(call.portal, call.get("id"))
    if record is None:
        raise CodeZero("product does not exist.")
    return {"product": get_view(call.portal, record)}


def _select(value: Any) -> list[str]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        value = []
    chosen: list[str] = []
    for raw in value:
        name = _BY_LOWER.get(str(raw).lower())
        if name is not None and name not in chosen:
            chosen.append(name)
    missing = [name for name in ("id", "iblockId") if name not in chosen]
    if missing:
        raise CodeZero(f"Required select fields: {', '.join(missing)}")
    return chosen


@method("catalog.product.list", scope="catalog", validates=True)
def product_list(call: Call) -> Page:
    portal = call.portal
    if not may_view(portal, call.caller.user_id):
        raise CatalogAccessDenied()
    fields = _select(call.get("select"))
    filter_ = call.get("filter")
    if filter_ is not None and not isinstance(filter_, dict):
        raise CodeZero("Incorrect filter format")
    filter_ = filter_ or {}
    iblock_keys = [k for k in filter_ if query.split_op(str(k))[1].lower() == "iblockid"]
    if not iblock_keys:
        raise CodeZero("Required filter fields: iblockId")
    wanted = filter_[iblock_keys[0]]
    for iblock in wanted if isinstance(wanted, list) else [wanted]:
        try:
            known = common.to_int(iblock) == CATALOG_IBLOCK_ID
        except (TypeError, ValueError):
            known = False
        if not known:
            raise IblockNotFound()

    def kind(name: str) -> str:
        return {"yn": "str", "raw": "str"}.get(ALL_FIELDS[name], ALL_FIELDS[name])

    rows, total, nxt = query.run_list(
        portal,
        table(portal).values(),
        filter_=filter_,
        order=call.get("order") or {"id": "asc"},
        start=call.get("start"),
        resolve=lambda name: _BY_LOWER.get(name.lower()),
        kinds=kind,
        id_field="id",
    )
    return Page([list_view(portal, r, fields) for r in rows], total, nxt, "products")


# admin ----------------------------------------------------------------------------------------
@admin("create_product")
def _admin_create_product(
    world: World, fields: dict[str, Any], member_id: str | None = None, user_id: int = 1
) -> dict[str, Any]:
    """A catalogue product (camelCase fields); answers it as catalog.product.get shows it."""
    with world.lock:
        portal = find_portal(world, member_id)
        product_id = create_product(portal, dict(fields), int(user_id))
        return get_view(portal, table(portal)[product_id])


@admin("update_product")
def _admin_update_product(
    world: World,
    product_id: int,
    fields: dict[str, Any],
    member_id: str | None = None,
    user_id: int = 1,
) -> dict[str, Any]:
    """Change a catalogue product's fields; answers it as catalog.product.get shows it."""
    with world.lock:
        portal = find_portal(world, member_id)
        update_product(portal, int(product_id), dict(fields), int(user_id))
        return get_view(portal, table(portal)[int(product_id)])


@admin("catalog_access")
def _admin_catalog_access(
    world: World, user_id: int, view: Any = True, member_id: str | None = None
) -> dict[str, Any]:
    """Give a user the right to view the catalogue, or take it away (``view`` false)."""
    with world.lock:
        portal = find_portal(world, member_id)
        denied: set[int] = portal.extra.setdefault(DENIED_KEY, set())
        if flag(view, True):
            denied.discard(int(user_id))
        else:
            denied.add(int(user_id))
        return {"user_id": int(user_id), "view": int(user_id) not in denied}
