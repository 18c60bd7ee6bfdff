"""tasks.task status methods and delete, the task admin actions, and the task events' own
``data`` (FIELDS_BEFORE/AFTER, IS_ACCESSIBLE_*) online and in the offline queue."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from fakeportal.automation import testing
from fakeportal.automation.recorder import Recorder
from fakeportal.automation.testing import InstalledApp
from fakeportal.state import Portal, World
from fakeportal.testing import AdminClient, AdminError
from tests.support import WebhookClient as Client

recorder = testing.recorder
ACCOUNTANT = 4  # a plain user (not an admin) of the seeded portal
OUTSIDER = 5


@pytest.fixture
def client(fake_world: World, fake_portal: Portal, fake_webhook: str) -> Client:
    fake_world.config["bucket_size"] = 100000
    return Client(fake_world, fake_portal, fake_webhook)


@pytest.fixture
def task_app(fake_world: World, fake_portal: Portal, recorder: Recorder) -> InstalledApp:
    return testing.install(fake_world, fake_portal, recorder, scope=["crm", "task", "user"])


def new_task(client: Client, **fields: Any) -> dict[str, Any]:
    base = {"TITLE": "Pay the invoice", "RESPONSIBLE_ID": ACCOUNTANT, "UF_CRM_TASK": ["D_1"]}
    return client.ok("tasks.task.add", fields={**base, **fields})["task"]


def test_status_methods_answer_the_task_with_its_new_status(client: Client) -> None:
    task_id = new_task(client)["id"]
    assert client.ok("tasks.task.get", taskId=task_id)["task"]["closedBy"] == "0"

    def act(action: str) -> dict[str, Any]:
        return client.ok(f"tasks.task.{action}", taskId=task_id)["task"]

    started = act("start")
    assert (started["id"], started["status"]) == (task_id, "3")
    assert started["dateStart"] == started["statusChangedDate"]
    assert act("pause")["status"] == "2"
    assert act("defer")["status"] == "6"
    assert act("renew")["status"] == "2"
    done = act("complete")
    assert (done["status"], done["closedBy"], done["statusChangedBy"]) == ("5", "1", "1")
    assert done["closedDate"] and done["title"] == "Pay the invoice"  # the whole task
    renewed = act("renew")
    assert (renewed["status"], renewed["closedBy"], renewed["closedDate"]) == ("2", "0", None)


@pytest.mark.parametrize(
    ("status_path", "action"),
    [
        ([], "pause"),  # pending is not in progress
        ([], "approve"),  # not awaiting control
        ([], "disapprove"),
        ([], "renew"),  # not closed or deferred
        (["complete"], "start"),
        (["complete"], "complete"),
        (["complete"], "defer"),
        (["defer"], "start"),
    ],
)
def test_actions_not_allowed_in_the_status(
    client: Client, status_path: list[str], action: str
) -> None:
    task_id = new_task(client)["id"]
    for step in status_path:
        client.ok(f"tasks.task.{step}", taskId=task_id)
    status, body = client.call(f"tasks.task.{action}", taskId=task_id)
    assert (status, body["error"], body["error_description"]) == (
        400,
        "1048582",
        "Action on the task is not allowed",
    )


def test_delete_and_parameter_errors(client: Client) -> None:
    task_id = new_task(client)["id"]
    assert client.ok("tasks.task.delete", taskId=task_id) == {"task": True}
    status, body = client.call("tasks.task.get", taskId=task_id)
    assert (status, body["error"]) == (400, "0")
    status, body = client.call("tasks.task.delete", taskId=task_id)
    assert (status, body["error"]) == (400, "0")
    for name in ("start", "complete", "delete"):
        status, body = client.call(f"tasks.task.{name}")
        assert (status, body) == (
            400,
            {"error": 100, "error_description": "Could not find value for parameter {taskId}"},
        )
    status, body = client.call("tasks.task.complete", taskId=999)
    assert (status, body["error_description"]) == (400, "Action on the task is not allowed")


def test_task_control_waits_for_the_creator(client: Client, fake_admin: AdminClient) -> None:
    member = client.portal.member_id
    task_id = new_task(client, TASK_CONTROL="Y", CREATED_BY=1)["id"]
    awaiting = fake_admin.complete_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)
    assert (awaiting["status"], awaiting["closedBy"], awaiting["closedDate"]) == ("4", "0", None)
    with pytest.raises(AdminError, match="1048582"):  # the responsible cannot accept it
        fake_admin.approve_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)
    assert client.ok("tasks.task.disapprove", taskId=task_id)["task"]["status"] == "2"
    fake_admin.complete_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)
    approved = client.ok("tasks.task.approve", taskId=task_id)["task"]
    assert (approved["status"], approved["closedBy"]) == ("5", "1")
    assert approved["closedDate"]
    # the creator completing a controlled task closes it at once
    own = new_task(client, TASK_CONTROL="Y")["id"]
    assert client.ok("tasks.task.complete", taskId=own)["task"]["status"] == "5"


def test_admin_actions_act_as_a_user(client: Client, fake_admin: AdminClient) -> None:
    member = client.portal.member_id
    created = fake_admin.create_task(
        member_id=member, fields={"TITLE": "Check", "RESPONSIBLE_ID": ACCOUNTANT}, user_id=1
    )
    task_id = created["id"]
    assert created["createdBy"] == "1" and created["status"] == "2"
    with pytest.raises(AdminError, match="1048582: Action on the task is not allowed"):
        fake_admin.complete_task(member_id=member, task_id=task_id, user_id=OUTSIDER)
    deferred = fake_admin.defer_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)
    assert deferred["status"] == "6"
    assert (
        fake_admin.renew_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)["status"]
        == "2"
    )
    assert (
        fake_admin.start_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)["status"]
        == "3"
    )
    assert (
        fake_admin.pause_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)["status"]
        == "2"
    )
    done = fake_admin.complete_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)
    assert (done["status"], done["closedBy"], done["changedBy"]) == ("5", "4", "4")
    got = fake_admin.get_task(member_id=member, task_id=task_id, select=["ID", "UF_CRM_TASK"])
    assert got == {"id": task_id, "ufCrmTask": []}
    with pytest.raises(AdminError, match="No access to delete the task"):
        fake_admin.delete_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)
    assert fake_admin.delete_task(member_id=member, task_id=task_id, user_id=1) is True
    with pytest.raises(AdminError, match="Action on the task is not allowed"):
        fake_admin.get_task(member_id=member, task_id=task_id)


def test_task_events_carry_before_and_after(
    task_app: InstalledApp, fake_admin: AdminClient
) -> None:
    app = task_app
    member = app.portal.member_id
    for name in ("ONTASKADD", "ONTASKUPDATE", "ONTASKDELETE"):
        assert app.ok("event.bind", event=name, handler=f"{app.recorder.url}/{name.lower()}")
    task = app.ok("tasks.task.add", fields={"TITLE": "x", "RESPONSIBLE_ID": ACCOUNTANT})["task"]
    task_id = task["id"]
    fake_admin.complete_task(member_id=member, task_id=task_id, user_id=ACCOUNTANT)
    assert app.ok("tasks.task.delete", taskId=task_id) == {"task": True}

    def data_of(path: str) -> tuple[dict[str, str], dict[str, str]]:
        [post] = app.recorder.wait_for(path)
        return {k: v for k, v in post.form.items() if k.startswith("data")}, post.form

    added, form = data_of("/ontaskadd")
    assert added == {
        "data[FIELDS_BEFORE]": "undefined",
        "data[FIELDS_AFTER][ID]": task_id,
        "data[IS_ACCESSIBLE_BEFORE]": "N",
        "data[IS_ACCESSIBLE_AFTER]": "undefined",
    }
    assert form["event"] == "ONTASKADD" and form["auth[user_id]"] == "1"
    updated, form = data_of("/ontaskupdate")  # the status change
    assert updated == {
        "data[FIELDS_BEFORE][ID]": task_id,
        "data[FIELDS_AFTER][ID]": task_id,
        "data[IS_ACCESSIBLE_BEFORE]": "undefined",
        "data[IS_ACCESSIBLE_AFTER]": "undefined",
    }
    assert form["auth[user_id]"] == str(ACCOUNTANT)
    deleted, _ = data_of("/ontaskdelete")
    assert deleted == {
        "data[FIELDS_BEFORE][ID]": task_id,
        "data[FIELDS_AFTER]": "undefined",
        "data[IS_ACCESSIBLE_BEFORE]": "undefined",
        "data[IS_ACCESSIBLE_AFTER]": "N",
    }


def test_task_events_in_the_offline_queue(task_app: InstalledApp, fake_admin: AdminClient) -> None:
    app = task_app
    member = app.portal.member_id
    for name in ("ONTASKADD", "ONTASKUPDATE"):
        assert app.ok("event.bind", event=name, event_type="offline", auth_connector="sync")
    fields = {"TITLE": "x", "RESPONSIBLE_ID": ACCOUNTANT}
    ours = app.ok("tasks.task.add", fields=fields, auth_connector="sync")["task"]["id"]
    app.ok("tasks.task.complete", taskId=ours, auth_connector="sync")  # our own: not queued
    theirs = fake_admin.create_task(member_id=member, fields=fields, user_id=1)["id"]
    fake_admin.complete_task(member_id=member, task_id=theirs, user_id=ACCOUNTANT)
    fake_admin.renew_task(member_id=member, task_id=ours, user_id=ACCOUNTANT)

    rows = app.ok("event.offline.get", auth_connector="sync")["events"]
    by_name = {(r["EVENT_NAME"], r["EVENT_DATA"]["FIELDS_AFTER"]["ID"]): r for r in rows}
    assert sorted(by_name) == [("ONTASKADD", int(theirs)), ("ONTASKUPDATE", int(ours)),
                               ("ONTASKUPDATE", int(theirs))]  # fmt: skip
    added = by_name[("ONTASKADD", int(theirs))]
    assert added["EVENT_DATA"] == {
        "FIELDS_BEFORE": "undefined",
        "FIELDS_AFTER": {"ID": int(theirs)},
        "IS_ACCESSIBLE_BEFORE": "N",
        "IS_ACCESSIBLE_AFTER": "undefined",
    }
    assert added["EVENT_ADDITIONAL"] == {"user_id": "1"}
    update = by_name[("ONTASKUPDATE", int(ours))]
    assert update["EVENT_DATA"] == {
        "FIELDS_BEFORE": {"ID": int(ours)},
        "FIELDS_AFTER": {"ID": int(ours)},
        "IS_ACCESSIBLE_BEFORE": "undefined",
        "IS_ACCESSIBLE_AFTER": "undefined",
    }
    assert update["EVENT_ADDITIONAL"] == {"user_id": str(ACCOUNTANT)}
    text = json.dumps(update["EVENT_DATA"], separators=(",", ":"))
    assert update["MESSAGE_ID"] == hashlib.md5(f"ONTASKUPDATE|{text}".encode()).hexdigest()
