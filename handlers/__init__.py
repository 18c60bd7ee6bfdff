"""Event handlers, SMS and tracking endpoints' work: every router combined here, in one place."""

from app.registry import EventRouter
from handlers import sms, tracking

router = EventRouter()  # event handlers of feature modules are included here

from handlers import date_watch  # noqa: E402

SCHEDULES = [*date_watch.SCHEDULES, *sms.SCHEDULES]

ROUTES = [*tracking.ROUTES, *sms.ROUTES]

SMS_PROVIDER = sms.SMS_PROVIDER
