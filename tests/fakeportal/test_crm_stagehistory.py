"""crm.stagehistory.list over real HTTP: a row per creation, stage move and funnel change."""

from __future__ import annotations

from fakeportal import crm
from fakeportal.state import Portal, World
from tests.support import WebhookClient as Client


def test_history_of_a_deal_as_the_portal_lists_it(
    fake_world: World, fake_portal: Portal, fake_webhook: str
) -> None:
    client = Client(fake_world, fake_portal, fake_webhook)
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Banners"})
    client.ok("crm.deal.update", id=deal_id, fields={"STAGE_ID": "PREPARATION"})
    client.ok("crm.deal.update", id=deal_id, fields={"STAGE_ID": "PREPAYMENT_INVOICE"})
    with fake_world.lock:
        funnel = crm.create_category(fake_portal, "Service")
        crm.change_category(fake_portal, deal_id, funnel)
    client.ok("crm.deal.update", id=deal_id, fields={"STAGE_ID": f"C{funnel}:WON"})

    status, body = client.call(
        "crm.stagehistory.list",
        entityTypeId=2,
        order={"ID": "DESC"},
        filter={"OWNER_ID": deal_id},
        select=["ID", "TYPE_ID", "STAGE_ID", "CATEGORY_ID", "CREATED_TIME"],
    )
    assert status == 200 and body["total"] == 5
    items = body["result"]["items"]
    assert [(i["TYPE_ID"], i["STAGE_ID"], i["CATEGORY_ID"]) for i in items] == [
        (3, f"C{funnel}:WON", funnel),
        (5, f"C{funnel}:NEW", funnel),
        (2, "PREPAYMENT_INVOICE", 0),
        (2, "PREPARATION", 0),
        (1, "NEW", 0),
    ]
    assert isinstance(items[0]["ID"], int) and "+" in items[0]["CREATED_TIME"][10:]
    assert set(items[0]) == {"ID", "TYPE_ID", "STAGE_ID", "CATEGORY_ID", "CREATED_TIME"}

    status, body = client.call("crm.stagehistory.list", entityTypeId=1)
    assert status == 400 and body["error"] == "ENTITY_TYPE_NOT_SUPPORTED"
