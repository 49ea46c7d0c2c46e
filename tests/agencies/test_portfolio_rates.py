"""The day's rate the blend converts with: the latest published on or before the day, the earliest before the
first, a cross rate through the rates' base, and None (never 1, never 0) when a currency has no rate."""

import datetime as dt
from decimal import Decimal

from agencies.portfolio import _RateTable
from tests.agencies.portfolio_fixtures import *  # noqa: F403 — its fixtures (this module's `agency` is the portfolio's)

MON, TUE, FRI = dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 6)


def rows(day, **rates):
    return [{"rate_date": day, "base_currency": "EUR", "currency": c, "rate": Decimal(r)} for c, r in rates.items()]


TABLE = _RateTable(rows(MON, USD="1.10", GBP="0.85") + rows(FRI, USD="1.20", GBP="0.80"))


def test_a_day_without_a_published_rate_takes_the_latest_before_it():
    assert TABLE.rate(TUE, "EUR", "USD") == Decimal("1.10")
    assert TABLE.rate(FRI, "EUR", "USD") == Decimal("1.20")
    assert TABLE.rate(dt.date(2026, 3, 8), "EUR", "USD") == Decimal("1.20")  # the weekend after


def test_before_the_first_rate_the_earliest_is_used():
    assert TABLE.rate(dt.date(2026, 1, 1), "EUR", "USD") == Decimal("1.10")


def test_two_non_base_currencies_convert_through_the_base():
    assert TABLE.rate(TUE, "GBP", "USD") == Decimal("1.10") / Decimal("0.85")
    assert TABLE.rate(TUE, "USD", "EUR") == 1 / Decimal("1.10")


def test_the_same_currency_is_one_and_an_unknown_one_is_none():
    assert TABLE.rate(TUE, "JPY", "JPY") == 1
    assert TABLE.rate(TUE, "JPY", "USD") is None
    assert _RateTable([]).rate(TUE, "EUR", "USD") is None
