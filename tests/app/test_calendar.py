"""PortalCalendar: holidays, working-day arithmetic, month clamping, parsing, slots, zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from app.calendar import Clock, FixedClock, PortalCalendar, SystemClock

PL = PortalCalendar(timezone="Europe/Warsaw", country="PL")
RU = PortalCalendar(timezone="Europe/Moscow", country="RU")


# --- clocks -------------------------------------------------------------------------------


def test_fixed_clock_is_settable_and_advances() -> None:
    clock = FixedClock(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    assert isinstance(clock, Clock)
    assert clock.now() == datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    assert clock.advance(timedelta(hours=36)) == datetime(2026, 3, 3, 0, 0, tzinfo=UTC)
    clock.set(datetime(2026, 3, 5, 9, 0, tzinfo=ZoneInfo("Europe/Warsaw")))
    assert clock.now() == datetime(2026, 3, 5, 8, 0, tzinfo=UTC)
    assert clock.now().tzinfo == UTC


def test_fixed_clock_refuses_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock().set(datetime(2026, 1, 1))


def test_system_clock_is_aware_utc() -> None:
    now = SystemClock().now()
    assert now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(UTC)) < timedelta(seconds=5)


# --- zones --------------------------------------------------------------------------------


def test_utc_instant_already_tomorrow_in_vladivostok() -> None:
    vlad = PortalCalendar(timezone="Asia/Vladivostok", country="RU")
    clock = FixedClock(datetime(2026, 5, 14, 15, 30, tzinfo=UTC))  # 01:30 on the 15th, UTC+10
    assert vlad.today(clock) == date(2026, 5, 15)
    assert PortalCalendar().today(clock) == date(2026, 5, 14)
    now = vlad.now(clock)
    assert (now.hour, now.minute) == (1, 30)
    assert now.utcoffset() == timedelta(hours=10)
    assert now == clock.now()  # the same instant, only seen from elsewhere


def test_utc_instant_still_yesterday_west_of_greenwich() -> None:
    la = PortalCalendar(timezone="America/Los_Angeles")
    clock = FixedClock(datetime(2026, 1, 1, 3, 0, tzinfo=UTC))
    assert la.today(clock) == date(2025, 12, 31)


def test_unknown_time_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        PortalCalendar(timezone="Mars/Olympus")


def test_unknown_country_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no public holidays known for country 'XX'"):
        PortalCalendar(country="XX")
    with pytest.raises(ValueError, match="subdivision 'ZZ'"):
        PortalCalendar(country="DE", subdivision="ZZ")


def test_bad_weekend_is_refused() -> None:
    with pytest.raises(ValueError, match="0..6"):
        PortalCalendar(weekend=frozenset({7}))
    with pytest.raises(ValueError, match="no working day"):
        PortalCalendar(weekend=frozenset(range(7)))


# --- holidays -----------------------------------------------------------------------------


def test_polish_holidays() -> None:
    assert not PL.is_working_day(date(2026, 11, 11))  # Independence Day (Wednesday)
    assert PL.holiday_name(date(2026, 11, 11)) is not None
    assert not PL.is_working_day(date(2026, 5, 1))  # Labour Day
    assert not PL.is_working_day(date(2026, 12, 25))
    assert PL.is_working_day(date(2026, 11, 12))
    assert not PL.is_working_day(date(2026, 11, 14))  # a plain Saturday


def test_lowercase_country_code_is_accepted() -> None:
    assert not PortalCalendar(country="pl").is_working_day(date(2026, 11, 11))


def test_russian_new_year_holidays() -> None:
    for day in range(1, 9):
        assert not RU.is_working_day(date(2027, 1, day)), day
    assert RU.is_working_day(date(2027, 1, 11))  # Monday after the break


def test_russian_transferred_working_saturday() -> None:
    # 2027: the Saturday 20 February is worked, Monday 22 February is off instead.
    assert RU.is_working_day(date(2027, 2, 20))
    assert not RU.is_working_day(date(2027, 2, 22))


def test_subdivision_holidays() -> None:
    bavaria = PortalCalendar(country="DE", subdivision="BY")
    berlin = PortalCalendar(country="DE", subdivision="BE")
    assert not bavaria.is_working_day(date(2026, 1, 6))  # Epiphany in Bavaria
    assert berlin.is_working_day(date(2026, 1, 6))


def test_portal_days_off_and_extra_workdays() -> None:
    cal = PortalCalendar(
        country="PL",
        extra_holidays=frozenset({date(2026, 6, 15)}),
        extra_workdays=frozenset({date(2026, 6, 13), date(2026, 11, 11)}),
    )
    assert not cal.is_working_day(date(2026, 6, 15))  # company day off (Monday)
    assert cal.holiday_name(date(2026, 6, 15)) == "portal day off"
    assert cal.is_working_day(date(2026, 6, 13))  # worked Saturday
    assert cal.is_working_day(date(2026, 11, 11))  # the portal works on a public holiday


def test_custom_weekend() -> None:
    gulf = PortalCalendar(weekend=frozenset({4, 5}))  # Friday and Saturday
    assert not gulf.is_working_day(date(2026, 1, 2))  # Friday
    assert gulf.is_working_day(date(2026, 1, 4))  # Sunday


def test_no_country_means_weekends_only() -> None:
    plain = PortalCalendar()
    assert plain.is_working_day(date(2026, 12, 25))
    assert not plain.is_working_day(date(2026, 12, 26))


# --- working-day arithmetic --------------------------------------------------------------


def test_add_working_days_across_weekend() -> None:
    friday = date(2026, 3, 6)
    assert PL.add_working_days(friday, 1) == date(2026, 3, 9)
    assert PL.add_working_days(friday, 3) == date(2026, 3, 11)
    assert PL.add_working_days(date(2026, 3, 7), 1) == date(2026, 3, 9)  # from a Saturday
    assert PL.add_working_days(date(2026, 3, 9), -1) == friday


def test_add_working_days_across_holiday() -> None:
    # Tuesday 10 Nov 2026 + 1 skips Independence Day (Wed 11 Nov).
    assert PL.add_working_days(date(2026, 11, 10), 1) == date(2026, 11, 12)
    assert PL.add_working_days(date(2026, 11, 12), -1) == date(2026, 11, 10)
    # The Russian New Year break runs to 8 Jan 2027 (31 Dec 2026 is a transferred day off too):
    # the next working day after Wednesday 30 Dec 2026 is Monday 11 January.
    assert RU.add_working_days(date(2026, 12, 30), 1) == date(2027, 1, 11)
    assert RU.add_working_days(date(2026, 12, 30), 3) == date(2027, 1, 13)
    assert RU.next_working_day(date(2027, 1, 1)) == date(2027, 1, 11)
    assert RU.add_working_days(date(2027, 1, 1), 1) == date(2027, 1, 11)


def test_add_zero_working_days() -> None:
    assert PL.add_working_days(date(2026, 3, 6), 0) == date(2026, 3, 6)
    assert PL.add_working_days(date(2026, 3, 7), 0) == date(2026, 3, 9)
    assert PL.add_working_days(date(2026, 11, 11), 0) == date(2026, 11, 12)


def test_add_working_days_accepts_a_datetime() -> None:
    when = datetime(2026, 3, 6, 18, 0, tzinfo=ZoneInfo("Europe/Warsaw"))
    assert PL.add_working_days(when, 1) == date(2026, 3, 9)


def test_working_days_between() -> None:
    assert PL.working_days_between(date(2026, 3, 6), date(2026, 3, 9)) == 1
    assert PL.working_days_between(date(2026, 3, 2), date(2026, 3, 13)) == 9
    assert PL.working_days_between(date(2026, 3, 13), date(2026, 3, 2)) == -9
    assert PL.working_days_between(date(2026, 3, 2), date(2026, 3, 2)) == 0
    # A week with a holiday in it has four working days.
    assert PL.working_days_between(date(2026, 11, 8), date(2026, 11, 15)) == 4


def test_working_days_between_inverts_add_working_days() -> None:
    start = date(2026, 10, 28)
    for n in range(-25, 26):
        target = PL.add_working_days(start, n)
        assert PL.working_days_between(start, target) == n, n


# --- months -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2026, 1, 31), 1, date(2026, 2, 28)),
        (date(2028, 1, 31), 1, date(2028, 2, 29)),  # leap year
        (date(2026, 3, 31), 1, date(2026, 4, 30)),
        (date(2026, 1, 15), 12, date(2027, 1, 15)),
        (date(2026, 11, 30), 3, date(2027, 2, 28)),
        (date(2026, 3, 31), -1, date(2026, 2, 28)),
        (date(2026, 1, 31), -2, date(2025, 11, 30)),
        (date(2026, 5, 10), 0, date(2026, 5, 10)),
    ],
)
def test_add_months_clamps_to_month_end(start: date, months: int, expected: date) -> None:
    assert PL.add_months(start, months) == expected


# --- parsing and formatting ---------------------------------------------------------------


def test_parse_iso_date() -> None:
    assert PL.parse("2026-01-31") == date(2026, 1, 31)


def test_parse_iso_datetime_with_offset_moves_to_portal_zone() -> None:
    parsed = PL.parse("2026-01-31T14:29:00+02:00")
    assert isinstance(parsed, datetime)
    assert parsed == datetime(2026, 1, 31, 12, 29, tzinfo=UTC)
    assert parsed.utcoffset() == timedelta(hours=1)  # Warsaw in winter
    assert parsed.hour == 13


def test_parse_naive_datetime_is_portal_wall_time() -> None:
    parsed = PL.parse("2026-07-01T09:00:00")
    assert parsed == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)
    assert PL.parse("2026-07-01 09:00:00") == parsed


def test_parse_utc_z_suffix() -> None:
    assert PL.parse("2026-07-01T07:00:00Z") == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)


def test_parse_dotted_formats() -> None:
    assert PL.parse("31.01.2026") == date(2026, 1, 31)
    assert PL.parse("1.2.2026") == date(2026, 2, 1)
    parsed = RU.parse("31.01.2026 14:29:05")
    assert parsed == datetime(2026, 1, 31, 14, 29, 5, tzinfo=ZoneInfo("Europe/Moscow"))
    assert RU.parse("31.01.2026 14:29") == datetime(
        2026, 1, 31, 14, 29, tzinfo=ZoneInfo("Europe/Moscow")
    )


@pytest.mark.parametrize("value", ["", "   ", None])
def test_parse_empty_is_none(value: str | None) -> None:
    assert PL.parse(value) is None


@pytest.mark.parametrize("value", ["tomorrow", "31.02.2026", "2026-13-01", "2026/01/31"])
def test_parse_garbage_raises_value_error(value: str) -> None:
    with pytest.raises(ValueError, match="not a Bitrix24 date"):
        PL.parse(value)


def test_format_date() -> None:
    assert PL.format_date(date(2026, 3, 5)) == "2026-03-05"
    # 23:30 UTC on 31 Dec is already 1 Jan in Warsaw.
    assert PL.format_date(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "2027-01-01"
    assert PL.format_datetime(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == (
        "2027-01-01T00:30:00+01:00"
    )


def test_parse_roundtrips_format() -> None:
    d = date(2026, 8, 17)
    assert PL.parse(PL.format_date(d)) == d


# --- free slots -------------------------------------------------------------------------


def _w(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo("Europe/Warsaw"))


def test_free_slots_between_meetings() -> None:
    busy = [(_w(10, 10), _w(10, 11)), (_w(10, 13), _w(10, 14, 30))]
    slots = PL.free_slots(busy, date(2026, 3, 10), time(9), time(18), timedelta(hours=1))
    assert slots == [
        (_w(10, 9), _w(10, 10)),
        (_w(10, 11), _w(10, 13)),
        (_w(10, 14, 30), _w(10, 18)),
    ]


def test_free_slots_merge_overlaps_and_drop_short_gaps() -> None:
    busy = [
        (_w(10, 9, 30), _w(10, 11)),
        (_w(10, 10, 30), _w(10, 12)),  # overlaps the first
        (_w(10, 12, 20), _w(10, 17)),  # leaves a 20-minute gap
    ]
    slots = PL.free_slots(busy, date(2026, 3, 10), time(9), time(18), timedelta(minutes=30))
    assert slots == [(_w(10, 9), _w(10, 9, 30)), (_w(10, 17), _w(10, 18))]


def test_free_slots_clip_busy_time_outside_the_day() -> None:
    busy = [
        (_w(9, 20), _w(10, 10)),  # from the evening before
        (_w(10, 17), _w(11, 9)),  # into the next morning
    ]
    slots = PL.free_slots(busy, date(2026, 3, 10), time(9), time(18), timedelta(minutes=15))
    assert slots == [(_w(10, 10), _w(10, 17))]


def test_free_slots_read_busy_times_from_other_zones() -> None:
    busy = [(datetime(2026, 3, 10, 8, 0, tzinfo=UTC), datetime(2026, 3, 10, 9, 0, tzinfo=UTC))]
    slots = PL.free_slots(busy, date(2026, 3, 10), time(9), time(12), timedelta(minutes=30))
    assert slots == [(_w(10, 10), _w(10, 12))]
    assert all(a.tzinfo == ZoneInfo("Europe/Warsaw") for a, _ in slots)


def test_free_slots_naive_busy_is_portal_time() -> None:
    busy = [(datetime(2026, 3, 10, 9, 0), datetime(2026, 3, 10, 11, 0))]
    slots = PL.free_slots(busy, date(2026, 3, 10), time(9), time(12), timedelta(minutes=30))
    assert slots == [(_w(10, 11), _w(10, 12))]


def test_free_slots_fully_booked_and_empty_day() -> None:
    day = date(2026, 3, 10)
    assert PL.free_slots([(_w(10, 8), _w(10, 19))], day, time(9), time(18), timedelta(1)) == []
    assert PL.free_slots([], day, time(9), time(18), timedelta(hours=2)) == [
        (_w(10, 9), _w(10, 18))
    ]


def test_free_slots_none_on_a_holiday_or_weekend() -> None:
    assert PL.free_slots([], date(2026, 11, 11), time(9), time(18), timedelta(hours=1)) == []
    assert PL.free_slots([], date(2026, 3, 14), time(9), time(18), timedelta(hours=1)) == []


def test_free_slots_reject_bad_arguments() -> None:
    day = date(2026, 3, 10)
    with pytest.raises(ValueError, match="positive"):
        PL.free_slots([], day, time(9), time(18), timedelta(0))
    with pytest.raises(ValueError, match="must be after"):
        PL.free_slots([], day, time(18), time(9), timedelta(hours=1))


def test_calendar_is_hashable_and_comparable() -> None:
    a = PortalCalendar(timezone="Europe/Warsaw", country="PL")
    assert a == PL
    assert hash(a) == hash(PL)
    assert a != RU


def test_working_hours_skip_nights_weekends_and_holidays() -> None:
    cal = PortalCalendar("Europe/Warsaw", "PL")
    warsaw = ZoneInfo("Europe/Warsaw")
    # Tuesday 16:00 + 4 h: 2 h today, Wednesday 11 Nov is Independence Day, 2 h on Thursday.
    at = cal.add_working_hours(datetime(2026, 11, 10, 16, 0, tzinfo=warsaw), 4)
    assert at == datetime(2026, 11, 12, 11, 0, tzinfo=warsaw)
    # Friday evening + 2 h: Monday 11:00; before opening, the day starts at 9:00.
    assert cal.add_working_hours(datetime(2026, 11, 13, 20, 0, tzinfo=warsaw), 2) == datetime(
        2026, 11, 16, 11, 0, tzinfo=warsaw
    )
    assert cal.add_working_hours(datetime(2026, 11, 16, 7, 0, tzinfo=warsaw), 9) == datetime(
        2026, 11, 16, 18, 0, tzinfo=warsaw
    )
    # A UTC instant is read in the portal's zone; half hours count.
    start = datetime(2026, 11, 16, 16, 30, tzinfo=UTC)  # 17:30 in Warsaw
    assert cal.add_working_hours(start, 1.5) == datetime(2026, 11, 17, 10, 0, tzinfo=warsaw)
    with pytest.raises(ValueError, match="must not be negative"):
        cal.add_working_hours(start, -1)
    with pytest.raises(ValueError, match="must be after their start"):
        cal.add_working_hours(start, 1, day_start=time(18), day_end=time(9))
