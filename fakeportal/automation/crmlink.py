"""The few CRM reads and writes automation needs, through the CRM part's Python functions.

``fakeportal.crm`` is imported on use. That dodges no cycle (the CRM part never imports
automation); importing it at the top would only make the CRM part load, and register its
signal receivers, before automation's, where ``fakeportal/__init__.py`` loads it after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fakeportal.api import handling
from fakeportal.exceptions import ApiError

if TYPE_CHECKING:  # pragma: no cover
    from fakeportal.state import Portal


def get_deal(portal: Portal, deal_id: int) -> dict[str, Any] | None:
    """The deal's fields as crm.deal.get shows them, or None when it does not exist."""
    from fakeportal import crm

    try:
        deal = crm.get_deal(portal, int(deal_id))
    except (ApiError, KeyError, LookupError, ValueError):
        return None
    return dict(deal) if deal else None


def move_deal(portal: Portal, deal_id: int, stage_id: str) -> None:
    """Move a deal as the automation does (no user: events carry no user tokens).

    Outside any REST call's context, even when a trigger fires inside the app's
    ``crm.automation.trigger.execute``: the move is the portal's, so offline bindings always
    get it, whatever ``auth_connector`` the app's call had.
    """
    from fakeportal import crm

    with handling(None):
        crm.move_deal(portal, int(deal_id), stage_id, user_id=None)


def deal_phone(portal: Portal, deal: dict[str, Any]) -> tuple[str, int | None]:
    """The first phone of the deal's contact, and that contact's id."""
    contact_id = deal.get("CONTACT_ID")
    if not contact_id:
        ids = deal.get("CONTACT_IDS") or []
        contact_id = ids[0] if ids else None
    if not contact_id:
        return "", None
    contact = _get_contact(portal, int(contact_id))
    phones = (contact or {}).get("PHONE") or []
    for phone in phones:
        value = phone.get("VALUE") if isinstance(phone, dict) else phone
        if value:
            return str(value), int(contact_id)
    return "", int(contact_id)


def _get_contact(portal: Portal, contact_id: int) -> dict[str, Any] | None:
    from fakeportal import crm

    getter = getattr(crm, "get_contact", None)
    if getter is not None:
        try:
            return dict(getter(portal, contact_id))
        except (ApiError, KeyError, LookupError, ValueError):
            return None
    for table in ("contact", "contacts"):
        row = portal.tables.get(table, {}).get(contact_id)
        if row:
            return dict(row)
    return None
