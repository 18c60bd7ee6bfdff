"""A stage that cannot be entered half-filled: rules over the deal's fields, checked on entry.

The print shop's "Issue invoice" needs the service type, "designer needed" and "supplier wants
prepayment"; "Awaiting delivery" needs the pickup method and the delivery date, and the pickup
time when the pickup is "our driver"; the furniture maker's order cannot leave "Installation"
without three photos. Bitrix24's required fields cannot say "when" or count files. Placed on
the stage, the robot checks its rules, one per line::

    UF_CRM_SERVICE_TYPE
    UF_CRM_PICKUP_TIME if UF_CRM_PICKUP = our driver
    UF_CRM_PHOTOS >= 3 files
    OPPORTUNITY > 0

A line is a field that must be filled, or compared (``= != > >= < <=`` with a number, a date,
an enumeration's value or label, Y/N), or counted (``>= N files``, ``>= N values``), optionally
only ``if`` another field compares so. When a rule fails, the deal moves back to the stage it
came from (its stage history) unless told to stay, a timeline comment and a notification name
the missing fields by their labels in the portal's language, and the robot returns
``passed=N`` and the labels, so the designer can branch on it. Every code is checked against
``crm.deal.fields``; an unknown one fails the robot with its name. One batch reads the deal, its
fields and its history; the writes (the move back, the comment, the notifications) follow the
robot's answer in its request: two requests in all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from app.context import RobotContext
from app.errors import RobotFailed
from app.registry import Property, Robot, localized

OPS = (">=", "<=", "!=", "=", ">", "<")
_OP = "|".join(re.escape(op) for op in OPS)
_RULE = re.compile(
    rf"^(?P<field>[A-Za-z][A-Za-z0-9_]*)"
    rf"(?:\s*(?P<op>{_OP})\s*(?P<value>.+?))?"
    rf"(?:\s+if\s+(?P<when>[A-Za-z][A-Za-z0-9_]*)\s*(?P<when_op>{_OP})\s*(?P<when_value>.+))?$",
    re.IGNORECASE,
)
_COUNT = re.compile(r"^(?P<n>\d+)\s+(?:files?|values?)$", re.IGNORECASE)
YES = {"y", "yes", "1", "true", "да", "tak"}
NO = {"n", "no", "0", "false", "нет", "nie"}
BACK, STAY = "back", "stay"

TEXTS = {
    "comment": {
        "en": "The deal cannot stay in this stage: fill in {fields}.",
        "ru": "Сделка не может оставаться на этой стадии: заполните {fields}.",
        "pl": "Deal nie może pozostać na tym etapie: uzupełnij {fields}.",
    },
    "moved_back": {
        "en": " It was moved back to the stage it came from.",
        "ru": " Сделка возвращена на предыдущую стадию.",
        "pl": " Deal wrócił na poprzedni etap.",
    },
    "notify": {
        "en": 'Deal "{title}" needs {fields} before it can stay in its stage.',
        "ru": "Сделке «{title}» нужно заполнить {fields}, чтобы остаться на стадии.",
        "pl": "Deal „{title}” wymaga uzupełnienia {fields}, aby pozostać na etapie.",
    },
}


@dataclass(frozen=True)
class Rule:
    """One line: ``field`` must be filled, or ``field op value``, maybe ``if`` a condition."""

    text: str
    field: str
    op: str = ""
    value: str = ""
    when: str = ""
    when_op: str = ""
    when_value: str = ""


def parse_rules(text: str) -> list[Rule]:
    """The rules, one per line (blank lines and ``#`` comments skipped); RobotFailed names a
    line that is not a rule."""
    rules = []
    for line in (text or "").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _RULE.match(line)
        if match is None:
            raise RobotFailed(f"rule {line[:80]!r} is not 'FIELD', 'FIELD >= 3 files' or"
                              " 'FIELD if OTHER = value'")  # fmt: skip
        g = match.groupdict()
        rules.append(
            Rule(
                text=line,
                field=g["field"].upper(),
                op=g["op"] or "",
                value=(g["value"] or "").strip(),
                when=(g["when"] or "").upper(),
                when_op=g["when_op"] or "",
                when_value=(g["when_value"] or "").strip(),
            )
        )
    if not rules:
        raise RobotFailed("no rules: write one field code per line")
    return rules


def label(fields: dict[str, Any], code: str) -> str:
    """The field's name as the portal shows it (a user field's form label, else its title)."""
    info = fields.get(code) or {}
    for key in ("formLabel", "listLabel", "filterLabel", "title"):
        value = info.get(key)
        if isinstance(value, dict):  # labels per language
            value = next(iter(value.values()), "")
        if isinstance(value, str) and value.strip() and value != code:
            return value.strip()
    return code


def _values(raw: Any) -> list[Any]:
    """A field's value as a list of the values that are set."""
    items = raw if isinstance(raw, list) else [raw]
    return [v for v in items if v not in (None, "", False, [], {}) and _amount(v) != ""]


def _amount(value: Any) -> Any:
    """Money comes as ``"1500|PLN"``: its amount."""
    if isinstance(value, str) and "|" in value:
        return value.split("|", 1)[0]
    return value


def is_filled(info: dict[str, Any], raw: Any) -> bool:
    """Whether the field has a value (a boolean's "No" is an answer too)."""
    if info.get("type") == "boolean":
        return raw not in (None, "")
    return bool(_values(raw))


def _enum_labels(info: dict[str, Any], raw: Any) -> set[str]:
    items = {str(i.get("ID")): str(i.get("VALUE", "")) for i in info.get("items") or []}
    out: set[str] = set()
    for v in _values(raw):
        out.add(str(v).casefold())
        if str(v) in items:
            out.add(items[str(v)].casefold())
    return out


def _number(text: Any) -> Decimal | None:
    try:
        return Decimal(str(_amount(text)).replace(",", ".").replace(" ", ""))
    except (InvalidOperation, ValueError):
        return None


def _day(text: Any) -> date | None:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        return None


def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "=":
        return bool(have == want)
    if op == "!=":
        return bool(have != want)
    return {">": have > want, ">=": have >= want, "<": have < want, "<=": have <= want}[op]


def holds(info: dict[str, Any], raw: Any, op: str, value: str) -> bool:
    """``field op value`` for the field's type; a count with ``N files`` / ``N values``."""
    count = _COUNT.match(value)
    if count:
        return _compare(op, len(_values(raw)), int(count.group("n")))
    kind = info.get("type")
    if kind == "enumeration" or kind == "crm_status":
        matched = value.casefold() in _enum_labels(info, raw)
        if op in ("=", "!="):
            return matched == (op == "=")
    if kind == "boolean" or value.casefold() in YES | NO:
        have = str(raw).casefold() in YES if raw not in (None, "") else None
        want = value.casefold() in YES
        if op in ("=", "!="):
            return (have == want) == (op == "=")
    if kind in ("date", "datetime"):
        have_day, want_day = _day(raw), _day(value)
        if have_day is None or want_day is None:
            return False
        return _compare(op, have_day, want_day)
    have_n, want_n = _number(raw), _number(value)
    if have_n is not None and want_n is not None:
        return _compare(op, have_n, want_n)
    texts = {str(v).casefold() for v in _values(raw)}
    if op in ("=", "!="):
        return (value.casefold() in texts) == (op == "=")
    return False


def missing(rules: list[Rule], deal: dict[str, Any], fields: dict[str, Any]) -> list[str]:
    """The codes of the rules that fail (in rule order, each once)."""
    unknown = sorted({c for r in rules for c in (r.field, r.when) if c and c not in fields})
    if unknown:
        raise RobotFailed(f"unknown deal field(s) in the rules: {', '.join(unknown)}")
    failed: list[str] = []
    for rule in rules:
        if rule.when and not holds(fields[rule.when], deal.get(rule.when), rule.when_op,
                                   rule.when_value):  # fmt: skip
            continue
        info, raw = fields[rule.field], deal.get(rule.field)
        ok = holds(info, raw, rule.op, rule.value) if rule.op else is_filled(info, raw)
        if not ok and rule.field not in failed:
            failed.append(rule.field)
    return failed


def previous_stage(history: list[dict[str, Any]], current: str) -> str:
    """The stage the deal came from: the latest history entry of another stage."""
    for item in history:  # newest first
        if str(item.get("STAGE_ID")) != current:
            return str(item.get("STAGE_ID"))
    return ""


def _text(key: str, lang: str) -> str:
    texts = localized(TEXTS[key])
    return texts.get(lang) or texts["en"]


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    rules = parse_rules(p["rules"])
    reads: dict[str, tuple[str, dict[str, Any]]] = {
        "deal": ("crm.deal.get", {"id": ctx.deal_id}),
        "fields": ("crm.deal.fields", {}),
    }
    if p["on_fail"] == BACK:
        reads["history"] = (
            "crm.stagehistory.list",
            {"entityTypeId": 2, "order": {"ID": "DESC"}, "filter": {"OWNER_ID": ctx.deal_id},
             "select": ["ID", "STAGE_ID"]},
        )  # fmt: skip
    got = ctx.portal.batch(reads)
    for name in ("deal", "fields"):
        if name in got.errors:
            raise RobotFailed(f"deal {ctx.deal_id}: {name} cannot be read: "
                              f"{got.errors[name].description}")  # fmt: skip
    deal, fields = got.results["deal"] or {}, got.results["fields"] or {}
    failed = missing(rules, deal, fields)
    if not failed:
        return {"passed": True, "missing": ""}

    labels = [label(fields, code) for code in failed]
    listed = ", ".join(labels)
    lang = ctx.language
    text = _text("comment", lang).format(fields=listed)
    # The writes follow the answer, in its request: a move back may end this stage's automation.
    history = (got.results.get("history") or {}).get("items") or []
    back = previous_stage(history, str(deal.get("STAGE_ID"))) if p["on_fail"] == BACK else ""
    if back:
        ctx.then("back", "crm.deal.update", {"id": ctx.deal_id, "fields": {"STAGE_ID": back}})
        text += _text("moved_back", lang)
    ctx.then(
        "comment",
        "crm.timeline.comment.add",
        {"fields": {"ENTITY_ID": ctx.deal_id, "ENTITY_TYPE": "deal", "COMMENT": text}},
    )
    notice = _text("notify", lang).format(title=deal.get("TITLE", ""), fields=listed)
    to = ([int(deal["ASSIGNED_BY_ID"])] if p["notify_responsible"] and deal.get("ASSIGNED_BY_ID")
          else []) + ([p["notify_user"]] if p["notify_user"] else [])  # fmt: skip
    for user_id in dict.fromkeys(to):
        ctx.then(
            f"notify_{user_id}", "im.notify.system.add", {"USER_ID": user_id, "MESSAGE": notice}
        )
    ctx.log.info("deal %s misses %s%s", ctx.deal_id, listed, f"; back to {back}" if back else "")
    return {"passed": False, "missing": listed}


ROBOT = Robot(
    code="check_fields",
    name={
        "en": "Check the stage's required fields",
        "ru": "Проверить обязательные поля стадии",
        "pl": "Sprawdź wymagane pola etapu",
    },
    description={
        "en": "Rules over the deal's fields (one per line: a field, 'FIELD >= 3 files',"
        " 'FIELD if OTHER = value'); when one fails the deal goes back and the missing fields"
        " are named.",
        "ru": "Правила по полям сделки (по одному в строке: поле, 'FIELD >= 3 files',"
        " 'FIELD if OTHER = value'); если правило не выполнено, сделка возвращается, а"
        " недостающие поля названы.",
        "pl": "Reguły dla pól dealu (jedna w wierszu: pole, 'FIELD >= 3 files',"
        " 'FIELD if OTHER = value'); gdy reguła nie jest spełniona, deal wraca, a brakujące"
        " pola są wymienione.",
    },
    run=run,
    properties={
        "rules": Property(
            "text",
            {
                "en": "Rules, one per line",
                "ru": "Правила, по одному в строке",
                "pl": "Reguły, jedna w wierszu",
            },
            {
                "en": "UF_CRM_SERVICE_TYPE / UF_CRM_PICKUP_TIME if UF_CRM_PICKUP = driver /"
                " UF_CRM_PHOTOS >= 3 files",
                "ru": "UF_CRM_SERVICE_TYPE / UF_CRM_PICKUP_TIME if UF_CRM_PICKUP = driver /"
                " UF_CRM_PHOTOS >= 3 files",
                "pl": "UF_CRM_SERVICE_TYPE / UF_CRM_PICKUP_TIME if UF_CRM_PICKUP = driver /"
                " UF_CRM_PHOTOS >= 3 files",
            },
            required=True,
        ),  # fmt: skip
        "on_fail": Property(
            "select",
            {
                "en": "When a rule fails",
                "ru": "Если правило не выполнено",
                "pl": "Gdy reguła nie jest spełniona",
            },
            options={
                BACK: {
                    "en": "Move the deal back",
                    "ru": "Вернуть сделку на прежнюю стадию",
                    "pl": "Cofnij deal na poprzedni etap",
                },
                STAY: {
                    "en": "Leave it in the stage",
                    "ru": "Оставить на стадии",
                    "pl": "Zostaw na etapie",
                },
            },
            default=BACK,
        ),  # fmt: skip
        "notify_responsible": Property(
            "bool",
            {
                "en": "Notify the responsible",
                "ru": "Уведомить ответственного",
                "pl": "Powiadom odpowiedzialnego",
            },
            default=True,
        ),  # fmt: skip
        "notify_user": Property(
            "user", {"en": "Also notify", "ru": "Также уведомить", "pl": "Powiadom też"}
        ),
    },
    returns={
        "passed": Property("bool", {"en": "Passed", "ru": "Проверка пройдена", "pl": "Zaliczone"}),
        "missing": Property(
            "string", {"en": "Missing fields", "ru": "Незаполненные поля", "pl": "Brakujące pola"}
        ),
    },
)
