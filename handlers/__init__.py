"""Event handlers, HTTP endpoints and schedules of the app's features, combined in one place."""

from app.registry import EventRouter
from handlers import date_watch, settings_page, sms, tracking

router = EventRouter()  # no feature handles portal events yet; include their routers here

ROUTES = [*tracking.ROUTES, *sms.ROUTES, *settings_page.ROUTES]
SCHEDULES = [*date_watch.SCHEDULES, *sms.SCHEDULES]
SMS_PROVIDER = sms.SMS_PROVIDER
