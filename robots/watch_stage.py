"""A deal that stays too long in a stage: remind, create a task, fire a trigger or move it.

The print shop: three working days in "Awaiting payment" and the manager is told to call the
client and ask when the payment comes. Placed on the stage, the robot starts the count for the
deal that entered it (in the portal calendar: working days and hours, holidays skipped;
Bitrix24's own delays count calendar days); the app acts when it comes due if the deal is
still there, and again every *Repeat* until it moves. A deal that comes back starts a new
count. No request: the count lives in the app (handlers/stage_watch.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.context import RobotContext
from app.errors import RobotFailed
from app.registry import Property, Robot
from handlers import stage_watch


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    action = p["action"]
    target = {
        stage_watch.MOVE: p["stage_id"],
        stage_watch.FIRE: p["trigger_code"],
    }.get(action, str(p["user"] or ""))
    if action == stage_watch.MOVE and not target:
        raise RobotFailed("a stage to move the deal to is required")
    stage_id = ctx.portal.call("crm.deal.get", {"id": ctx.deal_id}).get("STAGE_ID", "")
    try:
        due = stage_watch.start(
            ctx, ctx.deal_id, stage_id, after=p["after"], action=action, target=target,
            message=p["message"] or "", repeat=p["repeat"] or "",
        )  # fmt: skip
    except ValueError as exc:
        raise RobotFailed(str(exc)) from None
    due_at = datetime.fromtimestamp(due, UTC)
    ctx.log.info("deal %s watched in %s until %s", ctx.deal_id, stage_id, due_at.isoformat())
    return {"due_at": ctx.calendar.format_datetime(due_at)}


ROBOT = Robot(
    code="watch_stage",
    name={
        "en": "Remind when the deal stays too long in the stage",
        "ru": "Напомнить, если сделка задержалась на стадии",
        "pl": "Przypomnij, gdy deal zbyt długo jest na etapie",
    },
    description={
        "en": "After N working days (or hours) in this stage: notify, create a task, fire the"
        " trigger or move the deal; cancelled when the deal leaves the stage.",
        "ru": "Через N рабочих дней (или часов) на этой стадии: уведомить, поставить задачу,"
        " запустить триггер или перевести сделку; отменяется, когда сделка уходит со стадии.",
        "pl": "Po N dniach (lub godzinach) roboczych na tym etapie: powiadom, utwórz zadanie,"
        " uruchom wyzwalacz lub przenieś deal; anulowane, gdy deal opuści etap.",
    },
    run=run,
    properties={
        "after": Property(
            "string",
            {
                "en": "After (3 working days, 4 working hours)",
                "ru": "Через (3 working days, 4 working hours)",
                "pl": "Po (3 working days, 4 working hours)",
            },
            required=True,
        ),  # fmt: skip
        "action": Property(
            "select",
            {"en": "Then", "ru": "Затем", "pl": "Następnie"},
            options={
                stage_watch.NOTIFY: {"en": "Notify", "ru": "Уведомить", "pl": "Powiadom"},
                stage_watch.TASK: {
                    "en": "Create a task",
                    "ru": "Поставить задачу",
                    "pl": "Utwórz zadanie",
                },
                stage_watch.FIRE: {
                    "en": "Fire the trigger",
                    "ru": "Запустить триггер",
                    "pl": "Uruchom wyzwalacz",
                },
                stage_watch.MOVE: {
                    "en": "Move to the stage",
                    "ru": "Перевести на стадию",
                    "pl": "Przenieś na etap",
                },
            },
            default=stage_watch.NOTIFY,
        ),  # fmt: skip
        "user": Property(
            "user",
            {
                "en": "Whom (the responsible when empty)",
                "ru": "Кому (ответственному, если пусто)",
                "pl": "Komu (odpowiedzialnemu, gdy puste)",
            },
        ),  # fmt: skip
        "message": Property(
            "text",
            {
                "en": "Text ({title}, {after})",
                "ru": "Текст ({title}, {after})",
                "pl": "Tekst ({title}, {after})",
            },
            default="",
        ),  # fmt: skip
        "stage_id": Property(
            "string", {"en": "Stage (to move to)", "ru": "Стадия", "pl": "Etap"}, default=""
        ),
        "trigger_code": Property(
            "select",
            {"en": "Trigger", "ru": "Триггер", "pl": "Wyzwalacz"},
            options={stage_watch.STAGE_OVERDUE.code: stage_watch.STAGE_OVERDUE.name},
            default=stage_watch.STAGE_OVERDUE.code,
        ),
        "repeat": Property(
            "string",
            {
                "en": "Repeat every (empty: once)",
                "ru": "Повторять каждые (пусто — один раз)",
                "pl": "Powtarzaj co (puste: raz)",
            },
            default="",
        ),  # fmt: skip
    },
    returns={
        "due_at": Property("datetime", {"en": "Due at", "ru": "Срок", "pl": "Termin"}),
    },
)
