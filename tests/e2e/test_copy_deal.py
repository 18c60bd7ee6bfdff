"""The first robot end to end: a won solar deal is copied into the Service funnel."""

from __future__ import annotations

from fakeportal.crm import categories, contacts, deals


def solar_funnels(stack) -> int:
    """The Service funnel of the solar installer; the Sales funnel is the default one (0)."""
    return categories.create_category(
        stack.portal,
        "Service",
        [
            ("NEW", "Warranty service", "P"),
            ("POST", "Post-warranty service", "P"),
            ("WON", "Closed", "S"),
            ("LOSE", "Cancelled", "F"),
        ],
    )


def won_deal(stack) -> int:
    with stack.world.lock:
        c1 = contacts.create_contact(
            stack.portal,
            {
                "NAME": "Anna",
                "LAST_NAME": "Nowak",
                "PHONE": [{"VALUE": "+48600100200", "VALUE_TYPE": "WORK"}],
            },
        )
        c2 = contacts.create_contact(stack.portal, {"NAME": "Piotr", "LAST_NAME": "Nowak"})
        deal_id = deals.create_deal(
            stack.portal,
            {
                "TITLE": "PV 9.6 kWp + heat pump, Nowak",
                "OPPORTUNITY": "68400.00",
                "CURRENCY_ID": "PLN",
                "ASSIGNED_BY_ID": 1,
                "CONTACT_IDS": [c1, c2],
            },
            user_id=1,
        )
    stack.portal_call(
        "crm.deal.productrows.set",
        {
            "id": deal_id,
            "rows": [
                {"PRODUCT_NAME": "PV panel 400 W", "PRICE": 900, "QUANTITY": 24},
                {"PRODUCT_NAME": "Heat pump 8 kW", "PRICE": 46800, "QUANTITY": 1},
            ],
        },
    )
    return deal_id


def test_won_deal_is_copied_with_rows_and_contacts(stack, caplog) -> None:
    caplog.set_level("DEBUG")
    stack.install()
    service = solar_funnels(stack)
    stack.place_robot(
        "copy_deal", "WON", {"category_id": str(service), "stage_id": f"C{service}:NEW"}
    )
    deal_id = won_deal(stack)
    before = stack.admin.requests(member_id=stack.member_id)["total"]
    calls_before = stack.test_calls
    with stack.world.lock:
        deals.move_deal(stack.portal, deal_id, "WON", user_id=1)
    stack.settle()

    flows = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    assert len(flows) == 1
    step = flows[0]["robots"][0]
    assert step["status"] == "completed", flows
    new_id = int(step["return_values"]["deal_id"])

    copy = stack.portal_call("crm.deal.get", {"id": new_id})
    assert copy["CATEGORY_ID"] == str(service) and copy["STAGE_ID"] == f"C{service}:NEW"
    assert copy["TITLE"] == "PV 9.6 kWp + heat pump, Nowak"
    assert copy["OPPORTUNITY"] == "68400.00"
    rows = stack.portal_call("crm.deal.productrows.get", {"id": new_id})
    assert [(r["PRODUCT_NAME"], float(r["QUANTITY"])) for r in rows] == [
        ("PV panel 400 W", 24.0),
        ("Heat pump 8 kW", 1.0),
    ]
    original_contacts = stack.portal_call("crm.deal.contact.items.get", {"id": deal_id})
    copied_contacts = stack.portal_call("crm.deal.contact.items.get", {"id": new_id})
    assert [c["CONTACT_ID"] for c in copied_contacts] == [
        c["CONTACT_ID"] for c in original_contacts
    ]
    notes = stack.portal_call(
        "crm.timeline.comment.list", {"filter": {"ENTITY_TYPE": "deal", "ENTITY_ID": deal_id}}
    )
    assert any(str(new_id) in n["COMMENT"] for n in notes)

    # The robot's own calls: one batch to read, one to write, one to answer the workflow.
    used = stack.admin.requests(member_id=stack.member_id)["total"] - before
    runs = stack.services.store.runs(stack.member_id, kind="robot")
    assert [(r["name"], r["status"]) for r in runs] == [("copy_deal", "ok")]
    assert used == 3 + (stack.test_calls - calls_before), used

    # No secret reached the logs: tokens, the workflow's event token, the client secret.
    inst = stack.portal.apps[stack.client_id]
    tokens = stack.services.store.load_tokens(stack.member_id)
    secrets = [
        tokens.access_token,
        tokens.refresh_token,
        inst.application_token,
        stack.services.settings.client_secret,
    ]
    secrets += [r.request["form"]["event_token"] for r in stack.portal.wire if r.kind == "robot"]
    assert all(secret and secret not in caplog.text for secret in secrets)


def test_robot_failure_is_answered_with_the_reason(stack) -> None:
    stack.install()
    stack.place_robot("copy_deal", "WON", {"category_id": "777"})
    with stack.world.lock:
        deal_id = deals.create_deal(stack.portal, {"TITLE": "no such funnel"}, user_id=1)
        deals.move_deal(stack.portal, deal_id, "WON", user_id=1)
    stack.settle()
    flows = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
    step = flows[0]["robots"][0]
    assert step["status"] == "completed" and not step["return_values"]
    assert any("funnel 777" in line for line in flows[0]["log"]), flows
    run = stack.services.store.runs(stack.member_id, kind="robot")[0]
    assert run["status"] == "failed" and "funnel 777" in run["error"]


def test_a_portal_outage_is_retried_within_the_workflow_timeout(stack) -> None:
    """The portal answers 503 for a while: the run fails, RQ retries it, the copy is made
    once and the workflow gets its answer; the attempts are recorded."""
    stack.services.settings = stack.services.settings.with_(
        portal_retry_delays=(0.01, 0.01), robot_retry_intervals=(1, 1)
    )
    stack.install()
    service = solar_funnels(stack)
    stack.place_robot("copy_deal", "WON", {"category_id": str(service)})
    with stack.world.lock:
        deal_id = deals.create_deal(stack.portal, {"TITLE": "Heat pump"}, user_id=1)
    # Three failures: the client's two retries do not get past them, the job's retry does.
    stack.admin.inject_fault(
        member_id=stack.member_id,
        status=503,
        code="INTERNAL_SERVER_ERROR",
        count=3,
        method="crm.deal.get",
    )
    with stack.world.lock:
        deals.move_deal(stack.portal, deal_id, "WON", user_id=1)
    stack.settle()
    step = stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)[0]["robots"][0]
    assert step["status"] == "completed" and step["return_values"]["deal_id"]
    runs = stack.services.store.runs(stack.member_id, kind="robot")
    assert [(r["status"], r["attempts"]) for r in reversed(runs)] == [("retrying", 1), ("ok", 2)]
    copies = stack.portal_call("crm.deal.list", {"filter": {"CATEGORY_ID": service}})
    assert len(copies) == 1
