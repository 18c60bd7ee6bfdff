"""Event handlers, SMS and tracking endpoints' work: every router combined here, in one place."""

from app.registry import EventRouter
from handlers import sms

router = EventRouter()  # event handlers of feature modules are included here

SCHEDULES = [*sms.SCHEDULES]

ROUTES = [*sms.ROUTES]

SMS_PROVIDER = sms.SMS_PROVIDER
