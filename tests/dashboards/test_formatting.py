"""Amounts in the shop's currency: CLDR's symbols (Babel) give what the pages have always shown."""

from decimal import Decimal

import pytest

from dashboards.formatting import count, kpi_value, money, percent, ratio, signed_percent


@pytest.mark.parametrize(
    ("currency", "expected"),
    [
        ("USD", "$1,234.50"),
        ("EUR", "€1,234.50"),
        ("GBP", "£1,234.50"),
        ("CAD", "CA$1,234.50"),
        ("AUD", "A$1,234.50"),
        ("NZD", "NZ$1,234.50"),
        ("JPY", "¥1,235"),  # no minor units, rounded half up
        ("CHF", "1,234.50 CHF"),  # CLDR has no sign for it in English: the code goes after the amount
        ("HUF", "1,235 HUF"),
    ],
)
def test_money_in_each_currency(currency, expected):
    assert money(Decimal("1234.5"), currency) == expected


def test_negative_and_missing_amounts():
    assert money(Decimal("-5"), "USD") == "-$5.00"
    assert money(Decimal("-5"), "CHF") == "-5.00 CHF"
    assert money(None, "USD") == money("", "EUR") == "—"


def test_percent_ratio_count_and_kpi_kinds():
    assert percent(Decimal("0.12345")) == "12.3%"
    assert signed_percent(Decimal("0.05")) == "+5.0%" and signed_percent(Decimal("-0.05")) == "-5.0%"
    assert ratio(Decimal("2.5")) == "2.50×"  # noqa: RUF001 — the multiplication sign is meant
    assert count(Decimal("1200")) == "1,200" and count(Decimal("2.25")) == "2.3"
    assert kpi_value(Decimal("10"), "money", "GBP") == "£10.00"
    assert kpi_value(Decimal("0.5"), "percent", "GBP") == "50.0%"
    assert kpi_value(7, "count", "GBP") == "7"
