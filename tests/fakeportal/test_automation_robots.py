"""Robots end to end over HTTP: registration rules, the robot POST, bizproc.event.send."""

from __future__ import annotations

import re
from typing import Any

import pytest
import requests
from fast_bitrix24 import Bitrix

from fakeportal import crm
from fakeportal.automation import rules, testing
from fakeportal.automation.testing import InstalledApp
from fakeportal.testing import AdminClient
from tests.support import EXAMPLES

recorder = testing.recorder
installed_app = testing.installed_app


ROBOT = {
    "CODE": "send_note",
    "HANDLER": "",  # set per test to the recorder
    "AUTH_USER_ID": 1,
    "USE_SUBSCRIPTION": "Y",
    "NAME": {"en": "Send note", "de": "Notiz senden"},
    "PROPERTIES": {
        "text": {"Name": "Text", "Type": "text", "Required": "Y"},
        "datetime": {"Name": "When", "Type": "datetime", "Default": "2025-01-29T14:00:00+01:00"},
    },
    "RETURN_PROPERTIES": {"outputString": {"Name": "Result", "Type": "string"}},
}


def add_robot(app: InstalledApp, **overrides: Any) -> dict[str, Any]:
    params = {**ROBOT, "HANDLER": f"{app.recorder.url}/robot", **overrides}
    assert app.ok("bizproc.robot.add", **params) is True
    return params


def new_deal(app: InstalledApp, stage: str = "NEW", **fields: Any) -> int:
    with app.world.lock:
        return crm.create_deal(app.portal, {"TITLE": "Solar panels", "STAGE_ID": stage, **fields})


def move(app: InstalledApp, deal_id: int, stage: str, user_id: int | None = 1) -> None:
    with app.world.lock:
        crm.move_deal(app.portal, deal_id, stage, user_id=user_id)


def bitrix(app: InstalledApp, token: str | None = None) -> Bitrix:
    async def token_func() -> str:
        return token or app.access_token

    return Bitrix(app.endpoint, token_func=token_func, verbose=False)


def error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"]


# registration ---------------------------------------------------------------------------------
def test_install_posts_onappinstall_with_tokens_that_work(installed_app: InstalledApp) -> None:
    post = installed_app.install
    expected = set(EXAMPLES["onappinstall_event_sdk_fixture"]["form_fields_derived"])
    expected |= {"data[ACTIVE]", "data[INSTALLED]", "auth[refresh_token]"}
    assert set(post.form) == expected
    assert post.content_type == "application/x-www-form-urlencoded"
    assert post.form["event"] == "ONAPPINSTALL"
    assert post.form["data[VERSION]"] == "1"
    assert post.form["auth[member_id]"] == installed_app.portal.member_id
    assert post.form["auth[client_endpoint]"] == installed_app.portal.client_endpoint
    assert re.fullmatch(r"[0-9a-f]{32}", installed_app.application_token)
    assert post.form["auth[user_id]"] == "1"
    assert installed_app.ok("bizproc.robot.list") == []


def test_robot_add_list_update_delete(installed_app: InstalledApp) -> None:
    app = installed_app
    add_robot(app)
    assert app.ok("bizproc.robot.list") == ["send_note"]
    dup = app.rest("bizproc.robot.add", **{**ROBOT, "HANDLER": f"{app.recorder.url}/robot"})
    assert error(dup) == (
        400,
        "ERROR_ACTIVITY_ALREADY_INSTALLED",
        "Activity or Robot already installed!",
    )
    assert app.ok("bizproc.robot.update", CODE="send_note", FIELDS={"USE_SUBSCRIPTION": "N"})
    empty = app.rest("bizproc.robot.update", CODE="send_note", FIELDS={})
    assert error(empty) == (400, "ERROR_ACTIVITY_VALIDATION_FAILURE", "No fields to update")
    robots = AdminClient(app.world.base_url).robots(
        member_id=app.portal.member_id, client_id=app.client_id
    )
    stored = robots["send_note"]
    assert stored["USE_SUBSCRIPTION"] == "N"
    assert stored["PROPERTIES"]["text"] == {"NAME": "Text", "TYPE": "text", "REQUIRED": "Y"}
    assert stored["NAME"] == {"EN": "Send note", "DE": "Notiz senden"}
    assert app.ok("bizproc.robot.delete", CODE="send_note") is True
    gone = app.rest("bizproc.robot.delete", CODE="send_note")
    assert error(gone) == (400, "ERROR_ACTIVITY_NOT_FOUND", "Activity or Robot not found!")
    assert app.ok("bizproc.robot.list") == []


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ({"CODE": ""}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty activity code!"),
        ({"CODE": "bad code!"}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong activity code!"),
        ({"HANDLER": "http://localhost/robot"}, "ERROR_WRONG_HANDLER_URL", "Wrong handler URL"),
        ({"HANDLER": "ftp://robots.example.com/x"}, "ERROR_UNSUPPORTED_PROTOCOL",
         "Unsupported handler protocol"),
        ({"NAME": ""}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty activity NAME!"),
        ({"PROPERTIES": "text"}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong properties array!"),
        ({"PROPERTIES": {"1st": {"Name": "x"}}}, "ERROR_ACTIVITY_VALIDATION_FAILURE",
         "Wrong property key (1st)!"),
        ({"PROPERTIES": {"text": {"Type": "string"}}}, "ERROR_ACTIVITY_VALIDATION_FAILURE",
         "Empty property NAME (text)!"),
        ({"RETURN_PROPERTIES": {"out": {"Type": "string"}}}, "ERROR_ACTIVITY_VALIDATION_FAILURE",
         "Empty property NAME (out)!"),
        ({"PROPERTIES": {"kind": {"Name": "Kind", "Type": "select"}}},
         "ERROR_ACTIVITY_VALIDATION_FAILURE", "Empty property OPTIONS (kind)!"),
        ({"DOCUMENT_TYPE": ["crm", "CCrmDocumentDeal"]}, "ERROR_ACTIVITY_VALIDATION_FAILURE",
         "Wrong activity DOCUMENT_TYPE!"),
        ({"FILTER": "b24"}, "ERROR_ACTIVITY_VALIDATION_FAILURE", "Wrong activity FILTER!"),
    ],
)  # fmt: skip
def test_robot_add_validation(
    installed_app: InstalledApp, change: dict[str, Any], code: str, message: str
) -> None:
    params = {**ROBOT, "HANDLER": f"{installed_app.recorder.url}/robot", **change}
    assert error(installed_app.rest("bizproc.robot.add", **params)) == (400, code, message)


def test_robot_methods_need_an_app_and_an_admin(
    installed_app: InstalledApp, fake_webhook: str
) -> None:
    hook = requests.post(f"{fake_webhook}bizproc.robot.add", json=ROBOT, timeout=5)
    assert error(hook) == (403, "ACCESS_DENIED", "Application context required")
    with installed_app.world.lock:
        installed_app.portal.table("user")[3]["IS_ADMIN"] = False
    user3 = installed_app.token_for(3)
    denied = installed_app.rest("bizproc.robot.list", token=user3)
    assert error(denied)[:2] == (403, "ACCESS_DENIED")


def test_lower_case_keys_and_select_options_accepted(installed_app: InstalledApp) -> None:
    params = {
        "code": "pick",
        "handler": f"{installed_app.recorder.url}/robot",
        "name": "Pick",
        "properties": EXAMPLES["bizproc_robot_property_select_example"]["payload"],
    }
    assert installed_app.ok("bizproc.robot.add", **params) is True
    assert installed_app.ok("bizproc.robot.list") == ["pick"]
    assert installed_app.ok("bizproc.activity.list") == []


# the loop -------------------------------------------------------------------------------------
def test_deal_entering_stage_calls_robot_and_event_send_completes_it(
    installed_app: InstalledApp,
) -> None:
    app = installed_app
    add_robot(app)
    rules.add_robot_rule(
        app.world, app.portal.member_id, 0, "PREPARATION", app.client_id, "send_note",
        properties={"text": "Call {{TITLE}}"},
    )  # fmt: skip
    deal_id = new_deal(app)
    move(app, deal_id, "PREPARATION")
    post = app.recorder.wait_for("/robot")[0]

    expected = set(EXAMPLES["robot_handler_post_deal_SYNTHESIZED"]["form_fields_derived"])
    assert set(post.form) == expected
    form = post.form
    assert form["code"] == "send_note"
    assert [form[f"document_id[{i}]"] for i in range(3)] == [
        "crm", "CCrmDocumentDeal", f"DEAL_{deal_id}",
    ]  # fmt: skip
    assert [form[f"document_type[{i}]"] for i in range(3)] == ["crm", "CCrmDocumentDeal", "DEAL"]
    assert form["properties[text]"] == "Call Solar panels"
    assert form["properties[datetime]"] == "2025-01-29T14:00:00+01:00"
    assert form["use_subscription"] == "Y"
    assert form["timeout_duration"] == "600"
    assert re.fullmatch(r"[0-9a-f]{13}\d\.\d{8}", form["workflow_id"])
    assert re.fullmatch(
        re.escape(form["workflow_id"]) + r"\|A\d{5}(_\d{5}){3}\|[A-Za-z0-9]{32}\.[0-9a-f]{64}",
        form["event_token"],
    )
    assert form["auth[application_token]"] == app.application_token
    assert form["auth[user_id]"] == "1"

    # the workflow waits: the next step happens only on bizproc.event.send
    assert app.world.portals and not outbox_idle(app)
    result = bitrix(app, form["auth[access_token]"]).call(
        "bizproc.event.send",
        {
            "event_token": form["event_token"],
            "return_values": {"OUTPUTSTRING": "done", "unknown": "x"},
            "log_message": "Note sent",
        },
    )
    assert result is True
    app.idle()
    [workflow] = AdminClient(app.world.base_url).workflows(
        member_id=app.portal.member_id, deal_id=deal_id
    )
    assert workflow["status"] == "completed"
    assert workflow["robots"][0]["status"] == "completed"
    assert workflow["robots"][0]["return_values"] == {"outputString": "done"}
    assert workflow["log"][-1] == "Note sent"

    again = app.rest("bizproc.event.send", EVENT_TOKEN=form["event_token"])
    assert error(again) == (403, "ACCESS_DENIED", "Access denied!")


def outbox_idle(app: InstalledApp) -> bool:
    from fakeportal.automation import outbox

    return bool(outbox.wait_idle(app.world, 0.2)["idle"])


def test_forged_token_is_access_denied(installed_app: InstalledApp) -> None:
    app = installed_app
    add_robot(app)
    rules.add_robot_rule(
        app.world, app.portal.member_id, 0, "PREPARATION", app.client_id, "send_note"
    )
    move(app, new_deal(app), "PREPARATION")
    token = app.recorder.wait_for("/robot")[0].form["event_token"]
    value, _, signature = token.rpartition(".")
    forged = f"{value}.{'0' * len(signature)}"
    assert error(app.rest("bizproc.event.send", EVENT_TOKEN=forged)) == (
        403, "ACCESS_DENIED", "Access denied!",
    )  # fmt: skip
    other = value.replace(value.split("|")[0], "664fa13bbbb410.99176768")
    tampered = f"{other}.{signature}"
    assert error(app.rest("bizproc.event.send", EVENT_TOKEN=tampered))[0] == 403
    assert error(app.rest("bizproc.event.send", EVENT_TOKEN="junk"))[0] == 403
    assert app.ok("bizproc.event.send", EVENT_TOKEN=token) is True


def test_activity_log_and_timeout(installed_app: InstalledApp, fake_admin: AdminClient) -> None:
    app = installed_app
    add_robot(app)
    rules.add_robot_rule(
        app.world, app.portal.member_id, 0, "PREPARATION", app.client_id, "send_note",
        timeout_seconds=120,
    )  # fmt: skip
    deal_id = new_deal(app)
    move(app, deal_id, "PREPARATION")
    form = app.recorder.wait_for("/robot")[0].form
    assert form["timeout_duration"] == "120"
    token = form["event_token"]
    empty = app.rest("bizproc.activity.log", EVENT_TOKEN=token, LOG_MESSAGE="")
    assert error(empty) == (400, "ERROR_EMPTY_LOG_MESSAGE", "Empty log message!")
    assert app.ok("bizproc.activity.log", event_token=token, log_message="Working on it")

    fake_admin.advance_clock(seconds=121)
    app.idle()
    [workflow] = fake_admin.workflows(member_id=app.portal.member_id, deal_id=deal_id)
    step = workflow["robots"][0]
    assert (step["status"], step["is_timeout"]) == ("timeout", True)
    assert workflow["log"][0] == "Working on it"
    assert step["log"] == ["Working on it", "IsTimeout: no answer in time"]
    late = app.rest("bizproc.event.send", EVENT_TOKEN=token, RETURN_VALUES={"outputString": "x"})
    assert error(late) == (403, "ACCESS_DENIED", "Access denied!")


def test_robots_of_a_stage_run_one_after_another(installed_app: InstalledApp) -> None:
    app = installed_app
    add_robot(app)
    add_robot(app, CODE="quick", USE_SUBSCRIPTION="N", NAME="Quick", RETURN_PROPERTIES=None)
    member = app.portal.member_id
    rules.add_robot_rule(app.world, member, 0, "PREPARATION", app.client_id, "send_note")
    rules.add_robot_rule(app.world, member, 0, "PREPARATION", app.client_id, "quick")
    move(app, new_deal(app), "PREPARATION")
    first = app.recorder.wait_for("/robot")[0]
    assert first.form["code"] == "send_note"
    assert not outbox_idle(app)
    assert len(app.recorder.received("/robot")) == 1  # the second waits for the first
    app.ok("bizproc.event.send", EVENT_TOKEN=first.form["event_token"])
    second = app.recorder.wait_for("/robot", 2)[1]
    assert second.form["code"] == "quick"
    assert second.form["use_subscription"] == "N"
    assert second.form["workflow_id"] == first.form["workflow_id"]
    assert second.form["event_token"] != first.form["event_token"]
    app.idle()


def test_deal_leaving_the_stage_cancels_the_remaining_robots(
    installed_app: InstalledApp, fake_admin: AdminClient
) -> None:
    app = installed_app
    add_robot(app)
    add_robot(app, CODE="later", NAME="Later")
    member = app.portal.member_id
    rules.add_robot_rule(app.world, member, 0, "PREPARATION", app.client_id, "send_note")
    rules.add_robot_rule(app.world, member, 0, "PREPARATION", app.client_id, "later")
    deal_id = new_deal(app)
    move(app, deal_id, "PREPARATION")
    first = app.recorder.wait_for("/robot")[0]
    move(app, deal_id, "EXECUTING")
    app.ok("bizproc.event.send", EVENT_TOKEN=first.form["event_token"])
    app.idle()
    assert [p.form["code"] for p in app.recorder.received("/robot")] == ["send_note"]
    [workflow] = fake_admin.workflows(member_id=member, deal_id=deal_id)
    assert workflow["status"] == "cancelled"
    assert [r["status"] for r in workflow["robots"]] == ["completed", "cancelled"]


def test_rules_by_admin_http_with_delay_and_condition(
    installed_app: InstalledApp, fake_admin: AdminClient
) -> None:
    app = installed_app
    add_robot(app, USE_SUBSCRIPTION="N")
    member = app.portal.member_id
    rule = fake_admin.add_robot_rule(
        member_id=member, category_id=0, stage_id="PREPARATION", client_id=app.client_id,
        robot_code="send_note", properties={"text": "{{OPPORTUNITY}}"}, delay_seconds=3600,
        condition={">OPPORTUNITY": 100},
    )  # fmt: skip
    assert rule["kind"] == "robot"
    assert [r["id"] for r in fake_admin.list_rules(member_id=member)] == [rule["id"]]
    cheap, rich = new_deal(app, OPPORTUNITY=50), new_deal(app, OPPORTUNITY=5000)
    move(app, cheap, "PREPARATION")
    move(app, rich, "PREPARATION")
    assert not outbox_idle(app)  # both delayed an hour
    assert app.recorder.received("/robot") == []
    fake_admin.advance_clock(seconds=3601)
    app.idle()
    posts = app.recorder.received("/robot")
    assert [p.form["document_id[2]"] for p in posts] == [f"DEAL_{rich}"]
    assert posts[0].form["properties[text]"] == "5000.00"
    statuses = {
        w["deal_id"]: w["robots"][0]["status"] for w in fake_admin.workflows(member_id=member)
    }
    assert statuses == {cheap: "skipped", rich: "completed"}


def test_robot_handler_failure_is_not_retried(installed_app: InstalledApp) -> None:
    app = installed_app
    add_robot(app, USE_SUBSCRIPTION="N")
    app.recorder.status["/robot"] = 500
    rules.add_robot_rule(
        app.world, app.portal.member_id, 0, "PREPARATION", app.client_id, "send_note"
    )
    move(app, new_deal(app), "PREPARATION")
    app.idle()
    assert len(app.recorder.received("/robot")) == 1
    out = [r for r in app.portal.wire if r.direction == "out" and r.kind == "robot"]
    assert [r.status for r in out] == [500]


def test_activity_methods_share_the_code_namespace(installed_app: InstalledApp) -> None:
    app = installed_app
    add_robot(app)
    clash = app.rest(
        "bizproc.activity.add", **{**ROBOT, "HANDLER": f"{app.recorder.url}/a", "CODE": "send_note"}
    )
    assert error(clash)[1] == "ERROR_ACTIVITY_ALREADY_INSTALLED"
    assert app.ok(
        "bizproc.activity.add",
        **{**ROBOT, "HANDLER": f"{app.recorder.url}/a", "CODE": "act",
           "DOCUMENT_TYPE": ["crm", "CCrmDocumentDeal", "DEAL"]},
    )  # fmt: skip
    assert app.ok("bizproc.activity.list") == ["act"]
    assert app.ok("bizproc.robot.list") == ["send_note"]
    wrong = app.rest("bizproc.robot.delete", CODE="act")
    assert error(wrong)[1] == "ERROR_ACTIVITY_NOT_FOUND"
    assert app.ok("bizproc.activity.delete", CODE="act") is True


def test_reentering_the_stage_supersedes_the_earlier_workflow(
    installed_app: InstalledApp, fake_admin: AdminClient
) -> None:
    app = installed_app
    add_robot(app)
    add_robot(app, CODE="later", NAME="Later", USE_SUBSCRIPTION="N")
    member = app.portal.member_id
    rules.add_robot_rule(app.world, member, 0, "PREPARATION", app.client_id, "send_note")
    rules.add_robot_rule(app.world, member, 0, "PREPARATION", app.client_id, "later")
    deal_id = new_deal(app)
    move(app, deal_id, "PREPARATION")
    first = app.recorder.wait_for("/robot")[0].form
    move(app, deal_id, "EXECUTING")
    move(app, deal_id, "PREPARATION")
    second = app.recorder.wait_for("/robot", 2)[1].form
    assert second["code"] == "send_note"
    assert second["workflow_id"] != first["workflow_id"]
    assert app.ok("bizproc.event.send", EVENT_TOKEN=first["event_token"]) is True
    assert app.ok("bizproc.event.send", EVENT_TOKEN=second["event_token"]) is True
    app.idle()
    posts = [(p.form["workflow_id"], p.form["code"]) for p in app.recorder.received("/robot")]
    assert posts == [
        (first["workflow_id"], "send_note"),
        (second["workflow_id"], "send_note"),
        (second["workflow_id"], "later"),
    ]
    flows = {w["workflow_id"]: w for w in fake_admin.workflows(member_id=member)}
    assert flows[first["workflow_id"]]["status"] == "cancelled"
    assert [r["status"] for r in flows[first["workflow_id"]]["robots"]] == [
        "completed", "cancelled",
    ]  # fmt: skip
    assert flows[second["workflow_id"]]["status"] == "completed"
