"""Send an SMS to the deal's contact through the portal's gateway, with deal and contact fields.

The solar installer texts the client "your project is in progress" when a deal enters the
first stage. The message is a template: ``{{DEAL.TITLE}}``, ``{{CONTACT.NAME}}``,
``{{DEAL.UF_CRM_PROJECT_NO}}``: an entity (``DEAL`` or ``CONTACT``) and a field name as
crm.deal.get / crm.contact.get show it; a missing field is empty, a list field is joined with
", " (``{{CONTACT.PHONE}}`` gives the numbers). The number is the primary contact's mobile
(else first) phone unless the ``phone`` property names one. One batch reads the deal and its
primary contact; the message goes through the same path as the portal's own SMS (stored
once, claimed before sending, never sent twice). Returns the message id and its status; a
gateway outage leaves the message queued for the retrying send job.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from app.context import RobotContext
from app.errors import RobotFailed
from app.registry import Property, Robot
from handlers import sms

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z]+)\.([A-Za-z0-9_]+)\s*\}\}")
ENTITIES = ("DEAL", "CONTACT")


def render(template: str, records: dict[str, dict[str, Any]]) -> str:
    """The template with every ``{{ENTITY.FIELD}}`` replaced; RobotFailed for an unknown entity."""

    def value(match: re.Match[str]) -> str:
        entity, name = match.group(1).upper(), match.group(2).upper()
        if entity not in ENTITIES:
            raise RobotFailed(f"{{{{{match.group(1)}.{match.group(2)}}}}}: use DEAL or CONTACT")
        return _text(records.get(entity, {}).get(name))

    return PLACEHOLDER.sub(value, template)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(t for t in (_text(v) for v in value) if t)
    if isinstance(value, dict):  # a multifield item (PHONE, EMAIL)
        return _text(value.get("VALUE"))
    return str(value)


def contact_phone(contact: dict[str, Any]) -> str:
    """The contact's mobile number, else its first one."""
    phones = [p for p in contact.get("PHONE") or [] if isinstance(p, dict) and p.get("VALUE")]
    mobile = [p for p in phones if str(p.get("VALUE_TYPE", "")).upper() == "MOBILE"]
    chosen = (mobile or phones or [{}])[0]
    return str(chosen.get("VALUE") or "")


def message_id_for(ctx: RobotContext, phone: str, text: str) -> str:
    """A stable id: a re-run of the same robot call finds its message instead of a new one."""
    key = f"{ctx.member_id}:{ctx.workflow_id}:{ctx.document.id}:{phone}:{text}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def run(ctx: RobotContext) -> dict[str, Any]:
    deal_id = ctx.deal_id
    got = ctx.portal.batch(
        {
            "deal": ("crm.deal.get", {"id": deal_id}),
            "contact": ("crm.contact.get", {"id": "$result[deal][CONTACT_ID]"}),
        }
    )
    if "deal" in got.errors:
        raise RobotFailed(f"deal {deal_id} cannot be read: {got.errors['deal'].description}")
    deal = got.results["deal"] or {}
    contact = {} if "contact" in got.errors else (got.results.get("contact") or {})
    phone = ctx.properties["phone"] or contact_phone(contact)
    if not phone:
        raise RobotFailed(
            "the deal has no contact with a phone number"
            if contact
            else "the deal has no contact; set the robot's phone or link a contact"
        )
    text = render(ctx.properties["message"], {"DEAL": deal, "CONTACT": contact}).strip()
    if not text:
        raise RobotFailed("the message is empty")

    outcome = sms.send(ctx, phone, text, message_id_for(ctx, phone, text))
    return {
        "message_id": outcome.message_id,
        "status": outcome.status,
        "error": outcome.error or "",
    }


ROBOT = Robot(
    code="send_sms",
    name={
        "en": "Send SMS to the deal's contact",
        "ru": "Отправить SMS контакту сделки",
        "pl": "Wyślij SMS do kontaktu dealu",
    },
    description={
        "en": "Sends a text built from deal and contact fields ({{DEAL.TITLE}},"
        " {{CONTACT.NAME}}) through the SMS gateway set in the app's settings.",
        "ru": "Отправляет текст с полями сделки и контакта ({{DEAL.TITLE}},"
        " {{CONTACT.NAME}}) через SMS-шлюз из настроек приложения.",
        "pl": "Wysyła tekst z polami dealu i kontaktu ({{DEAL.TITLE}},"
        " {{CONTACT.NAME}}) przez bramkę SMS z ustawień aplikacji.",
    },
    run=run,
    properties={
        "message": Property(
            "text",
            {"en": "Message", "ru": "Сообщение", "pl": "Wiadomość"},
            {
                "en": "Placeholders: {{DEAL.FIELD}}, {{CONTACT.FIELD}}",
                "ru": "Поля: {{DEAL.FIELD}}, {{CONTACT.FIELD}}",
                "pl": "Pola: {{DEAL.FIELD}}, {{CONTACT.FIELD}}",
            },
            required=True,
        ),
        "phone": Property(
            "string",
            {
                "en": "Phone (the contact's when empty)",
                "ru": "Телефон (контакта, если пусто)",
                "pl": "Telefon (kontaktu, gdy pusty)",
            },
            default="",
        ),
    },
    returns={
        "message_id": Property("string", {"en": "Message ID", "ru": "ID сообщения", "pl": "ID"}),
        "status": Property(
            "string",
            {
                "en": "Status (queued, sent, failed)",
                "ru": "Статус (queued, sent, failed)",
                "pl": "Status (queued, sent, failed)",
            },
        ),
        "error": Property("string", {"en": "Error", "ru": "Ошибка", "pl": "Błąd"}),
    },
)
