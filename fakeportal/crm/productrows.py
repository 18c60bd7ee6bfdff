"""Product rows of deals (and smart invoices): crm.deal.productrows.get/set and
crm.item.productrow.set/list/get/add/delete.

``PRICE`` is the final unit price (after discount, with tax); the portal derives
``PRICE_EXCLUSIVE`` (after discount, without tax), ``PRICE_NETTO`` (before discount, without
tax) and ``PRICE_BRUTTO`` (before discount, with tax). A deal whose amount is not manual
takes the sum of its rows. A row with a ``PRODUCT_ID`` of the catalogue and no name takes the
product's name. Rows carry no purchase price: that is the catalogue's (``catalog.py``).
"""

from __future__ import annotations

from typing import Any

from fakeportal.api import Call, Page, method
from fakeportal.exceptions import NotFound, ParamErrorString, Uncoded
from fakeportal.state import Portal

from . import catalog, common, deals, query

OWNER_TYPES = {"D": "deal", "SI": "invoice"}

ITEM_NAMES = {
    "ID": "id",
    "OWNER_ID": "ownerId",
    "OWNER_TYPE": "ownerType",
    "PRODUCT_ID": "productId",
    "PRODUCT_NAME": "productName",
    "PRICE": "price",
    "PRICE_ACCOUNT": "priceAccount",
    "PRICE_EXCLUSIVE": "priceExclusive",
    "PRICE_NETTO": "priceNetto",
    "PRICE_BRUTTO": "priceBrutto",
    "QUANTITY": "quantity",
    "DISCOUNT_TYPE_ID": "discountTypeId",
    "DISCOUNT_RATE": "discountRate",
    "DISCOUNT_SUM": "discountSum",
    "TAX_RATE": "taxRate",
    "TAX_INCLUDED": "taxIncluded",
    "CUSTOMIZED": "customized",
    "MEASURE_CODE": "measureCode",
    "MEASURE_NAME": "measureName",
    "SORT": "sort",
    "XML_ID": "xmlId",
    "TYPE": "type",
    "STORE_ID": "storeId",
}
UPPER_BY_ITEM = {v: k for k, v in ITEM_NAMES.items()}


def table(portal: Portal) -> dict[int, dict[str, Any]]:
    return portal.table("productrow")


def _num(value: Any) -> int | float:
    value = round(float(value), 2)
    return int(value) if value.is_integer() else value


def build_row(
    portal: Portal, owner_type: str, owner_id: int, data: dict[str, Any], sort: int
) -> dict[str, Any]:
    """A stored row from caller fields (upper-case names), prices derived."""
    tax = common.to_float(data.get("TAX_RATE"))
    tax_factor = 1 + (tax or 0) / 100
    quantity = common.to_float(data.get("QUANTITY"))
    quantity = 1.0 if quantity is None else quantity
    if data.get("PRICE") not in (None, ""):
        price = common.to_float(data["PRICE"]) or 0.0
    elif data.get("PRICE_EXCLUSIVE") not in (None, ""):
        price = (common.to_float(data["PRICE_EXCLUSIVE"]) or 0.0) * tax_factor
    elif data.get("PRICE_BRUTTO") not in (None, "") or data.get("PRICE_NETTO") not in (None, ""):
        netto = common.to_float(data.get("PRICE_NETTO"))
        if netto is None:
            netto = (common.to_float(data.get("PRICE_BRUTTO")) or 0.0) / tax_factor
        price = netto * tax_factor  # discount applied below from the netto price
        data = {**data, "_NETTO": netto}
    else:
        price = 0.0
    exclusive = price / tax_factor
    discount_type = common.to_int(data.get("DISCOUNT_TYPE_ID")) or 2
    rate = common.to_float(data.get("DISCOUNT_RATE")) or 0.0
    dsum = common.to_float(data.get("DISCOUNT_SUM")) or 0.0
    if "_NETTO" in data:
        netto = data["_NETTO"]
        if discount_type == 2:
            dsum = netto * rate / 100
        exclusive = netto - dsum
        price = exclusive * tax_factor
    elif discount_type == 2 and rate:
        netto = exclusive / (1 - rate / 100) if rate < 100 else exclusive
        dsum = netto - exclusive
    else:
        netto = exclusive + dsum
        rate = dsum / netto * 100 if netto else 0.0
    name = str(data.get("PRODUCT_NAME") or "")
    product = catalog.product(portal, data.get("PRODUCT_ID")) if not name else None
    if product is not None:  # no name given: the catalogue product's (the schema says so)
        name = str(product["name"])
    return {
        "ID": portal.next_id("productrow"),
        "OWNER_ID": owner_id,
        "OWNER_TYPE": owner_type,
        "PRODUCT_ID": common.to_int(data.get("PRODUCT_ID")) or 0,
        "PRODUCT_NAME": name,
        "ORIGINAL_PRODUCT_NAME": name,
        "PRODUCT_DESCRIPTION": data.get("PRODUCT_DESCRIPTION"),
        "PRICE": round(price, 2),
        "PRICE_EXCLUSIVE": round(exclusive, 2),
        "PRICE_NETTO": round(netto, 2),
        "PRICE_BRUTTO": round(netto * tax_factor, 2),
        "QUANTITY": quantity,
        "DISCOUNT_TYPE_ID": discount_type,
        "DISCOUNT_RATE": round(rate, 2),
        "DISCOUNT_SUM": round(dsum, 2),
        "TAX_RATE": tax,
        "TAX_INCLUDED": common.to_yn(data.get("TAX_INCLUDED"), "N"),
        "CUSTOMIZED": common.to_yn(data.get("CUSTOMIZED"), "Y"),
        "MEASURE_CODE": common.to_int(data.get("MEASURE_CODE")) or 796,
        "MEASURE_NAME": str(data.get("MEASURE_NAME") or "pcs"),
        "SORT": common.to_int(data.get("SORT")) or sort,
        "XML_ID": data.get("XML_ID"),
        "TYPE": common.to_int(data.get("TYPE")) or 1,
        "STORE_ID": common.to_int(data.get("STORE_ID")) or 0,
    }


def rows_of(portal: Portal, owner_type: str, owner_id: int) -> list[dict[str, Any]]:
    rows = [
        r
        for r in table(portal).values()
        if r["OWNER_TYPE"] == owner_type and r["OWNER_ID"] == owner_id
    ]
    return sorted(rows, key=lambda r: (r["SORT"], r["ID"]))


def legacy_view(row: dict[str, Any]) -> dict[str, Any]:
    """The crm.deal.productrows.get row shape (mixed strings and numbers, as the portal)."""
    return {
        "ID": str(row["ID"]),
        "OWNER_ID": str(row["OWNER_ID"]),
        "OWNER_TYPE": row["OWNER_TYPE"],
        "PRODUCT_ID": row["PRODUCT_ID"],
        "PRODUCT_NAME": row["PRODUCT_NAME"],
        "ORIGINAL_PRODUCT_NAME": row["ORIGINAL_PRODUCT_NAME"],
        "PRODUCT_DESCRIPTION": row["PRODUCT_DESCRIPTION"],
        "PRICE": _num(row["PRICE"]),
        "PRICE_EXCLUSIVE": _num(row["PRICE_EXCLUSIVE"]),
        "PRICE_NETTO": _num(row["PRICE_NETTO"]),
        "PRICE_BRUTTO": _num(row["PRICE_BRUTTO"]),
        "PRICE_ACCOUNT": f"{row['PRICE']:.2f}",
        "QUANTITY": _num(row["QUANTITY"]),
        "DISCOUNT_TYPE_ID": row["DISCOUNT_TYPE_ID"],
        "DISCOUNT_RATE": _num(row["DISCOUNT_RATE"]),
        "DISCOUNT_SUM": _num(row["DISCOUNT_SUM"]),
        "TAX_RATE": None if row["TAX_RATE"] is None else _num(row["TAX_RATE"]),
        "TAX_INCLUDED": row["TAX_INCLUDED"],
        "CUSTOMIZED": row["CUSTOMIZED"],
        "MEASURE_CODE": row["MEASURE_CODE"],
        "MEASURE_NAME": row["MEASURE_NAME"],
        "SORT": row["SORT"],
        "XML_ID": row["XML_ID"],
        "TYPE": row["TYPE"],
        "STORE_ID": row["STORE_ID"],
        "RESERVE_ID": None,
        "DATE_RESERVE_END": None,
        "RESERVE_QUANTITY": None,
    }


def item_view(row: dict[str, Any]) -> dict[str, Any]:
    """The crm.item.productrow.* shape (camelCase, numbers)."""
    legacy = legacy_view(row)
    view = {camel: legacy[upper] for upper, camel in ITEM_NAMES.items()}
    view["id"] = row["ID"]
    view["ownerId"] = row["OWNER_ID"]
    return view


def _owner_exists(portal: Portal, owner_type: str, owner_id: int) -> bool:
    name = OWNER_TYPES.get(owner_type)
    return name is not None and owner_id in portal.table(name)


def set_rows(
    portal: Portal,
    owner_type: str,
    owner_id: int,
    rows: list[dict[str, Any]],
    user_id: int | None = None,
) -> list[dict[str, Any]]:
    """Replace an owner's rows (missing ones are deleted); the deal amount follows."""
    store = table(portal)
    for row in rows_of(portal, owner_type, owner_id):
        del store[row["ID"]]
    created = []
    for index, data in enumerate(rows):
        row = build_row(portal, owner_type, owner_id, data, (index + 1) * 10)
        store[row["ID"]] = row
        created.append(row)
    _after_change(portal, owner_type, owner_id, user_id)
    return created


def _after_change(portal: Portal, owner_type: str, owner_id: int, user_id: int | None) -> None:
    if owner_type != "D":
        return
    record = deals.table(portal).get(owner_id)
    if record is None:
        return
    before = record.get("OPPORTUNITY")
    deals.recalc_opportunity(portal, owner_id)
    if record.get("OPPORTUNITY") != before:
        record["DATE_MODIFY"] = common.now(portal)
        common.crm_event(portal, "ONCRMDEALUPDATE", {"ID": str(owner_id)}, user_id)


def _rows_param(value: Any, camel: bool) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        value = list(value.values())
    if value in (None, ""):
        value = []
    if not isinstance(value, list):
        raise Uncoded("The parameter 'rows' must be array.")
    rows = []
    for item in value:
        if not isinstance(item, dict):
            raise Uncoded("The parameter 'rows' must be array.")
        if camel:
            rows.append({UPPER_BY_ITEM.get(k, k.upper()): v for k, v in item.items()})
        else:
            rows.append(common.upper_keys(item))
    return rows


# REST: legacy -----------------------------------------------------------------------------
@method("crm.deal.productrows.get", scope="crm", validates=True)
def deal_productrows_get(call: Call) -> list[dict[str, Any]]:
    record = deals.require_deal(call.portal, call.get("id"))
    return [legacy_view(r) for r in rows_of(call.portal, "D", record["ID"])]


@method("crm.deal.productrows.set", scope="crm", validates=True)
def deal_productrows_set(call: Call) -> bool:
    record = deals.require_deal(call.portal, call.get("id"))
    rows = _rows_param(call.get("rows"), camel=False)
    set_rows(call.portal, "D", record["ID"], rows, common.acting_user(call))
    return True


# REST: crm.item.productrow.* --------------------------------------------------------------
def _owner(portal: Portal, owner_type: Any, owner_id: Any) -> tuple[str, int]:
    kind = str(owner_type or "").upper()
    oid = common.positive_id(owner_id)
    if kind not in OWNER_TYPES or oid is None or not _owner_exists(portal, kind, oid):
        raise NotFound("Owner not found")
    return kind, oid


@method("crm.item.productrow.set", scope="crm")
def item_productrow_set(call: Call) -> dict[str, Any]:
    kind, oid = _owner(call.portal, call.get("ownerType"), call.get("ownerId"))
    rows = _rows_param(call.get("productRows"), camel=True)
    created = set_rows(call.portal, kind, oid, rows, common.acting_user(call))
    return {"productRows": [item_view(r) for r in created]}


@method("crm.item.productrow.add", scope="crm")
def item_productrow_add(call: Call) -> dict[str, Any]:
    fields = call.get("fields")
    if not isinstance(fields, dict):
        raise ParamErrorString("Could not find value for parameter {fields}")
    kind, oid = _owner(call.portal, fields.get("ownerType"), fields.get("ownerId"))
    data = {UPPER_BY_ITEM.get(k, k.upper()): v for k, v in fields.items()}
    existing = rows_of(call.portal, kind, oid)
    sort = max((r["SORT"] for r in existing), default=0) + 10
    row = build_row(call.portal, kind, oid, data, sort)
    table(call.portal)[row["ID"]] = row
    _after_change(call.portal, kind, oid, common.acting_user(call))
    return {"productRow": item_view(row)}


def _row_or_404(call: Call) -> dict[str, Any]:
    row_id = common.positive_id(call.get("id"))
    row = None if row_id is None else table(call.portal).get(row_id)
    if row is None:
        raise NotFound("Product row not found")
    return row


@method("crm.item.productrow.get", scope="crm")
def item_productrow_get(call: Call) -> dict[str, Any]:
    return {"productRow": item_view(_row_or_404(call))}


@method("crm.item.productrow.delete", scope="crm")
def item_productrow_delete(call: Call) -> None:
    row = _row_or_404(call)
    del table(call.portal)[row["ID"]]
    _after_change(call.portal, row["OWNER_TYPE"], row["OWNER_ID"], common.acting_user(call))
    return None


@method("crm.item.productrow.list", scope="crm")
def item_productrow_list(call: Call) -> Page:
    portal = call.portal

    def resolve(name: str) -> str | None:
        return UPPER_BY_ITEM.get(name)

    kinds = {
        "ID": "int",
        "OWNER_ID": "int",
        "PRODUCT_ID": "int",
        "PRICE": "float",
        "QUANTITY": "float",
        "SORT": "int",
    }
    rows, total, nxt = query.run_list(
        portal,
        table(portal).values(),
        filter_=call.get("filter"),
        order=call.get("order"),
        start=call.get("start"),
        resolve=resolve,
        kinds=lambda f: kinds.get(f, "str"),
    )
    return Page([item_view(r) for r in rows], total, nxt, "productRows")
