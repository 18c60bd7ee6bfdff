"""Create a task for the deal; its completion moves the deal on (and answers the workflow).

The print shop's accountant gets "prepare the invoice" on "Issue invoice"; when the task is
completed the deal moves to "Awaiting payment". With *Wait for completion* the workflow waits
until then and gets the task's outcome (completed, deferred, deleted) and who closed it. The
deadline is a date or "N working days/hours from now" in the portal's calendar (working
hours 9:00-18:00). One request creates the task, linked to the deal (``UF_CRM_TASK``).
"""

from __future__ import annotations

from typing import Any

from app.context import RobotContext
from app.errors import RobotFailed
from app.registry import Property, Robot
from handlers import tasks


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    fields: dict[str, Any] = {
        "TITLE": p["title"].strip(),
        "DESCRIPTION": p["description"] or "",
        "RESPONSIBLE_ID": p["responsible"],
    }
    if not fields["TITLE"]:
        raise RobotFailed("the task needs a title")
    if p["accomplices"]:
        fields["ACCOMPLICES"] = p["accomplices"]
    if p["auditors"]:
        fields["AUDITORS"] = p["auditors"]
    calendar = ctx.calendar
    if p["deadline"] is not None:
        fields["DEADLINE"] = calendar.format_datetime(calendar.localize(p["deadline"]))
    elif p["deadline_in"]:
        try:
            deadline = calendar.add_duration(ctx.clock.now(), p["deadline_in"])
        except ValueError as exc:
            raise RobotFailed(f"deadline {exc}") from None
        fields["DEADLINE"] = calendar.format_datetime(deadline)
    done_stage = (p["done_stage"] or "").strip()
    task_id = tasks.create(ctx, fields, wait=p["wait"], done_stage=done_stage)
    return {"task_id": task_id, "outcome": "created", "closed_by": "", "closed_date": ""}


ROBOT = Robot(
    code="create_task",
    name={
        "en": "Create a task that moves the deal on",
        "ru": "Создать задачу, которая двигает сделку",
        "pl": "Utwórz zadanie, które przesuwa deal",
    },
    description={
        "en": "Creates a task linked to the deal; when it is completed the deal moves to the"
        " chosen stage. Can make the workflow wait for the task.",
        "ru": "Создаёт задачу, привязанную к сделке; когда её завершат, сделка переходит на"
        " выбранную стадию. Бизнес-процесс может ждать завершения задачи.",
        "pl": "Tworzy zadanie powiązane z dealem; po jego zakończeniu deal przechodzi na wybrany"
        " etap. Proces może czekać na zakończenie zadania.",
    },
    run=run,
    properties={
        "title": Property(
            "string",
            {"en": "Task title", "ru": "Название задачи", "pl": "Tytuł zadania"},
            required=True,
        ),
        "description": Property(
            "text", {"en": "Description", "ru": "Описание", "pl": "Opis"}, default=""
        ),
        "responsible": Property(
            "user",
            {"en": "Responsible", "ru": "Ответственный", "pl": "Odpowiedzialny"},
            required=True,
        ),
        "accomplices": Property(
            "user",
            {"en": "Participants", "ru": "Соисполнители", "pl": "Uczestnicy"},
            multiple=True,
        ),
        "auditors": Property(
            "user",
            {"en": "Observers", "ru": "Наблюдатели", "pl": "Obserwatorzy"},
            multiple=True,
        ),
        "deadline": Property("datetime", {"en": "Deadline", "ru": "Крайний срок", "pl": "Termin"}),
        "deadline_in": Property(
            "string",
            {
                "en": "Deadline from now (3 working days, 4 working hours)",
                "ru": "Срок от текущего момента (3 working days, 4 working hours)",
                "pl": "Termin od teraz (3 working days, 4 working hours)",
            },
            default="",
        ),
        "wait": Property(
            "bool",
            {"en": "Wait for completion", "ru": "Ждать завершения", "pl": "Czekaj na zakończenie"},
            default=False,
        ),
        "done_stage": Property(
            "string",
            {
                "en": "Stage when the task is completed (e.g. C1:PREPAYMENT_INVOICE)",
                "ru": "Стадия после завершения задачи (например, C1:PREPAYMENT_INVOICE)",
                "pl": "Etap po zakończeniu zadania (np. C1:PREPAYMENT_INVOICE)",
            },
            default="",
        ),
    },
    returns={
        "task_id": Property("int", {"en": "Task ID", "ru": "ID задачи", "pl": "ID zadania"}),
        "outcome": Property(
            "string",
            {
                "en": "Outcome (completed, deferred, deleted)",
                "ru": "Итог (completed, deferred, deleted)",
                "pl": "Wynik (completed, deferred, deleted)",
            },
        ),
        "closed_by": Property("user", {"en": "Closed by", "ru": "Кто закрыл", "pl": "Zamknął"}),
        "closed_date": Property(
            "datetime", {"en": "Closed at", "ru": "Когда закрыта", "pl": "Zamknięto"}
        ),
    },
)
