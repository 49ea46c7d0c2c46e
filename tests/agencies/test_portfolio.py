"""The portfolio's figures: the store dashboards' numbers per store, blended totals converted at each day's rate,
costs hidden where the grant says so, and stores without data or with broken connectors shown as such."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connections

from agencies import portfolio
from agencies.portfolio import StoreAccess, portfolio_get, portfolio_tiles_arrange
from connectors.choices import CredentialStatus, Provider
from dashboards.periods import date_range_parse
from dashboards.selectors import overview_get
from tests.accounts.factories import MerchantFactory
from tests.agencies.portfolio_fixtures import *  # noqa: F403 — its fixtures (this module's `agency` is the portfolio's)
from tests.connectors.factories import CredentialFactory

from .portfolio_fixtures import agency_make

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

KEYS = ("net_revenue", "orders", "ad_spend", "mer", "new_customer_cac")


@pytest.fixture
def last_30():
    return date_range_parse({}, timezone="UTC")


def _eur_usd_rate(merchant_id: int, day) -> Decimal:
    """The oracle: the latest USD rate (EUR base) the store published on or before the day, else its first."""
    with connections["warehouse"].cursor() as cursor:
        cursor.execute(
            """
            select rate from analytics_staging.stg_exchange_rates__rates
            where merchant_id = %s and base_currency = 'EUR' and currency = 'USD'
            order by (rate_date <= %s) desc, case when rate_date <= %s then rate_date end desc nulls last, rate_date
            limit 1
            """,
            [merchant_id, day, day],
        )
        return Decimal(cursor.fetchone()[0])


def _daily(merchant_id: int, period) -> list[tuple]:
    with connections["warehouse"].cursor() as cursor:
        cursor.execute(
            "select date_day, net_revenue, ad_spend, new_customers from analytics.fct_daily_summary"
            " where merchant_id = %s and date_day between %s and %s",
            [merchant_id, period.start, period.end],
        )
        return cursor.fetchall()


def test_each_tile_shows_the_store_dashboards_own_figures(alpine, beach, last_30):
    agency = agency_make()
    result = portfolio_get(
        agency=agency, stores=[StoreAccess(alpine, True), StoreAccess(beach, True)], date_range=last_30
    )
    assert [t["name"] for t in result["tiles"]] == ["Alpine Gear", "Beach Things"]
    for tile, merchant in zip(result["tiles"], (alpine, beach), strict=True):
        dashboard = overview_get(merchant=merchant, date_range=last_30)
        assert tile["has_data"] is True and tile["currency"] == merchant.currency
        assert tile["current"] == {k: dashboard["current"][k] for k in KEYS}
        assert tile["comparison"] == {k: dashboard["comparison"][k] for k in KEYS}
        assert tile["change"] == {k: dashboard["change"][k] for k in KEYS}
        assert tile["current"]["net_revenue"] > 0 and tile["current"]["ad_spend"] > 0


def test_blended_totals_convert_each_day_at_its_rate_and_take_ratios_from_converted_sums(alpine, beach, last_30):
    agency = agency_make(currency="USD")
    result = portfolio_get(
        agency=agency, stores=[StoreAccess(alpine, True), StoreAccess(beach, True)], date_range=last_30
    )
    revenue = spend = Decimal(0)
    new = 0
    for _day, net, ad, new_customers in _daily(alpine.pk, last_30.current):
        revenue, spend, new = revenue + net, spend + ad, new + new_customers
    for day, net, ad, new_customers in _daily(beach.pk, last_30.current):  # EUR, converted day by day
        rate = _eur_usd_rate(beach.pk, day)
        revenue, spend, new = revenue + net * rate, spend + ad * rate, new + new_customers
    blended = result["blended"]["current"]
    assert blended["net_revenue"] == revenue.quantize(Decimal("0.01"))
    assert blended["ad_spend"] == spend.quantize(Decimal("0.01"))
    assert blended["orders"] == sum(t["current"]["orders"] for t in result["tiles"])
    assert blended["mer"] == (revenue / spend).quantize(Decimal("0.01"))
    assert blended["new_customer_cac"] == (spend / new).quantize(Decimal("0.01"))
    # Not the mean of the stores' MERs, and not EUR added to USD as if they were one currency.
    naive = sum(t["current"]["net_revenue"] for t in result["tiles"])
    assert blended["net_revenue"] != naive
    assert result["blended"]["stores"] == 2 and result["blended"]["notes"] == []
    assert result["blended"]["change"]["net_revenue"] is not None


def test_a_rate_changes_with_the_day(beach, last_30):
    """The demo's EUR/USD moves day by day: the conversion is not one rate for the whole range."""
    rates = {_eur_usd_rate(beach.pk, day) for day, *_ in _daily(beach.pk, last_30.current)}
    assert len(rates) > 5


def test_in_the_stores_own_currency_nothing_is_converted(beach, last_30):
    agency = agency_make(currency="EUR")
    result = portfolio_get(agency=agency, stores=[StoreAccess(beach, True)], date_range=last_30)
    assert result["blended"]["current"] == result["tiles"][0]["current"]


def test_costs_hidden_by_the_grant_stay_out_of_the_tile_and_the_blended_cost_figures(alpine, beach, last_30):
    agency = agency_make(currency="USD")
    result = portfolio_get(
        agency=agency, stores=[StoreAccess(alpine, True), StoreAccess(beach, False)], date_range=last_30
    )
    alpine_tile, beach_tile = result["tiles"]
    assert {k: beach_tile["current"][k] for k in portfolio.COST_METRICS} == dict.fromkeys(portfolio.COST_METRICS)
    assert beach_tile["current"]["net_revenue"] > 0
    blended = result["blended"]
    # Revenue and orders of both stores; spend, MER and CAC of the store whose costs may be seen only.
    assert blended["current"]["orders"] == alpine_tile["current"]["orders"] + beach_tile["current"]["orders"]
    assert blended["current"]["ad_spend"] == alpine_tile["current"]["ad_spend"]
    assert blended["current"]["mer"] == alpine_tile["current"]["mer"]
    assert blended["current"]["new_customer_cac"] == alpine_tile["current"]["new_customer_cac"]
    assert blended["cost_stores"] == 1 and blended["costs_hidden"] == [beach.pk]
    assert portfolio.COSTS_HIDDEN_NOTE in blended["notes"]


def test_a_store_without_data_or_with_a_broken_connector_is_shown_and_breaks_no_other_tile(alpine, last_30):
    agency = agency_make()
    new_store = MerchantFactory(name="Zebra New", currency="GBP")
    CredentialFactory(merchant=alpine, provider=Provider.META, status=CredentialStatus.NEEDS_REAUTH,
                      account_label="Main ads")  # fmt: skip
    result = portfolio_get(
        agency=agency, stores=[StoreAccess(alpine, True), StoreAccess(new_store, True)], date_range=last_30
    )
    alpine_tile, new_tile = result["tiles"]
    assert alpine_tile["current"] == {k: overview_get(merchant=alpine, date_range=last_30)["current"][k] for k in KEYS}
    assert alpine_tile["problems"] == ["Meta Ads (Main ads): needs reconnecting"]
    assert new_tile["has_data"] is False and new_tile["current"]["orders"] == 0
    assert new_tile["problems"] == [portfolio.NO_DATA_PROBLEM]
    assert new_tile["freshness"]["status"] == "not_connected"
    # GBP with no rates: nothing to convert, nothing left out (it has no days); the blend is Alpine's.
    assert result["blended"]["current"]["net_revenue"] == alpine_tile["current"]["net_revenue"]


def test_tiles_sort_by_any_figure_and_filter_by_problem(alpine, beach, last_30):
    agency = agency_make()
    new_store = MerchantFactory(name="Aardvark New")
    tiles = portfolio_get(
        agency=agency,
        stores=[StoreAccess(alpine, True), StoreAccess(beach, False), StoreAccess(new_store, True)],
        date_range=last_30,
    )["tiles"]
    by_orders = portfolio_tiles_arrange(tiles, sort="orders", descending=True)
    orders = [t["current"]["orders"] for t in by_orders]
    assert orders == sorted(orders, reverse=True)
    # A figure the grant hides sorts last, whichever the direction.
    assert portfolio_tiles_arrange(tiles, sort="mer")[-1]["name"] == "Beach Things"
    assert portfolio_tiles_arrange(tiles, sort="mer", descending=True)[-1]["name"] == "Beach Things"
    assert [t["name"] for t in portfolio_tiles_arrange(tiles)] == ["Aardvark New", "Alpine Gear", "Beach Things"]
    assert [t["name"] for t in portfolio_tiles_arrange(tiles, problem="no_data")] == ["Aardvark New"]
    assert [t["name"] for t in portfolio_tiles_arrange(tiles, problem="none")] == ["Alpine Gear", "Beach Things"]
    assert [t["name"] for t in portfolio_tiles_arrange(tiles, merchant_ids=[beach.pk])] == ["Beach Things"]


def test_the_figures_are_read_in_a_fixed_number_of_queries(alpine, beach, last_30, django_assert_max_num_queries):
    """One statement over the mart for every store, not one per store and metric."""
    agency = agency_make()
    stores = [StoreAccess(alpine, True), StoreAccess(beach, True)]
    stores += [StoreAccess(MerchantFactory(), True) for _ in range(8)]
    with django_assert_max_num_queries(6):  # version, mart, rates, freshness, credentials, pipelines
        portfolio_get(agency=agency, stores=stores, date_range=last_30)


def test_a_store_whose_currency_has_no_rate_is_left_out_of_the_blend_and_named(alpine, beach, last_30):
    """The demo rates have no JPY: neither store converts, so neither is blended (never at a rate of 1)."""
    agency = agency_make(currency="JPY")
    result = portfolio_get(
        agency=agency, stores=[StoreAccess(alpine, True), StoreAccess(beach, True)], date_range=last_30
    )
    blended = result["blended"]
    assert blended["left_out"] == [alpine.pk, beach.pk] and blended["stores"] == 0
    assert blended["current"]["net_revenue"] == 0 and blended["current"]["mer"] is None
    assert portfolio.NO_RATE_NOTE.format(currency="JPY") in blended["notes"]
    assert all(t["converted"] is False and t["current"]["net_revenue"] > 0 for t in result["tiles"])


def test_a_range_before_the_first_rate_converts_at_the_earliest(beach):
    """The window of recent rates holds none on or before the range: the store's whole history is read."""
    import datetime as dt

    first = dt.date.today() - dt.timedelta(days=125)
    date_range = date_range_parse(
        {"start": first.isoformat(), "end": (first + dt.timedelta(days=20)).isoformat()}, timezone="UTC"
    )
    result = portfolio_get(agency=agency_make(currency="USD"), stores=[StoreAccess(beach, True)], date_range=date_range)
    expected = sum(
        (net * _eur_usd_rate(beach.pk, day) for day, net, _, _ in _daily(beach.pk, date_range.current)), Decimal(0)
    )
    assert result["blended"]["left_out"] == [] and expected > 0
    assert result["blended"]["current"]["net_revenue"] == expected.quantize(Decimal("0.01"))
