"""What a new portal starts with: users and departments, the default deal funnel (0) with the
portal's standard stages, the smart invoice funnel, deal types and sources.

Runs on the ``portal.created`` signal; also stores the world's clock on the portal so the CRM
functions that only get a portal use the same (test-movable) time.
"""

from __future__ import annotations

from typing import Any

from fakeportal import signals
from fakeportal.api import flag
from fakeportal.state import Portal, World

from . import categories, common

DEPARTMENTS: list[dict[str, Any]] = [
    {"ID": 1, "NAME": "Company", "SORT": 500, "PARENT": None, "UF_HEAD": 1},
    {"ID": 2, "NAME": "Sales", "SORT": 500, "PARENT": 1, "UF_HEAD": 2},
    {"ID": 3, "NAME": "Service", "SORT": 500, "PARENT": 1, "UF_HEAD": 4},
]

USERS: list[dict[str, Any]] = [
    {
        "ID": 1,
        "NAME": "Ivan",
        "LAST_NAME": "Petrov",
        "EMAIL": "ivan.petrov@example.com",
        "WORK_POSITION": "Director",
        "UF_DEPARTMENT": [1],
        "IS_ADMIN": True,
        "PERSONAL_MOBILE": "+79001000001",
    },
    {
        "ID": 2,
        "NAME": "Maria",
        "LAST_NAME": "Sokolova",
        "EMAIL": "maria.sokolova@example.com",
        "WORK_POSITION": "Head of sales",
        "UF_DEPARTMENT": [2],
        "PERSONAL_MOBILE": "+79001000002",
    },
    {
        "ID": 3,
        "NAME": "Alexey",
        "LAST_NAME": "Smirnov",
        "EMAIL": "alexey.smirnov@example.com",
        "WORK_POSITION": "Sales manager",
        "UF_DEPARTMENT": [2],
        "PERSONAL_MOBILE": "+79001000003",
    },
    {
        "ID": 4,
        "NAME": "Olga",
        "LAST_NAME": "Ivanova",
        "EMAIL": "olga.ivanova@example.com",
        "WORK_POSITION": "Service engineer",
        "UF_DEPARTMENT": [3],
        "PERSONAL_MOBILE": "+79001000004",
    },
    {
        "ID": 5,
        "NAME": "Dmitry",
        "LAST_NAME": "Kuznetsov",
        "EMAIL": "dmitry.kuznetsov@example.com",
        "WORK_POSITION": "Sales manager",
        "UF_DEPARTMENT": [2],
        "PERSONAL_MOBILE": "+79001000005",
    },
]

DEAL_TYPES = [
    ("SALE", "Sales"),
    ("COMPLEX", "Integrated sale"),
    ("GOODS", "Merchandise sale"),
    ("SERVICES", "Service sale"),
    ("SERVICE", "After-sales service"),
]
SOURCES = [
    ("CALL", "Call"),
    ("EMAIL", "E-Mail"),
    ("WEB", "Website"),
    ("ADVERTISING", "Advertising"),
    ("PARTNER", "Existing client"),
    ("RECOMMENDATION", "By recommendation"),
    ("TRADE_SHOW", "Show/Exhibition"),
    ("WEBFORM", "CRM form"),
    ("CALLBACK", "Callback"),
    ("OTHER", "Other"),
]
CONTACT_TYPES = [("CLIENT", "Clients"), ("SUPPLIER", "Suppliers"), ("PARTNER", "Partners")]
COMPANY_TYPES = [("CUSTOMER", "Client"), ("SUPPLIER", "Supplier"), ("PARTNER", "Partner")]


def new_user(portal: Portal, data: dict[str, Any]) -> int:
    """Store a user (``ID`` given or next free); fills the fields user.get shows.

    ``ACTIVE`` and ``IS_ADMIN`` are Y/N flags (``"N"``, ``"0"``, False: no) stored as bools.
    """
    table = portal.table("user")
    user_id = int(data.get("ID") or (max(table, default=0) + 1))
    registered = common.now(portal)
    table[user_id] = {
        "ID": user_id,
        "ACTIVE": flag(data.get("ACTIVE"), True),
        "NAME": data.get("NAME", ""),
        "LAST_NAME": data.get("LAST_NAME", ""),
        "SECOND_NAME": data.get("SECOND_NAME", ""),
        "EMAIL": data.get("EMAIL", ""),
        "LAST_LOGIN": registered,
        "DATE_REGISTER": registered,
        "TIME_ZONE": data.get("TIME_ZONE", ""),
        "IS_ONLINE": "N",
        "PERSONAL_GENDER": data.get("PERSONAL_GENDER", ""),
        "PERSONAL_MOBILE": data.get("PERSONAL_MOBILE", ""),
        "PERSONAL_CITY": data.get("PERSONAL_CITY", ""),
        "WORK_PHONE": data.get("WORK_PHONE", ""),
        "WORK_POSITION": data.get("WORK_POSITION", ""),
        "UF_DEPARTMENT": list(data.get("UF_DEPARTMENT") or [1]),
        "USER_TYPE": data.get("USER_TYPE", "employee"),
        "IS_ADMIN": flag(data.get("IS_ADMIN")),
    }
    return user_id


def seed_portal(world: World, portal: Portal) -> None:
    """Fill a new portal with its standard CRM state."""
    portal.extra[common.CLOCK_KEY] = world.now
    for dept in DEPARTMENTS:
        portal.table("department")[dept["ID"]] = dict(dept)
    for user in USERS:
        new_user(portal, user)
    categories.create_category(
        portal,
        "General",
        None,
        entity_type_id=categories.DEAL,
        sort=300,
        is_default=True,
        category_id=0,
    )
    categories.create_category(
        portal,
        "Invoices",
        None,
        entity_type_id=categories.INVOICE,
        sort=500,
        is_default=True,
    )
    for entity_id, rows in (
        ("DEAL_TYPE", DEAL_TYPES),
        ("SOURCE", SOURCES),
        ("CONTACT_TYPE", CONTACT_TYPES),
        ("COMPANY_TYPE", COMPANY_TYPES),
    ):
        for index, (status_id, name) in enumerate(rows):
            categories.add_status(portal, entity_id, status_id, name, (index + 1) * 10, system=True)


def connect() -> None:
    signals.connect("portal.created", seed_portal)
