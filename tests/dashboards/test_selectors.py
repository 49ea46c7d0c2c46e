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


def test_data_freshness_is_the_latest_built_sync_per_source_in_one_query(alpine, django_assert_num_queries):
    from django.utils import timezone

    from analytics.models import DbtRun, RawDataChange

    empty = selectors.data_freshness_get(merchant=alpine)
    assert (empty.data_as_of, empty.sources, empty.built_at) == (None, [], None)  # no sync yet

    now = timezone.now().replace(microsecond=0)
    hours = lambda n: now - dt.timedelta(hours=n)  # noqa: E731
    build = DbtRun.objects.create(
        command="build", triggered_by="data_changed", status="success", started_at=hours(1), finished_at=hours(0.5)
    )
    for source, at in (("shopify", hours(2)), ("shopify", hours(3)), ("klaviyo", hours(4)), ("attentive", hours(72))):
        RawDataChange.objects.create(merchant=alpine, source=source, at=at, consumed_by_run=build)
    other = MerchantFactory(key="someone_else")
    RawDataChange.objects.create(merchant=other, source="google_ads", at=hours(1), consumed_by_run=build)
    # Not built yet: a later sync of a built source, a sync a failed build took in, one no build has taken.
    failed = DbtRun.objects.create(
        command="build", triggered_by="data_changed", status="failed", started_at=hours(0.4), finished_at=hours(0.3)
    )
    RawDataChange.objects.create(merchant=alpine, source="shopify", at=hours(0.3), consumed_by_run=failed)
    RawDataChange.objects.create(merchant=alpine, source="meta", at=hours(0.2), consumed_by_run=failed)
    RawDataChange.objects.create(merchant=alpine, source="google_ads", at=hours(0.1))
    # Runs that take no syncs in (and dbt's freshness results) change nothing here.
    DbtRun.objects.create(command="source freshness", status="success", started_at=now, finished_at=now)

    with django_assert_num_queries(1):
        freshness = selectors.data_freshness_get(merchant=alpine)
    assert freshness.built_at == hours(0.5)
    assert freshness.sources == [
        {"source": "attentive", "label": "Attentive", "as_of": hours(72), "stale": True},
        {"source": "klaviyo", "label": "Klaviyo", "as_of": hours(4), "stale": False},
        {"source": "shopify", "label": "Shopify", "as_of": hours(2), "stale": False},
    ]
    assert freshness.data_as_of == hours(72)  # the stalest source is the headline
    assert [s["source"] for s in selectors.data_freshness_get(merchant=other).sources] == ["google_ads"]


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
