"""route_repeat_client end to end: the water delivery company's repeat clients go from
"New clients" to "Regular clients" with the preferences kept on their contact."""

from __future__ import annotations

from typing import Any

from fakeportal.crm import add_user_field, categories, contacts, deals

MAPPING = (
    "UF_CRM_PAYMENT_FORM -> UF_CRM_DEAL_PAYMENT\n"
    "UF_CRM_DELIVERY_TIME -> UF_CRM_DEAL_DELIVERY_TIME\n"
    "# what the driver should know\n"
    "UF_CRM_NOTES -> COMMENTS"
)


def water_funnels(stack) -> tuple[int, int, int]:
    """New clients, Regular clients, and a funnel of one-off events (water for a festival)."""
    with stack.world.lock:
        p = stack.portal
        new = categories.create_category(p, "New clients", [
            ("NEW", "Inquiry", "P"), ("OFFER", "Offer", "P"),
            ("WON", "Delivered", "S"), ("LOSE", "Lost", "F"),
        ])  # fmt: skip
        regular = categories.create_category(p, "Regular clients", [
            ("NEW", "Next order", "P"), ("ROUTE", "On the route sheet", "P"),
            ("WON", "Delivered", "S"), ("LOSE", "Lost", "F"),
        ])  # fmt: skip
        events = categories.create_category(p, "Events", [
            ("NEW", "Event", "P"), ("WON", "Done", "S"), ("LOSE", "Lost", "F"),
        ])  # fmt: skip
        add_user_field(p, "DEAL", "DEAL_PAYMENT", "enumeration", label="Payment form",
                       list_values=["Cash to the driver", "Bank transfer"])  # fmt: skip
        add_user_field(p, "CONTACT", "PAYMENT_FORM", "enumeration", label="Payment form",
                       list_values=["Bank transfer", "Cash to the driver"])  # fmt: skip
        add_user_field(p, "CONTACT", "DELIVERY_TIME", "string", label="Delivery time")
        add_user_field(p, "DEAL", "DEAL_DELIVERY_TIME", "string", label="Delivery time")
        add_user_field(p, "CONTACT", "NOTES", "string", label="Notes")
    return new, regular, events


def item_id(stack, entity: str, field: str, label: str) -> int:
    described = stack.portal_call(f"crm.{entity}.fields")
    return next(int(i["ID"]) for i in described[field]["items"] if i["VALUE"] == label)


def client(stack, **fields: Any) -> int:
    with stack.world.lock:
        return contacts.create_contact(stack.portal, {"NAME": "Ewa", "LAST_NAME": "Wiśniewska",
                                                      **fields})  # fmt: skip


def won_deal(stack, funnel: int, closed: str, **fields: Any) -> int:
    with stack.world.lock:
        return deals.create_deal(stack.portal, {
            "TITLE": "20 bottles", "CATEGORY_ID": funnel, "STAGE_ID": f"C{funnel}:WON",
            "CLOSEDATE": closed, **fields,
        }, user_id=1)  # fmt: skip


def inquiry(stack, funnel: int, **fields: Any) -> int:
    """A new deal on "New clients"' first stage: its automation runs."""
    with stack.world.lock:
        deal_id = deals.create_deal(stack.portal, {
            "TITLE": "Water cooler + 19 l bottles", "CATEGORY_ID": funnel,
            "STAGE_ID": f"C{funnel}:NEW", **fields,
        }, user_id=1)  # fmt: skip
    stack.settle()
    return deal_id


def place(stack, new: int, regular: int, **properties: Any) -> None:
    stack.place_robot(
        "route_repeat_client", f"C{new}:NEW",
        {"category_id": str(regular), "stage_id": f"C{regular}:ROUTE", **properties},
        category_id=new,
    )  # fmt: skip


def flow(stack, deal_id: int) -> dict[str, Any]:
    [one] = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    return one


def returned(step: dict[str, Any]) -> dict[str, str]:
    """The robot's return values as the designer shows them (text; an answer that went in a
    batch with the writes arrives as text, one sent alone keeps JSON numbers)."""
    return {k: str(v) for k, v in step["return_values"].items()}


def deal(stack, deal_id: int) -> dict[str, Any]:
    return stack.portal_call("crm.deal.get", {"id": deal_id})


def test_a_repeat_client_goes_to_regular_clients_with_the_contact_preferences(stack) -> None:
    stack.install()
    new, regular, _ = water_funnels(stack)
    place(stack, new, regular, field_map=MAPPING)
    transfer = item_id(stack, "contact", "UF_CRM_PAYMENT_FORM", "Bank transfer")
    ewa = client(stack, UF_CRM_PAYMENT_FORM=transfer, UF_CRM_DELIVERY_TIME="Mornings, 8-10",
                 UF_CRM_NOTES="Gate code 4711")  # fmt: skip
    won_deal(stack, new, "2026-03-02", CONTACT_ID=ewa)
    latest = won_deal(stack, regular, "2026-10-15", CONTACT_ID=ewa)
    won_deal(stack, regular, "2026-10-01", CONTACT_ID=ewa)
    with stack.world.lock:
        deals.create_deal(stack.portal, {"TITLE": "lost", "CATEGORY_ID": new,
                          "STAGE_ID": f"C{new}:LOSE", "CONTACT_ID": ewa})  # fmt: skip

    before = stack.admin.requests(member_id=stack.member_id)["total"]
    calls_before = stack.test_calls
    deal_id = inquiry(stack, new, CONTACT_ID=ewa)
    used = stack.admin.requests(member_id=stack.member_id)["total"] - before
    used -= stack.test_calls - calls_before

    one = flow(stack, deal_id)
    step = one["robots"][0]
    assert step["status"] == "completed", one
    assert returned(step) == {"repeat": "Y", "previous_deal_id": str(latest)}, one
    now = deal(stack, deal_id)
    assert (now["CATEGORY_ID"], now["STAGE_ID"]) == (str(regular), f"C{regular}:ROUTE")
    # Enumerations are matched by label: the deal's field lists its items in another order.
    assert now["UF_CRM_DEAL_PAYMENT"] == str(
        item_id(stack, "deal", "UF_CRM_DEAL_PAYMENT", "Bank transfer")
    )
    assert now["UF_CRM_DEAL_DELIVERY_TIME"] == "Mornings, 8-10"
    assert now["COMMENTS"] == "Gate code 4711"
    # One batch reads; one answers the workflow, copies the preferences and moves the deal.
    assert used == 2, used


def test_a_new_client_stays_in_new_clients(stack) -> None:
    stack.install()
    new, regular, _ = water_funnels(stack)
    place(stack, new, regular, field_map=MAPPING)
    first = client(stack, UF_CRM_DELIVERY_TIME="Evenings")
    other = client(stack)
    won_deal(stack, new, "2026-05-05", CONTACT_ID=other)  # someone else's
    with stack.world.lock:  # only lost and open deals of this contact
        deals.create_deal(stack.portal, {"TITLE": "lost", "CATEGORY_ID": new,
                          "STAGE_ID": f"C{new}:LOSE", "CONTACT_ID": first})  # fmt: skip
    deal_id = inquiry(stack, new, CONTACT_ID=first)
    step = flow(stack, deal_id)["robots"][0]
    assert returned(step) == {"repeat": "N", "previous_deal_id": "0"}
    now = deal(stack, deal_id)
    assert now["STAGE_ID"] == f"C{new}:NEW" and not now.get("UF_CRM_DEAL_DELIVERY_TIME")


def test_a_deal_without_contact_or_company_is_new(stack) -> None:
    stack.install()
    new, regular, _ = water_funnels(stack)
    place(stack, new, regular, field_map=MAPPING, count_company="Y")
    won_deal(stack, new, "2026-05-05")  # a won deal without a contact either
    deal_id = inquiry(stack, new)
    step = flow(stack, deal_id)["robots"][0]
    assert returned(step) == {"repeat": "N", "previous_deal_id": "0"}
    assert deal(stack, deal_id)["STAGE_ID"] == f"C{new}:NEW"


def test_the_company_counts_when_asked_and_the_first_stage_is_the_default(stack) -> None:
    stack.install()
    new, regular, _ = water_funnels(stack)
    with stack.world.lock:
        office = contacts.create_company(stack.portal, {"TITLE": "Biuro Rachunkowe"})
    previous = won_deal(stack, new, "2026-04-01", COMPANY_ID=office)
    stack.place_robot("route_repeat_client", f"C{new}:NEW",
                      {"category_id": str(regular), "count_company": "Y"},
                      category_id=new)  # fmt: skip
    deal_id = inquiry(stack, new, COMPANY_ID=office, CONTACT_ID=client(stack))
    step = flow(stack, deal_id)["robots"][0]
    assert returned(step) == {"repeat": "Y", "previous_deal_id": str(previous)}
    assert deal(stack, deal_id)["STAGE_ID"] == f"C{regular}:NEW"


def test_a_won_deal_only_in_a_funnel_not_listed_makes_a_new_client(stack) -> None:
    stack.install()
    new, regular, events = water_funnels(stack)
    place(stack, new, regular, look_in=f"{new}, {regular}")
    ewa = client(stack)
    won_deal(stack, events, "2026-06-20", CONTACT_ID=ewa)
    deal_id = inquiry(stack, new, CONTACT_ID=ewa)
    step = flow(stack, deal_id)["robots"][0]
    assert returned(step) == {"repeat": "N", "previous_deal_id": "0"}
    assert deal(stack, deal_id)["STAGE_ID"] == f"C{new}:NEW"


def test_an_unknown_mapped_field_is_named_in_the_workflow_log(stack) -> None:
    stack.install()
    new, regular, _ = water_funnels(stack)
    place(
        stack,
        new,
        regular,
        field_map="UF_CRM_PAYMENT_FORM -> UF_CRM_DEAL_PAYMENT\nUF_CRM_FLOOR -> UF_CRM_DEAL_FLOOR",
    )
    ewa = client(stack)
    won_deal(stack, new, "2026-06-20", CONTACT_ID=ewa)
    deal_id = inquiry(stack, new, CONTACT_ID=ewa)
    one = flow(stack, deal_id)
    assert any(
        "unknown contact field(s): UF_CRM_FLOOR; unknown deal field(s): UF_CRM_DEAL_FLOOR" in line
        for line in one["log"]
    ), one["log"]
    assert deal(stack, deal_id)["STAGE_ID"] == f"C{new}:NEW"  # nothing moved
    run = stack.services.store.runs(stack.member_id, kind="robot")[0]
    assert run["status"] == "failed" and "UF_CRM_FLOOR" in run["error"]


def test_a_portal_error_is_a_readable_failure(stack) -> None:
    stack.install()
    new, regular, _ = water_funnels(stack)
    place(stack, new, regular)
    ewa = client(stack)
    won_deal(stack, new, "2026-06-20", CONTACT_ID=ewa)
    stack.admin.inject_fault(
        member_id=stack.member_id, status=403, code="ACCESS_DENIED",
        description="Access denied.", count=1, method="crm.deal.list",
    )  # fmt: skip
    deal_id = inquiry(stack, new, CONTACT_ID=ewa)
    one = flow(stack, deal_id)
    assert one["robots"][0]["status"] == "completed"
    assert one["log"] == [
        f"route_repeat_client: failed: deal {deal_id} and its client cannot be read: the portal"
        " answered ACCESS_DENIED: Access denied."
    ], one["log"]
    assert deal(stack, deal_id)["STAGE_ID"] == f"C{new}:NEW"


def test_a_mapping_line_that_is_not_a_pair_is_named(stack) -> None:
    stack.install()
    new, regular, _ = water_funnels(stack)
    place(stack, new, regular, field_map="UF_CRM_PAYMENT_FORM UF_CRM_DEAL_PAYMENT")
    deal_id = inquiry(stack, new, CONTACT_ID=client(stack))
    assert flow(stack, deal_id)["log"] == [
        "route_repeat_client: failed: field mapping: 'UF_CRM_PAYMENT_FORM UF_CRM_DEAL_PAYMENT'"
        " is not 'CONTACT_FIELD -> DEAL_FIELD'"
    ]
