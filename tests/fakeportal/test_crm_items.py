"""crm.item.* over real HTTP: deals as items (camelCase, real numbers, ufCrm_ names), smart
invoices with their own stages, list paging through fast_bitrix24, item product rows."""

from __future__ import annotations

from typing import Any

import pytest

from fakeportal import crm
from fakeportal.state import Portal, World
from tests.support import EXAMPLES
from tests.support import WebhookClient as Client


@pytest.fixture
def client(fake_world: World, fake_portal: Portal, fake_webhook: str) -> Client:
    fake_world.config["bucket_size"] = 100000
    return Client(fake_world, fake_portal, fake_webhook)


def test_deal_as_item_is_camel_case_with_numbers(client: Client) -> None:
    client.ok(
        "crm.deal.userfield.add",
        fields={"FIELD_NAME": "1721244707107", "USER_TYPE_ID": "double"},
    )
    item = client.ok(
        "crm.item.add",
        entityTypeId=2,
        fields={
            "title": "Item deal",
            "opportunity": 999.99,
            "ufCrm_1721244707107": "200.05",
            "assignedById": 3,
        },
    )["item"]
    example = EXAMPLES["crm_item_list_response"]["payload"]["result"]["items"][0]
    # the documented example is a lead: every key but the person's name is a deal's key too
    assert set(example) - {"name", "lastName"} <= set(item)
    assert isinstance(item["id"], int) and item["entityTypeId"] == 2
    assert (item["opportunity"], item["assignedById"], item["categoryId"]) == (999.99, 3, 0)
    assert item["ufCrm_1721244707107"] == 200.05
    assert item["stageId"] == "NEW" and item["stageSemanticId"] == "P"
    assert item["createdTime"].endswith("+03:00")

    deal = client.ok("crm.deal.get", id=item["id"])
    assert deal["UF_CRM_1721244707107"] == "200.05" and deal["OPPORTUNITY"] == "999.99"

    original = client.ok("crm.item.get", entityTypeId=2, id=item["id"], useOriginalUfNames="Y")
    assert original["item"]["UF_CRM_1721244707107"] == 200.05
    assert "ufCrm_1721244707107" not in original["item"]


@pytest.mark.parametrize(
    ("params", "code", "description"),
    [
        ({"entityTypeId": 2, "id": 555}, "NOT_FOUND", "Item not found"),
        ({"entityTypeId": 999, "id": 1}, "NOT_FOUND", "SPA not found"),
    ],
)
def test_item_errors(client: Client, params: dict[str, Any], code: str, description: str) -> None:
    status, body = client.call("crm.item.get", **params)
    assert status == 400
    assert body == {"error": code, "error_description": description}
    if description == "Item not found":
        assert body == EXAMPLES["crm_item_not_found"]["payload"]


def test_item_list_filters_selects_and_pages(client: Client) -> None:
    with client.world.lock:
        for i in range(60):
            crm.create_deal(client.portal, {"TITLE": f"D{i}", "OPPORTUNITY": i * 10})
    _, body = client.call(
        "crm.item.list",
        entityTypeId=2,
        select=["id", "title", "opportunity"],
        filter={">=opportunity": 100, "<opportunity": 300},
        order={"opportunity": "DESC"},
    )
    items = body["result"]["items"]
    assert body["total"] == 20 and "next" not in body
    assert items[0] == {"id": 30, "title": "D29", "opportunity": 290}
    _, body = client.call(
        "crm.item.list",
        entityTypeId=2,
        select=["id"],
        start=-1,
        filter={">id": 50},
        order={"id": "ASC"},
    )
    assert [i["id"] for i in body["result"]["items"]] == list(range(51, 61))
    assert body["total"] == 0
    rows = client.bitrix.get_all("crm.item.list", {"entityTypeId": 2, "select": ["id"]})
    assert sorted(r["id"] for r in rows) == list(range(1, 61))
    status, body = client.call("crm.item.list", entityTypeId=2, filter={"noSuchField": 1})
    assert (status, body["error"]) == (400, "INVALID_ARG_VALUE")
    assert "noSuchField" in body["error_description"]
    status, body = client.call("crm.item.list", entityTypeId=2, order={"title": "UP"})
    assert (status, body["error"]) == (400, "INVALID_ARG_VALUE")


def test_item_list_logic_or(client: Client) -> None:
    with client.world.lock:
        for title in ("Red", "Green", "Blue"):
            crm.create_deal(client.portal, {"TITLE": title})
    items = client.ok(
        "crm.item.list",
        entityTypeId=2,
        select=["title"],
        filter={"0": {"logic": "OR", "0": {"=title": "Red"}, "1": {"=title": "Blue"}}},
    )["items"]
    assert [i["title"] for i in items] == ["Red", "Blue"]


def test_smart_invoices_have_their_own_funnel(client: Client) -> None:
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Invoice me"})
    categories = client.ok("crm.category.list", entityTypeId=31)["categories"]
    assert len(categories) == 1 and categories[0]["isDefault"] == "Y"
    cat = categories[0]["id"]
    stages = client.ok("crm.status.list", filter={"ENTITY_ID": f"SMART_INVOICE_STAGE_{cat}"})
    by_id = {s["STATUS_ID"]: s for s in stages}
    assert by_id[f"DT31_{cat}:P"]["SEMANTICS"] == "S"
    assert by_id[f"DT31_{cat}:D"]["SEMANTICS"] == "F"
    assert by_id[f"DT31_{cat}:N"]["SEMANTICS"] is None

    item = client.ok(
        "crm.item.add",
        entityTypeId=31,
        fields={"title": "INV-1", "opportunity": 500, "parentId2": deal_id},
    )["item"]
    assert (item["stageId"], item["categoryId"], item["parentId2"]) == (
        f"DT31_{cat}:N",
        cat,
        deal_id,
    )
    paid = client.ok(
        "crm.item.update", entityTypeId=31, id=item["id"], fields={"stageId": f"DT31_{cat}:P"}
    )["item"]
    assert (paid["stageId"], paid["stageSemanticId"]) == (f"DT31_{cat}:P", "S")
    status, body = client.call(
        "crm.item.update", entityTypeId=31, id=item["id"], fields={"stageId": "WON"}
    )
    assert (status, body["error"]) == (400, "CRM_FIELD_ERROR_VALUE_NOT_VALID")
    listed = client.ok("crm.item.list", entityTypeId=31, filter={"parentId2": deal_id})["items"]
    assert [i["id"] for i in listed] == [item["id"]]
    assert client.ok("crm.item.delete", entityTypeId=31, id=item["id"]) == []
    status, _ = client.call("crm.item.get", entityTypeId=31, id=item["id"])
    assert status == 400


def test_item_product_rows(client: Client) -> None:
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Rows"})
    result = client.ok(
        "crm.item.productrow.set",
        ownerType="D",
        ownerId=deal_id,
        productRows=[{"productName": "Boiler", "price": 1500, "quantity": 2}],
    )
    row = result["productRows"][0]
    assert (row["ownerId"], row["ownerType"], row["price"], row["quantity"]) == (
        deal_id,
        "D",
        1500,
        2,
    )
    listed = client.ok("crm.item.productrow.list", filter={"=ownerType": "D", "=ownerId": deal_id})[
        "productRows"
    ]
    assert [r["id"] for r in listed] == [row["id"]]
    added = client.ok(
        "crm.item.productrow.add",
        fields={"ownerType": "D", "ownerId": deal_id, "productName": "Valve", "price": 50},
    )["productRow"]
    assert client.ok("crm.item.productrow.get", id=added["id"])["productRow"]["productName"] == (
        "Valve"
    )
    assert client.ok("crm.deal.get", id=deal_id)["OPPORTUNITY"] == "3050.00"
    legacy = client.ok("crm.deal.productrows.get", id=deal_id)
    assert [r["PRODUCT_NAME"] for r in legacy] == ["Boiler", "Valve"]
    status, body = client.call(
        "crm.item.productrow.set", ownerType="D", ownerId=999, productRows=[]
    )
    assert (status, body["error"]) == (400, "NOT_FOUND")


def test_crm_item_fields_and_deal_fields(client: Client) -> None:
    client.ok(
        "crm.deal.userfield.add",
        fields={
            "FIELD_NAME": "COLOR",
            "USER_TYPE_ID": "enumeration",
            "LIST": [{"VALUE": "Red"}, {"VALUE": "Blue"}],
        },
    )
    fields = client.ok("crm.deal.fields")
    assert fields["CATEGORY_ID"]["isImmutable"] is True
    assert fields["UF_CRM_COLOR"]["type"] == "enumeration"
    assert [i["VALUE"] for i in fields["UF_CRM_COLOR"]["items"]] == ["Red", "Blue"]
    item_fields = client.ok("crm.item.fields", entityTypeId=2)["fields"]
    assert item_fields["stageId"]["upperName"] == "STAGE_ID"
    assert "ufCrmColor" in item_fields
