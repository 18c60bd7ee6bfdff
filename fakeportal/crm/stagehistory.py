"""Deals' stage history (``crm.stagehistory.list``), PROTOCOL §13.

A row is written whenever a deal is created (TYPE_ID 1), enters an intermediate stage (2) or
a final one (3), or changes funnel (5). Answers carry real ints and ISO times with the
portal's offset; only deals (entityTypeId 2) are emulated.
"""

from __future__ import annotations

from typing import Any

from fakeportal.api import Call, Page, method
from fakeportal.exceptions import EntityTypeNotSupported
from fakeportal.state import Portal

from . import common, query

CREATED, MOVED, FINAL, FUNNEL = 1, 2, 3, 5
KINDS = {
    "ID": "int",
    "TYPE_ID": "int",
    "OWNER_ID": "int",
    "CREATED_TIME": "datetime",
    "CATEGORY_ID": "int",
    "STAGE_SEMANTIC_ID": "str",
    "STAGE_ID": "str",
}


def record(portal: Portal, deal: dict[str, Any], type_id: int) -> None:
    """Note the deal's current stage (call after it entered it)."""
    table = portal.table("stagehistory")
    row_id = portal.next_id("stagehistory")
    table[row_id] = {
        "ID": row_id,
        "TYPE_ID": type_id,
        "OWNER_ID": int(deal["ID"]),
        "CREATED_TIME": common.now(portal),
        "CATEGORY_ID": int(deal.get("CATEGORY_ID") or 0),
        "STAGE_SEMANTIC_ID": deal.get("STAGE_SEMANTIC_ID") or "P",
        "STAGE_ID": deal["STAGE_ID"],
    }


def _view(portal: Portal, row: dict[str, Any], select: list[str] | None) -> dict[str, Any]:
    out = {k: (common.iso(portal, v) if k == "CREATED_TIME" else v) for k, v in row.items()}
    return {k: v for k, v in out.items() if not select or k in select}


@method("crm.stagehistory.list", scope="crm")
def stagehistory_list(call: Call) -> Page:
    if str(call.get("entityTypeId") or "") != "2":
        raise EntityTypeNotSupported(f"Entity type {call.get('entityTypeId')} is not supported")
    portal = call.portal
    rows, total, nxt = query.run_list(
        portal,
        portal.table("stagehistory").values(),
        filter_=call.get("filter"),
        order=call.get("order") or {"ID": "ASC"},
        start=call.get("start"),
        resolve=lambda n: n.upper() if n.upper() in KINDS else None,
        kinds=lambda f: KINDS.get(f, "str"),
    )
    select = call.get("select")
    chosen = [str(s).upper() for s in select] if isinstance(select, list) and select else None
    return Page([_view(portal, r, chosen) for r in rows], total, nxt, wrap="items")
