"""placement.bind / unbind / get / list: an app's widgets (shown once install finished)."""

from __future__ import annotations

from typing import Any

from fakeportal.api import Call, method
from fakeportal.automation.checks import check_handler
from fakeportal.automation.models import Installation, PlacementBinding, app_installation
from fakeportal.exceptions import CoreError, InvalidArgs, PlacementNotFound, WrongAuthType

PLACEMENTS = (
    "CRM_DEAL_LIST_TOOLBAR",
    "CRM_LEAD_LIST_TOOLBAR",
    "CRM_CONTACT_LIST_TOOLBAR",
    "CRM_COMPANY_LIST_TOOLBAR",
    "CRM_DEAL_DETAIL_TAB",
    "CRM_LEAD_DETAIL_TAB",
    "CRM_CONTACT_DETAIL_TAB",
    "CRM_COMPANY_DETAIL_TAB",
    "CRM_DEAL_DETAIL_TOOLBAR",
    "CRM_LEAD_DETAIL_TOOLBAR",
    "CRM_CONTACT_DETAIL_TOOLBAR",
    "CRM_COMPANY_DETAIL_TOOLBAR",
    "CRM_DEAL_DETAIL_ACTIVITY",
    "CRM_DEAL_ACTIVITY_TIMELINE_MENU",
    "CRM_LEAD_ACTIVITY_TIMELINE_MENU",
    "CRM_DEAL_LIST_MENU",
    "CRM_LEAD_LIST_MENU",
    "CRM_ANALYTICS_MENU",
    "CRM_DEAL_DOCUMENTGENERATOR_BUTTON",
    "LEFT_MENU",
    "REST_APP_URI",
    "PAGE_BACKGROUND_WORKER",
    "USER_PROFILE_MENU",
    "USER_PROFILE_TOOLBAR",
    "TASK_VIEW_TAB",
    "TASK_VIEW_SIDEBAR",
    "IM_CONTEXT_MENU",
    "IM_NAVIGATION",
    "IM_TEXTAREA",
    "IM_SIDEBAR",
    "CALENDAR_GRIDVIEW",
    "SONET_GROUP_DETAIL_TAB",
)


def _context(call: Call) -> Installation:
    if call.caller.app_id is None:
        raise WrongAuthType("Application context required")
    call.require_admin()
    return app_installation(call.portal, call.caller.app_id)


def _params(call: Call) -> dict[str, Any]:
    return {str(k).upper(): v for k, v in call.params.items()}


@method("placement.bind", scope="placement", validates=True)
def placement_bind(call: Call) -> bool:
    inst = _context(call)
    data = _params(call)
    placement = str(data.get("PLACEMENT") or "").upper()
    handler = str(data.get("HANDLER") or "")
    if not placement:
        raise InvalidArgs("Argument 'PLACEMENT' is null or empty")
    if placement == "DEFAULT":
        raise InvalidArgs("Wrong value")
    if not handler:
        raise InvalidArgs("Argument 'HANDLER' is null or empty")
    if placement not in PLACEMENTS:
        raise PlacementNotFound()
    check_handler(handler)
    user_id = int(data.get("USER_ID") or 0) if placement == "PAGE_BACKGROUND_WORKER" else 0
    with call.world.lock:
        for p in inst.placements:
            if (p.placement, p.handler, p.user_id) == (placement, handler, user_id):
                raise CoreError("Handler already binded")
        lang_all = data.get("LANG_ALL") if isinstance(data.get("LANG_ALL"), dict) else {}
        inst.placements.append(
            PlacementBinding(
                placement=placement,
                handler=handler,
                title=str(data.get("TITLE") or ""),
                description=str(data.get("DESCRIPTION") or ""),
                group_name=str(data.get("GROUP_NAME") or ""),
                lang_all=lang_all,
                options=data.get("OPTIONS") or [],
                user_id=user_id,
            )
        )
    return True


@method("placement.unbind", scope="placement", validates=True)
def placement_unbind(call: Call) -> dict[str, int]:
    inst = _context(call)
    data = _params(call)
    placement = str(data.get("PLACEMENT") or "").upper()
    if not placement:
        raise InvalidArgs("Argument 'PLACEMENT' is null or empty")
    handler = str(data.get("HANDLER") or "")
    user_id = data.get("USER_ID")
    with call.world.lock:
        keep = [
            p
            for p in inst.placements
            if not (
                p.placement == placement
                and (not handler or p.handler == handler)
                and (user_id in (None, "") or p.user_id == int(user_id))
            )
        ]
        count = len(inst.placements) - len(keep)
        inst.placements = keep
    return {"count": count}


@method("placement.get", scope="placement", validates=True)
def placement_get(call: Call) -> list[dict[str, Any]]:
    inst = _context(call)
    with call.world.lock:
        return [p.as_dict() for p in inst.placements]


@method("placement.list", scope="placement", validates=True)
def placement_list(call: Call) -> list[str]:
    call.require_app()
    return list(PLACEMENTS)
