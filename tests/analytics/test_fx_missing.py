"""Ad spend billed in a currency the store's exchange rates do not cover (the rates not synced yet, or a
currency they lack) must not break the build for every store: the other stores' numbers are built and right,
the run warns, and the unconvertible spend is left unknown (never counted as zero, never mixed into another
currency). Before this, the error-severity fx_rate test failed and `dbt build` skipped every mart downstream of
fct_ad_spend_daily, for every store."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from analytics.dbt_runner import dbt_invoke
from analytics.raw_schema import create_raw_schema

from .conftest import connect
from .test_dbt_golden import Raw

FINE = {"id": 31, "key": "fx_fine", "timezone": "America/New_York", "currency": "USD"}
NO_RATES = {"id": 32, "key": "fx_missing", "timezone": "America/New_York", "currency": "USD"}
DAY = dt.date(2026, 3, 10)
BUILD = ["build"]  # what the coalesced build runs


def _meta(raw: Raw, *, currency: str, spend: str, day: dt.date = DAY) -> None:
    raw.add(
        "facebook_marketing_ads_insights",
        account_id="act1", account_currency=currency, campaign_id="c1", campaign_name="Prospecting",
        adset_id="as1", ad_id="ad1", ad_name="Ad 1", date_start=day, date_stop=day, spend=Decimal(spend),
        impressions=1000, clicks=20, actions=[], action_values=[],
    )  # fmt: skip


def _google_eur(raw: Raw, *, cost_micros: int, day: dt.date = DAY) -> None:
    raw.add("google_ads_customer", customer_id=555, customer_descriptive_name="EU", customer_currency_code="EUR",
            customer_time_zone="Europe/Berlin", segments_date=day)  # fmt: skip
    raw.add(
        "google_ads_campaign",
        customer_id=555, campaign_id=77, campaign_name="Generic", segments_date=day, segments_ad_network_type="SEARCH",
        segments_device="MOBILE", metrics_clicks=10, metrics_impressions=300, metrics_cost_micros=cost_micros,
        metrics_conversions=1, metrics_conversions_value=Decimal("50"),
    )  # fmt: skip


@pytest.fixture
def built(scratch_db_factory):
    db = scratch_db_factory()
    with connect(db) as conn:
        for merchant in (FINE, NO_RATES):
            create_raw_schema(conn, merchant["key"])
        fine = Raw(conn, FINE)
        _meta(fine, currency="USD", spend="40.00")
        _google_eur(fine, cost_micros=100_000_000)
        fine.add("exchange_rates_rates", date=DAY, base="EUR", rates={"EUR": 1, "USD": 1.10})
        missing = Raw(conn, NO_RATES)
        _meta(missing, currency="USD", spend="12.00")  # in the store's currency: needs no rate
        _google_eur(missing, cost_micros=200_000_000)  # EUR, and this store has no rates at all
        conn.commit()
    result = dbt_invoke(BUILD, merchants=[FINE, NO_RATES], db=db)
    with connect(db) as conn:
        yield result, conn


def test_a_store_without_rates_does_not_stop_the_other_stores_marts(built):
    result, conn = built
    statuses = {r.unique_id: r.status for r in result.results}
    skipped = [node for node, status in statuses.items() if status == "skipped"]
    assert skipped == []  # every mart downstream of the ad spend was built, for every store
    channel = conn.execute(
        "select merchant_id, channel, spend from analytics.fct_channel_daily where date_day = %s order by 1, 2", [DAY]
    ).fetchall()
    assert (FINE["id"], "paid_search", Decimal("110.00")) in channel
    assert (FINE["id"], "paid_social", Decimal("40.00")) in channel


def test_the_unconvertible_spend_is_unknown_not_zero_and_the_store_is_named(built):
    result, conn = built
    spend = conn.execute(
        "select platform, account_currency, spend_account_currency, fx_rate, spend from analytics.fct_ad_spend_daily"
        " where merchant_id = %s order by platform",
        [NO_RATES["id"]],
    ).fetchall()
    assert spend == [
        ("facebook", "USD", Decimal("12.00"), Decimal("1"), Decimal("12.00")),
        ("google_ads", "EUR", Decimal("200.00"), None, None),
    ]
    assert result.success
    [warned] = [r for r in result.results if r.status == "warn"]
    assert warned.unique_id.startswith("test.analytics.fct_ad_spend_daily_fx_rate_known")
    assert [r.unique_id for r in result.results if r.status in ("fail", "error")] == []
