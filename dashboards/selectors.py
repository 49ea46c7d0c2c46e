"""Reads behind the dashboards and the metrics API: raw SQL over the dbt marts, always filtered by merchant.

Pages and API call the same functions, so they show the same numbers. Ratios are computed here from
summed components (never by averaging daily ratios), and are None when the denominator is zero.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import yaml
from django.conf import settings
from django.db import ProgrammingError, connections
from django.http import Http404
from django.utils import timezone

from accounts.models import Merchant
from analytics.selectors import data_as_of_get
from connectors.choices import Provider
from dashboards.models import DashboardTemplate
from dashboards.periods import DateRange, Period

WAREHOUSE = "warehouse"

ATTRIBUTION_MODELS = {
    "first_touch": "First touch",
    "last_touch": "Last touch",
    "multi_touch_linear": "Linear",
    "position_based": "Position-based (40/20/40)",
    "time_decay": "Time decay",
}


def _dbt_var(name: str) -> int:
    """A var from analytics_dbt/dbt_project.yml, so the page states the window the marts were built with.

    Read once at import; a missing or malformed var fails loudly rather than showing a window the marts
    were not built with."""
    project = yaml.safe_load((settings.BASE_DIR / "analytics_dbt" / "dbt_project.yml").read_text())
    return int(project["vars"][name])


ATTRIBUTION_LOOKBACK_DAYS = _dbt_var("attribution_lookback_days")
TIME_DECAY_HALF_LIFE_DAYS = _dbt_var("time_decay_half_life_days")

OVERVIEW_KPIS = {
    # key: (label, kind) — kind drives formatting: money, count, ratio (x), percent
    "net_revenue": ("Net revenue", "money"),
    "orders": ("Orders", "count"),
    "aov": ("AOV", "money"),
    "new_customers": ("New customers", "count"),
    "returning_customer_rate": ("Returning-customer rate", "percent"),
    "ad_spend": ("Ad spend", "money"),
    "mer": ("MER", "ratio"),
    "blended_cac": ("Blended CAC", "money"),
    "new_customer_cac": ("New-customer CAC", "money"),
}
# Rising is good for these; for the costs, falling is good (tiles colour the change accordingly).
LOWER_IS_BETTER = {"ad_spend", "blended_cac", "new_customer_cac"}

ENGAGEMENT_CHANNELS = ("email", "sms")


class MartsNotBuilt(Exception):
    """The dbt marts do not exist yet (a new deployment before its first `run_dbt build`)."""


UNDEFINED_TABLE = "42P01"


def _rows(sql: str, params: dict) -> list[dict]:
    try:
        with connections[WAREHOUSE].cursor() as cursor:
            cursor.execute(sql, params)
            names = [c.name for c in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    except ProgrammingError as exc:
        if getattr(exc.__cause__, "sqlstate", None) == UNDEFINED_TABLE:
            raise MartsNotBuilt(str(exc.__cause__).splitlines()[0]) from exc
        raise


def _div(numerator, denominator) -> Decimal | None:
    if numerator is None or not denominator:
        return None
    return Decimal(numerator) / Decimal(denominator)


def _q(value: Decimal | None, places: str = "0.01") -> Decimal | None:
    return None if value is None else value.quantize(Decimal(places))


# --- overview ---------------------------------------------------------------------------------------


def _overview_kpis(totals: dict) -> dict[str, Decimal | int | None]:
    net = totals.get("net_revenue") or Decimal(0)
    orders = totals.get("orders") or 0
    new = totals.get("new_customers") or 0
    returning = totals.get("returning_customers") or 0
    spend = totals.get("ad_spend") or Decimal(0)
    return {
        "net_revenue": _q(Decimal(net)),
        "orders": int(orders),
        "aov": _q(_div(net, orders)),
        "new_customers": int(new),
        "returning_customer_rate": _q(_div(returning, new + returning), "0.0001"),
        "ad_spend": _q(Decimal(spend)),
        "mer": _q(_div(net, spend)),
        "blended_cac": _q(_div(spend, new + returning)),
        "new_customer_cac": _q(_div(spend, new)),
    }


def _change(current, previous) -> Decimal | None:
    if current is None or previous is None or previous == 0:
        return None
    return _q((Decimal(current) - Decimal(previous)) / abs(Decimal(previous)), "0.0001")


def overview_get(*, merchant: Merchant, date_range: DateRange) -> dict:
    """KPI values for the range and the comparison range, with the relative change of each."""
    cur = date_range.current
    cmp = date_range.comparison or cur
    rows = _rows(
        """
        select case when date_day between %(cs)s and %(ce)s then 'current' else 'comparison' end as period,
               count(*) as days, sum(orders) as orders, sum(net_revenue) as net_revenue,
               sum(new_customers) as new_customers, sum(returning_customers) as returning_customers,
               sum(ad_spend) as ad_spend
        from analytics.fct_daily_summary
        where merchant_id = %(m)s and (date_day between %(cs)s and %(ce)s or date_day between %(ps)s and %(pe)s)
        group by 1
        """,
        {"m": merchant.pk, "cs": cur.start, "ce": cur.end, "ps": cmp.start, "pe": cmp.end},
    )
    by_period = {r["period"]: r for r in rows}
    current = _overview_kpis(by_period.get("current", {}))
    previous = _overview_kpis(by_period.get("comparison", {})) if date_range.comparison else None
    return {
        "has_data": "current" in by_period,
        "current": current,
        "comparison": previous,
        "change": {k: _change(v, previous[k]) for k, v in current.items()} if previous else None,
    }


def overview_daily_list(*, merchant: Merchant, period: Period) -> list[dict]:
    """One row per local day in the range: net revenue, orders, ad spend."""
    return _rows(
        """
        select date_day, orders, net_revenue, ad_spend, new_customers
        from analytics.fct_daily_summary
        where merchant_id = %(m)s and date_day between %(s)s and %(e)s
        order by date_day
        """,
        {"m": merchant.pk, "s": period.start, "e": period.end},
    )


# --- LTV --------------------------------------------------------------------------------------------


def ltv_cohort_list(*, merchant: Merchant, period: Period) -> list[dict]:
    """Cohorts whose first month falls in the range, each with its months (0 = first month).

    CAC, LTV:CAC and the payback month come from the mart; the LTV:CAC shown is the cohort's latest month.
    """
    rows = _rows(
        """
        select cohort_month, months_since_first_order as month, cohort_size, active_customers, orders,
               net_revenue, cum_net_revenue_per_customer, retention_rate, cac, ltv_to_cac, payback_reached
        from analytics.fct_ltv
        where merchant_id = %(m)s and cohort_month between date_trunc('month', %(s)s::date) and %(e)s
        order by cohort_month, months_since_first_order
        """,
        {"m": merchant.pk, "s": period.start, "e": period.end},
    )
    cohorts: dict[dt.date, dict] = {}
    for row in rows:
        cohort = cohorts.setdefault(
            row["cohort_month"],
            {
                "cohort_month": row["cohort_month"],
                "cohort_size": int(row["cohort_size"]),
                "cac": _q(row["cac"]),
                "ltv_to_cac": None,
                "payback_month": None,
                "months": [],
            },
        )
        cohort["months"].append(
            {
                "month": row["month"],
                "active_customers": int(row["active_customers"]),
                "orders": int(row["orders"]),
                "net_revenue": _q(row["net_revenue"]),
                "cum_net_revenue_per_customer": _q(row["cum_net_revenue_per_customer"]),
                "retention_rate": _q(row["retention_rate"], "0.0001"),
            }
        )
        cohort["ltv_to_cac"] = _q(row["ltv_to_cac"])
        if row["payback_reached"] and cohort["payback_month"] is None:
            cohort["payback_month"] = row["month"]
    return list(cohorts.values())


def cohort_period(period: Period) -> Period:
    """The twelve months of cohorts ending with the month of the period's end."""
    first = period.end.replace(day=1)
    month_index = first.year * 12 + first.month - 1 - 11
    return Period(start=dt.date(month_index // 12, month_index % 12 + 1, 1), end=period.end)


# --- attribution ------------------------------------------------------------------------------------


def attribution_model_get(
    *, merchant: Merchant, period: Period, model: str, channel: str | None = None, campaign_limit: int = 50
) -> dict:
    """One model's channels (attributed orders, revenue, spend, ROAS = revenue / spend) and campaigns.

    Both come from one scan of fct_attribution_daily grouped by channel and campaign (the mart has no
    index, so each scan costs as much as the rest of the page), plus spend from fct_channel_daily.
    Campaigns are limited to `channel` when given.
    """
    if model not in ATTRIBUTION_MODELS:
        raise ValueError(f"unknown attribution model {model!r}")
    params = {"m": merchant.pk, "model": model, "s": period.start, "e": period.end}
    by_campaign = _rows(
        """
        select channel, campaign, sum(attributed_orders) as attributed_orders,
               sum(attributed_revenue) as attributed_revenue
        from analytics.fct_attribution_daily
        where merchant_id = %(m)s and attribution_model = %(model)s and date_day between %(s)s and %(e)s
        group by channel, campaign
        """,
        params,
    )
    spend = {
        r["channel"]: r["spend"]
        for r in _rows(
            """
            select channel, sum(spend) as spend from analytics.fct_channel_daily
            where merchant_id = %(m)s and date_day between %(s)s and %(e)s
            group by channel
            """,
            params,
        )
    }
    totals: dict[str, list[Decimal]] = {name: [Decimal(0), Decimal(0)] for name in spend}
    for r in by_campaign:
        total = totals.setdefault(r["channel"], [Decimal(0), Decimal(0)])
        total[0] += r["attributed_orders"] or 0
        total[1] += r["attributed_revenue"] or 0
    channels = [
        {
            "channel": name,
            "attributed_orders": _q(orders),
            "attributed_revenue": _q(revenue),
            "spend": _q(spend.get(name) or Decimal(0)),
            "roas": _q(_div(revenue, spend.get(name))),
        }
        for name, (orders, revenue) in totals.items()
        if revenue or spend.get(name)
    ]
    channels.sort(key=lambda c: (-c["attributed_revenue"], c["channel"]))
    campaigns = sorted(
        (r for r in by_campaign if channel is None or r["channel"] == channel),
        key=lambda r: (-r["attributed_revenue"], r["channel"], r["campaign"]),
    )
    return {
        "channels": channels,
        "campaigns": [
            {
                "channel": r["channel"],
                "campaign": r["campaign"],
                "attributed_orders": _q(r["attributed_orders"]),
                "attributed_revenue": _q(r["attributed_revenue"]),
            }
            for r in campaigns[:campaign_limit]
        ],
    }


def attribution_channel_list(*, merchant: Merchant, period: Period, model: str) -> list[dict]:
    return attribution_model_get(merchant=merchant, period=period, model=model, campaign_limit=0)["channels"]


def attribution_comparison_list(*, merchant: Merchant, period: Period) -> list[dict]:
    """Channel x every model: attributed revenue and ROAS side by side (from fct_channel_daily)."""
    revenue_sums = ", ".join(f"sum({m}_revenue) as {m}" for m in ATTRIBUTION_MODELS)
    rows = _rows(
        f"""
        select channel, sum(spend) as spend, {revenue_sums}
        from analytics.fct_channel_daily
        where merchant_id = %(m)s and date_day between %(s)s and %(e)s
        group by channel
        order by sum(last_touch_revenue) desc nulls last, channel
        """,  # noqa: S608 — the interpolated names come from ATTRIBUTION_MODELS, not from input
        {"m": merchant.pk, "s": period.start, "e": period.end},
    )
    result = []
    for r in rows:
        models = {
            m: {"revenue": _q(r[m] or Decimal(0)), "roas": _q(_div(r[m] or 0, r["spend"]))} for m in ATTRIBUTION_MODELS
        }
        if r["spend"] or any(v["revenue"] for v in models.values()):
            result.append({"channel": r["channel"], "spend": _q(r["spend"] or Decimal(0)), "models": models})
    return result


def attribution_campaign_list(
    *, merchant: Merchant, period: Period, model: str, channel: str | None = None, limit: int = 50
) -> list[dict]:
    """Campaigns (utm_campaign) under one model, optionally within one channel, by attributed revenue."""
    return attribution_model_get(merchant=merchant, period=period, model=model, channel=channel, campaign_limit=limit)[
        "campaigns"
    ]


# --- email & SMS ------------------------------------------------------------------------------------

_ENGAGEMENT_SUMS = """
    sum(sends) as sends, sum(delivered) as delivered, sum(opens) as opens, sum(unique_opens) as unique_opens,
    sum(clicks) as clicks, sum(unique_clicks) as unique_clicks, sum(bounces) as bounces,
    sum(unsubscribes) as unsubscribes, sum(attributed_orders) as attributed_orders,
    sum(attributed_revenue) as attributed_revenue
"""
_ENGAGEMENT_UNION = """
    (select *, channel as ch from analytics.fct_message_engagement
     where merchant_id = %(m)s and date_day between %(s)s and %(e)s) e
"""


def _engagement_rates(r: dict) -> dict:
    """Open, click and unsubscribe rates over delivered; CTOR = unique clicks / unique opens; bounce over sends."""
    return {
        "sends": int(r["sends"] or 0),
        "delivered": int(r["delivered"] or 0),
        "unique_opens": int(r["unique_opens"] or 0),
        "unique_clicks": int(r["unique_clicks"] or 0),
        "unsubscribes": int(r["unsubscribes"] or 0),
        "bounces": int(r["bounces"] or 0),
        "open_rate": _q(_div(r["unique_opens"], r["delivered"]), "0.0001"),
        "click_rate": _q(_div(r["unique_clicks"], r["delivered"]), "0.0001"),
        "ctor": _q(_div(r["unique_clicks"], r["unique_opens"]), "0.0001"),
        "unsubscribe_rate": _q(_div(r["unsubscribes"], r["delivered"]), "0.0001"),
        "bounce_rate": _q(_div(r["bounces"], r["sends"]), "0.0001"),
        "attributed_orders": int(r["attributed_orders"] or 0),
        "attributed_revenue": _q(r["attributed_revenue"] or Decimal(0)),
    }


def engagement_summary_list(*, merchant: Merchant, period: Period) -> list[dict]:
    """Channel (email/sms) x provider x message type (campaign/flow) totals and rates."""
    rows = _rows(
        f"""
        select ch as channel, provider, coalesce(message_type, 'other') as message_type, {_ENGAGEMENT_SUMS}
        from {_ENGAGEMENT_UNION}
        group by 1, 2, 3
        order by 1, 2, 3
        """,  # noqa: S608 — constant SQL fragments only
        {"m": merchant.pk, "s": period.start, "e": period.end},
    )
    return [
        {"channel": r["channel"], "provider": r["provider"], "message_type": r["message_type"], **_engagement_rates(r)}
        for r in rows
    ]


def engagement_message_list(*, merchant: Merchant, period: Period, limit: int = 25) -> list[dict]:
    """The campaigns and flows with the most attributed revenue (then sends)."""
    rows = _rows(
        f"""
        select ch as channel, provider, coalesce(message_type, 'other') as message_type, campaign_or_flow_id,
               max(campaign_or_flow_name) as name, {_ENGAGEMENT_SUMS}
        from {_ENGAGEMENT_UNION}
        where campaign_or_flow_id <> '(none)'
        group by 1, 2, 3, 4
        order by attributed_revenue desc nulls last, sends desc, campaign_or_flow_id
        limit %(limit)s
        """,  # noqa: S608 — constant SQL fragments only
        {"m": merchant.pk, "s": period.start, "e": period.end, "limit": limit},
    )
    return [
        {
            "channel": r["channel"],
            "provider": r["provider"],
            "message_type": r["message_type"],
            "id": r["campaign_or_flow_id"],
            "name": r["name"] or r["campaign_or_flow_id"],
            **_engagement_rates(r),
        }
        for r in rows
    ]


def engagement_daily_list(*, merchant: Merchant, period: Period) -> list[dict]:
    """Per local day: email and SMS sends and attributed revenue (the trend chart)."""
    rows = _rows(
        f"""
        select date_day,
               sum(sends) filter (where ch = 'email') as email_sends,
               sum(sends) filter (where ch = 'sms') as sms_sends,
               sum(attributed_revenue) filter (where ch = 'email') as email_revenue,
               sum(attributed_revenue) filter (where ch = 'sms') as sms_revenue
        from {_ENGAGEMENT_UNION}
        group by date_day
        order by date_day
        """,  # noqa: S608 — constant SQL fragments only
        {"m": merchant.pk, "s": period.start, "e": period.end},
    )
    return [
        {
            "date_day": r["date_day"],
            "email_sends": int(r["email_sends"] or 0),
            "sms_sends": int(r["sms_sends"] or 0),
            "email_revenue": _q(r["email_revenue"] or Decimal(0)),
            "sms_revenue": _q(r["sms_revenue"] or Decimal(0)),
        }
        for r in rows
    ]


# --- freshness --------------------------------------------------------------------------------------


# A source whose latest built sync is older than DATA_FRESHNESS_ERROR_HOURS is marked stale: the threshold of the
# hourly freshness check's alerts (analytics.services.data_freshness_check), so a badge and an alert agree.


@dataclass(frozen=True)
class DataFreshness:
    built_at: dt.datetime | None  # when the latest build that took syncs in finished
    sources: list[dict]  # [{source, label, as_of (datetime), stale (bool)}] for this merchant, by label

    @property
    def data_as_of(self) -> dt.datetime | None:
        """The stalest source's time: every figure on the page holds data at least this recent. None: no sync."""
        return min((s["as_of"] for s in self.sources), default=None)


def data_freshness_get(*, merchant: Merchant) -> DataFreshness:
    """What the dashboards' header says: per source, the latest sync that a successful build has taken in.

    From what ingestion recorded (analytics.selectors.data_as_of_get: one statement of a few index probes),
    not from dbt's `source freshness` run, which queries every store's every raw table. It changes only when a
    build ends, a new dbt run, so the page cache per dbt run (dashboards/cache.py) holds it exactly as long as it
    is true (the "stale" mark aside, which moves with the clock: a cached page marks it up to 10 minutes late).
    """
    as_of = data_as_of_get(merchant=merchant)
    now = timezone.now()
    stale_after = dt.timedelta(hours=settings.DATA_FRESHNESS_ERROR_HOURS)
    sources = [
        {
            "source": source,
            "label": Provider(source).label if source in Provider.values else source.replace("_", " ").title(),
            "as_of": at,
            "stale": now - at > stale_after,
        }
        for source, at in as_of.sources.items()
    ]
    sources.sort(key=lambda s: s["label"])
    return DataFreshness(built_at=as_of.built_at, sources=sources)


# --- dashboard templates ----------------------------------------------------------------------------


TEMPLATE_NOT_FOUND = "No such dashboard template."


def dashboard_template_list(*, merchant: Merchant):
    return DashboardTemplate.objects.filter(merchant=merchant)


def dashboard_template_get(*, merchant: Merchant, template_id: int) -> DashboardTemplate:
    """The merchant's template, or 404 — the same answer for another merchant's template."""
    try:
        template_id = int(template_id)
    except (ValueError, TypeError):
        raise Http404(TEMPLATE_NOT_FOUND) from None
    try:
        return DashboardTemplate.objects.get(merchant=merchant, pk=template_id)
    except DashboardTemplate.DoesNotExist:
        raise Http404(TEMPLATE_NOT_FOUND) from None


def dashboard_widget_list(*, merchant: Merchant, layout: list[dict], date_range: DateRange) -> list[dict]:
    """Each widget of a (validated) layout with its live data; each underlying query runs at most once."""
    cache: dict[str, object] = {}

    def once(key: str, fn):
        if key not in cache:
            cache[key] = fn()
        return cache[key]

    period = date_range.current
    widgets = []
    for position, widget in enumerate(layout, start=1):
        kind, metric = widget["type"], widget["metric"]
        data: object
        if kind == "kpi":
            overview = once("overview", lambda: overview_get(merchant=merchant, date_range=date_range))
            label, fmt = OVERVIEW_KPIS[metric]
            data = {
                "label": label,
                "kind": fmt,
                "value": overview["current"][metric],
                "change": overview["change"][metric] if overview["change"] else None,
                "lower_is_better": metric in LOWER_IS_BETTER,
            }
        elif kind == "timeseries":
            if metric.startswith(("email_", "sms_")):
                rows = once("engagement_daily", lambda: engagement_daily_list(merchant=merchant, period=period))
            else:
                rows = once("overview_daily", lambda: overview_daily_list(merchant=merchant, period=period))
            data = [{"date_day": r["date_day"], "value": r[metric]} for r in rows]
        elif kind == "cohort_heatmap":
            # Cohorts are monthly: a widget shows the twelve cohorts up to the range's end, whatever its length.
            data = once("ltv", lambda: ltv_cohort_list(merchant=merchant, period=cohort_period(period)))
        elif kind == "attribution_table":
            if metric == "comparison":
                data = once("attr_cmp", lambda: attribution_comparison_list(merchant=merchant, period=period))
            else:
                data = attribution_channel_list(merchant=merchant, period=period, model=metric)
        else:  # engagement_table
            if metric == "summary":
                data = once("eng_summary", lambda: engagement_summary_list(merchant=merchant, period=period))
            else:
                data = once("eng_messages", lambda: engagement_message_list(merchant=merchant, period=period))
        widgets.append({"position": position, **widget, "data": data})
    return widgets
