"""Selectors against real marts: totals match the mart, ratios come from summed parts, merchants never mix."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connections

from dashboards import selectors
from dashboards.periods import date_range_parse
from tests.accounts.factories import MerchantFactory

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


def scalar(sql: str, params: list):
    with connections["warehouse"].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def test_overview_sums_the_daily_mart_and_derives_ratios(alpine):
    dr = date_range_parse({}, timezone=alpine.timezone)
    net, orders, spend, new, returning = scalar(
        "select sum(net_revenue), sum(orders), sum(ad_spend), sum(new_customers), sum(returning_customers)"
        " from analytics.fct_daily_summary where merchant_id = %s and date_day between %s and %s",
        [alpine.pk, dr.current.start, dr.current.end],
    )
    kpis = selectors.overview_get(merchant=alpine, date_range=dr)["current"]
    assert kpis["net_revenue"] == net.quantize(Decimal("0.01"))
    assert kpis["orders"] == orders > 0
    assert kpis["ad_spend"] == spend.quantize(Decimal("0.01"))
    assert kpis["aov"] == (net / orders).quantize(Decimal("0.01"))
    assert kpis["mer"] == (net / spend).quantize(Decimal("0.01"))
    assert kpis["new_customer_cac"] == (spend / new).quantize(Decimal("0.01"))
    assert kpis["blended_cac"] == (spend / (new + returning)).quantize(Decimal("0.01"))
    assert kpis["returning_customer_rate"] == (Decimal(returning) / (new + returning)).quantize(Decimal("0.0001"))


def test_overview_change_is_against_the_previous_period(alpine):
    dr = date_range_parse({"preset": "last_7_days"}, timezone=alpine.timezone)
    result = selectors.overview_get(merchant=alpine, date_range=dr)
    previous = selectors.overview_get(
        merchant=alpine,
        date_range=date_range_parse(
            {"start": str(dr.comparison.start), "end": str(dr.comparison.end)}, timezone=alpine.timezone
        ),
    )
    assert result["comparison"] == previous["current"]
    cur, prev = result["current"]["orders"], result["comparison"]["orders"]
    assert result["change"]["orders"] == ((Decimal(cur) - prev) / prev).quantize(Decimal("0.0001"))


def test_a_merchant_without_data_gets_empty_results_not_errors(db):
    merchant = MerchantFactory()
    dr = date_range_parse({}, timezone=merchant.timezone)
    overview = selectors.overview_get(merchant=merchant, date_range=dr)
    assert overview["has_data"] is False
    assert overview["current"]["orders"] == 0
    assert overview["current"]["mer"] is None
    assert selectors.ltv_cohort_list(merchant=merchant, period=dr.current) == []
    assert selectors.attribution_comparison_list(merchant=merchant, period=dr.current) == []
    assert selectors.engagement_summary_list(merchant=merchant, period=dr.current) == []


def test_merchants_do_not_mix(alpine, beach):
    dr = date_range_parse({}, timezone=alpine.timezone)
    a = selectors.overview_get(merchant=alpine, date_range=dr)["current"]
    b = selectors.overview_get(merchant=beach, date_range=dr)["current"]
    (total,) = scalar(
        "select sum(orders) from analytics.fct_daily_summary where date_day between %s and %s",
        [dr.current.start, dr.current.end],
    )
    assert a["orders"] + b["orders"] == total
    assert a != b


@pytest.mark.parametrize("model", list(selectors.ATTRIBUTION_MODELS))
def test_every_model_credits_the_same_total_revenue(alpine, model):
    dr = date_range_parse({}, timezone=alpine.timezone)
    channels = selectors.attribution_channel_list(merchant=alpine, period=dr.current, model=model)
    total = sum(c["attributed_revenue"] for c in channels)
    (orders_revenue,) = scalar(
        "select sum(attributed_revenue) from analytics.fct_attribution_daily"
        " where merchant_id = %s and attribution_model = 'last_touch' and date_day between %s and %s",
        [alpine.pk, dr.current.start, dr.current.end],
    )
    # Each model splits the same orders' revenue differently. The mart rounds each touch's share, so the
    # totals may differ by a few cents (position_based: 0.12 on 42k over 30 days).
    assert abs(total - orders_revenue) <= orders_revenue * Decimal("0.0001")
    paid = [c for c in channels if c["spend"]]
    assert paid, "the demo data has Meta and Google spend"
    for c in paid:
        assert c["roas"] == (c["attributed_revenue"] / c["spend"]).quantize(Decimal("0.01"))


def test_comparison_matches_each_model_by_channel(alpine):
    dr = date_range_parse({}, timezone=alpine.timezone)
    comparison = {r["channel"]: r for r in selectors.attribution_comparison_list(merchant=alpine, period=dr.current)}
    for model in selectors.ATTRIBUTION_MODELS:
        for row in selectors.attribution_channel_list(merchant=alpine, period=dr.current, model=model):
            assert comparison[row["channel"]]["models"][model]["revenue"] == row["attributed_revenue"]


def test_campaign_drill_down_stays_in_its_channel(alpine):
    dr = date_range_parse({}, timezone=alpine.timezone)
    rows = selectors.attribution_campaign_list(merchant=alpine, period=dr.current, model="last_touch",
                                               channel="paid_social")  # fmt: skip
    assert rows and {r["channel"] for r in rows} == {"paid_social"}


def test_ltv_cohorts_have_months_cac_and_payback(alpine):
    dr = date_range_parse({"preset": "last_12_months"}, timezone=alpine.timezone)
    cohorts = selectors.ltv_cohort_list(merchant=alpine, period=dr.current)
    assert len(cohorts) >= 4
    first = cohorts[0]
    assert [m["month"] for m in first["months"]][:3] == [0, 1, 2]
    revenue = [m["cum_net_revenue_per_customer"] for m in first["months"]]
    assert revenue == sorted(revenue)  # cumulative per customer never falls... unless refunds outweigh orders
    assert first["months"][0]["retention_rate"] == Decimal("1.0000")
    with_spend = [c for c in cohorts if c["cac"]]
    assert with_spend, "the demo data has ad spend in most months"
    assert all(c["ltv_to_cac"] is not None for c in with_spend)
    assert any(c["payback_month"] is not None for c in with_spend)


def test_engagement_rates_come_from_summed_counts(alpine):
    dr = date_range_parse({"preset": "last_90_days"}, timezone=alpine.timezone)
    summary = selectors.engagement_summary_list(merchant=alpine, period=dr.current)
    assert {(r["channel"], r["provider"]) for r in summary} >= {("email", "klaviyo"), ("sms", "attentive")}
    assert {r["message_type"] for r in summary} >= {"campaign", "flow"}
    for r in summary:
        if r["delivered"]:
            assert r["click_rate"] == (Decimal(r["unique_clicks"]) / r["delivered"]).quantize(Decimal("0.0001"))
        if r["unique_opens"]:
            assert r["ctor"] == (Decimal(r["unique_clicks"]) / r["unique_opens"]).quantize(Decimal("0.0001"))


def test_data_freshness_reads_the_latest_successful_runs(alpine):
    from django.utils import timezone

    from analytics.models import DbtRun

    assert selectors.data_freshness_get(merchant=alpine).data_as_of is None
    now = timezone.now()
    DbtRun.objects.create(command="build", status="success", started_at=now, finished_at=now)
    DbtRun.objects.create(
        command="source freshness", status="success", started_at=now, finished_at=now,
        freshness=[
            {"source": "source.analytics.shopify.orders", "merchant_key": alpine.key,
             "max_loaded_at": "2026-11-01T10:00:00+00:00", "status": "pass"},
            {"source": "source.analytics.klaviyo.events", "merchant_key": alpine.key,
             "max_loaded_at": "2026-11-01T08:00:00+00:00", "status": "warn"},
            {"source": "source.analytics.shopify.orders", "merchant_key": "someone_else",
             "max_loaded_at": "2026-11-02T08:00:00+00:00", "status": "pass"},
        ],
    )  # fmt: skip
    DbtRun.objects.create(command="build", status="failed", started_at=now, finished_at=now)
    later = now + dt.timedelta(minutes=5)
    # Runs that build nothing leave the build time alone; an older freshness run is not read.
    DbtRun.objects.create(command="test", status="success", started_at=later, finished_at=later)
    DbtRun.objects.create(
        command="source freshness", status="success", started_at=now - dt.timedelta(days=1), finished_at=now,
        freshness=[{"source": "source.analytics.attentive.sms_sent", "merchant_key": alpine.key,
                    "max_loaded_at": "2026-10-01T08:00:00+00:00", "status": "error"}],
    )  # fmt: skip
    freshness = selectors.data_freshness_get(merchant=alpine)
    assert freshness.built_at == now
    assert [s["source"] for s in freshness.sources] == ["klaviyo.events", "shopify.orders"]
    assert freshness.data_as_of.isoformat() == "2026-11-01T08:00:00+00:00"  # the stalest source
    assert [s["status"] for s in freshness.sources] == ["warn", "pass"]
    assert selectors.data_freshness_get(merchant=MerchantFactory(key="nobody")).sources == []


def test_dashboard_template_get_finds_only_the_merchants_own_template():
    from django.http import Http404

    from dashboards.layouts import PAGE_LAYOUTS
    from dashboards.models import DashboardTemplate

    own, other = MerchantFactory(), MerchantFactory()
    template = DashboardTemplate.objects.create(
        merchant=own, name="Weekly", description="Mondays", layout=PAGE_LAYOUTS["overview"], created_by="user_a"
    )
    found = selectors.dashboard_template_get(merchant=own, template_id=str(template.pk))
    stored = DashboardTemplate.objects.get(pk=template.pk)
    fields = [f.attname for f in DashboardTemplate._meta.concrete_fields]
    assert [getattr(found, f) for f in fields] == [getattr(stored, f) for f in fields]
    assert found.layout == PAGE_LAYOUTS["overview"]  # decoded, not the JSON text
    found.name = "Weekly (edited)"
    found.save()  # an instance like any other: saving updates the row
    assert DashboardTemplate.objects.get(pk=template.pk).name == "Weekly (edited)"
    for merchant, template_id in ((other, template.pk), (own, template.pk + 1), (own, "abc"), (own, None)):
        with pytest.raises(Http404):
            selectors.dashboard_template_get(merchant=merchant, template_id=template_id)
