"""Tracking pixel and link for an email: know when the client reads it, move the deal then.

The water delivery company sends its commercial proposal with the portal's "Send email"
robot and moves the deal to "Contract, invoice" as soon as the client reads it. This robot,
placed before "Send email", returns a pixel URL and a link URL unique to the deal and the
message; the first time either is opened, the app fires the ``email_opened`` trigger on the
deal (once per deal and message). No portal call: the URLs are the return values.
"""

from __future__ import annotations

from typing import Any

from app.context import RobotContext
from app.errors import RobotFailed
from app.registry import Property, Robot
from handlers import tracking


def run(ctx: RobotContext) -> dict[str, Any]:
    try:
        message = tracking.clean_message(ctx.properties["message"])
        target = tracking.clean_target(ctx.properties["target_url"])
    except ValueError as exc:
        raise RobotFailed(str(exc)) from None
    issued = tracking.issue(ctx, ctx.deal_id, message, target)
    ctx.log.info("tracking URLs issued for deal %s, message %r", ctx.deal_id, message)
    return {
        "pixel_url": ctx.url(f"t/{issued.pixel_token}.gif"),
        "link_url": ctx.url(f"l/{issued.link_token}"),
    }


ROBOT = Robot(
    code="tracking_link",
    name={
        "en": "Tracking pixel and link for an email",
        "ru": "Пиксель и ссылка для отслеживания письма",
        "pl": "Piksel i link śledzący do e-maila",
    },
    description={
        "en": "Returns a pixel URL and a link URL for the email that follows; when the client"
        ' opens either, the trigger "Client opened the email" fires on the deal (once).',
        "ru": "Возвращает адрес пикселя и ссылки для следующего письма; когда клиент откроет"
        " одно из них, на сделке сработает триггер «Клиент открыл письмо» (один раз).",
        "pl": "Zwraca adres piksela i linku do następnego e-maila; gdy klient otworzy jedno z"
        " nich, na dealu uruchamia się wyzwalacz „Klient otworzył e-mail” (raz).",
    },
    run=run,
    properties={
        "message": Property(
            "string",
            {"en": "Message label", "ru": "Метка письма", "pl": "Etykieta wiadomości"},
            description={
                "en": 'Names the email, e.g. "proposal": the trigger fires once per deal and label',
                "ru": "Название письма, например «proposal»: триггер срабатывает один раз"
                " на сделку и метку",
                "pl": "Nazwa e-maila, np. „proposal”: wyzwalacz uruchamia się raz na deal"
                " i etykietę",
            },
            default=tracking.DEFAULT_MESSAGE,
        ),
        "target_url": Property(
            "string",
            {
                "en": "Where the tracked link leads (http/https)",
                "ru": "Куда ведёт ссылка (http/https)",
                "pl": "Dokąd prowadzi link (http/https)",
            },
            default="",
        ),
    },
    returns={
        "pixel_url": Property(
            "string", {"en": "Pixel URL", "ru": "Адрес пикселя", "pl": "Adres piksela"}
        ),
        "link_url": Property(
            "string",
            {"en": "Tracked link URL", "ru": "Адрес ссылки", "pl": "Adres linku śledzącego"},
        ),
    },
)
