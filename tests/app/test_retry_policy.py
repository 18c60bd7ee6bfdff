"""Robot retries fit inside the time the portal's workflow waits for the answer."""

from __future__ import annotations

from app.jobs import retry_within


def test_retries_fit_inside_the_workflow_timeout() -> None:
    retry = retry_within(660, (5, 15, 60, 180, 600))
    assert retry is not None and retry.max == 4 and retry.intervals == [5, 15, 60, 180]
    retry = retry_within(30, (5, 15, 60))
    assert retry.max == 2 and retry.intervals == [5, 15]


def test_no_time_no_retry_and_no_timeout_all_retries() -> None:
    assert retry_within(5, (5, 15)) is None
    retry = retry_within(0, (5, 15, 60))  # timeout_duration 0: the portal waits forever
    assert retry.max == 3 and retry.intervals == [5, 15, 60]
