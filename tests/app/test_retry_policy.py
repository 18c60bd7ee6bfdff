"""Robot retries fit inside the time the portal's workflow waits for the answer."""

from __future__ import annotations

from app.jobs import retry_within


def test_retries_fit_inside_the_workflow_timeout() -> None:
    assert retry_within(660, (5, 15, 60, 180, 600)) == (5, 15, 60, 180)
    assert retry_within(30, (5, 15, 60)) == (5, 15)


def test_no_time_no_retry_and_no_timeout_all_retries() -> None:
    assert retry_within(5, (5, 15)) == ()
    assert retry_within(0, (5, 15, 60)) == (5, 15, 60)  # timeout_duration 0: waits forever
