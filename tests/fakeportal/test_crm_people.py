"""People as the portal shows them to an app: user.get's ACTIVE and department filters, the
company structure (department.get, created through the admin surface) and the absence chart
as the messenger shows it (im.user.get, im.user.list.get ``absent``), over real HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from fakeportal import admin
from fakeportal.state import Portal, World
from fakeportal.testing import AdminClient, AdminError
from tests.support import WebhookClient as Client


@pytest.fixture
def client(fake_world: World, fake_portal: Portal, fake_webhook: str) -> Client:
    fake_world.config["bucket_size"] = 100000
    return Client(fake_world, fake_portal, fake_webhook)


@pytest.fixture
def hr(fake_admin: AdminClient, fake_portal: Portal) -> Any:
    """The admin surface bound to the portal (the HR person's UI)."""

    class HR:
        def __getattr__(self, action: str) -> Any:
            return lambda **body: fake_admin.call(action, member_id=fake_portal.member_id, **body)

    return HR()


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["ID"] for r in rows]


def test_user_get_filters_fired_people_out_with_active(client: Client, hr: Any) -> None:
    hr.update_user(id=5, fields={"ACTIVE": "N"})  # Dmitry left the company
    assert ids(client.ok("user.get", FILTER={"UF_DEPARTMENT": 2})) == ["2", "3", "5"]
    for active in (True, "Y", "true", 1):
        kept = client.ok("user.get", FILTER={"UF_DEPARTMENT": 2, "ACTIVE": active})
        assert ids(kept) == ["2", "3"], active
    assert ids(client.ok("user.get", FILTER={"UF_DEPARTMENT": 2, "ACTIVE": "N"})) == ["5"]
    assert ids(client.ok("user.get", FILTER={"UF_DEPARTMENT": 2, "!ACTIVE": "Y"})) == ["5"]
    assert ids(client.ok("user.get", ACTIVE="Y", UF_DEPARTMENT=2)) == ["2", "3"]  # top level
    fired = client.ok("user.get", ID=5)[0]
    assert fired["ACTIVE"] is False
    # Inside a batch, as the app sends it (PHP brackets, booleans as Y).
    got = client.ok(
        "batch",
        cmd={
            "a": "user.get?FILTER[UF_DEPARTMENT][0]=2&FILTER[UF_DEPARTMENT][1]=3"
            "&FILTER[ACTIVE]=Y&sort=ID&order=ASC&select[0]=ID&select[1]=ACTIVE"
        },
    )
    assert got["result"]["a"] == [
        {"ID": "2", "ACTIVE": True},
        {"ID": "3", "ACTIVE": True},
        {"ID": "4", "ACTIVE": True},
    ]
    assert got["result_total"]["a"] == 3


def test_departments_made_through_the_admin_surface(client: Client, hr: Any) -> None:
    head = hr.create_user(fields={"NAME": "Anna", "LAST_NAME": "Nowak", "UF_DEPARTMENT": [1]})
    finance = hr.create_department(name="Finance", head=int(head["ID"]))
    loans = hr.create_department(name="Loans", parent=int(finance["ID"]))
    hr.update_user(id=int(head["ID"]), fields={"UF_DEPARTMENT": [int(finance["ID"])]})
    rows = client.ok("department.get", ID=finance["ID"])
    assert rows == [
        {"ID": finance["ID"], "NAME": "Finance", "SORT": 500, "PARENT": "1", "UF_HEAD": head["ID"]}
    ]
    assert client.ok("department.get", PARENT=finance["ID"]) == [
        {"ID": loans["ID"], "NAME": "Loans", "SORT": 500, "PARENT": finance["ID"]}
    ]  # no head: no UF_HEAD
    assert ids(client.ok("user.get", FILTER={"UF_DEPARTMENT": int(finance["ID"])})) == [head["ID"]]
    # ``sort``/``order`` order the rows; the upper-case ``SORT`` is a filter (PHP keys).
    hr.create_department(name="Archive", sort=900)
    ordered = client.ok("department.get", sort="NAME", order="DESC")
    assert [d["NAME"] for d in ordered][:3] == ["Service", "Sales", "Loans"]
    assert [d["NAME"] for d in client.ok("department.get", SORT=900)] == ["Archive"]
    with pytest.raises(AdminError) as err:
        hr.create_department(name="Nowhere", parent=999)
    assert err.value.status == 400


def test_absence_shows_as_the_messengers_absent_while_it_lasts(
    client: Client, hr: Any, fake_world: World, fake_portal: Portal
) -> None:
    from fakeportal.crm import common

    today = common.today(fake_portal)
    first, last = today - timedelta(days=2), today + timedelta(days=5)
    entry = hr.add_absence(
        user_id=3, date_from=first.isoformat(), date_to=last.isoformat(), type="VACATION"
    )
    assert (entry["USER_ID"], entry["DATE_TO"], entry["ABSENCE_TYPE"]) == (
        3,
        last.isoformat(),
        "VACATION",
    )
    hr.add_absence(
        user_id=5,
        date_from=(today + timedelta(days=10)).isoformat(),
        date_to=(today + timedelta(days=12)).isoformat(),
    )  # later this month: at work today

    alexey = client.ok("im.user.get", ID=3)
    assert alexey["id"] == 3 and alexey["active"] is True
    assert alexey["name"] == "Alexey Smirnov" and alexey["departments"] == [2]
    offset = common.iso(fake_portal, last)[10:]
    assert alexey["absent"] == f"{last.isoformat()}{offset}"
    assert alexey["absent"].startswith(f"{last.isoformat()}T00:00:00")
    assert client.ok("im.user.get")["id"] == 1  # no ID: the caller

    listed = client.ok("im.user.list.get", ID=[2, 3, 5, 77])
    assert set(listed) == {"2", "3", "5", "77"}
    assert (listed["2"]["absent"], listed["5"]["absent"], listed["77"]) == (False, False, None)
    assert listed["3"]["absent"] == alexey["absent"]

    # The same in a batch, as the app asks it.
    got = client.ok("batch", cmd={"who": "im.user.list.get?ID[0]=3&ID[1]=5"})
    assert {k: v["absent"] for k, v in got["result"]["who"].items()} == {
        "3": alexey["absent"],
        "5": False,
    }

    # Time passes: the vacation ends, the later one begins.
    fake_world.advance(timedelta(days=11))
    listed = client.ok("im.user.list.get", ID=[3, 5])
    assert listed["3"]["absent"] is False
    assert listed["5"]["absent"].startswith((today + timedelta(days=12)).isoformat())


def test_an_absence_removed_from_the_chart_no_longer_shows(client: Client, hr: Any) -> None:
    entry = hr.add_absence(user_id=4, date_from="2000-01-01", date_to="2100-12-31")
    assert client.ok("im.user.get", ID=4)["absent"].startswith("2100-12-31")
    assert hr.delete_absence(id=entry["ID"]) is True
    assert client.ok("im.user.get", ID=4)["absent"] is False
    hr.update_user(id=4, fields={"ACTIVE": "N"})
    assert client.ok("im.user.get", ID=4)["active"] is False


def test_messenger_errors_and_bad_absences(client: Client, hr: Any) -> None:
    status, body = client.call("im.user.get", ID=404)
    assert (status, body["error"]) == (400, "USER_NOT_EXISTS")
    status, body = client.call("im.user.list.get", ID="3")
    assert (status, body["error"]) == (400, "INVALID_FORMAT")
    status, body = client.call("im.user.list.get", ID=["x"])
    assert (status, body["error"]) == (400, "INVALID_FORMAT")
    with pytest.raises(AdminError, match="no user 404"):
        hr.add_absence(user_id=404, date_from="2026-01-01", date_to="2026-01-02")
    with pytest.raises(AdminError, match="not a span of days") as err:
        hr.add_absence(user_id=3, date_from="2026-01-05", date_to="2026-01-02")
    assert err.value.status == 400


def test_the_messenger_needs_the_im_scope(fake_world: World, fake_portal: Portal) -> None:
    import requests

    app = admin.register_app(fake_world, scope=["crm", "user"])
    tokens = admin.issue_tokens(fake_world, app["client_id"], fake_portal.member_id)
    reply = requests.post(
        f"{tokens['client_endpoint']}im.user.list.get",
        json={"auth": tokens["access_token"], "ID": [3]},
        timeout=10,
    )
    assert (reply.status_code, reply.json()["error"]) == (403, "insufficient_scope")
    reply = requests.post(
        f"{tokens['client_endpoint']}department.get",
        json={"auth": tokens["access_token"]},
        timeout=10,
    )
    assert (reply.status_code, reply.json()["error"]) == (403, "insufficient_scope")
