"""The portal's time: its zone, its working days and the free time of a working day.

Robots and the date-watch sweep read dates through a ``PortalCalendar`` so that "in 3 working
days" means what the portal admin means: the portal's time zone, the country's public holidays
(the ``holidays`` package, including its transferred working Saturdays) and the portal's own
days off or extra working days. Time itself comes from a ``Clock`` so tests and benchmarks can
freeze and move it.
"""

from __future__ import annotations

import calendar as _stdcal
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as _holidays

_DURATION = re.compile(
    r"^\s*(\d+(?:[.,]\d+)?)\s*(working\s+)?(day|days|hour|hours)\s*$", re.IGNORECASE
)

__all__ = [
    "Clock",
    "FixedClock",
    "PortalCalendar",
    "SystemClock",
]


@runtime_checkable
class Clock(Protocol):
    """A source of the current instant (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until told otherwise (tests, benchmarks, demos)."""

    def __init__(self, at: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._now = _require_aware(at or datetime(2026, 1, 1, tzinfo=UTC)).astimezone(UTC)

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, at: datetime) -> None:
        """Jump to ``at`` (must be timezone-aware)."""
        with self._lock:
            self._now = _require_aware(at).astimezone(UTC)

    def advance(self, delta: timedelta) -> datetime:
        """Move forward (or back, for a negative delta); returns the new instant."""
        with self._lock:
            self._now = self._now + delta
            return self._now

    def __repr__(self) -> str:
        return f"FixedClock({self._now.isoformat()})"


def _require_aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"a timezone-aware datetime is required, got naive {value.isoformat()}")
    return value


# Bitrix24 date strings as they come from REST results, robot properties and document fields.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DOTTED_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")
_DOTTED_DATETIME = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})[ T](\d{1,2}):(\d{2})(?::(\d{2}))?$")


@dataclass(frozen=True)
class PortalCalendar:
    """A portal's time zone, working week and holidays; all date arithmetic goes through it."""

    timezone: str = "UTC"
    country: str | None = None
    subdivision: str | None = None
    weekend: frozenset[int] = frozenset({5, 6})
    extra_holidays: frozenset[date] = frozenset()
    extra_workdays: frozenset[date] = frozenset()
    _tz: ZoneInfo = field(init=False, repr=False, compare=False)
    _public: Any = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            tz = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {self.timezone!r} (expected an IANA name)"
            ) from exc
        object.__setattr__(self, "_tz", tz)
        object.__setattr__(self, "weekend", frozenset(self.weekend))
        object.__setattr__(self, "extra_holidays", frozenset(self.extra_holidays))
        object.__setattr__(self, "extra_workdays", frozenset(self.extra_workdays))
        if any(not isinstance(d, int) or not 0 <= d <= 6 for d in self.weekend):
            raise ValueError(f"weekend days must be 0..6 (Monday=0), got {sorted(self.weekend)}")
        if len(self.weekend) == 7:
            raise ValueError("a week with no working day cannot be used for working-day arithmetic")
        public = None
        if self.country:
            country = self.country.strip().upper()
            try:
                public = _holidays.country_holidays(country, subdiv=self.subdivision)
            except NotImplementedError as exc:
                raise ValueError(
                    f"no public holidays known for country {self.country!r}"
                    + (f" subdivision {self.subdivision!r}" if self.subdivision else "")
                    + f": {exc}"
                ) from exc
        object.__setattr__(self, "_public", public)

    # --- time -----------------------------------------------------------------------------

    @property
    def tz(self) -> ZoneInfo:
        """The portal's time zone."""
        return self._tz

    def now(self, clock: Clock) -> datetime:
        """The current instant in the portal's zone (aware)."""
        return _require_aware(clock.now()).astimezone(self._tz)

    def today(self, clock: Clock) -> date:
        """The portal's calendar date right now (may differ from the UTC date)."""
        return self.now(clock).date()

    def localize(self, value: datetime) -> datetime:
        """An aware datetime in the portal's zone; a naive one is read as portal wall time."""
        if value.tzinfo is None:
            return value.replace(tzinfo=self._tz)
        return value.astimezone(self._tz)

    # --- working days -----------------------------------------------------------------------

    def holiday_name(self, d: date) -> str | None:
        """The public or portal holiday on ``d``, if any."""
        if d in self.extra_holidays:
            return "portal day off"
        if self._public is not None:
            return self._public.get(d)
        return None

    def is_working_day(self, d: date) -> bool:
        """True on a day people work at this portal."""
        d = _as_date(d)
        if d in self.extra_workdays:
            return True
        if d in self.extra_holidays:
            return False
        if self._public is not None:
            if d in self._public:  # also fills the year's transferred working days
                return False
            if d in self._public.weekend_workdays:
                return True
        return d.weekday() not in self.weekend

    def next_working_day(self, d: date) -> date:
        """``d`` itself if it is a working day, else the first working day after it."""
        return self.add_working_days(d, 0)

    def add_working_days(self, d: date, n: int) -> date:
        """The n-th working day after ``d`` (before, for negative n).

        ``d`` itself is never counted: Friday + 1 is Monday, Saturday + 1 is Monday too.
        ``n == 0`` gives ``d`` if it is a working day, else the next working day.
        """
        d = _as_date(d)
        if n == 0:
            while not self.is_working_day(d):
                d += timedelta(days=1)
            return d
        step = timedelta(days=1 if n > 0 else -1)
        left = abs(n)
        while left:
            d += step
            if self.is_working_day(d):
                left -= 1
        return d

    def working_days_between(self, a: date, b: date) -> int:
        """Working days in (a, b]; negative when b is before a.

        So ``add_working_days(a, working_days_between(a, b)) == b`` whenever b is a working day.
        """
        a, b = _as_date(a), _as_date(b)
        if a == b:
            return 0
        sign = 1
        if b < a:
            a, b, sign = b, a, -1
        count = sum(1 for d in _days(a + timedelta(days=1), b) if self.is_working_day(d))
        return sign * count

    def add_months(self, d: date, n: int) -> date:
        """Calendar months later (earlier for negative n), clamped to the month's last day."""
        month_index = d.year * 12 + (d.month - 1) + n
        year, month = divmod(month_index, 12)
        month += 1
        if not 1 <= year <= 9999:
            raise ValueError(f"{d.isoformat()} + {n} months is out of range")
        last = _stdcal.monthrange(year, month)[1]
        return d.replace(year=year, month=month, day=min(d.day, last))

    # --- Bitrix24 strings ---------------------------------------------------------------------

    def parse(self, value: str | None) -> datetime | date | None:
        """A Bitrix24 date or datetime string as a ``date`` or an aware ``datetime``.

        Accepts ``2026-01-31``, ``2026-01-31T14:29:00+02:00`` (converted to the portal zone),
        ``2026-01-31T14:29:00`` / ``2026-01-31 14:29:00`` (portal wall time), ``31.01.2026``
        and ``31.01.2026 14:29[:00]``. Empty strings and None give None; anything else raises
        ValueError.
        """
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"expected a date string, got {type(value).__name__}")
        text = value.strip()
        if not text:
            return None
        try:
            if _ISO_DATE.match(text):
                return date.fromisoformat(text)
            if m := _DOTTED_DATE.match(text):
                day, month, year = (int(g) for g in m.groups())
                return date(year, month, day)
            if m := _DOTTED_DATETIME.match(text):
                day, month, year, hour, minute = (int(g) for g in m.groups()[:5])
                second = int(m.group(6) or 0)
                return datetime(year, month, day, hour, minute, second, tzinfo=self._tz)
            iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
            parsed = datetime.fromisoformat(iso)
        except ValueError as exc:
            raise ValueError(f"not a Bitrix24 date: {value!r} ({exc})") from exc
        return self.localize(parsed)

    def format_date(self, d: date) -> str:
        """``YYYY-MM-DD`` as the REST API accepts; a datetime is first moved to portal time."""
        if isinstance(d, datetime):
            d = self.localize(d).date()
        return d.isoformat()

    def format_datetime(self, value: datetime) -> str:
        """ISO 8601 with the portal's offset (``2026-01-31T14:29:00+02:00``)."""
        return self.localize(value).replace(microsecond=0).isoformat()

    def add_working_hours(
        self,
        start: datetime,
        hours: float,
        day_start: time = time(9),
        day_end: time = time(18),
    ) -> datetime:
        """The moment ``hours`` working hours after ``start``: only the working hours
        [day_start, day_end) of working days count (holidays and weekends skipped)."""
        if hours < 0:
            raise ValueError("working hours must not be negative")
        if day_end <= day_start:
            raise ValueError(
                f"working hours end ({day_end}) must be after their start ({day_start})"
            )
        left = timedelta(hours=hours)
        at = self.localize(start)
        while True:
            day = at.date()
            opens = datetime.combine(day, day_start, tzinfo=self._tz)
            closes = datetime.combine(day, day_end, tzinfo=self._tz)
            if not self.is_working_day(day) or at >= closes:
                at = datetime.combine(self.add_working_days(day, 1), day_start, tzinfo=self._tz)
                continue
            at = max(at, opens)
            if at + left <= closes:
                return at + left
            left -= closes - at
            at = closes

    def add_duration(self, start: datetime, text: str) -> datetime:
        """``start`` plus "3 working days", "4 working hours", "2 days" or "5 hours" (what
        an admin writes into a robot's property); ValueError says how to write it."""
        match = _DURATION.match(text or "")
        if match is None:
            raise ValueError(
                f"{(text or '')[:40]!r}: write it as '3 working days', '4 working hours',"
                " '2 days' or '5 hours'"
            )
        amount = float(match.group(1).replace(",", "."))
        working, unit = bool(match.group(2)), match.group(3).lower()
        local = self.localize(start)
        if unit.startswith("hour"):
            return (
                self.add_working_hours(local, amount)
                if working
                else local + timedelta(hours=amount)
            )
        if working:
            day = self.add_working_days(local.date(), int(amount))
            return datetime.combine(day, local.time(), tzinfo=self._tz)
        return local + timedelta(days=int(amount))

    # --- time slots ----------------------------------------------------------------------------

    def free_slots(
        self,
        busy: Iterable[tuple[datetime, datetime]],
        day: date,
        start: time,
        end: time,
        length: timedelta,
    ) -> list[tuple[datetime, datetime]]:
        """Free intervals of at least ``length`` within ``day``'s working hours [start, end).

        Busy intervals may overlap, extend past the day or be naive (read as portal wall time).
        The result is in the portal's zone, sorted; a non-working day has no free time.
        """
        if length <= timedelta(0):
            raise ValueError("slot length must be positive")
        day = _as_date(day)
        if not self.is_working_day(day):
            return []
        window_start = datetime.combine(day, start, tzinfo=self._tz)
        window_end = datetime.combine(day, end, tzinfo=self._tz)
        if window_end <= window_start:
            raise ValueError(f"working hours end ({end}) must be after their start ({start})")
        clipped: list[tuple[datetime, datetime]] = []
        for b_start, b_end in busy:
            lo = max(self.localize(b_start), window_start)
            hi = min(self.localize(b_end), window_end)
            if hi > lo:
                clipped.append((lo, hi))
        clipped.sort()
        free: list[tuple[datetime, datetime]] = []
        cursor = window_start
        for lo, hi in clipped:
            if lo - cursor >= length:
                free.append((cursor, lo))
            cursor = max(cursor, hi)
        if window_end - cursor >= length:
            free.append((cursor, window_end))
        return [(a.astimezone(self._tz), b.astimezone(self._tz)) for a, b in free]


def _as_date(value: date) -> date:
    if isinstance(value, datetime):
        return value.date()
    if not isinstance(value, date):
        raise TypeError(f"expected a date, got {type(value).__name__}")
    return value


def _days(first: date, last: date) -> Iterable[date]:
    d = first
    while d <= last:
        yield d
        d += timedelta(days=1)
