"""Every robot the app offers. Adding one: its own module, and a line here."""

from robots import copy_deal, send_sms

ROBOTS = [
    copy_deal.ROBOT,
    send_sms.ROBOT,
]
TRIGGERS: list = []
