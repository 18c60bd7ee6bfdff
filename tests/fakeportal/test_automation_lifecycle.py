"""App install as a page, install finish, update and uninstall, over HTTP."""

from __future__ import annotations

import json

import requests

from fakeportal import admin, crm
from fakeportal.automation import testing
from fakeportal.automation.recorder import Post, Recorder
from fakeportal.automation.testing import InstalledApp
from fakeportal.state import Portal, World
from fakeportal.testing import AdminClient
from tests.support import EXAMPLES

recorder = testing.recorder
installed_app = testing.installed_app


def test_install_page_mode_waits_for_install_finish(
    fake_world: World, fake_portal: Portal, recorder: Recorder, fake_admin: AdminClient
) -> None:
    app = admin.register_app(
        fake_world, install_url=f"{recorder.url}/install", scope=["crm", "placement"]
    )
    endpoint = fake_portal.client_endpoint

    def wizard(post: Post) -> str:
        """The install page registers its event handler with the token it was given."""
        body = {
            "event": "ONCRMDEALADD",
            "handler": f"{recorder.url}/events",
            "auth": post.form["AUTH_ID"],
        }
        answer = requests.post(f"{endpoint}event.bind", json=body, timeout=5)
        return f"<html><body>bound: {answer.json()['result']}</body></html>"

    recorder.on("/install", wizard)
    page = fake_admin.install_app(
        member_id=fake_portal.member_id, client_id=app["client_id"], mode="page"
    )
    assert page["status"] == 200
    assert "bound: True" in page["body"]
    [post] = recorder.received("/install")
    example = EXAMPLES["app_iframe_open_default"]["payload"]
    assert set(post.query) == set(example["query"])
    assert set(post.form) == set(example["body"])
    assert post.form["PLACEMENT"] == "DEFAULT"
    assert post.form["APPLICATION_TOKEN"] == page["application_token"]
    assert post.query["PROTOCOL"] == "0"
    assert post.query["DOMAIN"] == endpoint.split("/")[2]

    with fake_world.lock:
        crm.create_deal(fake_portal, {"TITLE": "Before finish"}, user_id=1)
    fake_admin.wait_idle(timeout=5)
    assert recorder.received("/events") == []  # not installed until installFinish

    fake_admin.install_finish(member_id=fake_portal.member_id, client_id=app["client_id"])
    with fake_world.lock:
        deal_id = crm.create_deal(fake_portal, {"TITLE": "After finish"}, user_id=1)
    [event] = recorder.wait_for("/events")
    assert event.form["data[FIELDS][ID]"] == str(deal_id)


def test_update_wipes_registrations_and_reinstalls(
    installed_app: InstalledApp, fake_admin: AdminClient
) -> None:
    app = installed_app
    url = app.recorder.url
    assert app.ok(
        "bizproc.robot.add", CODE="r1", HANDLER=f"{url}/robot", NAME="R1", USE_SUBSCRIPTION="N"
    )
    assert app.ok("event.bind", event="ONCRMDEALUPDATE", handler=f"{url}/events")
    assert app.ok("placement.bind", PLACEMENT="CRM_DEAL_DETAIL_TAB", HANDLER=f"{url}/tab")
    assert app.ok("crm.automation.trigger.add", CODE="paid", NAME="Paid")
    assert app.ok("app.option.set", options={"mode": "full"})

    fake_admin.update_app(member_id=app.portal.member_id, client_id=app.client_id)
    second = app.recorder.wait_for("/install", 2)[1]
    assert second.form["data[VERSION]"] == "2"
    assert second.form["auth[application_token]"] == app.application_token
    assert app.ok("bizproc.robot.list") == []
    assert app.ok("event.get") == []
    assert app.ok("placement.get") == []
    assert app.ok("crm.automation.trigger.list") == [{"NAME": "Paid", "CODE": "paid"}]
    assert app.ok("app.option.get", option="mode") == "full"
    new_token = second.form["auth[access_token]"]
    assert app.rest("bizproc.robot.list", token=new_token).status_code == 200


def test_uninstall_notifies_wipes_and_revokes(
    installed_app: InstalledApp, fake_admin: AdminClient
) -> None:
    app = installed_app
    url = app.recorder.url
    assert app.ok("event.bind", event="ONAPPUNINSTALL", handler=f"{url}/uninstall")
    assert app.ok("bizproc.robot.add", CODE="r1", HANDLER=f"{url}/robot", NAME="R1")
    result = fake_admin.uninstall_app(
        member_id=app.portal.member_id, client_id=app.client_id, clean=True
    )
    assert result == {"uninstalled": True, "notified": 1}
    [post] = app.recorder.wait_for("/uninstall")
    expected = set(EXAMPLES["onappuninstall_event_docs"]["form_fields_derived"])
    assert set(post.form) == expected | {"event_handler_id"}
    assert post.form["data[CLEAN]"] == "1"
    assert post.form["auth[application_token]"] == app.application_token
    assert not any("token" in k and "application_token" not in k for k in post.form)

    denied = app.rest("bizproc.robot.list")
    assert denied.status_code == 401
    assert denied.json()["error"] == "ERROR_OAUTH"
    [summary] = fake_admin.apps(member_id=app.portal.member_id)
    assert summary["installed"] is False
    assert summary["robots"] == [] and summary["events"] == []

    fake_admin.install_app(member_id=app.portal.member_id, client_id=app.client_id)
    again = app.recorder.wait_for("/install", 2)[1]
    assert again.form["auth[application_token]"] != app.application_token
    fresh = app.rest("bizproc.robot.list", token=again.form["auth[access_token]"])
    assert fresh.json()["result"] == []


def test_open_app_page_posts_the_placement_form(
    installed_app: InstalledApp, fake_admin: AdminClient
) -> None:
    app = installed_app
    app.recorder.on("/tab", lambda post: "<html>deal tab</html>")
    page = fake_admin.open_app_page(
        member_id=app.portal.member_id,
        client_id=app.client_id,
        url=f"{app.recorder.url}/tab",
        placement="CRM_DEAL_DETAIL_TAB",
        options={"ID": "8061"},
    )
    assert (page["status"], page["body"]) == (200, "<html>deal tab</html>")
    [post] = app.recorder.received("/tab")
    example = EXAMPLES["placement_crm_deal_detail_tab_open"]["payload"]
    assert set(post.query) == set(example["query"])
    assert set(post.form) == set(example["body"])
    assert json.loads(post.form["PLACEMENT_OPTIONS"]) == {"ID": "8061"}
    assert app.rest("user.current", token=post.form["AUTH_ID"]).status_code == 200


def test_wire_log_of_portal_posts_hides_tokens(
    installed_app: InstalledApp, fake_admin: AdminClient
) -> None:
    installed_app.idle()  # the record is written once the app has answered
    records = fake_admin.wire_log(member_id=installed_app.portal.member_id, direction="out")
    [install] = [r for r in records if r["kind"] == "install"]
    form = install["request"]["form"]
    assert form["event"] == "ONAPPINSTALL" and install["status"] == 200
    for key in ("auth[access_token]", "auth[refresh_token]", "auth[application_token]"):
        assert form[key] == "***"
    assert installed_app.access_token not in json.dumps(records)
