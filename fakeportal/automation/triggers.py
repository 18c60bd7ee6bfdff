"""crm.automation.trigger.*: an app's triggers, and firing them.

Errors follow the CRM automation REST proxy: admin check, then application context (both 403
``ACCESS_DENIED`` with the "Access denied! " prefix), then the empty-code errors. Executing a
trigger moves a deal to the stage where a trigger rule of that app and code sits in the
deal's funnel (and records the firing either way).
"""

from __future__ import annotations

import re
from typing import Any

from fakeportal.api import Call, admin, method
from fakeportal.automation import crmlink
from fakeportal.automation.checks import php_empty
from fakeportal.automation.models import (
    Installation,
    app_installation,
    automation,
    get_portal,
)
from fakeportal.exceptions import AccessDenied, Uncoded
from fakeportal.state import Portal, World

CODE_RE = re.compile(r"^[a-z0-9.\-_]+$", re.IGNORECASE)
OWNER_TYPES = {1, 2, 3, 4, 5, 7, 8, 31}  # lead, deal, contact, company, invoice, quote, ...
DEAL = 2


def _context(call: Call) -> Installation:
    if not call.caller.is_admin:
        raise AccessDenied("Access denied! Admin permissions required")
    if call.caller.app_id is None:
        raise AccessDenied("Access denied! Application context required")
    return app_installation(call.portal, call.caller.app_id)


def _params(call: Call) -> dict[str, Any]:
    return {str(k).upper(): v for k, v in call.params.items()}


def _check_code(code: Any) -> str:
    if php_empty(code):
        raise Uncoded("Empty trigger code!")
    if not isinstance(code, (str, int)) or not CODE_RE.match(str(code)):
        raise Uncoded("Wrong trigger code!")
    return str(code)


def _registered(inst: Installation, code: str) -> str | None:
    return next((c for c in inst.triggers if c.lower() == code.lower()), None)


@method("crm.automation.trigger.add", scope="crm", validates=True)
def trigger_add(call: Call) -> bool:
    inst = _context(call)
    data = _params(call)
    code = _check_code(data.get("CODE"))
    if php_empty(data.get("NAME")):
        raise Uncoded("Empty trigger name!")
    with call.world.lock:
        existing = _registered(inst, code)
        inst.triggers[existing or code] = str(data["NAME"])
    return True


@method("crm.automation.trigger.list", scope="crm", validates=True)
def trigger_list(call: Call) -> list[dict[str, str]]:
    inst = _context(call)
    with call.world.lock:
        return [{"NAME": name, "CODE": code} for code, name in inst.triggers.items()]


@method("crm.automation.trigger.delete", scope="crm", validates=True)
def trigger_delete(call: Call) -> bool:
    inst = _context(call)
    code = _check_code(_params(call).get("CODE"))
    with call.world.lock:
        existing = _registered(inst, code)
        if existing is None:
            raise Uncoded("Trigger not found")
        del inst.triggers[existing]
    return True


@method("crm.automation.trigger.execute", scope="crm", validates=True)
def trigger_execute(call: Call) -> bool:
    inst = _context(call)
    data = _params(call)
    code = _check_code(data.get("CODE"))
    with call.world.lock:
        if _registered(inst, code) is None:
            raise Uncoded(f"Trigger with code {code} is not registered.")
        owner_type = _int(data.get("OWNER_TYPE_ID"))
        if owner_type not in OWNER_TYPES and owner_type < 128:
            raise Uncoded("Incorrect parameter OWNER_TYPE_ID.")
        owner_id = _int(data.get("OWNER_ID"))
        if owner_id <= 0:
            raise Uncoded("Incorrect parameter OWNER_ID.")
        fire(call.world, call.portal, inst.client_id, code, owner_type, owner_id)
    return True


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def fire(
    world: World, portal: Portal, client_id: str, code: str, owner_type: int, owner_id: int
) -> dict[str, Any]:
    """A trigger fired for an object: move a deal to the stage its trigger rule names."""
    record: dict[str, Any] = {
        "at": world.timestamp(),
        "client_id": client_id,
        "code": code,
        "owner_type_id": owner_type,
        "owner_id": owner_id,
        "moved_to": None,
    }
    state = automation(portal)
    deal = crmlink.get_deal(portal, owner_id) if owner_type == DEAL else None
    if deal is not None:
        category = _int(deal.get("CATEGORY_ID"))
        for rule in state.rules:
            if (
                rule.kind == "trigger"
                and rule.client_id == client_id
                and rule.code.lower() == code.lower()
                and rule.category_id == category
            ):
                record["rule_id"] = rule.id
                if str(deal.get("STAGE_ID")) != rule.stage_id:
                    crmlink.move_deal(portal, owner_id, rule.stage_id)
                    record["moved_to"] = rule.stage_id
                break
    state.trigger_firings.append(record)
    return record


def triggers(world: World, member_id: str, client_id: str | None = None) -> dict[str, Any]:
    """Registered triggers per app and the firings so far."""
    with world.lock:
        portal = get_portal(world, member_id)
        registered = {
            inst.client_id: [{"NAME": n, "CODE": c} for c, n in inst.triggers.items()]
            for inst in portal.apps.values()
            if isinstance(inst, Installation)
            and inst.installed
            and (client_id is None or inst.client_id == client_id)
        }
        firings = [
            f
            for f in automation(portal).trigger_firings
            if client_id is None or f["client_id"] == client_id
        ]
        return {"registered": registered, "firings": firings}


@admin("triggers")
def _admin_triggers(world: World, member_id: str, client_id: str | None = None) -> dict:
    return triggers(world, member_id, client_id)
