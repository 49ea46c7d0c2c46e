"""What the dashboard pages draw: chart series and table rows shaped from the selectors' output.

Pure functions of selector results (no request, no member): what they return is rendered into the page
fragments that dashboards/pages.py caches per state of the marts. Tables of many cells are formatted here
rather than through template filters, which cost more than the page's SQL at a few hundred cells.
"""

from __future__ import annotations

from django.urls import reverse
from django.utils.http import urlencode

from dashboards import selectors
from dashboards.formatting import count, money, percent
from dashboards.layouts import WIDGET_METRICS
from dashboards.masking import NO_MASKING, Masking, mask
from dashboards.periods import DateRange, Period

LTV_METRICS = {"revenue": "Cumulative net revenue per customer", "retention": "Retention"}


def _day(value) -> str:
    return f"{value:%a %b} {value.day}"


def _daily_rows(daily: list[dict], currency: str) -> list[list[str]]:
    """The overview's day table as text: thirty rows through template filters cost more than the SQL."""
    return [
        [_day(r["date_day"]), count(r["orders"]), money(r["net_revenue"], currency), money(r["ad_spend"], currency),
         count(r["new_customers"])]
        for r in daily
    ]  # fmt: skip


def overview_data(merchant, date_range: DateRange, masking: Masking = NO_MASKING) -> dict:
    kpis = mask(selectors.overview_get(merchant=merchant, date_range=date_range), masking)
    daily = mask(selectors.overview_daily_list(merchant=merchant, period=date_range.current), masking)
    tiles = [
        {
            "key": key,
            "label": label,
            "kind": kind,
            "value": kpis["current"][key],
            "previous": kpis["comparison"][key] if kpis["comparison"] else None,
            "change": kpis["change"][key] if kpis["change"] else None,
            "lower_is_better": key in selectors.LOWER_IS_BETTER,
        }
        for key, (label, kind) in selectors.OVERVIEW_KPIS.items()
    ]
    series = [{"label": "Net revenue", "data": [float(r["net_revenue"]) for r in daily], "kind": "bar"}]
    if not masking.hide_costs:
        series.append({"label": "Ad spend", "data": [float(r["ad_spend"]) for r in daily], "kind": "line"})
    chart = {
        "type": "revenue_spend",
        "labels": [r["date_day"].isoformat() for r in daily],
        "series": series,
        "currency": merchant.currency,
    }
    tiles = mask(tiles, masking)  # a cost tile keeps its place and says the grant hides it
    return {"kpis": kpis, "tiles": tiles, "daily_rows": _daily_rows(daily, merchant.currency), "chart": chart}


def ltv_data(merchant, date_range: DateRange, metric: str, masking: Masking = NO_MASKING) -> dict:
    cohorts = mask(selectors.ltv_cohort_list(merchant=merchant, period=date_range.current), masking)
    max_month = max((m["month"] for c in cohorts for m in c["months"]), default=-1)
    field = "cum_net_revenue_per_customer" if metric == "revenue" else "retention_rate"
    top = max((m[field] or 0 for c in cohorts for m in c["months"] if m["month"] > 0 or metric == "revenue"), default=0)
    fmt = (lambda v: money(v, merchant.currency)) if metric == "revenue" else percent
    rows = []
    for cohort in cohorts:
        by_month = {m["month"]: m for m in cohort["months"]}
        cells = []
        for month in range(max_month + 1):
            cell = by_month.get(month)
            value = cell[field] if cell else None
            # Ten shades, so the heat map needs no inline style (CSP forbids it). Text is formatted here:
            # a few hundred cells through template tags cost more than all the page's SQL.
            shade = min(9, int(9 * value / top)) if value is not None and top else None
            cells.append(
                {"month": month, "value": value, "text": "" if value is None else fmt(value),
                 "css": "" if shade is None else f" heat-{shade}"}
            )  # fmt: skip
        rows.append({**cohort, "cells": cells})
    chart = {
        "type": "cohort_curves",
        "labels": [f"M{m}" for m in range(max_month + 1)],
        "series": [
            {
                "label": c["cohort_month"].strftime("%Y-%m"),
                "data": [float(cell["value"]) if cell["value"] is not None else None for cell in r["cells"]],
                "kind": "line",
            }
            for c, r in zip(cohorts, rows, strict=True)
        ],
        "currency": merchant.currency if metric == "revenue" else "",
        "percent": metric == "retention",
    }
    return {
        "cohorts": rows,
        "months": list(range(max_month + 1)),
        "metric": metric,
        "metrics": LTV_METRICS,
        "chart": chart,
    }


def attribution_data(merchant, period: Period, model: str, channel: str | None, masking: Masking = NO_MASKING) -> dict:
    by_model = mask(
        selectors.attribution_model_get(merchant=merchant, period=period, model=model, channel=channel), masking
    )
    comparison = mask(selectors.attribution_comparison_list(merchant=merchant, period=period), masking)
    chart = {
        "type": "model_comparison",
        "labels": [row["channel"] for row in comparison],
        "series": [
            {"label": label, "data": [float(row["models"][key]["revenue"]) for row in comparison], "kind": "bar"}
            for key, label in selectors.ATTRIBUTION_MODELS.items()
        ],
        "currency": merchant.currency,
    }
    return {
        "model": model,
        "models": selectors.ATTRIBUTION_MODELS,
        "channel": channel,
        "channels": by_model["channels"],
        "comparison": comparison,
        "campaigns": by_model["campaigns"],
        "lookback_days": selectors.ATTRIBUTION_LOOKBACK_DAYS,
        "half_life_days": selectors.TIME_DECAY_HALF_LIFE_DAYS,
        "chart": chart,
    }


def engagement_data(merchant, period: Period) -> dict:
    daily = selectors.engagement_daily_list(merchant=merchant, period=period)
    chart = {
        "type": "engagement_trend",
        "labels": [r["date_day"].isoformat() for r in daily],
        "series": [
            {"label": "Email attributed revenue", "data": [float(r["email_revenue"]) for r in daily], "kind": "bar"},
            {"label": "SMS attributed revenue", "data": [float(r["sms_revenue"]) for r in daily], "kind": "bar"},
        ],
        "currency": merchant.currency,
        "stacked": True,
    }
    return {
        "summary": selectors.engagement_summary_list(merchant=merchant, period=period),
        "top_messages": selectors.engagement_message_list(merchant=merchant, period=period),
        "daily": daily,
        "chart": chart,
    }


def _widget_csv(widget: dict, date_range: DateRange) -> str:
    """The CSV export with the same rows as a widget's table ("" for KPI tiles, which have none)."""
    kind, metric = widget["type"], widget["metric"]
    query = date_range.as_query()
    if kind == "timeseries":
        table = "engagement-daily" if metric.startswith(("email_", "sms_")) else "overview-daily"
    elif kind == "cohort_heatmap":
        table = "ltv-cohorts"
        cohorts = selectors.cohort_period(date_range.current)
        query = {"start": cohorts.start.isoformat(), "end": cohorts.end.isoformat()}
    elif kind == "attribution_table":
        table = "attribution-comparison" if metric == "comparison" else "attribution-channels"
        query = query if metric == "comparison" else {**query, "model": metric}
    elif kind == "engagement_table":
        table = f"engagement-{metric}"
    else:
        return ""
    return f"{table}.csv?{urlencode(query)}"


def _widget_view(widget: dict, currency: str, date_range: DateRange) -> dict:
    """Shape a widget's data for its partial: charts get the series spec the page script draws."""
    view = {**widget, "title": widget["options"].get("title") or WIDGET_METRICS[widget["type"]][widget["metric"]]}
    view["wide"] = widget["options"].get("width") == "wide"
    view["chart_id"] = f"widget-chart-{widget['position']}"
    view["csv"] = _widget_csv(widget, date_range)
    if widget["type"] == "timeseries":
        view["chart"] = {
            "labels": [r["date_day"].isoformat() for r in widget["data"]],
            "series": [
                {
                    "label": view["title"],
                    # None: a cost the store's grant hides (dashboards.masking); the widget says so.
                    "data": [float(r["value"]) if r["value"] is not None else None for r in widget["data"]],
                    "kind": "bar",
                }
            ],
            "currency": "" if widget["metric"] in ("orders", "new_customers", "email_sends", "sms_sends") else currency,
        }
    elif widget["type"] == "cohort_heatmap":
        field = "cum_net_revenue_per_customer" if widget["metric"] == "revenue" else "retention_rate"
        months = max((m["month"] for c in widget["data"] for m in c["months"]), default=-1)
        view["months"] = list(range(months + 1))
        view["rows"] = [
            {**c, "cells": [next((m[field] for m in c["months"] if m["month"] == k), None) for k in view["months"]]}
            for c in widget["data"]
        ]
    return view


def dashboard_data(merchant, layout: list[dict], date_range: DateRange, masking: Masking = NO_MASKING) -> dict:
    """A saved or starter dashboard: each widget of its layout with its data, shaped for its partial."""
    widgets = mask(selectors.dashboard_widget_list(merchant=merchant, layout=layout, date_range=date_range), masking)
    return {
        "widgets": [_widget_view(w, merchant.currency, date_range) for w in widgets],
        "models": selectors.ATTRIBUTION_MODELS,
        # "<base>overview-daily.csv?..." — reverse() needs a table name, and the widgets supply it.
        "export_base": reverse("dashboards:export_csv", args=[merchant.pk, "x"]).removesuffix("x.csv"),
    }
