"""Triggers, the SMS provider, placements and app options, over HTTP."""

from __future__ import annotations

import re
from typing import Any

import requests

from fakeportal import crm
from fakeportal.automation import messageservice, outbox, rules, testing
from fakeportal.automation.recorder import Post
from fakeportal.automation.testing import InstalledApp
from fakeportal.testing import AdminClient
from tests.support import EXAMPLES

recorder = testing.recorder
installed_app = testing.installed_app

AUTH_KEYS = {
    k
    for k in EXAMPLES["robot_handler_post_deal_SYNTHESIZED"]["form_fields_derived"]
    if k.startswith("auth[")
}


def error(response: requests.Response) -> tuple[int, str, str]:
    body = response.json()
    return response.status_code, body["error"], body["error_description"]


def flat_keys(payload: dict[str, Any], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    items = payload.items() if isinstance(payload, dict) else enumerate(payload)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list)):
            keys |= flat_keys(value, name)
        else:
            keys.add(name)
    return keys


# triggers -------------------------------------------------------------------------------------
def test_trigger_registration_and_errors(installed_app: InstalledApp, fake_webhook: str) -> None:
    app = installed_app
    assert app.ok("crm.automation.trigger.add", CODE="call_done", NAME="Call finished") is True
    assert app.ok("crm.automation.trigger.add", code="call_done", name="Call ended") is True
    assert app.ok("crm.automation.trigger.list") == [{"NAME": "Call ended", "CODE": "call_done"}]
    cases = [
        ("add", {"CODE": "", "NAME": "x"}, "Empty trigger code!"),
        ("add", {"CODE": "bad code", "NAME": "x"}, "Wrong trigger code!"),
        ("add", {"CODE": "ok", "NAME": ""}, "Empty trigger name!"),
        ("delete", {"CODE": "nope"}, "Trigger not found"),
        ("execute", {"CODE": "nope", "OWNER_TYPE_ID": 2, "OWNER_ID": 1},
         "Trigger with code nope is not registered."),
        ("execute", {"CODE": "call_done", "OWNER_TYPE_ID": 99, "OWNER_ID": 1},
         "Incorrect parameter OWNER_TYPE_ID."),
        ("execute", {"CODE": "call_done", "OWNER_TYPE_ID": 2, "OWNER_ID": 0},
         "Incorrect parameter OWNER_ID."),
    ]  # fmt: skip
    for action, params, message in cases:
        answer = app.rest(f"crm.automation.trigger.{action}", **params)
        assert error(answer) == (400, "", message), action
    hook = requests.post(f"{fake_webhook}crm.automation.trigger.list", json={}, timeout=5)
    assert error(hook) == (403, "ACCESS_DENIED", "Access denied! Application context required")
    assert app.ok("crm.automation.trigger.delete", CODE="call_done") is True
    assert app.ok("crm.automation.trigger.list") == []


def test_trigger_moves_the_deal_and_starts_the_stage(
    installed_app: InstalledApp, fake_admin: AdminClient
) -> None:
    app = installed_app
    url = app.recorder.url
    member = app.portal.member_id
    assert app.ok("crm.automation.trigger.add", CODE="paid", NAME="Invoice paid")
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", handler=f"{url}/events")
    assert app.ok(
        "bizproc.robot.add", CODE="thanks", HANDLER=f"{url}/robot", NAME="Thanks",
        USE_SUBSCRIPTION="N",
    )  # fmt: skip
    fake_admin.add_trigger_rule(
        member_id=member, category_id=0, stage_id="EXECUTING", client_id=app.client_id,
        trigger_code="paid",
    )  # fmt: skip
    rules.add_robot_rule(app.world, member, 0, "EXECUTING", app.client_id, "thanks")
    with app.world.lock:
        deal_id = crm.create_deal(app.portal, {"TITLE": "Order 7"})
    assert app.ok("crm.automation.trigger.execute", CODE="paid", OWNER_TYPE_ID=2, OWNER_ID=deal_id)
    with app.world.lock:
        assert crm.get_deal(app.portal, deal_id)["STAGE_ID"] == "EXECUTING"
    [event] = app.recorder.wait_for("/events")
    assert not any(k in event.form for k in ("auth[access_token]", "auth[user_id]"))
    [robot] = app.recorder.wait_for("/robot")
    assert robot.form["document_id[2]"] == f"DEAL_{deal_id}"
    # firing again: the deal is already there, nothing moves
    assert app.ok("crm.automation.trigger.execute", CODE="paid", OWNER_TYPE_ID=2, OWNER_ID=deal_id)
    firings = fake_admin.triggers(member_id=member)["firings"]
    assert [f["moved_to"] for f in firings] == ["EXECUTING", None]
    outbox.wait_idle(app.world, 5)
    assert len(app.recorder.received("/robot")) == 1


# SMS ------------------------------------------------------------------------------------------
def add_sender(app: InstalledApp, code: str = "provider1") -> None:
    assert app.ok(
        "messageservice.sender.add",
        CODE=code,
        TYPE="SMS",
        HANDLER=f"{app.recorder.url}/sms",
        NAME={"en": "SMS gateway"},
    )


def test_sender_registration_and_errors(installed_app: InstalledApp, fake_webhook: str) -> None:
    app = installed_app
    add_sender(app)
    assert app.ok("messageservice.sender.list") == ["provider1"]
    v = "ERROR_SENDER_VALIDATION_FAILURE"
    base = {"CODE": "p2", "TYPE": "SMS", "HANDLER": f"{app.recorder.url}/sms", "NAME": "P2"}
    cases = [
        ({**base, "CODE": ""}, v, "Empty sender code!"),
        ({**base, "CODE": "a b"}, v, "Wrong sender code!"),
        ({**base, "NAME": ""}, v, "Empty sender NAME!"),
        ({**base, "TYPE": ""}, v, "Empty sender message TYPE!"),
        ({**base, "TYPE": "sms"}, v, "Unknown sender message TYPE!"),
        ({**base, "HANDLER": "http://localhost/sms"}, "ERROR_WRONG_HANDLER_URL",
         "Wrong handler URL"),
        ({**base, "CODE": "provider1"}, "ERROR_SENDER_ALREADY_INSTALLED",
         "Sender already installed!"),
    ]  # fmt: skip
    for params, code, message in cases:
        assert error(app.rest("messageservice.sender.add", **params)) == (400, code, message)
    assert error(app.rest("messageservice.sender.update", NAME="x")) == (
        400, "ERROR_SENDER_CODE_REQUIRED", "CODE is required!",
    )  # fmt: skip
    assert error(app.rest("messageservice.sender.update", CODE="provider1")) == (
        400, "ERROR_SENDER_OTHER_PARAMS_REQUIRED", "At least one other parameter is required!",
    )  # fmt: skip
    assert app.ok("messageservice.sender.update", CODE="provider1", NAME="Renamed") is True
    assert error(app.rest("messageservice.sender.delete", CODE="nope")) == (
        400, "ERROR_SENDER_NOT_FOUND", "Sender not found!",
    )  # fmt: skip
    hook = requests.post(f"{fake_webhook}messageservice.sender.list", json={}, timeout=5)
    assert error(hook)[:2] == (403, "ACCESS_DENIED")
    assert app.ok("messageservice.sender.delete", CODE="provider1") is True
    assert app.ok("messageservice.sender.list") == []


def test_sms_from_a_robot_and_status_updates(
    installed_app: InstalledApp, fake_admin: AdminClient
) -> None:
    app = installed_app
    add_sender(app)
    with app.world.lock:
        deal_id = crm.create_deal(app.portal, {"TITLE": "x"})
    sent = fake_admin.send_sms(
        member_id=app.portal.member_id, client_id=app.client_id, sender_code="provider1",
        phone="+48500100200", text="Your code: 1234", deal_id=deal_id,
    )  # fmt: skip
    [post] = app.recorder.wait_for("/sms")
    example = EXAMPLES["sms_handler_post_from_robot_printr"]["payload"]
    assert set(post.form) == (flat_keys(example) - {"auth"}) | AUTH_KEYS
    form = post.form
    assert (form["module_id"], form["type"], form["code"]) == ("bizproc", "SMS", "provider1")
    assert form["message_id"] == sent["message_id"]
    assert re.fullmatch(r"[0-9a-f]{32}", form["message_id"])
    assert form["message_to"] == form["properties[phone_number]"] == "+48500100200"
    assert form["message_body"] == form["properties[message_text]"] == "Your code: 1234"
    assert form["document_id[2]"] == f"DEAL_{deal_id}"
    assert form["auth[application_token]"] == app.application_token

    message_id = form["message_id"]
    for status in ("sent", "delivered"):
        assert app.ok(
            "messageservice.message.status.update",
            CODE="provider1", MESSAGE_ID=message_id, STATUS=status,
        )  # fmt: skip
    bad = app.rest(
        "messageservice.message.status.update",
        CODE="provider1", MESSAGE_ID=message_id, STATUS="read",
    )  # fmt: skip
    assert error(bad) == (400, "ERROR_MESSAGE_STATUS_INCORRECT", "Message status incorrect!")
    unknown = app.rest(
        "messageservice.message.status.update",
        CODE="provider1", MESSAGE_ID="0" * 32, STATUS="sent",
    )  # fmt: skip
    assert error(unknown) == (400, "ERROR_MESSAGE_NOT_FOUND", "Message not found!")
    [message] = fake_admin.sms_messages(member_id=app.portal.member_id)
    assert message["status"] == "delivered"
    assert [h["status"] for h in message["history"]] == ["sent", "delivered"]


def test_sms_from_a_crm_card(installed_app: InstalledApp, fake_admin: AdminClient) -> None:
    app = installed_app
    add_sender(app)
    with app.world.lock:
        contact = crm.create_contact(app.portal, {"NAME": "Anna", "PHONE": [{"VALUE": "+48501"}]})
        deal_id = crm.create_deal(app.portal, {"TITLE": "x", "CONTACT_ID": contact})
    fake_admin.send_sms(
        member_id=app.portal.member_id, client_id=app.client_id, sender_code="provider1",
        phone="+48501", text="Hello", deal_id=deal_id, from_robot=False,
    )  # fmt: skip
    [post] = app.recorder.wait_for("/sms")
    form = post.form
    assert form["module_id"] == "crm"
    assert "workflow_id" not in form and "document_id[0]" not in form
    assert (form["bindings[0][OWNER_TYPE_ID]"], form["bindings[0][OWNER_ID]"]) == (
        "2", str(deal_id),
    )  # fmt: skip
    assert (form["bindings[1][OWNER_TYPE_ID]"], form["bindings[1][OWNER_ID]"]) == (
        "3", str(contact),
    )  # fmt: skip
    example = EXAMPLES["sms_handler_post_from_crm_card_docs"]["form_fields_derived"]
    singles = {k for k in example if not k.startswith("bindings[")}
    assert singles | AUTH_KEYS <= set(form)


def test_send_sms_robot_on_a_stage(installed_app: InstalledApp, fake_admin: AdminClient) -> None:
    app = installed_app
    add_sender(app)
    fake_admin.add_sms_rule(
        member_id=app.portal.member_id, category_id=0, stage_id="PREPARATION",
        client_id=app.client_id, sender_code="provider1",
        message_text="{{TITLE}} is being prepared",
    )  # fmt: skip
    with app.world.lock:
        contact = crm.create_contact(
            app.portal, {"NAME": "Jan", "PHONE": [{"VALUE": "+48600700800", "VALUE_TYPE": "WORK"}]}
        )
        deal_id = crm.create_deal(app.portal, {"TITLE": "Heat pump", "CONTACT_ID": contact})
        crm.move_deal(app.portal, deal_id, "PREPARATION", user_id=1)
    [post] = app.recorder.wait_for("/sms")
    assert post.form["module_id"] == "bizproc"
    assert post.form["message_to"] == "+48600700800"
    assert post.form["message_body"] == "Heat pump is being prepared"
    [workflow] = fake_admin.workflows(member_id=app.portal.member_id, deal_id=deal_id)
    assert workflow["workflow_id"] == post.form["workflow_id"]
    assert workflow["robots"][0]["message_id"] == post.form["message_id"]


# placements and options -----------------------------------------------------------------------
def test_placements(installed_app: InstalledApp, fake_webhook: str) -> None:
    app = installed_app
    handler = f"{app.recorder.url}/tab"
    assert app.ok("placement.bind", PLACEMENT="CRM_DEAL_DETAIL_TAB", HANDLER=handler, TITLE="Solar")
    dup = app.rest("placement.bind", PLACEMENT="CRM_DEAL_DETAIL_TAB", HANDLER=handler)
    assert error(dup) == (400, "ERROR_CORE", "Handler already binded")
    nowhere = app.rest("placement.bind", PLACEMENT="NOWHERE", HANDLER=handler)
    assert error(nowhere)[1] == "ERROR_PLACEMENT_NOT_FOUND"
    [row] = app.ok("placement.get")
    assert (row["placement"], row["handler"], row["title"]) == (
        "CRM_DEAL_DETAIL_TAB", handler, "Solar",
    )  # fmt: skip
    assert "CRM_DEAL_DETAIL_TAB" in app.ok("placement.list")
    hook = requests.post(
        f"{fake_webhook}placement.bind",
        json={"PLACEMENT": "CRM_DEAL_DETAIL_TAB", "HANDLER": handler},
        timeout=5,
    )
    assert error(hook) == (403, "WRONG_AUTH_TYPE", "Application context required")
    assert app.ok("placement.unbind", PLACEMENT="CRM_DEAL_DETAIL_TAB") == {"count": 1}


def test_app_options(installed_app: InstalledApp) -> None:
    app = installed_app
    assert app.ok("app.option.get") == []
    assert app.ok("app.option.set", options={"data": "value", "data2": "value2"}) is True
    assert app.ok("app.option.get") == {"data": "value", "data2": "value2"}
    assert app.ok("app.option.get", option="data2") == "value2"


def test_portal_posts_are_urlencoded_forms_of_strings(installed_app: InstalledApp) -> None:
    app = installed_app
    add_sender(app)
    with app.world.lock:
        messageservice.queue_sms(app.world, app.portal, app.client_id, "provider1", "+1", "t")
    post: Post = app.recorder.wait_for("/sms")[0]
    assert post.content_type == "application/x-www-form-urlencoded"
    assert all(isinstance(v, str) for _, v in post.pairs)
    assert post.data["properties"] == {"phone_number": "+1", "message_text": "t"}
