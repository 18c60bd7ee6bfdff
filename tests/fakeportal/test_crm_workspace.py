"""Contacts, companies, timeline comments, to-dos, tasks, notifications, calendar, users and
the CRM admin actions, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from fakeportal import signals
from fakeportal.state import Portal, World
from fakeportal.testing import AdminClient, AdminError
from tests.support import EXAMPLES
from tests.support import WebhookClient as Client


@pytest.fixture
def client(fake_world: World, fake_portal: Portal, fake_webhook: str) -> Client:
    fake_world.config["bucket_size"] = 100000
    return Client(fake_world, fake_portal, fake_webhook)


@pytest.fixture
def events() -> Iterator[list[tuple[str, dict[str, Any], int | None, Any]]]:
    """Every crm.event: (name, fields, user_id, data)."""
    log: list[tuple[str, dict[str, Any], int | None, Any]] = []

    def on_event(
        portal: Portal, name: str, fields: dict[str, Any], user_id: int | None, *, data: Any
    ) -> None:
        log.append((name, dict(fields), user_id, data))

    signals.connect("crm.event", on_event)
    try:
        yield log
    finally:
        signals.disconnect("crm.event", on_event)


def test_contacts_with_multifields(client: Client, events: list[Any]) -> None:
    contact_id = client.ok(
        "crm.contact.add",
        fields={
            "NAME": "Anna",
            "LAST_NAME": "Medvedeva",
            "PHONE": [{"VALUE": "+79161006733", "VALUE_TYPE": "MOBILE"}],
            "EMAIL": [{"VALUE": "anna@example.com", "VALUE_TYPE": "WORK"}],
        },
    )
    contact = client.ok("crm.contact.get", id=contact_id)
    assert contact["PHONE"] == [
        {
            "ID": contact["PHONE"][0]["ID"],
            "VALUE_TYPE": "MOBILE",
            "VALUE": "+79161006733",
            "TYPE_ID": "PHONE",
        }
    ]
    assert (contact["HAS_PHONE"], contact["HAS_EMAIL"], contact["ID"]) == (
        "Y",
        "Y",
        str(contact_id),
    )
    phone_id = contact["PHONE"][0]["ID"]
    client.ok(
        "crm.contact.update",
        id=contact_id,
        fields={"PHONE": [{"ID": phone_id, "VALUE": ""}, {"VALUE": "+74951007919"}]},
    )
    contact = client.ok("crm.contact.get", id=contact_id)
    assert [p["VALUE"] for p in contact["PHONE"]] == ["+74951007919"]
    found = client.ok(
        "crm.contact.list", filter={"PHONE": "+74951007919"}, select=["ID", "NAME", "PHONE"]
    )
    assert [c["ID"] for c in found] == [str(contact_id)] and found[0]["PHONE"]
    assert client.ok("crm.contact.list", filter={"%LAST_NAME": "medv"}, select=["ID"]) == [
        {"ID": str(contact_id)}
    ]
    assert client.ok("crm.contact.delete", id=contact_id) is True
    status, body = client.call("crm.contact.get", id=contact_id)
    assert (status, body) == (400, {"error": "", "error_description": "Not found"})
    assert [e[0] for e in events] == ["ONCRMCONTACTADD", "ONCRMCONTACTUPDATE", "ONCRMCONTACTDELETE"]
    assert events[0][1] == {"ID": str(contact_id)} and events[0][2] == 1


def test_companies(client: Client, events: list[Any]) -> None:
    company_id = client.ok("crm.company.add", fields={"TITLE": "Aurora LLC", "REVENUE": 39618000})
    company = client.ok("crm.company.get", id=company_id)
    assert (company["TITLE"], company["REVENUE"], company["COMPANY_TYPE"]) == (
        "Aurora LLC",
        "39618000.00",
        "CUSTOMER",
    )
    status, body = client.call("crm.company.add", fields={"TITLE": ""})
    assert (status, body["error"]) == (400, "")
    client.ok("crm.company.update", id=company_id, fields={"TITLE": "Aurora Ltd"})
    rows = client.bitrix.get_all("crm.company.list", {"filter": {"%TITLE": "aurora"}})
    assert [r["TITLE"] for r in rows] == ["Aurora Ltd"]
    assert [e[0] for e in events] == ["ONCRMCOMPANYADD", "ONCRMCOMPANYUPDATE"]


def test_timeline_comments(client: Client, events: list[Any]) -> None:
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Talk"})
    events.clear()
    request = EXAMPLES["crm_timeline_comment_add_request"]["payload"]
    fields = {**request["fields"], "ENTITY_ID": deal_id}
    comment_id = client.ok("crm.timeline.comment.add", fields=fields)
    assert isinstance(comment_id, int)
    fields_ = {"ID": str(comment_id)}
    assert events == [("ONCRMTIMELINECOMMENTADD", fields_, 1, {"FIELDS": fields_})]
    # upper-case FIELDS is refused (since crm 23.100.0)
    status, body = client.call("crm.timeline.comment.add", FIELDS=fields)
    assert (status, body["error"]) == (400, 100)
    status, body = client.call("crm.timeline.comment.add", fields={**fields, "ENTITY_ID": 999})
    assert (status, body["error"]) == (400, "OWNER_NOT_FOUND")
    status, body = client.call("crm.timeline.comment.add", fields={**fields, "COMMENT": " "})
    assert (status, body["error"]) == (400, "INVALID_ARG_VALUE")
    got = client.ok("crm.timeline.comment.get", id=comment_id)
    assert (got["ID"], got["ENTITY_ID"], got["ENTITY_TYPE"], got["COMMENT"]) == (
        str(comment_id),
        str(deal_id),
        "deal",
        "New comment was added",
    )
    listed = client.ok(
        "crm.timeline.comment.list", filter={"ENTITY_ID": deal_id, "ENTITY_TYPE": "deal"}
    )
    assert [c["ID"] for c in listed] == [str(comment_id)]
    status, body = client.call("crm.timeline.comment.get", id=999)
    assert (status, body) == (400, {"error": "", "error_description": "Not found."})


def test_todo_activities(client: Client, events: list[Any]) -> None:
    deal_id = client.ok("crm.deal.add", fields={"TITLE": "Call back"})
    request = dict(EXAMPLES["crm_activity_todo_add_request"]["payload"])
    request.update(ownerId=deal_id, responsibleId=3)
    result = client.ok("crm.activity.todo.add", **request)
    assert set(result) == {"id"} and isinstance(result["id"], int)
    assert events[-1][:3] == ("ONCRMACTIVITYADD", {"ID": str(result["id"])}, 1)
    activity = client.ok("crm.activity.get", id=result["id"])
    assert (activity["OWNER_ID"], activity["OWNER_TYPE_ID"], activity["PROVIDER_ID"]) == (
        str(deal_id),
        "2",
        "CRM_TODO",
    )
    assert (activity["SUBJECT"], activity["RESPONSIBLE_ID"]) == ("Activity Title", "3")
    assert activity["DEADLINE"] == "2025-02-03T15:00:00+03:00"
    listed = client.ok(
        "crm.activity.list",
        filter={"OWNER_TYPE_ID": 2, "OWNER_ID": deal_id, "COMPLETED": "N"},
        select=["ID", "SUBJECT"],
    )
    assert listed == [{"ID": str(result["id"]), "SUBJECT": "Activity Title"}]
    status, body = client.call("crm.activity.todo.add", **{**request, "ownerId": 999})
    assert (status, body["error"]) == (400, "NOT_FOUND")
    status, body = client.call("crm.activity.todo.add", **{**request, "deadline": "soon"})
    assert (status, body["error"]) == (400, "WRONG_DATETIME_FORMAT")


def test_tasks(client: Client, events: list[Any]) -> None:
    request = EXAMPLES["tasks_task_add_request"]["payload"]
    fields = {**request["fields"], "CREATED_BY": 1, "RESPONSIBLE_ID": 3}
    task = client.ok("tasks.task.add", fields=fields)["task"]
    assert task["id"] == "1" and task["title"] == "Task Title"
    assert (task["responsibleId"], task["createdBy"], task["status"]) == ("3", "1", "2")
    assert task["deadline"] == "2025-12-31T23:59:59+03:00"
    assert "ufCrmTask" not in task
    got = client.ok("tasks.task.get", taskId=1, select=["ID", "TITLE", "UF_CRM_TASK"])["task"]
    assert got == {"id": "1", "title": "Task Title", "ufCrmTask": ["L_4", "C_7", "CO_5", "D_10"]}
    updated = client.ok("tasks.task.update", taskId=1, fields={"STATUS": 5})["task"]
    assert updated["status"] == "5" and updated["closedDate"]
    listed = client.ok("tasks.task.list", filter={"RESPONSIBLE_ID": 3}, select=["ID", "TITLE"])
    assert listed == {"tasks": [{"id": "1", "title": "Task Title"}]}
    rows = client.bitrix.get_all("tasks.task.list", {"select": ["ID"]})
    assert [r["id"] for r in rows] == ["1"]
    assert [e[0] for e in events] == ["ONTASKADD", "ONTASKUPDATE"]
    status, body = client.call("tasks.task.add", fields={"TITLE": "x", "RESPONSIBLE_ID": 99})
    assert (status, body["error"]) == (400, "ERROR_CORE")
    status, body = client.call("tasks.task.add", fields={"RESPONSIBLE_ID": 1})
    assert (status, body["error_description"]) == (400, "Task title not specified")
    status, body = client.call("tasks.task.get", taskId=77)
    assert status == 400


def test_notifications(client: Client) -> None:
    request = EXAMPLES["im_notify_system_add_request"]["payload"]
    first = client.ok("im.notify.system.add", **{**request, "USER_ID": 2})
    assert isinstance(first, int)
    second = client.ok("im.notify.personal.add", USER_ID=3, MESSAGE="Hi")
    assert second != first
    status, body = client.call("im.notify.system.add", USER_ID=0, MESSAGE="x")
    assert (status, body["error"]) == (400, "USER_ID_EMPTY")
    status, body = client.call("im.notify.system.add", USER_ID=1, MESSAGE="  ")
    assert (status, body["error"]) == (400, "MESSAGE_EMPTY")
    with client.world.lock:
        stored = client.portal.table("notification")[first]
    assert (stored["USER_ID"], stored["TAG"], stored["MESSAGE"]) == (
        2,
        "SYSTEM_EVENT_42",
        "System notification",
    )


def test_calendar_events_and_accessibility(client: Client) -> None:
    event_id = client.ok(
        "calendar.event.add",
        type="user",
        ownerId=2,
        section=1,
        name="Site visit",
        attendees=[2, 3],
        host=2,
        **{"from": "2026-12-01 10:00:00", "to": "2026-12-01 12:00:00"},
    )
    client.ok(
        "calendar.event.add",
        type="user",
        ownerId=2,
        section=1,
        name="Free slot",
        accessibility="free",
        attendees=[2],
        host=2,
        **{"from": "2026-12-01 14:00:00", "to": "2026-12-01 15:00:00"},
    )
    busy = client.ok(
        "calendar.accessibility.get", users=[2, 3, 4], **{"from": "2026-12-01", "to": "2026-12-01"}
    )
    assert set(busy) == {"2", "3", "4"}
    assert [e["ID"] for e in busy["2"]] == [str(event_id)] == [e["ID"] for e in busy["3"]]
    assert busy["4"] == []
    assert busy["2"][0]["DATE_FROM_TS_UTC"] == "1796108400"  # 10:00 Moscow
    events = client.ok(
        "calendar.event.get", type="user", ownerId=2, **{"from": "2026-12-01", "to": "2026-12-01"}
    )
    assert [e["NAME"] for e in events] == ["Site visit", "Free slot"]
    assert events[0]["ATTENDEES_CODES"] == ["U2", "U3"]
    assert client.ok("calendar.event.delete", id=event_id) is True
    busy = client.ok(
        "calendar.accessibility.get", users=[2], **{"from": "2026-12-01", "to": "2026-12-01"}
    )
    assert busy == {"2": []}
    status, body = client.call(
        "calendar.event.add",
        type="user",
        ownerId=2,
        section=1,
        **{"from": "2026-12-01", "to": "2026-12-01"},
    )
    assert (status, body["error"]) == (400, "")


def test_users_and_departments(client: Client) -> None:
    admin_user = client.ok("user.get", ID=1)
    assert admin_user[0]["NAME"] == "Ivan" and admin_user[0]["LAST_NAME"] == "Petrov"
    assert admin_user[0]["ID"] == "1" and admin_user[0]["ACTIVE"] is True
    assert "IS_ADMIN" not in admin_user[0]
    sales = client.ok("user.get", FILTER={"UF_DEPARTMENT": 2})
    assert [u["ID"] for u in sales] == ["2", "3", "5"]
    found = client.ok("user.search", FILTER={"FIND": "smirn"})
    assert [u["LAST_NAME"] for u in found] == ["Smirnov"]
    found = client.ok("user.search", FILTER={"UF_DEPARTMENT_NAME": "serv"})
    assert [u["ID"] for u in found] == ["4"]
    departments = client.ok("department.get")
    assert departments[1] == {
        "ID": "2",
        "NAME": "Sales",
        "SORT": 500,
        "PARENT": "1",
        "UF_HEAD": "2",
    }
    assert client.ok("user.current")["NAME"] == "Ivan"


def test_admin_actions(client: Client, fakeportal_server: Any) -> None:
    admin = AdminClient(fakeportal_server.url)
    funnel = admin.create_funnel(
        name="Installations",
        stages=[
            ["NEW", "New", "P"],
            ["MOUNT", "Mounting", "P"],
            ["DONE", "Done", "S"],
            ["LOST", "Lost", "F"],
        ],
    )
    n = funnel["id"]
    assert [s["STATUS_ID"] for s in funnel["stages"]] == [
        f"C{n}:NEW",
        f"C{n}:MOUNT",
        f"C{n}:DONE",
        f"C{n}:LOST",
    ]
    contact = admin.create_contact(fields={"NAME": "Ivan", "PHONE": [{"VALUE": "+7900"}]})
    deal = admin.create_deal(
        fields={"TITLE": "Heat pump", "CATEGORY_ID": n, "CONTACT_ID": contact["ID"]}
    )
    assert (deal["STAGE_ID"], deal["CONTACT_ID"]) == (f"C{n}:NEW", contact["ID"])
    moved = admin.move_deal(id=int(deal["ID"]), stage_id="WON")
    assert (moved["CATEGORY_ID"], moved["STAGE_ID"], moved["CLOSED"]) == ("0", "WON", "Y")
    updated = admin.update_deal(id=int(deal["ID"]), fields={"TITLE": "Heat pump 2"})
    assert updated["TITLE"] == "Heat pump 2" == admin.get_deal(id=int(deal["ID"]))["TITLE"]
    assert [d["ID"] for d in admin.list_deals(filter={"STAGE_ID": "WON"})] == [deal["ID"]]
    field = admin.add_deal_userfield(name="SERIAL", type="string")
    assert field["FIELD_NAME"] == "UF_CRM_SERIAL"
    user = admin.create_user(fields={"NAME": "Nina", "LAST_NAME": "Orlova", "UF_DEPARTMENT": [3]})
    assert client.ok("user.get", ID=int(user["ID"]))[0]["NAME"] == "Nina"
    dump = admin.dump(table="deal")
    assert dump["deal"][deal["ID"]]["TITLE"] == "Heat pump 2"
    with pytest.raises(AdminError) as failure:
        admin.move_deal(id=999, stage_id="WON")
    assert failure.value.status == 400 and "Not found" in failure.value.body["error"]
