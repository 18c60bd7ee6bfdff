"""Install, registrations, uninstall and reinstall, against the emulated portal over HTTP."""

from __future__ import annotations

from app.registry import Registry


def test_install_event_registers_everything_the_registry_offers(stack) -> None:
    stack.install()
    inst = stack.services.store.installation(stack.member_id)
    assert inst is not None and inst.domain == "solar.bitrix24.test"
    reg = stack.registrations()
    registry = Registry.load()
    assert reg["robots"] == sorted(registry.robots)
    bound = {(e["event"], e["handler"]) for e in reg["events"]}
    assert ("ONAPPUNINSTALL", f"{stack.app_url}/events") in bound
    assert stack.services.store.installation(stack.member_id).synced_at is not None
