"""The expert-opinion firm's board sees only the offers below the minimum margin, end to end.

Offers are prepared in the "Expert opinions" funnel; the robot sits on "Offer prepared" with a
25 % minimum. An offer above it goes on untouched; one below it notifies the board (the
director and the head of sales), gives them an approval task linked to the deal and moves the
deal to "Board approval". The costs are the catalogue's purchasing prices (the experts' fees),
or a deal field with the offer's total cost. What the admin reads in the workflow log, and
what each run costs in REST requests, is checked.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from app.registry import SCOPES
from fakeportal import crm
from fakeportal.crm import categories, deals

DIRECTOR, HEAD_OF_SALES = 1, 2  # the board (seeded users)


def install(stack: Any, *, catalog_scope: bool = True) -> None:
    """Install the app; without ``catalog_scope`` the portal's admin left out the ``catalog``
    permission the robot needs to read costs."""
    if not catalog_scope:
        stack.admin.register_app(
            client_id=stack.client_id,
            client_secret=stack.services.settings.client_secret,
            install_url=f"{stack.app_url}/install",
            scope=[s for s in SCOPES if s != "catalog"],
        )
    stack.install()


def offers_funnel(stack: Any) -> int:
    return categories.create_category(
        stack.portal,
        "Expert opinions",
        [
            ("NEW", "Inquiry", "P"),
            ("OFFER", "Offer prepared", "P"),
            ("BOARD", "Board approval", "P"),
            ("SENT", "Offer sent", "P"),
            ("WON", "Opinion delivered", "S"),
            ("LOSE", "Declined", "F"),
        ],
    )


def place(stack: Any, funnel: int, **properties: Any) -> None:
    props = {
        "min_margin": "25",
        "notify_users": [f"user_{DIRECTOR}", f"user_{HEAD_OF_SALES}"],
        "approval_task": "Y",
        "target_stage": f"C{funnel}:BOARD",
        **properties,
    }
    stack.place_robot("check_margin", f"C{funnel}:OFFER", props, category_id=funnel)


def services(stack: Any) -> dict[str, int]:
    """The catalogue: services with the experts' fees as purchasing prices."""
    with stack.world.lock:
        return {
            "opinion": crm.create_product(
                stack.portal,
                {
                    "name": "Construction expert opinion for a court",
                    "type": 7,
                    "purchasingPrice": 6000,
                    "purchasingCurrency": "PLN",
                },
            ),
            "inspection": crm.create_product(
                stack.portal,
                {
                    "name": "Site inspection",
                    "type": 7,
                    "purchasingPrice": "400.00",
                    "purchasingCurrency": "PLN",
                },
            ),
            "translation": crm.create_product(
                stack.portal, {"name": "Sworn translation", "type": 7}
            ),
        }


def offer(stack: Any, funnel: int, title: str, rows: list[dict[str, Any]], **fields: Any) -> int:
    with stack.world.lock:
        deal_id = deals.create_deal(
            stack.portal,
            {
                "TITLE": title,
                "CURRENCY_ID": "PLN",
                "CATEGORY_ID": funnel,
                "STAGE_ID": f"C{funnel}:NEW",
                **fields,
            },
            user_id=3,
        )
    stack.portal_call("crm.deal.productrows.set", {"id": deal_id, "rows": rows})
    return deal_id


def prepare(stack: Any, deal_id: int, funnel: int) -> tuple[dict[str, Any], int]:
    """The manager moves the offer to "Offer prepared"; the workflow, and the requests the
    app made meanwhile."""
    before = stack.admin.requests(member_id=stack.member_id)["total"]
    calls_before = stack.test_calls
    with stack.world.lock:
        deals.move_deal(stack.portal, deal_id, f"C{funnel}:OFFER", user_id=3)
    stack.settle()
    used = stack.admin.requests(member_id=stack.member_id)["total"] - before
    used -= stack.test_calls - calls_before
    (flow,) = [
        f
        for f in stack.admin.workflows(member_id=stack.member_id, deal_id=deal_id)
        if f["stage_id"] == f"C{funnel}:OFFER"
    ]
    return flow, used


def notifications(stack: Any) -> list[dict[str, Any]]:
    with stack.world.lock:
        return [dict(n) for n in stack.portal.table("notification").values()]


def tasks_of(stack: Any, deal_id: int) -> list[dict[str, Any]]:
    with stack.world.lock:
        return [
            dict(t)
            for t in stack.portal.table("task").values()
            if f"D_{deal_id}" in t.get("UF_CRM_TASK", [])
        ]


def stage(stack: Any, deal_id: int) -> str:
    with stack.world.lock:
        return deals.get_deal(stack.portal, deal_id)["STAGE_ID"]


def test_an_offer_above_the_minimum_goes_on_untouched(stack) -> None:
    install(stack)
    funnel = offers_funnel(stack)
    place(stack, funnel)
    product = services(stack)
    deal_id = offer(
        stack,
        funnel,
        "Expert opinion: cracked foundations, Kowalski v. BudMax",
        [
            {"PRODUCT_ID": product["opinion"], "PRICE": 10000, "QUANTITY": 1},
            {"PRODUCT_ID": product["inspection"], "PRICE": 600, "QUANTITY": 2},
        ],
    )
    flow, used = prepare(stack, deal_id, funnel)

    step = flow["robots"][0]
    assert step["status"] == "completed", flow
    # 11,200 against 6,000 + 2 x 400: 4,400, 39.29 %
    assert step["return_values"] == {
        "margin_percent": "39.29",
        "margin_amount": "4400.00",
        "below_minimum": "N",
    }
    assert flow["log"] == [
        "check_margin: done; margin_percent=39.29, margin_amount=4400.00, below_minimum=N"
    ]
    assert notifications(stack) == [] and tasks_of(stack, deal_id) == []
    assert stage(stack, deal_id) == f"C{funnel}:OFFER"
    # The deal and its rows, the catalogue products, the answer.
    assert used == 3, used
    runs = stack.services.store.runs(stack.member_id, kind="robot")
    assert [(r["name"], r["status"]) for r in runs] == [("check_margin", "ok")]


def test_an_offer_below_the_minimum_goes_to_the_board(stack) -> None:
    install(stack)
    funnel = offers_funnel(stack)
    place(stack, funnel)
    product = services(stack)
    deal_id = offer(
        stack,
        funnel,
        "Expert opinion: flooded cellar",
        [
            # 7,000 net + 23 % VAT; the robot compares prices without tax
            {
                "PRODUCT_ID": product["opinion"],
                "PRICE": 8610,
                "TAX_RATE": 23,
                "TAX_INCLUDED": "Y",
                "QUANTITY": 1,
            },
            # 500 less 10 %, twice, no tax
            {
                "PRODUCT_ID": product["inspection"],
                "PRICE": 450,
                "DISCOUNT_TYPE_ID": 2,
                "DISCOUNT_RATE": 10,
                "QUANTITY": 2,
            },
        ],
    )
    flow, used = prepare(stack, deal_id, funnel)

    step = flow["robots"][0]
    assert step["status"] == "completed", flow
    revenue, cost = Decimal("7000") + 2 * Decimal("450"), Decimal("6000") + 2 * Decimal("400")
    assert (revenue, cost) == (Decimal("7900"), Decimal("6800"))  # 1,100 margin: 13.92 %
    assert step["return_values"] == {
        "margin_percent": "13.92",
        "margin_amount": "1100.00",
        "below_minimum": "Y",
    }

    board = sorted(notifications(stack), key=lambda n: n["USER_ID"])
    assert [(n["USER_ID"], n["TYPE"]) for n in board] == [
        (DIRECTOR, "system"),
        (HEAD_OF_SALES, "system"),
    ]
    assert "flooded cellar" in board[0]["MESSAGE"] and "13.92%" in board[0]["MESSAGE"]
    assert "below the minimum 25%" in board[0]["MESSAGE"]
    assert f"/crm/deal/details/{deal_id}/" in board[0]["MESSAGE"]

    (task,) = tasks_of(stack, deal_id)
    assert task["RESPONSIBLE_ID"] == DIRECTOR and task["ACCOMPLICES"] == [HEAD_OF_SALES]
    assert task["UF_CRM_TASK"] == [f"D_{deal_id}"]
    assert task["TITLE"] == (
        'Approve the offer "Expert opinion: flooded cellar": margin 13.92% below 25%'
    )
    assert "revenue 7900.00 PLN, cost 6800.00 PLN, margin 1100.00 PLN" in task["DESCRIPTION"]

    assert stage(stack, deal_id) == f"C{funnel}:BOARD"
    # The workflow was answered first, the move followed in the same request.
    runs = stack.services.store.runs(stack.member_id, kind="robot")
    assert [(r["name"], r["status"]) for r in runs] == [("check_margin", "ok")]
    assert flow["log"] == [
        f"Margin 13.92% is below the minimum 25%: approval task {task['ID']}; notified users"
        f" 1, 2; the deal moves to C{funnel}:BOARD",
        "check_margin: done; margin_percent=13.92, margin_amount=1100.00, below_minimum=Y",
    ]
    # The deal and its rows, the catalogue products, one batch that creates the task, logs
    # and notifies, and one that answers the workflow and then moves the deal.
    assert used == 4, used


def test_without_a_stage_the_board_is_told_and_the_workflow_answered_after(stack) -> None:
    """The board reads the notification in the portal's language (Polish here)."""
    with stack.world.lock:
        stack.portal.language = "pl"
    install(stack)
    funnel = offers_funnel(stack)
    place(stack, funnel, target_stage="", approval_task="N", notify_users=[f"user_{DIRECTOR}"])
    product = services(stack)
    deal_id = offer(
        stack,
        funnel,
        "Expert opinion: noise",
        [{"PRODUCT_ID": product["opinion"], "PRICE": 7000, "QUANTITY": 1}],
    )
    flow, used = prepare(stack, deal_id, funnel)
    assert flow["robots"][0]["return_values"]["below_minimum"] == "Y"
    (note,) = notifications(stack)
    assert note["USER_ID"] == DIRECTOR
    assert note["MESSAGE"] == (
        f"Oferta [URL=/crm/deal/details/{deal_id}/]Expert opinion: noise[/URL]: marża 14.29%"
        " (1000.00 PLN) jest poniżej minimum 25%."
    )
    assert tasks_of(stack, deal_id) == [] and stage(stack, deal_id) == f"C{funnel}:OFFER"
    assert flow["log"][0] == "Margin 14.29% is below the minimum 25%: notified users 1"
    assert used == 4, used  # read, products, write, answer
    runs = stack.services.store.runs(stack.member_id, kind="robot")
    assert [(r["name"], r["status"]) for r in runs] == [("check_margin", "ok")]


def test_rows_without_a_cost_are_named_in_the_workflow_log(stack) -> None:
    install(stack)
    funnel = offers_funnel(stack)
    place(stack, funnel)
    product = services(stack)
    with stack.world.lock:
        abroad = crm.create_product(
            stack.portal,
            {"name": "Foreign expert", "purchasingPrice": 900, "purchasingCurrency": "EUR"},
        )
        gone = crm.create_product(
            stack.portal,
            {"name": "Old lab test", "purchasingPrice": 50, "purchasingCurrency": "PLN"},
        )
    deal_id = offer(
        stack,
        funnel,
        "Expert opinion with a translation",
        [
            {"PRODUCT_ID": product["opinion"], "PRICE": 9000, "QUANTITY": 1},
            {"PRODUCT_ID": product["translation"], "PRICE": 800, "QUANTITY": 1},
            {"PRODUCT_NAME": "Travel expenses", "PRICE": 300, "QUANTITY": 1},
            {"PRODUCT_ID": abroad, "PRICE": 4000, "QUANTITY": 1},
            {"PRODUCT_ID": gone, "PRICE": 100, "QUANTITY": 1},
        ],
    )
    with stack.world.lock:  # removed from the catalogue after the offer was made
        del stack.portal.table("catalog_product")[gone]
    flow, used = prepare(stack, deal_id, funnel)
    step = flow["robots"][0]
    assert step["status"] == "completed" and not step["return_values"]
    assert flow["log"] == [
        'check_margin: failed: no cost for "Sworn translation" (no purchasing price),'
        ' "Travel expenses" (not a catalogue product), "Foreign expert" (purchasing price in'
        ' EUR, the deal is in PLN), "Old lab test" (not in the catalogue): set the purchasing'
        " price in the catalogue, or take the cost from a deal field"
    ]
    assert notifications(stack) == [] and stage(stack, deal_id) == f"C{funnel}:OFFER"
    run = stack.services.store.runs(stack.member_id, kind="robot")[0]
    assert run["status"] == "failed" and "Sworn translation" in run["error"]
    assert used == 3, used  # the read, the products (one batch of four), the answer


def test_a_deal_without_rows_fails_with_the_reason(stack) -> None:
    install(stack)
    funnel = offers_funnel(stack)
    place(stack, funnel)
    deal_id = offer(stack, funnel, "An inquiry nobody priced", [])
    flow, used = prepare(stack, deal_id, funnel)
    assert flow["log"] == [
        "check_margin: failed: the deal has no product rows: the margin is counted from the"
        " offer's products and services"
    ]
    assert used == 2, used  # the read, the answer


def test_the_cost_from_a_deal_field(stack) -> None:
    """Costs the department worked out by hand: a money field with the total cost."""
    install(stack)
    funnel = offers_funnel(stack)
    with stack.world.lock:
        crm.add_user_field(stack.portal, "DEAL", "TOTAL_COST", "money", label="Total cost")
    place(stack, funnel, cost_source="deal_field", cost_field="UF_CRM_TOTAL_COST", include_tax="Y")
    deal_id = offer(
        stack,
        funnel,
        "Expert opinion: medical",
        [{"PRODUCT_NAME": "Medical expert opinion", "PRICE": 12300, "TAX_RATE": 23}],
        UF_CRM_TOTAL_COST="9840|PLN",
    )
    flow, used = prepare(stack, deal_id, funnel)
    assert flow["robots"][0]["return_values"] == {
        "margin_percent": "20.00",
        "margin_amount": "2460.00",
        "below_minimum": "Y",
    }
    assert stage(stack, deal_id) == f"C{funnel}:BOARD"
    assert len(tasks_of(stack, deal_id)) == 1
    assert used == 3, used  # no catalogue: the read, the writes, the answer with the move


def test_a_portal_error_answers_a_readable_failure(stack) -> None:
    install(stack)
    funnel = offers_funnel(stack)
    place(stack, funnel)
    product = services(stack)
    deal_id = offer(
        stack,
        funnel,
        "Expert opinion: roof",
        [{"PRODUCT_ID": product["opinion"], "PRICE": 7000, "QUANTITY": 1}],
    )
    stack.admin.inject_fault(
        member_id=stack.member_id,
        status=403,
        code="ACCESS_DENIED",
        description="Access denied.",
        count=1,
        method="catalog.product.get",
    )
    flow, _ = prepare(stack, deal_id, funnel)
    assert flow["robots"][0]["status"] == "completed"
    assert flow["log"] == [
        "check_margin: failed: the catalogue cannot be read: the portal answered"
        " ACCESS_DENIED: Access denied."
    ]
    assert notifications(stack) == [] and stage(stack, deal_id) == f"C{funnel}:OFFER"


def test_without_the_catalog_permission_the_admin_is_told(stack) -> None:
    install(stack, catalog_scope=False)
    funnel = offers_funnel(stack)
    place(stack, funnel)
    product = services(stack)
    deal_id = offer(
        stack,
        funnel,
        "Expert opinion: garage",
        [{"PRODUCT_ID": product["opinion"], "PRICE": 7000, "QUANTITY": 1}],
    )
    flow, _ = prepare(stack, deal_id, funnel)
    (line,) = flow["log"]
    assert line.startswith(
        'check_margin: failed: the catalogue cannot be read: the app has no "catalog" permission'
    )


def test_a_stage_of_another_funnel_is_refused(stack) -> None:
    install(stack)
    funnel = offers_funnel(stack)
    place(stack, funnel, target_stage="PREPARATION")  # a stage of the default funnel
    product = services(stack)
    deal_id = offer(
        stack,
        funnel,
        "Expert opinion: fence",
        [{"PRODUCT_ID": product["opinion"], "PRICE": 7000, "QUANTITY": 1}],
    )
    flow, _ = prepare(stack, deal_id, funnel)
    assert flow["log"] == [
        f"check_margin: failed: stage PREPARATION is not a stage of the deal's funnel {funnel}"
    ]
    assert tasks_of(stack, deal_id) == [] and notifications(stack) == []
