"""The dashboard layout schema: which widgets exist, which metrics each accepts, and the limits.

A layout is a JSON list of widgets, `{"type": ..., "metric": ..., "options": {...}}`. Errors name the
widget's 1-based position so an editor can point at it.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError

from config.validators import has_surrogates
from dashboards.choices import WidgetType, WidgetWidth
from dashboards.selectors import ATTRIBUTION_MODELS, OVERVIEW_KPIS

MAX_WIDGETS = 50
MAX_LAYOUT_BYTES = 64 * 1024
MAX_TITLE_LENGTH = 100

TIMESERIES_METRICS = {
    "net_revenue": "Net revenue",
    "orders": "Orders",
    "ad_spend": "Ad spend",
    "new_customers": "New customers",
    "email_revenue": "Email attributed revenue",
    "sms_revenue": "SMS attributed revenue",
    "email_sends": "Email sends",
    "sms_sends": "SMS sends",
}
WIDGET_METRICS: dict[str, dict[str, str]] = {
    WidgetType.KPI: {k: label for k, (label, _) in OVERVIEW_KPIS.items()},
    WidgetType.TIMESERIES: TIMESERIES_METRICS,
    WidgetType.COHORT_HEATMAP: {"revenue": "Cumulative net revenue per customer", "retention": "Retention"},
    WidgetType.ATTRIBUTION_TABLE: {"comparison": "All models compared", **ATTRIBUTION_MODELS},
    WidgetType.ENGAGEMENT_TABLE: {"summary": "Campaigns vs flows by provider", "messages": "Top campaigns and flows"},
}
OPTION_KEYS = {"title", "width"}

LAYOUT_NOT_A_LIST = "A layout is a list of widgets."
LAYOUT_TOO_MANY = f"A layout has at most {MAX_WIDGETS} widgets."
LAYOUT_TOO_BIG = f"A layout is at most {MAX_LAYOUT_BYTES // 1024} KB."
WIDGET_NOT_AN_OBJECT = "Widget {position}: must be an object with type, metric and options."
WIDGET_UNKNOWN_KEYS = "Widget {position}: unknown keys {keys}."
WIDGET_UNKNOWN_TYPE = "Widget {position}: unknown type {value!r}; choose one of {choices}."
WIDGET_UNKNOWN_METRIC = "Widget {position}: unknown metric {value!r} for {type}; choose one of {choices}."
WIDGET_BAD_OPTIONS = "Widget {position}: options must be an object with only {choices}."
WIDGET_BAD_TITLE = (
    f"Widget {{position}}: title must be text of at most {MAX_TITLE_LENGTH} characters, without NUL characters or"
    " lone surrogates."
)
WIDGET_BAD_WIDTH = "Widget {position}: width must be one of {choices}."


def _layout_json_schema() -> dict:
    """The rules below as a JSON Schema, for the API's documentation (and the clients generated from it).
    `layout_validate` stays the authority: the size limit in bytes is not expressible here."""
    options = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "title": {"type": "string", "maxLength": MAX_TITLE_LENGTH},
            "width": {"type": "string", "enum": list(WidgetWidth.values), "default": WidgetWidth.NORMAL},
        },
    }
    widgets = [
        {
            "type": "object",
            "title": kind,
            "required": ["type", "metric"],
            "additionalProperties": False,
            "properties": {
                "type": {"type": "string", "enum": [kind]},
                "metric": {"type": "string", "enum": list(metrics)},
                "options": options,
            },
        }
        for kind, metrics in WIDGET_METRICS.items()
    ]
    return {"type": "array", "maxItems": MAX_WIDGETS, "items": {"oneOf": widgets}}


LAYOUT_JSON_SCHEMA = _layout_json_schema()


def layout_validate(layout: Any) -> list[dict]:
    """Return the layout normalised (options always present), or raise ValidationError({"layout": [...]}).

    Any value at all is answered with one or the other: the API and the pages pass whatever JSON they were
    sent. Only the title is free text, and it is what reaches jsonb: PostgreSQL refuses NUL there, and a
    lone surrogate cannot be encoded. Messages quote input with repr(), which escapes both.
    """
    if not isinstance(layout, list):
        raise ValidationError({"layout": [LAYOUT_NOT_A_LIST]})
    if len(layout) > MAX_WIDGETS:
        raise ValidationError({"layout": [LAYOUT_TOO_MANY]})
    try:
        size = len(json.dumps(layout, separators=(",", ":")).encode())
    except (RecursionError, TypeError, ValueError):  # nested too deep, or not JSON at all (a Python caller)
        size = MAX_LAYOUT_BYTES + 1
    if size > MAX_LAYOUT_BYTES:
        raise ValidationError({"layout": [LAYOUT_TOO_BIG]})
    errors: list[str] = []
    normalised: list[dict] = []
    for position, widget in enumerate(layout, start=1):
        if not isinstance(widget, dict):
            errors.append(WIDGET_NOT_AN_OBJECT.format(position=position))
            continue
        unknown = set(widget) - {"type", "metric", "options"}
        if unknown:
            keys = ", ".join(repr(key) for key in sorted(unknown, key=str))
            errors.append(WIDGET_UNKNOWN_KEYS.format(position=position, keys=keys))
        kind, metric, options = widget.get("type"), widget.get("metric"), widget.get("options", {})
        # Membership tests below hash the value: a list or an object here must be an error, not a TypeError.
        if not isinstance(kind, str) or kind not in WIDGET_METRICS:
            errors.append(WIDGET_UNKNOWN_TYPE.format(position=position, value=kind, choices=", ".join(WIDGET_METRICS)))
            continue
        if not isinstance(metric, str) or metric not in WIDGET_METRICS[kind]:
            choices = ", ".join(WIDGET_METRICS[kind])
            errors.append(WIDGET_UNKNOWN_METRIC.format(position=position, value=metric, type=kind, choices=choices))
        if not isinstance(options, dict) or set(options) - OPTION_KEYS:
            errors.append(WIDGET_BAD_OPTIONS.format(position=position, choices=", ".join(sorted(OPTION_KEYS))))
            continue
        title = options.get("title", "")
        if not isinstance(title, str) or len(title) > MAX_TITLE_LENGTH or "\x00" in title or has_surrogates(title):
            errors.append(WIDGET_BAD_TITLE.format(position=position))
        width = options.get("width", WidgetWidth.NORMAL)
        if not isinstance(width, str) or width not in WidgetWidth.values:
            errors.append(WIDGET_BAD_WIDTH.format(position=position, choices=", ".join(WidgetWidth.values)))
        normalised.append({"type": kind, "metric": metric, "options": dict(options)})
    if errors:
        raise ValidationError({"layout": errors})
    return normalised


def _w(kind: str, metric: str, **options) -> dict:
    return {"type": kind, "metric": metric, "options": options}


STARTER_TEMPLATES: dict[str, dict] = {
    "acquisition": {
        "name": "Acquisition",
        "description": "Spend, MER and CAC, revenue against spend, and every attribution model side by side.",
        "layout": [
            _w("kpi", "net_revenue"),
            _w("kpi", "ad_spend"),
            _w("kpi", "mer"),
            _w("kpi", "new_customer_cac"),
            _w("timeseries", "net_revenue", width="wide"),
            _w("timeseries", "ad_spend", width="wide"),
            _w("attribution_table", "comparison", width="wide"),
        ],
    },
    "retention": {
        "name": "Retention",
        "description": "Returning customers, cohort LTV and retention.",
        "layout": [
            _w("kpi", "returning_customer_rate"),
            _w("kpi", "new_customers"),
            _w("kpi", "aov"),
            _w("cohort_heatmap", "revenue", width="wide"),
            _w("cohort_heatmap", "retention", width="wide"),
        ],
    },
    "email-sms": {
        "name": "Email & SMS",
        "description": "Klaviyo and Attentive: campaigns vs flows, attributed revenue by day, top messages.",
        "layout": [
            _w("timeseries", "email_revenue"),
            _w("timeseries", "sms_revenue"),
            _w("engagement_table", "summary", width="wide"),
            _w("engagement_table", "messages", width="wide"),
        ],
    },
}


# What "Save as template" saves from each built-in page.
PAGE_LAYOUTS: dict[str, list[dict]] = {
    "overview": [_w("kpi", key) for key in OVERVIEW_KPIS]
    + [_w("timeseries", "net_revenue", width="wide"), _w("timeseries", "ad_spend", width="wide")],
    "ltv": [_w("cohort_heatmap", "revenue", width="wide"), _w("cohort_heatmap", "retention", width="wide")],
    "attribution": [_w("attribution_table", "comparison", width="wide"), _w("attribution_table", "last_touch")],
    "engagement": [
        _w("engagement_table", "summary", width="wide"),
        _w("timeseries", "email_revenue"),
        _w("timeseries", "sms_revenue"),
        _w("engagement_table", "messages", width="wide"),
    ],
}
