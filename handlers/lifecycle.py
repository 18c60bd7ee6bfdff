"""The app's own lifecycle events: the portal uninstalls the app."""

from __future__ import annotations

from app.context import EventContext
from app.payloads import EventCall
from app.registry import EventRouter

router = EventRouter()


@router.on("ONAPPUNINSTALL")
def uninstalled(ctx: EventContext, event: EventCall) -> None:
    """Tokens are already revoked by the portal; forget them, and the data too with CLEAN=1."""
    clean = str(event.data.get("CLEAN", "0")) == "1"
    ctx.services.store.deactivate(ctx.member_id, clean=clean)
    ctx.log.info("uninstalled (clean=%s)", clean)
