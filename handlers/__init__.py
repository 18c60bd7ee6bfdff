"""Every capability the app offers. Adding one: its folder (or module) here, and a line below."""

from handlers import (
    assignment,
    calendar,
    date_watch,
    lost_deals,
    sms,
    stage_watch,
    tasks,
    tracking,
)

CAPABILITIES = [
    calendar.CAPABILITY,
    date_watch.CAPABILITY,
    tracking.CAPABILITY,
    sms.CAPABILITY,
    tasks.CAPABILITY,
    stage_watch.CAPABILITY,
    assignment.CAPABILITY,
    lost_deals.CAPABILITY,
]
