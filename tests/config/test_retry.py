"""config.retry: the one backoff and the one Retry-After reader every job uses."""

from __future__ import annotations

import datetime as dt
from email.utils import format_datetime

import pytest

from config.retry import RETRY_AFTER_MAX_SECONDS, backoff, retry_after_seconds

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("value", "seconds"), [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5)])
def test_delay_seconds_are_read_as_seconds(value, seconds):
    assert retry_after_seconds(value, now=NOW) == seconds


def test_an_http_date_is_the_time_left_until_it():
    later = NOW + dt.timedelta(minutes=10)
    assert retry_after_seconds(format_datetime(later, usegmt=True), now=NOW) == 600.0
    # RFC 9110's obsolete forms, which a recipient must still read
    assert retry_after_seconds("Sunday, 01-Mar-26 12:05:00 GMT", now=NOW) == 300.0
    assert retry_after_seconds("Sun Mar  1 12:01:00 2026", now=NOW) == 60.0


def test_a_date_in_the_past_means_now():
    assert retry_after_seconds(format_datetime(NOW - dt.timedelta(days=3), usegmt=True), now=NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [None, "", "   ", "soon", "-5", "-0.5", "inf", "nan", "1e9", "0x10", "12 seconds", "Mon, 99 Foo 2026 99:99:99 GMT"],
)
def test_garbage_and_negative_values_are_unreadable(value):
    assert retry_after_seconds(value, now=NOW) is None


def test_huge_values_are_bounded():
    assert retry_after_seconds("99999999999999999999999", now=NOW) == RETRY_AFTER_MAX_SECONDS
    far = format_datetime(NOW + dt.timedelta(days=400), usegmt=True)
    assert retry_after_seconds(far, now=NOW) == RETRY_AFTER_MAX_SECONDS
    assert retry_after_seconds("3600", now=NOW, maximum=60) == 60.0


def test_backoff_doubles_up_to_the_ceiling_within_its_jitter():
    for attempt, step in [(1, 30), (2, 60), (3, 120), (4, 240), (8, 3600), (50, 3600)]:
        waits = [backoff(attempt, base=30, ceiling=3600) for _ in range(200)]
        assert all(step / 2 <= w <= step for w in waits), attempt
        assert len(set(waits)) > 1  # jittered: a crowd that failed together spreads out
    waits = [backoff(3, base=10, ceiling=1000, jitter=0.25) for _ in range(200)]
    assert all(30 <= w <= 40 for w in waits)
    assert backoff(2, base=10, ceiling=100, jitter=0.0) == 20


def test_backoff_never_goes_below_its_floor_and_survives_huge_attempt_counts():
    assert all(backoff(1, base=30, ceiling=3600, floor=600) == 600 for _ in range(20))
    assert 1800 <= backoff(10**6, base=30, ceiling=3600) <= 3600
    assert 15 <= backoff(0, base=30, ceiling=3600) <= 30  # "no failure yet" is treated as the first
    with pytest.raises(ValueError):
        backoff(1, base=30, ceiling=60, jitter=1.5)
