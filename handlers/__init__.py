"""Event handlers, SMS and tracking endpoints' work: every router combined here, in one place."""

from app.registry import EventRouter
from handlers import lifecycle

router = EventRouter().include(
    lifecycle.router,
)
