"""Install, registrations, uninstall and reinstall, against the emulated portal over HTTP."""

from __future__ import annotations

import json

from server import CATALOGUE


def test_install_event_registers_everything_the_registry_offers(stack) -> None:
    stack.install()
    inst = stack.services.store.installation(stack.member_id)
    assert inst is not None and inst.domain == "solar.bitrix24.test"
    reg = stack.registrations()
    assert reg["robots"] == sorted(CATALOGUE.robots)
    bound = {(e["event"], e["handler"]) for e in reg["events"]}
    assert ("ONAPPUNINSTALL", f"{stack.app_url}/events") in bound
    assert stack.services.store.installation(stack.member_id).synced_at is not None


def test_sync_removes_stale_robots_and_the_cli_resyncs(stack) -> None:
    stack.install()
    portal = stack.services.portal(stack.member_id)
    portal.call(
        "bizproc.robot.add",
        {
            "CODE": "retired_robot",
            "HANDLER": f"{stack.app_url}/robots/retired_robot",
            "NAME": "Retired",
            "USE_SUBSCRIPTION": "Y",
        },
    )
    portal.call("event.unbind", {"event": "ONAPPUNINSTALL", "handler": f"{stack.app_url}/events"})
    assert "retired_robot" in stack.registrations()["robots"]

    result = stack.cli("sync", "--member-id", stack.member_id)
    assert result.exit_code == 0, result.output
    assert "robot:retired_robot" in result.output
    reg = stack.registrations()
    assert "retired_robot" not in reg["robots"]
    assert any(e["event"] == "ONAPPUNINSTALL" for e in reg["events"])
    # Idempotent: a second sync adds, updates and deletes nothing, and writes nothing.
    stack.admin.requests(member_id=stack.member_id, reset=True)
    again = stack.cli("sync")
    assert again.exit_code == 0, again.output
    report = json.loads(again.output.split(": ", 1)[1])
    assert report["added"] == report["updated"] == report["deleted"] == []
    assert report["bound"] == report["unbound"] == []
    assert {f"robot:{code}" for code in CATALOGUE.robots} <= set(report["unchanged"])
    assert {f"trigger:{code}" for code in CATALOGUE.triggers} <= set(report["unchanged"])
    assert "sender:robot_server_sms" in report["unchanged"]
    assert "event:ONAPPUNINSTALL" in report["unchanged"]
    assert "event:ONOFFLINEEVENT" in report["unchanged"]
    offline = {f"event:{e} (offline)" for e in CATALOGUE.events.events}
    assert offline and offline <= set(report["unchanged"])
    assert stack.admin.requests(member_id=stack.member_id)["total"] == 1  # the read batch


def test_several_portals_at_once(stack) -> None:
    stack.install()
    other = stack.world.add_portal(domain="water.bitrix24.test", country="RU")
    stack.admin.install_app(member_id=other.member_id, client_id=stack.client_id)
    stack.settle()
    store = stack.services.store
    first, second = store.installation(stack.member_id), store.installation(other.member_id)
    assert first.domain == "solar.bitrix24.test" and second.domain == "water.bitrix24.test"
    assert first.application_token != second.application_token
    assert (
        store.load_tokens(first.member_id).access_token
        != store.load_tokens(second.member_id).access_token
    )
    assert "copy_deal" in stack.admin.apps(member_id=other.member_id)[0]["robots"]
