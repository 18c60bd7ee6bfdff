"""Delete a lost deal after N working days unless it leaves the stage; tell the department head.

The drinking-water company: placed on the lost stage, the robot tells the head of the
responsible's department at once (the reason: the deal's lost-reason field when the admin
names one, otherwise the stage's name; and a link to the deal) and records the deal's entry
with the moment it is deleted, in the portal calendar. The deletion, the snapshot kept
before it and its restoring live in the ``lost_deals`` capability (handlers/lost_deals).
One batch reads the deal, its responsible, that person's department and the stage; one call
sends the notification.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from app.context import RobotContext
from app.errors import RobotFailed
from app.registry import Property, Robot
from handlers import lost_deals

MESSAGE = {
    "en": "Deal {link} is lost ({reason}); it will be deleted on {when} unless it is reopened.",
    "ru": "Сделка {link} проиграна ({reason}); она будет удалена {when}, если её не вернут"
    " в работу.",
    "pl": "Deal {link} jest przegrany ({reason}); zostanie usunięty {when}, chyba że zostanie"
    " wznowiony.",
}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    reason_field = (p["reason_field"] or "").strip()
    got = ctx.portal.batch(
        {
            "deal": ("crm.deal.get", {"id": ctx.deal_id}),
            "user": ("user.get", {"FILTER": {"ID": "$result[deal][ASSIGNED_BY_ID]"}}),
            "department": ("department.get", {"ID": "$result[user][0][UF_DEPARTMENT][0]"}),
            "stage": ("crm.status.list", {"filter": {"STATUS_ID": "$result[deal][STAGE_ID]"}}),
        }
    )
    deal = got["deal"] or {}
    stage_id = str(deal.get("STAGE_ID") or "")
    stage = next(
        (s for s in got.results.get("stage") or []
         if str(s.get("ENTITY_ID", "")).startswith("DEAL_STAGE")),
        {},
    )  # fmt: skip
    reason = str(deal.get(reason_field) or "").strip() if reason_field else ""
    reason = reason or str(stage.get("NAME") or stage_id)
    try:
        due = lost_deals.start(
            ctx, ctx.deal_id, stage_id, str(deal.get("MOVED_TIME") or ""), after=p["after"],
            reason=reason, keep_days=p["keep_days"], dry_run=bool(p["dry_run"]),
        )  # fmt: skip
    except ValueError as exc:
        raise RobotFailed(str(exc)) from None
    delete_at = datetime.fromtimestamp(due, UTC)
    when = ctx.calendar.format_datetime(delete_at)
    ctx.log.info(
        "deal %s lost in %s (%s): deleted at %s%s", ctx.deal_id, stage_id, reason, when,
        " (dry run)" if p["dry_run"] else "",
    )  # fmt: skip

    departments = got.results.get("department") or []
    head = _int(departments[0].get("UF_HEAD")) if departments else 0
    if head:
        title = str(deal.get("TITLE") or f"#{ctx.deal_id}")
        link = f"[url=/crm/deal/details/{ctx.deal_id}/]{title}[/url]"
        text = MESSAGE.get(ctx.language, MESSAGE["en"])
        shown = ctx.calendar.localize(delete_at).strftime("%Y-%m-%d %H:%M")
        ctx.portal.call(
            "im.notify.system.add",
            {"USER_ID": head, "MESSAGE": text.format(link=link, reason=reason, when=shown)},
        )
    else:
        ctx.log.warning("deal %s: the responsible's department has no head to tell", ctx.deal_id)
    return {"delete_at": when}


ROBOT = Robot(
    code="delete_lost",
    name={
        "en": "Delete the lost deal after a while",
        "ru": "Удалить проигранную сделку через время",
        "pl": "Usuń przegrany deal po czasie",
    },
    description={
        "en": "Tells the head of the responsible's department at once; after N working days"
        " deletes the deal if it is still lost, keeping a snapshot that can be restored.",
        "ru": "Сразу сообщает руководителю отдела ответственного; через N рабочих дней удаляет"
        " сделку, если она всё ещё проиграна, сохраняя снимок для восстановления.",
        "pl": "Od razu powiadamia kierownika działu odpowiedzialnego; po N dniach roboczych"
        " usuwa deal, jeśli nadal jest przegrany, zachowując kopię do przywrócenia.",
    },
    run=run,
    properties={
        "after": Property(
            "string",
            {
                "en": "Delete after (3 working days)",
                "ru": "Удалить через (3 working days)",
                "pl": "Usuń po (3 working days)",
            },
            default="3 working days",
        ),  # fmt: skip
        "reason_field": Property(
            "string",
            {
                "en": "Lost reason field (UF_CRM_…; empty: the stage's name)",
                "ru": "Поле причины проигрыша (UF_CRM_…; пусто — название стадии)",
                "pl": "Pole przyczyny przegranej (UF_CRM_…; puste: nazwa etapu)",
            },
            default="",
        ),  # fmt: skip
        "keep_days": Property(
            "int",
            {
                "en": "Keep snapshots for days",
                "ru": "Хранить снимки, дней",
                "pl": "Przechowuj kopie przez dni",
            },
            default=lost_deals.DEFAULT_KEEP_DAYS,
        ),  # fmt: skip
        "dry_run": Property(
            "bool",
            {
                "en": "Dry run (only log what would be deleted)",
                "ru": "Пробный запуск (только записать в журнал, что было бы удалено)",
                "pl": "Próba (tylko zapisz w dzienniku, co zostałoby usunięte)",
            },
            default=False,
        ),  # fmt: skip
    },
    returns={
        "delete_at": Property("datetime", {"en": "Delete at", "ru": "Удалить в", "pl": "Usunąć o"}),
    },
)
