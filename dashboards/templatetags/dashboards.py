"""The dashboards' number formatting (dashboards/formatting.py) as template filters, and a dict lookup."""

from __future__ import annotations

from django import template

from dashboards import formatting

register = template.Library()

register.filter("money", formatting.money)
register.filter("percent", formatting.percent)
register.filter("ratio", formatting.ratio)
register.filter("count", formatting.count)
register.filter("signed_percent", formatting.signed_percent)
register.simple_tag(formatting.kpi_value, name="kpi_value")


@register.filter
def lookup(mapping, key):
    return mapping.get(key) if mapping else None
