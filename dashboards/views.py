"""Merchant dashboard pages: parse the date range, call selectors, render. CSV exports stream the same rows."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.http import require_POST

from accounts.views import merchant_member_required
from compliance.choices import ActorType
from compliance.services import Actor, request_context
from config.validators import has_surrogates
from dashboards import selectors
from dashboards.cache import cached, marts_version
from dashboards.exports import csv_lines
from dashboards.forms import DashboardTemplateEditForm, DashboardTemplateSaveForm
from dashboards.layouts import PAGE_LAYOUTS, STARTER_TEMPLATES, WIDGET_METRICS
from dashboards.periods import COMPARISONS, PRESETS, DateRange, Period, date_range_parse
from dashboards.services import (
    DashboardTemplateConflict,
    dashboard_template_apply_record,
    dashboard_template_create,
    dashboard_template_delete,
    dashboard_template_update,
)
from dashboards.shell import Shell, page_html, page_shell
from dashboards.templatetags.dashboards import count, money, percent

LTV_METRICS = {"revenue": "Cumulative net revenue per customer", "retention": "Retention"}
LTV_DEFAULT_PRESET = "last_12_months"  # cohorts are monthly: 30 days would show one or two rows
PAGES = {
    # page: (title, URL name)
    "overview": ("Overview", "dashboards:overview"),
    "ltv": ("LTV cohorts", "dashboards:ltv"),
    "attribution": ("Attribution", "dashboards:attribution"),
    "engagement": ("Email & SMS", "dashboards:engagement"),
    "templates": ("Dashboards", "dashboards:template_list"),
    "custom": ("Dashboard", "dashboards:template_list"),
}


def _date_range(request: HttpRequest, default_preset: str = "last_30_days") -> tuple[DateRange, dict]:
    """The requested range, or the default one together with the field errors that made us fall back."""
    try:
        return date_range_parse(request.GET, timezone=request.merchant.timezone, default_preset=default_preset), {}
    except ValidationError as exc:
        fallback = date_range_parse({}, timezone=request.merchant.timezone, default_preset=default_preset)
        return fallback, exc.message_dict


def _member_context(request: HttpRequest, page: str) -> dict:
    """What the member's own parts of a page show (dashboards/shell.py): their stores."""
    return {
        "merchant": request.merchant,
        "memberships": request.memberships,
        "page_url_name": PAGES[page][1],
    }


def _render(request: HttpRequest, template: str, page: str, context: dict) -> HttpResponse:
    """A dashboards page that is not over the marts (the template list), rendered whole for each request."""
    head = _head_context(request.merchant, None, {}, marts_version(), PAGES[page][0])
    return render(request, template, {**head, **_member_context(request, page), "page": page, **context})


def _head_context(merchant, date_range: DateRange | None, errors: dict, version: str, title: str) -> dict:
    """What dashboards/_head.html shows: the title, the "data as of" badge and the range form."""
    return {
        "merchant": merchant,
        "currency": merchant.currency,
        "page_title": title,
        "date_range": date_range,
        "range_query": urlencode(date_range.as_query()) if date_range else "",
        "range_errors": errors,
        "presets": PRESETS,
        "comparisons": COMPARISONS,
        "freshness": cached(
            ("freshness", merchant.pk, merchant.key, version), lambda: selectors.data_freshness_get(merchant=merchant)
        ),
    }


def _page(
    request: HttpRequest,
    page: str,
    date_range: DateRange,
    errors: dict,
    *,
    data: Callable[[], dict],
    options: tuple = (),
    range_hidden: dict | None = None,
    context: dict | None = None,
) -> HttpResponse:
    """A dashboard page over the marts: dashboards/shell.html with `data()`, and the member's own parts.

    The shell (everything but the top bar's switcher and sign-out form, the messages, the member's CSRF token
    and the page's own URL) is rendered once per merchant, range, options and state of the marts
    (dashboards/cache.py) and reused for every member who asks; see dashboards/shell.py. A range the form
    could not parse is answered without the cache, so arbitrary input cannot crowd out the pages merchants use.
    """
    merchant = request.merchant
    version = marts_version()
    context = context or {}
    title = context.get("page_title") or PAGES[page][0]
    view_name = request.resolver_match.view_name

    def shell() -> Shell:
        head = _head_context(merchant, date_range, errors, version, title)
        return page_shell(
            "dashboards/shell.html",
            {
                **head,
                "page": page,
                "nav_view": view_name,
                "range_hidden": range_hidden or {},
                "body_template": f"dashboards/{page}.html",
                "save_source": _save_source(page, context),
                **context,
                **data(),
            },
        )

    key = (
        "page", page, view_name, title, merchant.pk, merchant.name, merchant.key, merchant.currency, merchant.timezone,
        version, date_range, options,
    )  # fmt: skip
    html = page_html(request, shell() if errors else cached(key, shell), _member_context(request, page))
    return HttpResponse(html, status=400 if errors else 200)


def _save_source(page: str, context: dict) -> str:
    """What "Save as template" on this page copies: the page's own layout, a starter, or a saved template."""
    if page in PAGE_LAYOUTS:
        return f"page:{page}"
    if context.get("starter_key"):
        return f"starter:{context['starter_key']}"
    if context.get("template") is not None:
        return f"template:{context['template'].pk}"
    return ""


def _day(value) -> str:
    return f"{value:%a %b} {value.day}"


def _daily_rows(daily: list[dict], currency: str) -> list[list[str]]:
    """The overview's day table as text: thirty rows through template filters cost more than the SQL."""
    return [
        [_day(r["date_day"]), count(r["orders"]), money(r["net_revenue"], currency), money(r["ad_spend"], currency),
         count(r["new_customers"])]
        for r in daily
    ]  # fmt: skip


def _overview_data(merchant, date_range: DateRange) -> dict:
    kpis = selectors.overview_get(merchant=merchant, date_range=date_range)
    daily = selectors.overview_daily_list(merchant=merchant, period=date_range.current)
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
    chart = {
        "type": "revenue_spend",
        "labels": [r["date_day"].isoformat() for r in daily],
        "series": [
            {"label": "Net revenue", "data": [float(r["net_revenue"]) for r in daily], "kind": "bar"},
            {"label": "Ad spend", "data": [float(r["ad_spend"]) for r in daily], "kind": "line"},
        ],
        "currency": merchant.currency,
    }
    return {"kpis": kpis, "tiles": tiles, "daily_rows": _daily_rows(daily, merchant.currency), "chart": chart}


@merchant_member_required
def overview(request: HttpRequest) -> HttpResponse:
    date_range, errors = _date_range(request)
    return _page(request, "overview", date_range, errors, data=lambda: _overview_data(request.merchant, date_range))


def _ltv_data(merchant, date_range: DateRange, metric: str) -> dict:
    cohorts = selectors.ltv_cohort_list(merchant=merchant, period=date_range.current)
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


@merchant_member_required
def ltv(request: HttpRequest) -> HttpResponse:
    date_range, errors = _date_range(request, default_preset=LTV_DEFAULT_PRESET)
    metric = request.GET.get("metric", "revenue")
    if metric not in LTV_METRICS:
        metric = "revenue"
    return _page(
        request,
        "ltv",
        date_range,
        errors,
        data=lambda: _ltv_data(request.merchant, date_range, metric),
        options=(metric,),
        range_hidden={"metric": metric},
    )


def _attribution_data(merchant, period: Period, model: str, channel: str | None) -> dict:
    by_model = selectors.attribution_model_get(merchant=merchant, period=period, model=model, channel=channel)
    comparison = selectors.attribution_comparison_list(merchant=merchant, period=period)
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


@merchant_member_required
def attribution(request: HttpRequest) -> HttpResponse:
    date_range, errors = _date_range(request)
    model = request.GET.get("model", "last_touch")
    if model not in selectors.ATTRIBUTION_MODELS:
        model = "last_touch"
    channel = request.GET.get("channel") or None
    return _page(
        request,
        "attribution",
        date_range,
        errors,
        data=lambda: _attribution_data(request.merchant, date_range.current, model, channel),
        options=(model, channel),
        range_hidden={"model": model},
    )


def _engagement_data(merchant, period: Period) -> dict:
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


@merchant_member_required
def engagement(request: HttpRequest) -> HttpResponse:
    date_range, errors = _date_range(request)
    return _page(
        request, "engagement", date_range, errors, data=lambda: _engagement_data(request.merchant, date_range.current)
    )


# --- CSV export -------------------------------------------------------------------------------------
# Every table goes through dashboards.exports.csv_lines, which neutralises formulas in text cells.


def _overview_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield ["date", "orders", "net_revenue", "ad_spend", "new_customers", "currency"]
    for r in selectors.overview_daily_list(merchant=merchant, period=dr.current):
        yield [r["date_day"], r["orders"], r["net_revenue"], r["ad_spend"], r["new_customers"], merchant.currency]


def _ltv_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield [
        "cohort_month",
        "month",
        "cohort_size",
        "active_customers",
        "orders",
        "net_revenue",
        "cum_net_revenue_per_customer",
        "retention_rate",
        "cac",
        "ltv_to_cac",
        "payback_month",
        "currency",
    ]
    for c in selectors.ltv_cohort_list(merchant=merchant, period=dr.current):
        for m in c["months"]:
            yield [
                c["cohort_month"],
                m["month"],
                c["cohort_size"],
                m["active_customers"],
                m["orders"],
                m["net_revenue"],
                m["cum_net_revenue_per_customer"],
                m["retention_rate"],
                c["cac"],
                c["ltv_to_cac"],
                c["payback_month"],
                merchant.currency,
            ]


def _attribution_model(params) -> str:
    model = params.get("model", "last_touch")
    return model if model in selectors.ATTRIBUTION_MODELS else "last_touch"


def _attribution_channels_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    model = _attribution_model(params)
    yield ["model", "channel", "attributed_orders", "attributed_revenue", "spend", "roas", "currency"]
    for r in selectors.attribution_channel_list(merchant=merchant, period=dr.current, model=model):
        yield [
            model,
            r["channel"],
            r["attributed_orders"],
            r["attributed_revenue"],
            r["spend"],
            r["roas"],
            merchant.currency,
        ]


def _attribution_comparison_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield (
        ["channel", "spend"]
        + [f"{m}_{k}" for m in selectors.ATTRIBUTION_MODELS for k in ("revenue", "roas")]
        + ["currency"]
    )
    for r in selectors.attribution_comparison_list(merchant=merchant, period=dr.current):
        values = [r["models"][m][k] for m in selectors.ATTRIBUTION_MODELS for k in ("revenue", "roas")]
        yield [r["channel"], r["spend"], *values, merchant.currency]


def _attribution_campaigns_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    model = _attribution_model(params)
    yield ["model", "channel", "campaign", "attributed_orders", "attributed_revenue", "currency"]
    rows = selectors.attribution_campaign_list(
        merchant=merchant, period=dr.current, model=model, channel=params.get("channel") or None, limit=10_000
    )
    for r in rows:
        yield [model, r["channel"], r["campaign"], r["attributed_orders"], r["attributed_revenue"], merchant.currency]


ENGAGEMENT_COLUMNS = [
    "sends",
    "delivered",
    "unique_opens",
    "unique_clicks",
    "bounces",
    "unsubscribes",
    "open_rate",
    "click_rate",
    "ctor",
    "unsubscribe_rate",
    "bounce_rate",
    "attributed_orders",
    "attributed_revenue",
]


def _engagement_summary_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield ["channel", "provider", "message_type", *ENGAGEMENT_COLUMNS, "currency"]
    for r in selectors.engagement_summary_list(merchant=merchant, period=dr.current):
        yield [r["channel"], r["provider"], r["message_type"], *(r[c] for c in ENGAGEMENT_COLUMNS), merchant.currency]


def _engagement_messages_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield ["channel", "provider", "message_type", "id", "name", *ENGAGEMENT_COLUMNS, "currency"]
    for r in selectors.engagement_message_list(merchant=merchant, period=dr.current, limit=10_000):
        yield [
            r["channel"],
            r["provider"],
            r["message_type"],
            r["id"],
            r["name"],
            *(r[c] for c in ENGAGEMENT_COLUMNS),
            merchant.currency,
        ]


def _engagement_daily_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield ["date", "email_sends", "sms_sends", "email_attributed_revenue", "sms_attributed_revenue", "currency"]
    for r in selectors.engagement_daily_list(merchant=merchant, period=dr.current):
        yield [r["date_day"], r["email_sends"], r["sms_sends"], r["email_revenue"], r["sms_revenue"], merchant.currency]


CSV_TABLES: dict[str, tuple[Callable, str]] = {
    "overview-daily": (_overview_csv, "last_30_days"),
    "ltv-cohorts": (_ltv_csv, LTV_DEFAULT_PRESET),
    "attribution-channels": (_attribution_channels_csv, "last_30_days"),
    "attribution-comparison": (_attribution_comparison_csv, "last_30_days"),
    "attribution-campaigns": (_attribution_campaigns_csv, "last_30_days"),
    "engagement-summary": (_engagement_summary_csv, "last_30_days"),
    "engagement-messages": (_engagement_messages_csv, "last_30_days"),
    "engagement-daily": (_engagement_daily_csv, "last_30_days"),
}


@merchant_member_required
def export_csv(request: HttpRequest, table: str) -> HttpResponse:
    if table not in CSV_TABLES:
        raise Http404("No such table.")
    rows_of, default_preset = CSV_TABLES[table]
    try:
        dr = date_range_parse(request.GET, timezone=request.merchant.timezone, default_preset=default_preset)
    except ValidationError as exc:
        lines = [f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
        return HttpResponse("\n".join(lines) + "\n", status=400, content_type="text/plain; charset=utf-8")
    # Materialise the query before streaming so a database error is a 500 here, not a truncated download.
    rows = list(rows_of(request.merchant, dr, request.GET))
    name = f"{request.merchant.key}-{table}-{dr.current.start}-{dr.current.end}.csv"
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


# --- dashboard templates ----------------------------------------------------------------------------


def _actor(request: HttpRequest) -> Actor:
    return Actor(type=ActorType.CLERK_USER, id=request.clerk.user_id, label=request.clerk.user_id)


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
            "series": [{"label": view["title"], "data": [float(r["value"]) for r in widget["data"]], "kind": "bar"}],
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


def _dashboard_page(request: HttpRequest, *, layout: list[dict], title: str, template=None, starter_key=""):
    date_range, errors = _date_range(request)
    merchant = request.merchant

    def data() -> dict:
        widgets = selectors.dashboard_widget_list(merchant=merchant, layout=layout, date_range=date_range)
        return {
            "layout_json": json.dumps(layout, indent=2),
            "widgets": [_widget_view(w, merchant.currency, date_range) for w in widgets],
            "models": selectors.ATTRIBUTION_MODELS,
            # "<base>overview-daily.csv?..." — reverse() needs a table name, and the widgets supply it.
            "export_base": reverse("dashboards:export_csv", args=[merchant.pk, "x"]).removesuffix("x.csv"),
        }

    # A saved template's version changes with every edit of its layout, name or description.
    options = ("template", template.pk, template.version) if template is not None else ("starter", starter_key)
    return _page(
        request,
        "custom",
        date_range,
        errors,
        data=data,
        options=options,
        context={"page_title": title, "template": template, "starter_key": starter_key},
    )


@merchant_member_required
def template_list(request: HttpRequest) -> HttpResponse:
    return _render(
        request,
        "dashboards/template_list.html",
        "templates",
        {
            "templates": selectors.dashboard_template_list(merchant=request.merchant),
            "starters": STARTER_TEMPLATES,
        },
    )


@merchant_member_required
def template_detail(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.dashboard_template_get(merchant=request.merchant, template_id=template_id)
    return _dashboard_page(request, layout=template.layout, title=template.name, template=template)


@merchant_member_required
def starter_detail(request: HttpRequest, key: str) -> HttpResponse:
    if key not in STARTER_TEMPLATES:
        raise Http404("No such starter template.")
    starter = STARTER_TEMPLATES[key]
    return _dashboard_page(request, layout=starter["layout"], title=starter["name"], starter_key=key)


@require_POST
@merchant_member_required
def template_apply(request: HttpRequest) -> HttpResponse:
    """The template picker: record the choice and open the template with live data."""
    choice = request.POST.get("template", "")
    if choice.startswith("starter:") and choice.removeprefix("starter:") in STARTER_TEMPLATES:
        return redirect("dashboards:starter_detail", request.merchant.pk, choice.removeprefix("starter:"))
    template = selectors.dashboard_template_get(merchant=request.merchant, template_id=choice)
    dashboard_template_apply_record(template=template, actor=_actor(request), request_context=request_context(request))
    return redirect("dashboards:template_detail", request.merchant.pk, template.pk)


def _form_error_text(form) -> str:
    return " ".join(message for messages_ in form.errors.values() for message in messages_)


def _back_url(request: HttpRequest) -> str:
    """Where a failed save returns to: the page it came from if that is one of ours, else the template list."""
    back = request.POST.get("back", "")
    if "\x00" in back or has_surrogates(back) or not url_has_allowed_host_and_scheme(back, {request.get_host()}):
        return reverse("dashboards:template_list", args=[request.merchant.pk])
    return back


@require_POST
@merchant_member_required
def template_save(request: HttpRequest) -> HttpResponse:
    """ "Save as template" from a built-in page, a starter or another template."""
    form = DashboardTemplateSaveForm(request.POST)
    if not form.is_valid():
        if "source" in form.errors:
            raise Http404("Nothing to save from.")
        messages.error(request, f"Not saved: {_form_error_text(form)}")
        return redirect(_back_url(request))
    kind, _, key = form.cleaned_data["source"].partition(":")
    if kind == "page" and key in PAGE_LAYOUTS:
        layout = PAGE_LAYOUTS[key]
    elif kind == "starter" and key in STARTER_TEMPLATES:
        layout = STARTER_TEMPLATES[key]["layout"]
    elif kind == "template":
        layout = selectors.dashboard_template_get(merchant=request.merchant, template_id=key).layout
    else:
        raise Http404("Nothing to save from.")
    try:
        template = dashboard_template_create(
            merchant=request.merchant,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            layout=layout,
            actor=_actor(request),
            request_context=request_context(request),
        )
    except (ValidationError, DashboardTemplateConflict) as exc:
        text = exc.message if isinstance(exc, DashboardTemplateConflict) else " ".join(exc.messages)
        messages.error(request, f"Not saved: {text}")
        return redirect(_back_url(request))
    messages.success(request, f"Saved “{template.name}”.")
    return redirect("dashboards:template_detail", request.merchant.pk, template.pk)


@require_POST
@merchant_member_required
def template_edit(request: HttpRequest, template_id: int) -> HttpResponse:
    """Rename or re-lay out a template; the form carries the version it was read at (stale → refused)."""
    template = selectors.dashboard_template_get(merchant=request.merchant, template_id=template_id)
    detail = reverse("dashboards:template_detail", args=[request.merchant.pk, template.pk])
    form = DashboardTemplateEditForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not saved: {_form_error_text(form)}")
        return redirect(detail)
    try:
        template = dashboard_template_update(
            template=template,
            version=form.cleaned_data["version"],
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            layout=form.cleaned_data["layout"],
            actor=_actor(request),
            request_context=request_context(request),
        )
    except (ValidationError, DashboardTemplateConflict) as exc:
        text = exc.message if isinstance(exc, DashboardTemplateConflict) else " ".join(exc.messages)
        messages.error(request, f"Not saved: {text}")
        return redirect(detail)
    messages.success(request, f"Saved “{template.name}” (version {template.version}).")
    return redirect(detail)


@require_POST
@merchant_member_required
def template_delete(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.dashboard_template_get(merchant=request.merchant, template_id=template_id)
    name = template.name
    dashboard_template_delete(template=template, actor=_actor(request), request_context=request_context(request))
    messages.success(request, f"Deleted “{name}”.")
    return redirect("dashboards:template_list", request.merchant.pk)
