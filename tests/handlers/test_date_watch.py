"""Date watches without a portal: the cutoff in the portal's calendar, the filters a sweep
sends, and recording watches (idempotent, validated) in the app's database."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime

import pytest

from app.calendar import PortalCalendar
from app.errors import AppError
from app.store import Store
from handlers import date_watch

PL = PortalCalendar(timezone="Europe/Warsaw", country="PL")


@pytest.mark.parametrize(
    ("today", "days", "working", "expected"),
    [
        (date(2026, 11, 5), 3, True, date(2026, 11, 10)),  # Thu: Fri, Mon, Tue
        (date(2026, 11, 6), 3, True, date(2026, 11, 12)),  # Fri: Mon, Tue, (Wed 11 Nov), Thu
        (date(2026, 11, 6), 3, False, date(2026, 11, 9)),
        (date(2026, 11, 7), 0, True, date(2026, 11, 7)),  # 0: on the day, even a Saturday
        (date(2026, 11, 13), -2, True, date(2026, 11, 10)),  # 2 working days after the date
        (date(2026, 11, 13), -2, False, date(2026, 11, 11)),
    ],
)
def test_cutoff_counts_the_portals_working_days(today, days, working, expected) -> None:
    assert date_watch.cutoff(PL, today, days, working) == expected


def _watch(**kw) -> date_watch.Watch:
    base = dict(
        id=1,
        member_id="m",
        category_id=3,
        field="UF_CRM_WARRANTY_END",
        within_days=3,
        working_days=True,
        action="move",
        target="C3:POST",
    )
    return date_watch.Watch(**{**base, **kw})


def test_first_sweep_asks_for_every_due_open_deal_of_the_funnel() -> None:
    (only,) = date_watch.due_filters(_watch(), PL, date(2026, 11, 6))
    assert only == {
        "CATEGORY_ID": 3,
        "STAGE_SEMANTIC_ID": "P",
        "<=UF_CRM_WARRANTY_END": "2026-11-12",
        "!STAGE_ID": "C3:POST",
    }


def test_later_sweeps_ask_for_the_new_window_and_the_modified_due_deals() -> None:
    swept = datetime(2026, 11, 5, 9, tzinfo=UTC).timestamp()
    watch = _watch(
        action="trigger",
        target="warranty_expiring",
        swept_cutoff=date(2026, 11, 10),
        swept_at=swept,
    )
    window, modified = date_watch.due_filters(watch, PL, date(2026, 11, 6))
    assert window[">UF_CRM_WARRANTY_END"] == "2026-11-10"
    assert window["<=UF_CRM_WARRANTY_END"] == "2026-11-12"
    assert "!STAGE_ID" not in window
    assert modified[">=DATE_MODIFY"] == "2026-11-05T09:00:00+01:00"  # an hour's overlap
    # Same day, same cutoff: only the modified ones are asked for.
    same = _watch(swept_cutoff=date(2026, 11, 12), swept_at=swept)
    assert [set(f) - set(window) for f in date_watch.due_filters(same, PL, date(2026, 11, 6))] == [
        {">=DATE_MODIFY", "!STAGE_ID"}
    ]


def test_watches_are_recorded_once_per_rule_and_validated() -> None:
    store = Store("sqlite://", secrets.token_urlsafe(32))
    first = date_watch.record_watch(
        store,
        "m1",
        category_id=3,
        field="uf_crm_warranty_end",
        within_days=3,
        working_days=True,
        target="C3:POST",
    )
    again = date_watch.record_watch(
        store,
        "m1",
        category_id=3,
        field="UF_CRM_WARRANTY_END",
        within_days=3,
        working_days=True,
        target="C3:POST",
    )
    other = date_watch.record_watch(
        store,
        "m1",
        category_id=3,
        field="UF_CRM_WARRANTY_END",
        within_days=0,
        action="trigger",
        target="",
    )
    assert first == again and first.field == "UF_CRM_WARRANTY_END"
    assert other.id != first.id and other.target == "warranty_expiring"
    assert [w.id for w in date_watch.watches(store, "m1")] == [first.id, other.id]
    assert date_watch.watches(store, "m2") == []
    with pytest.raises(AppError, match="user field"):
        date_watch.record_watch(
            store, "m1", category_id=3, field="TITLE", within_days=1, target="C3:POST"
        )
    with pytest.raises(AppError, match="not a stage of funnel 3"):
        date_watch.record_watch(
            store, "m1", category_id=3, field="UF_CRM_X", within_days=1, target="C4:POST"
        )
    with pytest.raises(AppError, match="trigger"):
        date_watch.record_watch(
            store,
            "m1",
            category_id=3,
            field="UF_CRM_X",
            within_days=1,
            action="trigger",
            target="nope",
        )
    assert date_watch.remove_watch(store, "m1", first.id) is True
    assert date_watch.remove_watch(store, "m2", other.id) is False
