"""check_fields end to end: the print shop's stages that cannot be entered half-filled, and the
furniture maker's photos before an order leaves "Installation"."""

from __future__ import annotations

from typing import Any

from fakeportal.crm import add_user_field, deals

ISSUE_INVOICE, AWAITING_DELIVERY, INSTALLATION = "PREPARATION", "EXECUTING", "FINAL_INVOICE"


def fields(stack) -> dict[str, int]:
    """The print shop's deal fields; the enumeration items' ids by label."""
    with stack.world.lock:
        p = stack.portal
        add_user_field(p, "DEAL", "SERVICE_TYPE", "enumeration", label="Service type",
                       list_values=["Offset printing", "Embroidery"])  # fmt: skip
        add_user_field(p, "DEAL", "DESIGNER", "boolean", label="Designer needed")
        add_user_field(p, "DEAL", "PREPAYMENT", "boolean", label="Supplier wants prepayment")
        add_user_field(p, "DEAL", "PICKUP", "enumeration", label="Pickup method",
                       list_values=["Our driver", "Client picks up"])  # fmt: skip
        add_user_field(p, "DEAL", "PICKUP_TIME", "datetime", label="Pickup time")
        add_user_field(p, "DEAL", "DELIVERY_DATE", "date", label="Delivery date")
        add_user_field(p, "DEAL", "PHOTOS", "file", label="Assembly photos", multiple=True)
    described = stack.portal_call("crm.deal.fields")
    return {
        item["VALUE"]: int(item["ID"])
        for code in ("UF_CRM_SERVICE_TYPE", "UF_CRM_PICKUP")
        for item in described[code]["items"]
    }


def new_deal(stack, **values: Any) -> int:
    with stack.world.lock:
        return deals.create_deal(stack.portal, {"TITLE": "1000 mugs", **values}, user_id=1)


def move(stack, deal_id: int, stage: str) -> None:
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {"STAGE_ID": stage}})
    stack.settle()


def result(stack, deal_id: int) -> dict[str, Any]:
    flows = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    return flows[-1]["robots"][0]


def stage(stack, deal_id: int) -> str:
    return stack.portal_call("crm.deal.get", {"id": deal_id})["STAGE_ID"]


def comments(stack, deal_id: int) -> list[str]:
    rows = stack.portal_call(
        "crm.timeline.comment.list", {"filter": {"ENTITY_TYPE": "deal", "ENTITY_ID": deal_id}}
    )
    return [r["COMMENT"] for r in rows]


def notifications(stack, user_id: int) -> list[str]:
    with stack.world.lock:
        rows = list(stack.portal.table("notification").values())
    return [str(r.get("MESSAGE")) for r in rows if int(r.get("USER_ID") or 0) == user_id]


def test_issue_invoice_cannot_be_entered_until_the_three_fields_are_filled(stack) -> None:
    stack.install()
    items = fields(stack)
    rules = "UF_CRM_SERVICE_TYPE\nUF_CRM_DESIGNER\n# asked by the supplier\nUF_CRM_PREPAYMENT"
    stack.place_robot("check_fields", ISSUE_INVOICE, {"rules": rules})
    deal_id = new_deal(stack, UF_CRM_SERVICE_TYPE=items["Embroidery"])

    stack.admin.requests(member_id=stack.member_id, reset=True)
    move(stack, deal_id, ISSUE_INVOICE)
    step = result(stack, deal_id)
    assert step["return_values"] == {
        "passed": "N", "missing": "Designer needed, Supplier wants prepayment",
    }  # fmt: skip
    assert stage(stack, deal_id) == "NEW"  # back where it came from
    [note] = comments(stack, deal_id)
    assert note == (
        "The deal cannot stay in this stage: fill in Designer needed, Supplier wants"
        " prepayment. It was moved back to the stage it came from."
    )
    assert any("Designer needed" in m for m in notifications(stack, 1))  # the responsible
    methods = stack.admin.requests(member_id=stack.member_id)["methods"]
    # The app's requests: one batch reads; one answers, moves back, comments, notifies.
    assert methods["batch"] == 2 and methods["bizproc.event.send"] == 1

    # "No" is an answer: with both filled in, the deal enters the stage and stays.
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {
        "UF_CRM_DESIGNER": "N", "UF_CRM_PREPAYMENT": "Y"}})  # fmt: skip
    move(stack, deal_id, ISSUE_INVOICE)
    assert result(stack, deal_id)["return_values"] == {"passed": "Y", "missing": ""}
    assert stage(stack, deal_id) == ISSUE_INVOICE


def test_the_pickup_time_is_needed_only_when_our_driver_picks_up(stack) -> None:
    stack.install()
    items = fields(stack)
    rules = "UF_CRM_PICKUP\nUF_CRM_DELIVERY_DATE\nUF_CRM_PICKUP_TIME if UF_CRM_PICKUP = our driver"
    stack.place_robot("check_fields", AWAITING_DELIVERY, {"rules": rules, "notify_user": "user_3"})
    by_client = new_deal(stack, UF_CRM_PICKUP=items["Client picks up"],
                         UF_CRM_DELIVERY_DATE="2026-12-04")  # fmt: skip
    by_driver = new_deal(stack, UF_CRM_PICKUP=str(items["Our driver"]),
                         UF_CRM_DELIVERY_DATE="2026-12-04")  # fmt: skip
    move(stack, by_client, AWAITING_DELIVERY)
    move(stack, by_driver, AWAITING_DELIVERY)
    assert result(stack, by_client)["return_values"]["passed"] == "Y"
    assert result(stack, by_driver)["return_values"] == {"passed": "N", "missing": "Pickup time"}
    assert stage(stack, by_driver) == "NEW"
    assert any("Pickup time" in m for m in notifications(stack, 3))  # the chosen user too


def test_an_order_leaves_installation_only_with_three_photos(stack) -> None:
    stack.install()
    fields(stack)
    stack.place_robot(
        "check_fields",
        INSTALLATION,
        {"rules": "UF_CRM_PHOTOS >= 3 files", "on_fail": "stay", "notify_responsible": "N"},
    )
    deal_id = new_deal(stack, UF_CRM_PHOTOS=[501, 502])
    move(stack, deal_id, INSTALLATION)
    assert result(stack, deal_id)["return_values"] == {
        "passed": "N", "missing": "Assembly photos",
    }  # fmt: skip
    assert stage(stack, deal_id) == INSTALLATION  # told to stay: the designer branches on it
    assert notifications(stack, 1) == []
    stack.portal_call("crm.deal.update", {"id": deal_id, "fields": {
        "UF_CRM_PHOTOS": [501, 502, 503]}})  # fmt: skip
    move(stack, deal_id, "EXECUTING")
    move(stack, deal_id, INSTALLATION)
    assert result(stack, deal_id)["return_values"]["passed"] == "Y"


def test_what_the_admin_reads_when_a_rule_names_an_unknown_field(stack) -> None:
    stack.install()
    fields(stack)
    stack.place_robot("check_fields", ISSUE_INVOICE, {"rules": "UF_CRM_SERVICE_TYPE\nUF_CRM_NOPE"})
    deal_id = new_deal(stack)
    move(stack, deal_id, ISSUE_INVOICE)
    [flow] = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    assert any("unknown deal field(s) in the rules: UF_CRM_NOPE" in line for line in flow["log"])
    assert stage(stack, deal_id) == ISSUE_INVOICE  # a broken rule blocks no one


def test_a_russian_portal_reads_the_comment_in_russian(stack) -> None:
    with stack.world.lock:
        stack.portal.language = "ru"
    stack.install()
    fields(stack)
    stack.place_robot("check_fields", ISSUE_INVOICE, {"rules": "UF_CRM_SERVICE_TYPE"})
    deal_id = new_deal(stack)
    move(stack, deal_id, ISSUE_INVOICE)
    [note] = comments(stack, deal_id)
    assert note.startswith("Сделка не может оставаться на этой стадии: заполните Service type.")
