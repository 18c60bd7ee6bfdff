"""The trade catalogue over real HTTP: catalog.product.get and .list as PROTOCOL.md §17 and the
docs show them (purchasingPrice a string from get, a number from list), their errors and
rights, the scope, batch references, and product rows taking a catalogue product's name."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import requests

from fakeportal import admin, crm
from fakeportal.crm import catalog
from fakeportal.state import Portal, World
from tests.support import WebhookClient as Client

# The keys of catalog.product.get's documented example (without its propertyN values).
GET_KEYS = {
    "active", "available", "bundle", "canBuyZero", "code", "createdBy", "dateActiveFrom",
    "dateActiveTo", "dateCreate", "detailPicture", "detailText", "detailTextType", "height",
    "iblockId", "iblockSectionId", "id", "length", "measure", "modifiedBy", "name",
    "previewPicture", "previewText", "previewTextType", "purchasingCurrency", "purchasingPrice",
    "quantity", "quantityReserved", "quantityTrace", "sort", "subscribe", "timestampX", "type",
    "vatId", "vatIncluded", "weight", "width", "xmlId",
}  # fmt: skip
IBLOCK = catalog.CATALOG_IBLOCK_ID


@pytest.fixture
def client(fake_world: World, fake_portal: Portal, fake_webhook: str) -> Client:
    fake_world.config["bucket_size"] = 100000
    return Client(fake_world, fake_portal, fake_webhook)


def products(client: Client, *specs: dict[str, Any]) -> list[int]:
    with client.world.lock:
        return [crm.create_product(client.portal, spec) for spec in specs]


def test_get_answers_the_documented_shape_with_a_string_purchasing_price(client: Client) -> None:
    (pid,) = products(
        client,
        {"name": "Expert opinion", "type": 7, "purchasingPrice": 1000, "purchasingCurrency": "EUR"},
    )
    got = client.ok("catalog.product.get", id=pid)
    product = got["product"]
    assert set(product) == GET_KEYS
    assert product["id"] == pid and product["iblockId"] == IBLOCK and product["type"] == 7
    assert product["purchasingPrice"] == "1000.000000"
    assert product["purchasingCurrency"] == "EUR"
    assert product["name"] == "Expert opinion" and product["active"] == "Y"
    assert datetime.fromisoformat(product["dateCreate"]).tzinfo is not None

    (bare,) = products(client, {"name": "Travel"})
    unset = client.ok("catalog.product.get", id=bare)["product"]
    assert unset["purchasingPrice"] is None and unset["purchasingCurrency"] is None


def test_get_errors(client: Client) -> None:
    assert client.call("catalog.product.get") == (
        400,
        {"error": 100, "error_description": "Could not find value for parameter {id}"},
    )
    assert client.call("catalog.product.get", id=999) == (
        400,
        {"error": "0", "error_description": "product does not exist."},
    )


def test_list_selects_filters_by_ids_and_pages(client: Client) -> None:
    ids = products(
        client,
        *[
            {"name": f"Service {n}", "purchasingPrice": 10 * n, "purchasingCurrency": "PLN"}
            for n in range(1, 56)
        ],
    )
    first = requests.post(
        client.webhook + "catalog.product.list",
        json={
            "select": ["id", "iblockId", "name", "purchasingPrice", "purchasingCurrency"],
            "filter": {"iblockId": IBLOCK},
        },
        timeout=10,
    ).json()
    assert first["total"] == 55 and first["next"] == 50
    rows = first["result"]["products"]
    assert len(rows) == 50 and [r["id"] for r in rows] == ids[:50]
    assert rows[0] == {
        "id": ids[0],
        "iblockId": IBLOCK,
        "name": "Service 1",
        "purchasingPrice": 10,
        "purchasingCurrency": "PLN",
    }
    some = client.ok(
        "catalog.product.list",
        select=["id", "iblockId", "purchasingPrice"],
        filter={"iblockId": IBLOCK, "id": [ids[2], ids[4]]},
        order={"id": "desc"},
    )["products"]
    assert [(r["id"], r["purchasingPrice"]) for r in some] == [(ids[4], 50), (ids[2], 30)]
    cheap = client.ok(
        "catalog.product.list",
        select=["id", "iblockId"],
        filter={"iblockId": IBLOCK, "<purchasingPrice": 35},
    )["products"]
    assert [r["id"] for r in cheap] == ids[:3]


def test_list_errors(client: Client) -> None:
    assert client.call(
        "catalog.product.list", select=["id", "name"], filter={"iblockId": IBLOCK}
    ) == (400, {"error": "0", "error_description": "Required select fields: iblockId"})
    assert client.call("catalog.product.list", select=["id", "iblockId"], filter={"id": 1}) == (
        400,
        {"error": "0", "error_description": "Required filter fields: iblockId"},
    )
    assert client.call(
        "catalog.product.list", select=["id", "iblockId"], filter={"iblockId": 999}
    ) == (400, {"error": 200040300000, "error_description": "Iblock Not Found"})


def test_rights_and_scope(fake_world: World, fake_portal: Portal, fake_admin: Any) -> None:
    """get is for administrators; list needs the right to view the catalogue; both need the
    ``catalog`` scope."""
    with fake_world.lock:
        pid = crm.create_product(fake_portal, {"name": "Audit"})
    manager = admin.create_webhook(fake_world, fake_portal.member_id, user_id=3)["url"]
    denied = {"error": 200040300010, "error_description": "Access Denied"}
    answer = requests.post(manager + "catalog.product.get", json={"id": pid}, timeout=10)
    assert (answer.status_code, answer.json()) == (400, denied)
    listing = {"select": ["id", "iblockId"], "filter": {"iblockId": IBLOCK}}
    answer = requests.post(manager + "catalog.product.list", json=listing, timeout=10)
    assert answer.status_code == 200 and answer.json()["result"]["products"][0]["id"] == pid
    fake_admin.catalog_access(member_id=fake_portal.member_id, user_id=3, view=False)
    answer = requests.post(manager + "catalog.product.list", json=listing, timeout=10)
    assert (answer.status_code, answer.json()) == (400, denied)

    crm_only = admin.create_webhook(fake_world, fake_portal.member_id, scope=["crm"])["url"]
    answer = requests.post(crm_only + "catalog.product.get", json={"id": pid}, timeout=10)
    assert answer.status_code == 403 and answer.json()["error"] == "insufficient_scope"


def test_a_batch_reads_the_products_of_a_deals_rows(client: Client) -> None:
    pid = products(
        client, {"name": "Court expertise", "purchasingPrice": 700.5, "purchasingCurrency": "PLN"}
    )[0]
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Offer", "CURRENCY_ID": "PLN"})
    client.ok("crm.deal.productrows.set", id=deal_id, rows=[{"PRODUCT_ID": pid, "PRICE": 1000}])
    got = client.ok(
        "batch",
        halt=0,
        cmd={
            "rows": f"crm.deal.productrows.get?id={deal_id}",
            "product": "catalog.product.get?id=$result[rows][0][PRODUCT_ID]",
        },
    )
    assert got["result_error"] == []
    row = got["result"]["rows"][0]
    assert row["PRODUCT_NAME"] == "Court expertise"  # no name given: the catalogue's
    assert got["result"]["product"]["product"]["purchasingPrice"] == "700.500000"


def test_admin_actions(fake_world: World, fake_portal: Portal, fake_admin: Any) -> None:
    made = fake_admin.create_product(
        member_id=fake_portal.member_id,
        fields={"name": "Opinion", "purchasingPrice": "1200.50", "purchasingCurrency": "PLN"},
    )
    assert made["purchasingPrice"] == "1200.500000"
    changed = fake_admin.update_product(
        member_id=fake_portal.member_id, product_id=made["id"], fields={"purchasingPrice": None}
    )
    assert changed["purchasingPrice"] is None and changed["name"] == "Opinion"
    with pytest.raises(Exception, match="currency"):
        fake_admin.create_product(
            member_id=fake_portal.member_id, fields={"name": "X", "purchasingPrice": 5}
        )
