"""Find when the measurer is free, and book it: the first free slot of the people's calendars.

The furniture maker plans a measurement: the robot reads the measurers' busy times with one
``calendar.accessibility.get`` for all of them and the whole period, and finds the first gap
of the wanted length ("90 minutes", "2 hours") in the working hours of the portal calendar's
working days (weekends and public holidays skipped), from now or from a date of the deal.
Booking it creates the event in that measurer's calendar (the deal's title, the client's
address and the deal's link) and writes its start into a deal field; finding only lists the
first N slots in a timeline comment in the portal's language, so the date is agreed with the
buyer in one call. One batch reads (two requests when the earliest start is a deal field);
the writes follow the robot's answer in its request.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Any

from app.context import RobotContext
from app.errors import RobotFailed
from app.registry import Property, Robot, localized

_PART = re.compile(
    r"(\d+(?:[.,]\d+)?)\s*(minutes?|mins?|m|hours?|hrs?|h|мин\w*|м|час\w*|ч|minut\w*|godz\w*|g)?",
    re.IGNORECASE,
)
_CLOCK = re.compile(r"^\s*(\d{1,2})(?:[:.](\d{2}))?\s*$")
_FIELD = re.compile(r"^[A-Z][A-Z0-9_]*$")
_STEP = 15  # minutes: a slot starts on a quarter hour
MAX_DAYS, MAX_SLOTS = 90, 20

TEXTS = {
    "slots": {
        "en": "Free slots ({length}):",
        "ru": "Свободное время ({length}):",
        "pl": "Wolne terminy ({length}):",
    },
    "minutes": {"en": "{n} min", "ru": "{n} мин", "pl": "{n} min"},
}
WEEKDAYS = {
    "en": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"),
    "ru": ("пн", "вт", "ср", "чт", "пт", "сб", "вс"),
    "pl": ("pon.", "wt.", "śr.", "czw.", "pt.", "sob.", "niedz."),
}


def parse_length(text: str) -> timedelta:
    """ "90 minutes", "2 hours", "1.5 h", "1 h 30 min", "1:30", "90" (minutes)."""
    raw = (text or "").strip()
    if m := re.fullmatch(r"(\d{1,2}):(\d{2})", raw):
        length = timedelta(hours=int(m.group(1)), minutes=int(m.group(2)))
    else:
        parts = list(_PART.finditer(raw))
        rest = _PART.sub("", raw).strip(" ,")
        if not parts or rest:
            raise RobotFailed(f"duration {raw[:40]!r}: write it as '90 minutes' or '2 hours'")
        length = timedelta()
        for part in parts:
            amount = float(part.group(1).replace(",", "."))
            unit = (part.group(2) or "m").lower()
            hours = unit[0] in "hчg" and not unit.startswith(("min", "мин"))
            length += timedelta(hours=amount) if hours else timedelta(minutes=amount)
    if length <= timedelta(0):
        raise RobotFailed(f"duration {raw[:40]!r} must be longer than zero")
    return length


def parse_clock(code: str, text: str) -> time:
    m = _CLOCK.match(text or "")
    if m is None or int(m.group(1)) > 24 or int(m.group(2) or 0) > 59:
        raise RobotFailed(f"{code} {(text or '')[:20]!r}: write the time as 09:00")
    hour, minute = int(m.group(1)), int(m.group(2) or 0)
    return time(23, 59) if hour == 24 else time(hour, minute)


def busy_times(ctx: RobotContext, items: list[dict[str, Any]]) -> list[tuple[datetime, datetime]]:
    """A user's busy intervals from ``calendar.accessibility.get`` (the UTC timestamps; an
    all-day event blocks its whole days in the portal's zone)."""
    tz = ctx.calendar.tz
    out = []
    for item in items or []:
        if str(item.get("ACCESSIBILITY") or "busy") == "free":
            continue
        try:
            lo = datetime.fromtimestamp(int(item["DATE_FROM_TS_UTC"]), tz)
            hi = datetime.fromtimestamp(int(item["DATE_TO_TS_UTC"]), tz)
        except (KeyError, TypeError, ValueError):
            continue
        if item.get("DT_SKIP_TIME") == "Y":
            last = (hi - timedelta(seconds=1)).date() if hi > lo else lo.date()
            lo = datetime.combine(lo.date(), time(0), tzinfo=tz)
            hi = datetime.combine(max(last, lo.date()) + timedelta(days=1), time(0), tzinfo=tz)
        out.append((lo, hi))
    return out


def _ceil(moment: datetime) -> datetime:
    moment = moment.replace(second=0, microsecond=0) + (
        timedelta(minutes=1) if moment.second or moment.microsecond else timedelta()
    )
    extra = (-moment.minute) % _STEP
    return moment + timedelta(minutes=extra)


def find_slots(
    ctx: RobotContext,
    busy: dict[int, list[tuple[datetime, datetime]]],
    earliest: datetime,
    days: int,
    opens: time,
    closes: time,
    length: timedelta,
    count: int,
) -> list[tuple[datetime, datetime, int]]:
    """The first ``count`` slots (start, end, user) from ``earliest``: earliest first, the
    first user in the list when several are free then; back to back within a gap."""
    calendar = ctx.calendar
    start = _ceil(calendar.localize(earliest))
    found: dict[datetime, tuple[datetime, datetime, int]] = {}
    for offset in range(days):
        day = start.date() + timedelta(days=offset)
        for user_id, times in busy.items():
            for lo, hi in calendar.free_slots(times, day, opens, closes, length):
                at = _ceil(max(lo, start))
                while at + length <= hi:
                    found.setdefault(at, (at, at + length, user_id))
                    at += length
        if len(found) >= count:
            break
    return [found[k] for k in sorted(found)][:count]


def _when(lang: str, start: datetime, end: datetime) -> str:
    days = WEEKDAYS.get(lang) or WEEKDAYS["en"]
    day = start.strftime("%d.%m.%Y") if lang in ("ru", "pl") else start.strftime("%Y-%m-%d")
    return f"{days[start.weekday()]} {day} {start:%H:%M}–{end:%H:%M}"


def _text(key: str, lang: str) -> str:
    texts = localized(TEXTS[key])
    return texts.get(lang) or texts["en"]


def _name(users: dict[int, dict[str, Any]], user_id: int) -> str:
    row = users.get(user_id) or {}
    name = " ".join(str(row.get(k) or "").strip() for k in ("NAME", "LAST_NAME")).strip()
    return name or f"#{user_id}"


def _earliest(ctx: RobotContext, value: str, deal: dict[str, Any] | None) -> datetime:
    now = ctx.calendar.now(ctx.clock)
    if not value:
        return now
    raw = deal.get(value) if deal is not None else value
    if raw in (None, "", False):
        ctx.log.info("deal %s: %s is empty; looking from now", ctx.deal_id, value)
        return now
    try:
        parsed = ctx.calendar.parse(str(raw))
    except ValueError:
        raise RobotFailed(
            f"earliest start {str(raw)[:40]!r} is not a date or a date and time"
        ) from None
    if parsed is None:
        return now
    if not isinstance(parsed, datetime):
        parsed = datetime.combine(parsed, time(0), tzinfo=ctx.calendar.tz)
    return max(parsed, now)


def run(ctx: RobotContext) -> dict[str, Any]:
    p = ctx.properties
    calendar = ctx.calendar
    users = list(dict.fromkeys(p["users"]))
    if not users:
        raise RobotFailed("choose at least one person whose calendar to look in")
    length = parse_length(p["duration"])
    opens = parse_clock("working hours start", p["day_start"] or "09:00")
    closes = parse_clock("working hours end", p["day_end"] or "18:00")
    if closes <= opens:
        raise RobotFailed(f"working hours end {closes:%H:%M} must be after the start {opens:%H:%M}")
    if datetime.combine(date.min, closes) - datetime.combine(date.min, opens) < length:
        raise RobotFailed(f"a slot of {p['duration']} does not fit into the working hours")
    days = p["days"] if p["days"] is not None else 14
    if not 1 <= days <= MAX_DAYS:
        raise RobotFailed(f"days ahead must be 1 to {MAX_DAYS}, not {days}")
    count = 1 if p["book"] else (p["count"] if p["count"] is not None else 3)
    if not 1 <= count <= MAX_SLOTS:
        raise RobotFailed(f"number of slots must be 1 to {MAX_SLOTS}, not {count}")
    earliest_text = (p["earliest"] or "").strip()
    from_field = bool(_FIELD.match(earliest_text)) and not earliest_text.isdigit()
    target = (p["start_field"] or "").strip().upper()
    if target and not _FIELD.match(target):
        raise RobotFailed(f"deal field {target[:40]!r} is not a field code (UF_CRM_...)")

    reads: dict[str, tuple[str, dict[str, Any]]] = {
        "deal": ("crm.deal.get", {"id": ctx.deal_id}),
        "contact": ("crm.contact.get", {"id": "$result[deal][CONTACT_ID]"}),
        "users": ("user.get", {"FILTER": {"ID": users}}),
    }
    if from_field or target:
        reads["fields"] = ("crm.deal.fields", {})

    def period(start: datetime) -> dict[str, Any]:
        first = start.date()
        return {
            "users": users,
            "from": first.isoformat(),
            "to": (first + timedelta(days=days - 1)).isoformat(),
        }

    if not from_field:
        earliest = _earliest(ctx, earliest_text, None)
        reads["busy"] = ("calendar.accessibility.get", period(earliest))
    got = ctx.portal.batch(reads)
    for name in ("deal", "fields"):
        if name in got.errors:
            raise RobotFailed(f"deal {ctx.deal_id}: {name} cannot be read: "
                              f"{got.errors[name].description}")  # fmt: skip
    deal = got.results["deal"] or {}
    fields = got.results.get("fields") or {}
    for code, kinds in ((earliest_text if from_field else "", ("date", "datetime")),
                        (target, ("datetime",))):  # fmt: skip
        if code and code not in fields:
            raise RobotFailed(f"unknown deal field {code}")
        if code and fields[code].get("type") not in kinds:
            raise RobotFailed(f"deal field {code} is not a {' or '.join(kinds)} field")
    if from_field:
        earliest = _earliest(ctx, earliest_text, deal)
        accessibility = ctx.portal.call("calendar.accessibility.get", period(earliest))
    else:
        if "busy" in got.errors:
            raise RobotFailed(f"the calendars cannot be read: {got.errors['busy'].description}")
        accessibility = got.results["busy"]
    accessibility = accessibility or {}
    busy = {u: busy_times(ctx, accessibility.get(str(u)) or []) for u in users}
    slots = find_slots(ctx, busy, earliest, days, opens, closes, length, count)
    if not slots:
        raise RobotFailed(
            f"no one is free for {p['duration']} between {calendar.format_date(earliest)} and "
            f"{calendar.format_date(earliest + timedelta(days=days - 1))} "
            f"({opens:%H:%M}-{closes:%H:%M} on working days)"
        )
    people = {int(u["ID"]): u for u in got.results.get("users") or [] if str(u.get("ID")).isdigit()}
    lang = ctx.language
    start, end, user_id = slots[0]
    title = str(deal.get("TITLE") or f"Deal #{ctx.deal_id}")
    if p["book"]:
        contact = got.results.get("contact") or {}
        address = ", ".join(
            str(contact.get(k)).strip()
            for k in ("ADDRESS", "ADDRESS_CITY")
            if str(contact.get(k) or "").strip()
        )
        installation = ctx.store.installation(ctx.member_id)
        domain = installation.domain if installation else ""
        link = f"https://{domain}/crm/deal/details/{ctx.deal_id}/" if domain else ""
        link = link or f"/crm/deal/details/{ctx.deal_id}/"
        ctx.then(
            "event",
            "calendar.event.add",
            {
                "type": "user",
                "ownerId": user_id,
                "name": title,
                "description": "\n".join(x for x in (address, link) if x),
                "from": calendar.format_datetime(start),
                "to": calendar.format_datetime(end),
                "timezone_from": calendar.timezone,
                "timezone_to": calendar.timezone,
                "accessibility": "busy",
                "location": address,
                "crm_fields": [f"D_{ctx.deal_id}"],
            },
        )
        if target:
            ctx.then(
                "field",
                "crm.deal.update",
                {"id": ctx.deal_id, "fields": {target: calendar.format_datetime(start)}},
            )
        ctx.log.info("deal %s: booked user %s at %s", ctx.deal_id, user_id, start.isoformat())
    else:
        minutes = int(length.total_seconds() // 60)
        lines = [_text("slots", lang).format(length=_text("minutes", lang).format(n=minutes))]
        lines += [f"{_when(lang, a, b)} — {_name(people, u)}" for a, b, u in slots]
        ctx.then(
            "comment",
            "crm.timeline.comment.add",
            {"fields": {"ENTITY_ID": ctx.deal_id, "ENTITY_TYPE": "deal",
                        "COMMENT": "\n".join(lines)}},
        )  # fmt: skip
    return {
        "slot_start": calendar.format_datetime(start),
        "slot_end": calendar.format_datetime(end),
        "user": f"user_{user_id}",
    }


ROBOT = Robot(
    code="find_free_slot",
    name={
        "en": "Find a free slot in the calendar",
        "ru": "Найти свободное время в календаре",
        "pl": "Znajdź wolny termin w kalendarzu",
    },
    description={
        "en": "Finds the first time the chosen people are free for the given duration in"
        " working hours, and books it in their calendar or lists the first slots on the deal.",
        "ru": "Находит первое время, когда выбранные сотрудники свободны на заданный срок в"
        " рабочие часы, и бронирует его в календаре или перечисляет первые варианты в сделке.",
        "pl": "Znajduje pierwszy termin, w którym wybrane osoby są wolne przez podany czas w"
        " godzinach pracy, i rezerwuje go w kalendarzu lub wypisuje pierwsze terminy w dealu.",
    },
    run=run,
    properties={
        "users": Property(
            "user",
            {
                "en": "People (the first free one)",
                "ru": "Сотрудники (первый свободный)",
                "pl": "Osoby (pierwsza wolna)",
            },
            required=True,
            multiple=True,
        ),  # fmt: skip
        "duration": Property(
            "string",
            {
                "en": "Duration (90 minutes, 2 hours)",
                "ru": "Длительность (90 minutes, 2 hours)",
                "pl": "Czas trwania (90 minutes, 2 hours)",
            },
            required=True,
        ),  # fmt: skip
        "earliest": Property(
            "string",
            {
                "en": "Earliest start (empty = now, or a deal date field code)",
                "ru": "Не раньше (пусто = сейчас, или код поля даты сделки)",
                "pl": "Najwcześniej (puste = teraz, lub kod pola daty dealu)",
            },
            default="",
        ),  # fmt: skip
        "day_start": Property(
            "string",
            {"en": "Working hours start", "ru": "Начало рабочего дня", "pl": "Początek pracy"},
            default="09:00",
        ),
        "day_end": Property(
            "string",
            {"en": "Working hours end", "ru": "Конец рабочего дня", "pl": "Koniec pracy"},
            default="18:00",
        ),
        "days": Property(
            "int",
            {
                "en": "Days ahead to look",
                "ru": "На сколько дней вперёд искать",
                "pl": "Ile dni naprzód szukać",
            },
            default=14,
        ),  # fmt: skip
        "book": Property(
            "bool",
            {"en": "Book the slot", "ru": "Забронировать время", "pl": "Zarezerwuj termin"},
            default=True,
        ),
        "count": Property(
            "int",
            {
                "en": "Slots to list when not booking",
                "ru": "Сколько вариантов показать без брони",
                "pl": "Ile terminów wypisać bez rezerwacji",
            },
            default=3,
        ),  # fmt: skip
        "start_field": Property(
            "string",
            {
                "en": "Deal field for the booked start (UF_CRM_...)",
                "ru": "Поле сделки для начала брони (UF_CRM_...)",
                "pl": "Pole dealu na początek rezerwacji (UF_CRM_...)",
            },
            default="",
        ),  # fmt: skip
    },
    returns={
        "slot_start": Property("datetime", {"en": "Slot start", "ru": "Начало", "pl": "Początek"}),
        "slot_end": Property("datetime", {"en": "Slot end", "ru": "Окончание", "pl": "Koniec"}),
        "user": Property(
            "user", {"en": "Who is free", "ru": "Кто свободен", "pl": "Kto jest wolny"}
        ),
    },
)
