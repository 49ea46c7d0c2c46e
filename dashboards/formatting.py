"""Numbers as the dashboards show them, in the shop's currency: one place for the template filters
(dashboards/templatetags/dashboards.py) and for the tables dashboards/charts.py formats in Python.

Currency symbols are CLDR's, through Babel, in English: "$", "€", "£", "¥", "CA$", "A$". A currency
CLDR gives no symbol (it answers the code itself: CHF, SEK) is written after the amount, "1,234.00 CHF".
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache

from babel.numbers import get_currency_symbol

# Shown without minor units, as the shops show them. Kept by hand rather than taken from CLDR's currency
# digits, which give HUF and TWD two places (their cash rule drops them, and so do the stores).
ZERO_DECIMAL_CURRENCIES = {"JPY", "KRW", "CLP", "ISK", "HUF", "TWD"}
SYMBOL_LOCALE = "en"  # the dashboards are in English
EMPTY = "—"


@lru_cache(maxsize=256)  # Babel reads its locale data per call; a page formats hundreds of amounts
def currency_symbol(currency: str) -> str:
    """The currency's sign ("$", "CA$"), or "" where CLDR has none but the code (or does not know it)."""
    symbol = get_currency_symbol(currency, locale=SYMBOL_LOCALE)
    return "" if symbol == currency else symbol


def _grouped(value: Decimal, places: int) -> str:
    quantum = Decimal(1).scaleb(-places)
    return f"{value.quantize(quantum, rounding=ROUND_HALF_UP):,.{places}f}"


def money(value, currency: str = "USD") -> str:
    if value is None or value == "":
        return EMPTY
    value = Decimal(value)
    places = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    sign = "-" if value < 0 else ""
    symbol = currency_symbol(currency)
    amount = _grouped(abs(value), places)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def percent(value, places: int = 1) -> str:
    if value is None or value == "":
        return EMPTY
    return f"{_grouped(Decimal(value) * 100, int(places))}%"


def ratio(value) -> str:
    if value is None or value == "":
        return EMPTY
    return f"{_grouped(Decimal(value), 2)}×"  # noqa: RUF001 — the multiplication sign is meant


def count(value) -> str:
    if value is None or value == "":
        return EMPTY
    value = Decimal(value)
    return _grouped(value, 0) if value == value.to_integral_value() else _grouped(value, 1)


def signed_percent(value) -> str:
    if value is None:
        return EMPTY
    value = Decimal(value)
    return f"{'+' if value > 0 else ''}{_grouped(value * 100, 1)}%"


KIND_FORMATS = {"money": money, "percent": percent, "ratio": ratio}  # anything else is a count


def kpi_value(value, kind: str, currency: str) -> str:
    """A KPI tile's figure by its kind (selectors.OVERVIEW_KPIS): money in the shop's currency."""
    if kind == "money":
        return money(value, currency)
    return KIND_FORMATS.get(kind, count)(value)
