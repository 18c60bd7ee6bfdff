"""Watch a date field: from now on, deals of the funnel whose date comes due are moved or
get a trigger fired (warranty expiry, subsidy settlement, rental billing, a measurement).

Placed on a stage, it records the watch for the funnel the deal is in (or the funnel given)
and returns the watch's id; placing it again or running it for the next deal records
nothing new. The hourly sweep (handlers/date_watch/) does the rest. Optionally it also sets
the portal's country and time zone, which decide what "working days" mean.
"""

from __future__ import annotations

from typing import Any

from app.calendar import PortalCalendar
from app.context import RobotContext
from app.errors import AppError, RobotFailed
from app.registry import Property, Robot
from handlers import date_watch


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    action = p["action"]
    target = {date_watch.MOVE: p["stage_id"], date_watch.NOTIFY: p["user_field"]}.get(
        action, p["trigger_code"]
    )
    _set_calendar(ctx, p["country"], p["timezone"])
    funnel = p["category_id"]
    if funnel is None and action == date_watch.MOVE and target:
        funnel = _funnel_of_stage(target)
    if funnel is None:
        deal = ctx.portal.call("crm.deal.get", {"id": ctx.deal_id})
        funnel = int(deal.get("CATEGORY_ID") or 0)
    try:
        watch = date_watch.add(
            ctx,
            category_id=funnel,
            field=p["field"],
            within_days=p["within_days"],
            working_days=p["working_days"],
            action=action,
            target=target,
            name=p["name"],
        )
    except AppError as exc:
        raise RobotFailed(str(exc)) from None
    ctx.log.info("date watch %s: %s", watch.id, watch.describe())
    return {"watch_id": watch.id}


def _funnel_of_stage(stage_id: str) -> int:
    """The funnel a stage id belongs to: ``C7:NEW`` is funnel 7, a bare ``NEW`` funnel 0."""
    head, colon, _ = stage_id.partition(":")
    if colon and head[:1] == "C" and head[1:].isdigit():
        return int(head[1:])
    return 0


def _set_calendar(ctx: RobotContext, country: str, timezone: str) -> None:
    """Store the portal's country and time zone when the admin gave them."""
    if not country and not timezone:
        return
    conf = dict(ctx.settings.get("calendar", {}) or {})
    if country:
        conf["country"] = country.strip().upper()
    if timezone:
        conf["timezone"] = timezone.strip()
    try:
        PortalCalendar(timezone=conf.get("timezone") or "UTC", country=conf.get("country"))
    except ValueError as exc:
        raise RobotFailed(str(exc)) from None
    ctx.settings.set("calendar", conf)


ROBOT = Robot(
    code="watch_date",
    name={
        "en": "Watch a date field",
        "ru": "Следить за датой",
        "pl": "Obserwuj pole daty",
    },
    description={
        "en": "Every hour, deals of the funnel whose date is within the given days are moved"
        " to a stage or get a trigger fired.",
        "ru": "Каждый час сделки воронки, у которых дата наступает через заданное число дней,"
        " переводятся на стадию или запускают триггер.",
        "pl": "Co godzinę deale lejka, których data przypada w podanej liczbie dni, są"
        " przenoszone na etap albo uruchamiają wyzwalacz.",
    },
    run=run,
    properties={
        "field": Property(
            "string",
            {
                "en": "Date field (UF_CRM_...)",
                "ru": "Поле даты (UF_CRM_...)",
                "pl": "Pole daty (UF_CRM_...)",
            },
            required=True,
        ),
        "within_days": Property(
            "int",
            {
                "en": "Days before the date (0: on the day; negative: days after)",
                "ru": "За сколько дней до даты (0 — в день; отрицательное — после)",
                "pl": "Dni przed datą (0: w dniu; ujemne: dni po)",
            },
            default=0,
        ),
        "working_days": Property(
            "bool",
            {"en": "Count working days", "ru": "Рабочие дни", "pl": "Dni robocze"},
            default=False,
        ),
        "action": Property(
            "select",
            {"en": "Then", "ru": "Затем", "pl": "Następnie"},
            options={
                date_watch.MOVE: {
                    "en": "Move to the stage",
                    "ru": "Перевести на стадию",
                    "pl": "Przenieś na etap",
                },
                date_watch.FIRE: {
                    "en": "Fire the trigger",
                    "ru": "Запустить триггер",
                    "pl": "Uruchom wyzwalacz",
                },
                date_watch.NOTIFY: {
                    "en": "Remind the user in a deal field (at 9:00)",
                    "ru": "Напомнить пользователю из поля сделки (в 9:00)",
                    "pl": "Przypomnij użytkownikowi z pola dealu (o 9:00)",
                },
            },
            default=date_watch.MOVE,
        ),
        "stage_id": Property(
            "string",
            {"en": "Stage (to move to)", "ru": "Стадия", "pl": "Etap"},
            default="",
        ),
        "trigger_code": Property(
            "select",
            {"en": "Trigger", "ru": "Триггер", "pl": "Wyzwalacz"},
            options={t.code: t.name for t in date_watch.TRIGGERS},
            default=date_watch.WARRANTY_EXPIRING.code,
        ),
        "user_field": Property(
            "string",
            {
                "en": "User field to remind (UF_CRM_INSTALLER, ASSIGNED_BY_ID)",
                "ru": "Поле с пользователем (UF_CRM_INSTALLER, ASSIGNED_BY_ID)",
                "pl": "Pole z użytkownikiem (UF_CRM_INSTALLER, ASSIGNED_BY_ID)",
            },
            default="",
        ),
        "category_id": Property(
            "int",
            {
                "en": "Funnel ID (the deal's funnel when empty)",
                "ru": "ID воронки (воронка сделки, если пусто)",
                "pl": "ID lejka (lejek dealu, gdy pusty)",
            },
        ),
        "name": Property(
            "string", {"en": "Name of the watch", "ru": "Название", "pl": "Nazwa"}, default=""
        ),
        "country": Property(
            "string",
            {
                "en": "Portal country for public holidays (PL, RU, ...)",
                "ru": "Страна портала для праздников (RU, PL, ...)",
                "pl": "Kraj portalu dla świąt (PL, RU, ...)",
            },
            default="",
        ),
        "timezone": Property(
            "string",
            {
                "en": "Portal time zone (Europe/Warsaw, ...)",
                "ru": "Часовой пояс портала (Europe/Moscow, ...)",
                "pl": "Strefa czasowa portalu (Europe/Warsaw, ...)",
            },
            default="",
        ),
    },
    returns={
        "watch_id": Property(
            "int", {"en": "Watch ID", "ru": "ID наблюдения", "pl": "ID obserwacji"}
        ),
    },
)
