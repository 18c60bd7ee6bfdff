"""Every robot the app offers. Adding one: its own module, and a line here."""

from robots import copy_deal

ROBOTS = [
    copy_deal.ROBOT,
]
TRIGGERS: list = []
