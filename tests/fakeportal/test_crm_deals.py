"""Deals over real HTTP: crm.deal.* shapes and errors, paging, filters, select, order, stages
and funnels, the signals CRM changes send, product rows and deal contacts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from fakeportal import crm, signals
from fakeportal.crm import common
from fakeportal.state import Portal, World
from tests.support import EXAMPLES
from tests.support import WebhookClient as Client


@pytest.fixture
def client(fake_world: World, fake_portal: Portal, fake_webhook: str) -> Client:
    fake_world.config["bucket_size"] = 100000  # many calls per test; limits are tested elsewhere
    return Client(fake_world, fake_portal, fake_webhook)


@pytest.fixture
def recorded() -> Iterator[list[tuple[Any, ...]]]:
    """Every crm.event and deal.stage_entered sent during the test, in order."""
    log: list[tuple[Any, ...]] = []

    def on_event(
        portal: Portal, name: str, fields: dict[str, Any], user_id: int | None, *, data: Any
    ) -> None:
        assert data == {"FIELDS": fields}  # CRM events carry data[FIELDS] only
        log.append(("event", name, dict(fields), user_id))

    def on_stage(
        portal: Portal, deal_id: int, stage_id: str, category_id: int, user_id: int | None
    ) -> None:
        stored = portal.table("deal")[deal_id]["STAGE_ID"]
        log.append(("stage", deal_id, stage_id, category_id, user_id, stored))

    signals.connect("crm.event", on_event)
    signals.connect("deal.stage_entered", on_stage)
    try:
        yield log
    finally:
        signals.disconnect("crm.event", on_event)
        signals.disconnect("deal.stage_entered", on_stage)


def make_deals(client: Client, rows: list[dict[str, Any]]) -> list[int]:
    with client.world.lock:
        return [crm.create_deal(client.portal, fields) for fields in rows]


# shapes and errors --------------------------------------------------------------------------
def test_deal_get_has_the_real_keys_and_string_scalars(client: Client) -> None:
    deal_id = client.ok(
        "crm.deal.add",
        fields={
            "TITLE": "New Deal #1",
            "TYPE_ID": "COMPLEX",
            "STAGE_ID": "PREPARATION",
            "PROBABILITY": 99,
            "CURRENCY_ID": "EUR",
            "OPPORTUNITY": 1000000,
            "IS_MANUAL_OPPORTUNITY": "Y",
            "BEGINDATE": "2024-08-30",
            "CLOSEDATE": "2024-09-09T00:00:00+03:00",
            "COMMENTS": "[B]Example comment[/B]",
            "SOURCE_ID": "CALLBACK",
            "UTM_SOURCE": "google",
        },
    )
    assert isinstance(deal_id, int)
    deal = client.ok("crm.deal.get", id=deal_id)
    want = EXAMPLES["crm_deal_get_response"]["payload"]["result"]
    standard = {k for k in want if not k.startswith(("UF_", "PARENT_ID_"))}
    assert standard <= set(deal), standard - set(deal)
    assert all(v is None or isinstance(v, str) for v in deal.values())
    assert deal["ID"] == str(deal_id)
    assert deal["OPPORTUNITY"] == "1000000.00"
    assert deal["PROBABILITY"] == "99"
    assert deal["TAX_VALUE"] == "0.00"
    assert deal["CATEGORY_ID"] == "0"
    assert deal["STAGE_SEMANTIC_ID"] == "P"
    assert deal["CLOSED"] == "N"
    assert deal["LEAD_ID"] is None
    assert deal["BEGINDATE"] == "2024-08-30T00:00:00+03:00"
    assert deal["CLOSEDATE"] == "2024-09-09T00:00:00+03:00"
    assert deal["DATE_CREATE"].endswith("+03:00")  # the portal's zone, Europe/Moscow


def test_deal_dates_follow_the_portal_clock_and_zone(client: Client) -> None:
    client.portal.timezone = "Europe/Berlin"
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Clock"})
    created = client.ok("crm.deal.get", id=deal_id)["DATE_CREATE"]
    expected = common.iso(client.portal, client.world.now())
    assert created[:16] == expected[:16]
    assert created[-6:] in ("+01:00", "+02:00")


@pytest.mark.parametrize(
    ("method", "params", "description"),
    [
        ("crm.deal.get", {"id": 999}, "Not found"),
        ("crm.deal.get", {"id": 0}, "ID is not defined or invalid"),
        ("crm.deal.get", {}, "ID is not defined or invalid"),
        ("crm.deal.update", {"id": 999, "fields": {"TITLE": "x"}}, "Not found"),
        ("crm.deal.delete", {"id": "abc"}, "ID is not defined or invalid"),
        ("crm.deal.add", {"fields": "not an array"}, "Parameter 'fields' must be array."),
    ],
)
def test_deal_errors_have_empty_codes(
    client: Client, method: str, params: dict[str, Any], description: str
) -> None:
    status, body = client.call(method, **params)
    assert status == 400
    assert body == {"error": "", "error_description": description}


def test_not_found_matches_the_documented_payload(client: Client) -> None:
    _, body = client.call("crm.deal.get", id=12345)
    assert body == EXAMPLES["crm_deal_get_not_found"]["payload"]
    _, body = client.call("crm.deal.add", fields="x")
    assert body == EXAMPLES["crm_deal_error_fields_not_array"]["payload"]


def test_unknown_fields_are_ignored_and_currency_checked(client: Client) -> None:
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "A", "NO_SUCH_FIELD": "1"})
    assert "NO_SUCH_FIELD" not in client.ok("crm.deal.get", id=deal_id)
    status, body = client.call("crm.deal.update", id=deal_id, fields={"CURRENCY_ID": "XXX"})
    assert (status, body["error"]) == (400, "")
    assert "Currency" in body["error_description"]


# paging ---------------------------------------------------------------------------------------
def test_paging_of_120_deals(client: Client) -> None:
    ids = make_deals(client, [{"TITLE": f"Deal {i}"} for i in range(120)])
    _, first = client.call("crm.deal.list", order={"ID": "ASC"}, select=["ID"])
    assert (len(first["result"]), first["total"], first["next"]) == (50, 120, 50)
    _, last = client.call("crm.deal.list", order={"ID": "ASC"}, select=["ID"], start=100)
    assert (len(last["result"]), last["total"]) == (20, 120)
    assert "next" not in last
    assert [r["ID"] for r in last["result"]] == [str(i) for i in ids[100:]]

    # start=-1: no count, iterate by ID
    seen: list[str] = []
    last_id = 0
    while True:
        _, page = client.call(
            "crm.deal.list",
            order={"ID": "ASC"},
            filter={">ID": last_id},
            select=["ID", "TITLE"],
            start=-1,
        )
        assert page["total"] == 0 and "next" not in page
        seen.extend(r["ID"] for r in page["result"])
        if len(page["result"]) < 50:
            break
        last_id = int(page["result"][-1]["ID"])
    assert seen == [str(i) for i in ids]

    # fast_bitrix24 reads total and fetches start=50, 100 in a batch
    rows = client.bitrix.get_all("crm.deal.list", {"select": ["ID", "TITLE"]})
    assert sorted(int(r["ID"]) for r in rows) == ids


# filters --------------------------------------------------------------------------------------
FILTER_DEALS = [
    {
        "TITLE": "Alpha boiler",
        "OPPORTUNITY": 100,
        "ASSIGNED_BY_ID": 1,
        "CLOSEDATE": "2026-01-10",
        "SOURCE_ID": "WEB",
        "COMMENTS": "first",
    },
    {
        "TITLE": "Beta pump",
        "OPPORTUNITY": 250.5,
        "ASSIGNED_BY_ID": 2,
        "CLOSEDATE": "2026-01-31",
        "SOURCE_ID": "CALL",
    },
    {
        "TITLE": "gamma BOILER",
        "OPPORTUNITY": 1000,
        "ASSIGNED_BY_ID": 3,
        "CLOSEDATE": "2026-02-15",
        "SOURCE_ID": "WEB",
    },
    {"TITLE": "Delta", "OPPORTUNITY": 0, "ASSIGNED_BY_ID": 2, "CLOSEDATE": "2026-03-01"},
]


@pytest.mark.parametrize(
    ("filter_", "titles"),
    [
        ({"TITLE": "Beta pump"}, ["Beta pump"]),
        ({"=TITLE": "beta pump"}, []),
        ({"!SOURCE_ID": "WEB"}, ["Beta pump", "Delta"]),
        ({"!=ASSIGNED_BY_ID": 2}, ["Alpha boiler", "gamma BOILER"]),
        ({">OPPORTUNITY": 250.5}, ["gamma BOILER"]),
        ({">=OPPORTUNITY": "250.50"}, ["Beta pump", "gamma BOILER"]),
        ({"<OPPORTUNITY": 100}, ["Delta"]),
        ({"<=OPPORTUNITY": 100}, ["Alpha boiler", "Delta"]),
        ({">OPPORTUNITY": 9}, ["Alpha boiler", "Beta pump", "gamma BOILER"]),  # numeric, not text
        ({"%TITLE": "boiler"}, ["Alpha boiler", "gamma BOILER"]),
        ({"=%TITLE": "%pump"}, ["Beta pump"]),
        ({"@ASSIGNED_BY_ID": [1, 3]}, ["Alpha boiler", "gamma BOILER"]),
        ({"!@ASSIGNED_BY_ID": ["1", "3"]}, ["Beta pump", "Delta"]),
        ({"ASSIGNED_BY_ID": [1, 3]}, ["Alpha boiler", "gamma BOILER"]),
        ({">CLOSEDATE": "2026-01-31"}, ["gamma BOILER", "Delta"]),
        ({">=CLOSEDATE": "2026-01-31", "<CLOSEDATE": "2026-03-01"}, ["Beta pump", "gamma BOILER"]),
        ({"<CLOSEDATE": "2026-01-31T00:00:00+03:00"}, ["Alpha boiler"]),
        ({"SOURCE_ID": ""}, ["Delta"]),
        ({"source_id": "WEB", "%title": "alpha"}, ["Alpha boiler"]),
    ],
)
def test_filter_operators(client: Client, filter_: dict[str, Any], titles: list[str]) -> None:
    make_deals(client, FILTER_DEALS)
    rows = client.bitrix.get_all("crm.deal.list", {"filter": filter_, "select": ["ID", "TITLE"]})
    got = [r["TITLE"] for r in sorted(rows, key=lambda r: int(r["ID"]))]
    assert got == titles


def test_order_and_select(client: Client) -> None:
    make_deals(client, FILTER_DEALS)
    result = client.ok(
        "crm.deal.list", order={"opportunity": "desc"}, select=["id", "Title", "OPPORTUNITY"]
    )
    assert [r["TITLE"] for r in result] == ["gamma BOILER", "Beta pump", "Alpha boiler", "Delta"]
    assert result[1] == {"ID": "2", "TITLE": "Beta pump", "OPPORTUNITY": "250.50"}
    result = client.ok("crm.deal.list", order={"CLOSEDATE": "ASC"}, select=["ID"])
    assert [r["ID"] for r in result] == ["1", "2", "3", "4"]


def test_select_star_and_user_fields(client: Client) -> None:
    field_id = client.ok(
        "crm.deal.userfield.add",
        fields={"FIELD_NAME": "PROMO", "USER_TYPE_ID": "string", "LABEL": "Promo"},
    )
    assert isinstance(field_id, int)
    field = client.ok("crm.deal.userfield.get", id=field_id)
    assert field["FIELD_NAME"] == "UF_CRM_PROMO"
    assert field["ENTITY_ID"] == "CRM_DEAL"
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "UF", "UF_CRM_PROMO": "SPRING"})

    default = client.ok("crm.deal.list", filter={"ID": deal_id})[0]
    assert default["UF_CRM_PROMO"] == "SPRING" and "TITLE" in default  # default: * + UF_*
    star = client.ok("crm.deal.list", filter={"ID": deal_id}, select=["*"])[0]
    assert "UF_CRM_PROMO" not in star and star["TITLE"] == "UF"
    uf = client.ok("crm.deal.list", filter={"ID": deal_id}, select=["UF_*"])[0]
    assert uf == {"ID": str(deal_id), "UF_CRM_PROMO": "SPRING"}
    both = client.ok("crm.deal.list", filter={"UF_CRM_PROMO": "SPRING"}, select=["*", "UF_*"])
    assert [r["ID"] for r in both] == [str(deal_id)]
    assert client.ok("crm.deal.get", id=deal_id)["UF_CRM_PROMO"] == "SPRING"

    status, body = client.call(
        "crm.deal.userfield.add", fields={"FIELD_NAME": "bad-name", "USER_TYPE_ID": "string"}
    )
    assert (status, body["error"]) == (400, "ERROR_CORE")
    status, body = client.call("crm.deal.userfield.get", id=99999)
    assert (status, body["error"]) == (400, "ERROR_NOT_FOUND")
    assert client.ok("crm.deal.userfield.list", filter={"FIELD_NAME": "UF_CRM_PROMO"})[0][
        "ID"
    ] == str(field_id)


# funnels, stages, closing -------------------------------------------------------------------
def test_categories_and_statuses_look_real(client: Client) -> None:
    added = client.ok("crm.category.add", entityTypeId=2, fields={"name": "Service", "sort": 200})
    category = added["category"]
    example = EXAMPLES["crm_category_list_response"]["payload"]["result"]["categories"]
    assert set(category) == set(example[0])
    _, body = client.call("crm.category.list", entityTypeId=2)
    assert body["total"] == 2
    listed = {c["id"]: c for c in body["result"]["categories"]}
    assert set(listed[0]) == set(example[1]) and listed[0]["isDefault"] == "Y"
    assert listed[category["id"]] == category

    rows = client.ok("crm.status.list", filter={"ENTITY_ID": "DEAL_STAGE"})
    assert [r["STATUS_ID"] for r in rows] == [
        "NEW",
        "PREPARATION",
        "PREPAYMENT_INVOICE",
        "EXECUTING",
        "FINAL_INVOICE",
        "WON",
        "LOSE",
        "APOLOGY",
    ]
    want = EXAMPLES["crm_status_list_rows"]["payload"]["result"]
    assert all(set(r) == set(want[0]) for r in rows)
    won = next(r for r in rows if r["STATUS_ID"] == "WON")
    assert (won["SEMANTICS"], won["EXTRA"]["SEMANTICS"], won["SYSTEM"]) == ("S", "success", "Y")
    assert all(isinstance(won[k], str) for k in ("ID", "SORT"))

    n = category["id"]
    new_id = client.ok(
        "crm.status.add",
        fields={"ENTITY_ID": f"DEAL_STAGE_{n}", "STATUS_ID": "CHECK", "NAME": "Check", "SORT": 15},
    )
    row = client.ok("crm.status.get", id=new_id)
    assert (row["STATUS_ID"], row["CATEGORY_ID"]) == (f"C{n}:CHECK", str(n))
    stages = client.ok("crm.dealcategory.stage.list", id=n)
    assert [s["STATUS_ID"] for s in stages][:2] == [f"C{n}:NEW", f"C{n}:CHECK"]
    items = client.ok("crm.status.entity.items", entityId=f"DEAL_STAGE_{n}")
    assert items == stages
    status, body = client.call(
        "crm.status.add",
        fields={"ENTITY_ID": f"DEAL_STAGE_{n}", "STATUS_ID": "CHECK", "NAME": "Again"},
    )
    assert (status, body["error"]) == (400, "ERROR_CORE")
    status, body = client.call("crm.category.get", entityTypeId=2, id=77)
    assert (status, body) == (400, {"error": "NOT_FOUND", "error_description": "Element not found"})


def test_stage_rules_of_crm_deal_update(client: Client, recorded: list[tuple[Any, ...]]) -> None:
    with client.world.lock:
        funnel = crm.create_category(client.portal, "Projects")
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Rules"})
    assert client.ok("crm.deal.get", id=deal_id)["IS_NEW"] == "Y"

    # another funnel's stage and CATEGORY_ID are ignored by crm.deal.update
    assert (
        client.ok(
            "crm.deal.update",
            id=deal_id,
            fields={"STAGE_ID": f"C{funnel}:NEW", "CATEGORY_ID": funnel},
        )
        is True
    )
    deal = client.ok("crm.deal.get", id=deal_id)
    assert (deal["STAGE_ID"], deal["CATEGORY_ID"]) == ("NEW", "0")

    client.world.advance(timedelta(days=3))
    client.ok("crm.deal.update", id=deal_id, fields={"STAGE_ID": "WON"})
    deal = client.ok("crm.deal.get", id=deal_id)
    assert (deal["STAGE_SEMANTIC_ID"], deal["CLOSED"], deal["IS_NEW"]) == ("S", "Y", "N")
    assert deal["CLOSEDATE"] == common.iso(client.portal, common.today(client.portal))
    assert deal["MOVED_TIME"] == deal["DATE_MODIFY"]
    client.ok("crm.deal.update", id=deal_id, fields={"STAGE_ID": "APOLOGY"})
    deal = client.ok("crm.deal.get", id=deal_id)
    assert (deal["STAGE_SEMANTIC_ID"], deal["CLOSED"]) == ("F", "Y")
    client.ok("crm.deal.update", id=deal_id, fields={"STAGE_ID": "EXECUTING"})
    assert client.ok("crm.deal.get", id=deal_id)["CLOSED"] == "N"

    stage_events = [r[2] for r in recorded if r[0] == "stage"]
    assert stage_events == ["NEW", "WON", "APOLOGY", "EXECUTING"]
    names = [r[1] for r in recorded if r[0] == "event"]
    assert names == ["ONCRMDEALADD"] + ["ONCRMDEALUPDATE"] * 4
    assert all(r[3] == 1 for r in recorded if r[0] == "event")  # the webhook's user


def test_deal_added_into_a_funnel_by_stage(client: Client, recorded: list[tuple[Any, ...]]) -> None:
    with client.world.lock:
        funnel = crm.create_category(
            client.portal,
            "Repairs",
            [
                ("NEW", "New", "P"),
                ("FIX", "Fixing", "P"),
                ("DONE", "Done", "S"),
                ("FAIL", "Failed", "F"),
            ],
        )
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Pump", "STAGE_ID": f"C{funnel}:FIX"})
    deal = client.ok("crm.deal.get", id=deal_id)
    assert (deal["CATEGORY_ID"], deal["STAGE_ID"]) == (str(funnel), f"C{funnel}:FIX")
    other = client.ok("crm.deal.add", fields={"TITLE": "P2", "CATEGORY_ID": funnel})
    assert client.ok("crm.deal.get", id=other)["STAGE_ID"] == f"C{funnel}:NEW"
    status, body = client.call("crm.deal.add", fields={"TITLE": "x", "CATEGORY_ID": 99})
    assert (status, body["error"]) == (400, "")
    assert [r[1:] for r in recorded if r[0] == "stage"] == [
        (deal_id, f"C{funnel}:FIX", funnel, 1, f"C{funnel}:FIX"),
        (other, f"C{funnel}:NEW", funnel, 1, f"C{funnel}:NEW"),
    ]


def test_item_update_moves_funnels_with_its_own_event(
    client: Client, recorded: list[tuple[Any, ...]]
) -> None:
    with client.world.lock:
        funnel = crm.create_category(client.portal, "Second")
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Mover"})
    recorded.clear()
    request = dict(EXAMPLES["crm_item_update_move_funnel_request"]["payload"])
    request.update(id=deal_id, fields={"categoryId": funnel, "stageId": f"C{funnel}:NEW"})
    item = client.ok("crm.item.update", **request)["item"]
    assert (item["categoryId"], item["stageId"]) == (funnel, f"C{funnel}:NEW")
    assert recorded == [
        (
            "event",
            "ONCRMDEALMOVETOCATEGORY",
            {"ID": str(deal_id), "CATEGORY_ID": str(funnel), "STAGE_ID": f"C{funnel}:NEW"},
            1,
        ),
        ("stage", deal_id, f"C{funnel}:NEW", funnel, 1, f"C{funnel}:NEW"),
    ]
    # a stage of another funnel is refused by crm.item.update
    status, body = client.call(
        "crm.item.update", entityTypeId=2, id=deal_id, fields={"stageId": "WON"}
    )
    assert (status, body["error"]) == (400, "CRM_FIELD_ERROR_VALUE_NOT_VALID")


def test_python_functions_act_without_a_user(
    client: Client, recorded: list[tuple[Any, ...]]
) -> None:
    with client.world.lock:
        funnel = crm.create_category(client.portal, "Auto")
        deal_id = crm.create_deal(client.portal, {"TITLE": "Robot deal"})
        crm.move_deal(client.portal, deal_id, "PREPARATION")
        crm.move_deal(client.portal, deal_id, f"C{funnel}:WON")
        crm.update_deal(client.portal, deal_id, {"COMMENTS": "done"})
        crm.delete_deal(client.portal, deal_id)
    events = [(r[1], r[3]) for r in recorded if r[0] == "event"]
    assert events == [
        ("ONCRMDEALADD", None),
        ("ONCRMDEALUPDATE", None),
        ("ONCRMDEALMOVETOCATEGORY", None),
        ("ONCRMDEALUPDATE", None),
        ("ONCRMDEALDELETE", None),
    ]
    stages = [(r[2], r[3], r[4]) for r in recorded if r[0] == "stage"]
    assert stages == [("NEW", 0, None), ("PREPARATION", 0, None), (f"C{funnel}:WON", funnel, None)]


# product rows and contacts ------------------------------------------------------------------
def test_product_rows_roundtrip(client: Client, recorded: list[tuple[Any, ...]]) -> None:
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Goods"})
    rows = [
        {
            "PRODUCT_ID": 450,
            "PRODUCT_NAME": "Product #2",
            "PRICE": 899.1,
            "QUANTITY": 1,
            "DISCOUNT_TYPE_ID": 2,
            "DISCOUNT_RATE": 10,
            "TAX_INCLUDED": "Y",
        },
        {"PRODUCT_NAME": "Install", "PRICE": 100, "QUANTITY": 3},
    ]
    assert client.ok("crm.deal.productrows.set", id=deal_id, rows=rows) is True
    got = client.ok("crm.deal.productrows.get", id=deal_id)
    example = EXAMPLES["crm_deal_productrows_get_row"]["payload"]["result"][0]
    assert set(got[0]) == set(example)
    for key in (
        "PRICE",
        "PRICE_EXCLUSIVE",
        "PRICE_NETTO",
        "PRICE_BRUTTO",
        "DISCOUNT_SUM",
        "DISCOUNT_RATE",
        "DISCOUNT_TYPE_ID",
        "PRICE_ACCOUNT",
        "OWNER_TYPE",
        "TAX_INCLUDED",
        "PRODUCT_ID",
        "QUANTITY",
    ):
        assert got[0][key] == example[key], key
    assert got[0]["OWNER_ID"] == str(deal_id) and isinstance(got[0]["ID"], str)
    assert client.ok("crm.deal.get", id=deal_id)["OPPORTUNITY"] == "1199.10"
    assert ("event", "ONCRMDEALUPDATE", {"ID": str(deal_id)}, 1) in recorded

    client.ok("crm.deal.productrows.set", id=deal_id, rows=[rows[1]])
    assert [r["PRODUCT_NAME"] for r in client.ok("crm.deal.productrows.get", id=deal_id)] == [
        "Install"
    ]
    client.ok("crm.deal.productrows.set", id=deal_id, rows=[])
    assert client.ok("crm.deal.productrows.get", id=deal_id) == []
    status, body = client.call("crm.deal.productrows.get", id=999)
    assert (status, body) == (400, {"error": "", "error_description": "Not found"})


def test_deal_contacts_roundtrip(client: Client) -> None:
    c1 = client.ok("crm.contact.add", fields={"NAME": "Ann", "PHONE": [{"VALUE": "+7900111"}]})
    c2 = client.ok("crm.contact.add", fields={"NAME": "Bob"})
    c3 = client.ok("crm.contact.add", fields={"NAME": "Cid"})
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "People", "CONTACT_IDS": [c2]})
    assert client.ok("crm.deal.get", id=deal_id)["CONTACT_ID"] == str(c2)

    items = [
        {"CONTACT_ID": c1, "SORT": 100, "IS_PRIMARY": "Y"},
        {"CONTACT_ID": c2, "SORT": 200},
    ]
    assert client.ok("crm.deal.contact.items.set", id=deal_id, items=items) is True
    got = client.ok("crm.deal.contact.items.get", id=deal_id)
    example = EXAMPLES["crm_deal_contact_items_get_response"]["payload"]["result"]
    assert [set(r) for r in got] == [set(r) for r in example]
    assert got == [
        {"CONTACT_ID": c1, "SORT": 100, "ROLE_ID": 0, "IS_PRIMARY": "Y"},
        {"CONTACT_ID": c2, "SORT": 200, "ROLE_ID": 0, "IS_PRIMARY": "N"},
    ]
    assert client.ok("crm.deal.get", id=deal_id)["CONTACT_ID"] == str(c1)

    client.ok("crm.deal.contact.add", id=deal_id, fields={"CONTACT_ID": c3, "IS_PRIMARY": "Y"})
    got = client.ok("crm.deal.contact.items.get", id=deal_id)
    assert [(r["CONTACT_ID"], r["IS_PRIMARY"]) for r in got] == [(c1, "N"), (c2, "N"), (c3, "Y")]
    client.ok("crm.deal.contact.delete", id=deal_id, fields={"CONTACT_ID": c3})
    got = client.ok("crm.deal.contact.items.get", id=deal_id)
    assert [(r["CONTACT_ID"], r["IS_PRIMARY"]) for r in got] == [(c1, "Y"), (c2, "N")]
    item = client.ok("crm.item.get", entityTypeId=2, id=deal_id)["item"]
    assert (item["contactId"], item["contactIds"]) == (c1, [c1, c2])
    status, body = client.call(
        "crm.deal.contact.items.set", id=deal_id, items=[{"CONTACT_ID": 999}]
    )
    assert (status, body["error"]) == (400, "")
    client.ok("crm.deal.contact.items.delete", id=deal_id)
    assert client.ok("crm.deal.contact.items.get", id=deal_id) == []
    with client.world.lock:
        assert crm.get_contact(client.portal, c1)["PHONE"][0]["VALUE"] == "+7900111"


def test_batch_with_references(client: Client) -> None:
    result = client.bitrix.call_batch(
        {
            "halt": 0,
            "cmd": {
                "deal": "crm.deal.add?fields[TITLE]=Batched&fields[OPPORTUNITY]=10",
                "get": "crm.deal.get?id=$result[deal]",
                "list": "crm.deal.list?filter[%3EOPPORTUNITY]=5&select[0]=ID",
            },
        }
    )
    assert result["get"]["TITLE"] == "Batched"
    assert result["get"]["OPPORTUNITY"] == "10.00"
    assert result["list"] == [{"ID": str(result["deal"])}]
