"""Number formatting in the shop's currency, and links to pages other apps may not have shipped yet."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from django import template

register = template.Library()

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CAD": "CA$", "AUD": "A$", "NZD": "NZ$"}
ZERO_DECIMAL_CURRENCIES = {"JPY", "KRW", "CLP", "ISK", "HUF", "TWD"}
EMPTY = "—"


def _grouped(value: Decimal, places: int) -> str:
    quantum = Decimal(1).scaleb(-places)
    return f"{value.quantize(quantum, rounding=ROUND_HALF_UP):,.{places}f}"


@register.filter
def money(value, currency: str = "USD") -> str:
    if value is None or value == "":
        return EMPTY
    value = Decimal(value)
    places = 0 if currency in ZERO_DECIMAL_CURRENCIES else 2
    sign = "-" if value < 0 else ""
    symbol = CURRENCY_SYMBOLS.get(currency)
    amount = _grouped(abs(value), places)
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


@register.filter
def percent(value, places: int = 1) -> str:
    if value is None or value == "":
        return EMPTY
    return f"{_grouped(Decimal(value) * 100, int(places))}%"


@register.filter
def ratio(value) -> str:
    if value is None or value == "":
        return EMPTY
    return f"{_grouped(Decimal(value), 2)}×"  # noqa: RUF001 — the multiplication sign is meant


@register.filter
def count(value) -> str:
    if value is None or value == "":
        return EMPTY
    value = Decimal(value)
    return _grouped(value, 0) if value == value.to_integral_value() else _grouped(value, 1)


@register.filter
def signed_percent(value) -> str:
    if value is None:
        return EMPTY
    value = Decimal(value)
    return f"{'+' if value > 0 else ''}{_grouped(value * 100, 1)}%"


@register.simple_tag
def kpi_value(value, kind: str, currency: str) -> str:
    return {"money": money, "percent": percent, "ratio": ratio}.get(kind, count)(
        *((value, currency) if kind == "money" else (value,))
    )


@register.filter
def lookup(mapping, key):
    return mapping.get(key) if mapping else None
