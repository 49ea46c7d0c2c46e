"""Golden tests: dbt builds hand-built raw rows and the marts hold exactly the expected values.

One ``dbt build`` serves every test in the module (dbt runs cost seconds).
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest

from analytics.dbt_runner import dbt_invoke
from analytics.raw_schema import create_raw_schema, raw_schema_name, table_columns

from .conftest import connect

MERCHANT = {"id": 7, "key": "golden", "timezone": "America/Los_Angeles", "currency": "USD"}
# A second merchant in another timezone and currency: staging unions both raw schemas.
OTHER = {"id": 8, "key": "golden_eu", "timezone": "Europe/Berlin", "currency": "EUR"}
UTC = dt.UTC
T_ORDER = dt.datetime(2026, 3, 20, 18, 0, tzinfo=UTC)  # 11:00 in Los Angeles
EXTRACTED = dt.datetime(2026, 3, 25, 0, 0, tzinfo=UTC)


REFERRER_CHANNELS = [
    ("https://t.co/AbC123", "organic_social"),
    ("https://x.com/shop/status/1", "organic_social"),
    ("https://www.snapchat.com/", "organic_social"),
    ("https://l.facebook.com/l.php?u=x", "organic_social"),
    ("https://lm.facebook.com/", "organic_social"),
    ("https://m.facebook.com/", "organic_social"),
    ("https://lnkd.in/abc", "organic_social"),
    ("https://www.threads.net/@shop", "organic_social"),
    ("https://www.pinterest.co.uk/pin/1", "organic_social"),
    ("https://www.google.co.uk/", "organic_search"),
    ("https://duckduckgo.com/", "organic_search"),
    ("https://www.ecosia.org/search?q=x", "organic_search"),
    ("https://search.yahoo.co.jp/", "organic_search"),
    ("https://yandex.ru/", "organic_search"),
    ("https://notgoogle.com/", "referral"),
    ("https://box.com/", "referral"),
    ("https://google.evil-example.net/", "referral"),
    ("https://blog.example.com/post", "referral"),
]


class Raw:
    """Writes raw rows the way Airbyte lands them (metadata filled in)."""

    def __init__(self, conn, merchant: dict = MERCHANT):
        self.conn = conn
        self.schema = raw_schema_name(merchant["key"])

    def add(self, table: str, *, extracted_at: dt.datetime = EXTRACTED, **values) -> None:
        cols = {name for name, _ in table_columns(table)}
        unknown = set(values) - cols
        assert not unknown, f"{table} has no columns {unknown}"
        row = {
            **values,
            "_airbyte_raw_id": str(uuid.uuid4()),
            "_airbyte_extracted_at": extracted_at,
            "_airbyte_meta": json.dumps({"sync_id": 1, "changes": []}),
            "_airbyte_generation_id": 0,
        }
        names = list(row)
        placeholders = ", ".join(["%s"] * len(names))
        quoted = ", ".join(f'"{n}"' for n in names)
        params = [json.dumps(v) if isinstance(v, dict | list) else v for v in row.values()]
        self.conn.execute(f'insert into "{self.schema}"."{table}" ({quoted}) values ({placeholders})', params)

    def order(
        self,
        order_id: int,
        customer_id: int,
        created_at: dt.datetime,
        *,
        gross: str,
        discount: str = "0",
        updated_at: dt.datetime | None = None,
        extracted_at: dt.datetime = EXTRACTED,
        test: bool = False,
        cancelled_at: dt.datetime | None = None,
        email: str | None = None,
    ) -> None:
        subtotal = Decimal(gross) - Decimal(discount)
        self.add(
            "shopify_orders",
            extracted_at=extracted_at,
            id=order_id,
            name=f"#{order_id}",
            order_number=order_id,
            email=email or f"c{customer_id}@example.com",
            created_at=created_at,
            updated_at=updated_at or created_at,
            processed_at=created_at,
            cancelled_at=cancelled_at,
            currency="USD",
            financial_status="voided" if cancelled_at else "paid",
            total_price=subtotal + Decimal("5.00"),
            subtotal_price=subtotal,
            total_tax=Decimal("0"),
            total_discounts=Decimal(discount),
            total_line_items_price=Decimal(gross),
            total_shipping_price_set={"shop_money": {"amount": "5.00", "currency_code": "USD"}},
            test=test,
            customer={"id": customer_id, "email": email or f"c{customer_id}@example.com"},
            line_items=[{"id": order_id * 10, "price": gross, "quantity": 1}],
            shop_url="golden.myshopify.com",
        )

    def session(
        self,
        session_id: str,
        customer_id: int | None,
        started_at: dt.datetime,
        *,
        anonymous_id: str,
        utm_source: str | None = None,
        utm_medium: str | None = None,
        utm_campaign: str | None = None,
        referrer: str | None = None,
        gclid: str | None = None,
        fbclid: str | None = None,
    ) -> None:
        self.add(
            "web_sessions",
            session_id=session_id,
            anonymous_id=anonymous_id,
            customer_id=customer_id,
            started_at=started_at,
            ended_at=started_at + dt.timedelta(minutes=5),
            landing_page="https://golden.example/",
            referrer=referrer,
            utm_source=utm_source,
            utm_medium=utm_medium,
            utm_campaign=utm_campaign,
            gclid=gclid,
            fbclid=fbclid,
            device="mobile",
            shop_url="golden.myshopify.com",
        )


def build_golden_raw(conn) -> None:
    create_raw_schema(conn, MERCHANT["key"])
    raw = Raw(conn)
    days = dt.timedelta(days=1)

    # Time decay: touches 14, 7 and 0 days before the order (the last one a minute before), plus one
    # 31 days before that the 30-day lookback must drop and one after the order that must be ignored.
    raw.order(1001, 101, T_ORDER, gross="100.00")
    raw.session(
        "s101-31",
        None,
        T_ORDER - 31 * days,
        anonymous_id="anon-101",
        utm_source="google",
        utm_medium="cpc",
        gclid="g1",
        utm_campaign="Brand",
    )
    raw.session(
        "s101-14",
        None,
        T_ORDER - 14 * days,
        anonymous_id="anon-101",
        utm_source="facebook",
        utm_medium="paid_social",
        fbclid="f1",
        utm_campaign="Prospecting",
    )
    raw.session("s101-7", None, T_ORDER - 7 * days, anonymous_id="anon-101", referrer="https://www.google.com/")
    raw.session(
        "s101-0",
        101,
        T_ORDER - dt.timedelta(minutes=1),
        anonymous_id="anon-101",
        utm_source="klaviyo",
        utm_medium="email",
        utm_campaign="newsletter",
    )
    raw.session("s101-after", 101, T_ORDER + dt.timedelta(hours=1), anonymous_id="anon-101")

    # Position based: four touches.
    t2 = T_ORDER + 2 * days
    raw.order(1002, 102, t2, gross="80.00", discount="8.00")
    for i, ago in enumerate([dt.timedelta(days=10), dt.timedelta(days=5), dt.timedelta(days=2), dt.timedelta(hours=1)]):
        raw.session(
            f"s102-{i}",
            102 if i == 3 else None,
            t2 - ago,
            anonymous_id="anon-102",
            utm_source="google",
            utm_medium="cpc",
            gclid=f"g{i}",
            utm_campaign="Generic",
        )

    # A refund processed in a later month lowers the order's own (January) cohort.
    t3 = dt.datetime(2026, 1, 15, 20, 0, tzinfo=UTC)
    raw.order(1003, 103, t3, gross="200.00")
    raw.add(
        "shopify_order_refunds",
        id=90031,
        order_id=1003,
        created_at=dt.datetime(2026, 3, 5, 17, 0, tzinfo=UTC),
        processed_at=dt.datetime(2026, 3, 5, 17, 0, tzinfo=UTC),
        restock=True,
        order_adjustments=[],
        refund_line_items=[{"line_item_id": 10030, "quantity": 1, "subtotal": 50.0, "total_tax": 0.0}],
        transactions=[{"amount": "50.00", "kind": "refund", "status": "success"}],
        shop_url="x",
    )
    raw.order(1013, 103, dt.datetime(2026, 3, 10, 20, 0, tzinfo=UTC), gross="30.00")  # repeat order in month 2

    # Duplicates and later versions: v1, its re-emit, an edited v2, then a stale re-emit of v1 after v2.
    t4 = dt.datetime(2026, 2, 3, 19, 0, tzinfo=UTC)
    raw.order(1004, 104, t4, gross="80.00", extracted_at=t4 + dt.timedelta(hours=1))
    raw.order(1004, 104, t4, gross="80.00", extracted_at=t4 + dt.timedelta(hours=2))
    raw.order(1004, 104, t4, gross="90.00", updated_at=t4 + days, extracted_at=t4 + days + dt.timedelta(hours=1))
    raw.order(1004, 104, t4, gross="80.00", extracted_at=t4 + 3 * days)

    # 23:30 in Los Angeles on 10 February is 07:30 UTC on the 11th: it belongs to 10 February.
    raw.order(1005, 105, dt.datetime(2026, 2, 11, 7, 30, tzinfo=UTC), gross="40.00")

    # Test and cancelled orders on the same day as 1005: flagged and excluded from revenue.
    raw.order(1006, 106, dt.datetime(2026, 2, 10, 20, 0, tzinfo=UTC), gross="500.00", test=True)
    raw.order(
        1007,
        107,
        dt.datetime(2026, 2, 10, 21, 0, tzinfo=UTC),
        gross="700.00",
        cancelled_at=dt.datetime(2026, 2, 10, 22, 0, tzinfo=UTC),
    )

    # Ad spend: Meta restates a day (latest extraction wins); Google Ads bills in EUR on a Saturday, when the
    # latest exchange rate is Friday's.
    for spend, extracted in (("50.00", EXTRACTED), ("55.00", EXTRACTED + days)):
        raw.add(
            "facebook_marketing_ads_insights",
            extracted_at=extracted,
            account_id="act1",
            account_currency="USD",
            campaign_id="fc1",
            campaign_name="Prospecting",
            adset_id="as1",
            ad_id="ad1",
            ad_name="Ad 1",
            date_start=dt.date(2026, 3, 10),
            date_stop=dt.date(2026, 3, 10),
            spend=Decimal(spend),
            impressions=1000,
            clicks=20,
            actions=[{"action_type": "offsite_conversion.fb_pixel_purchase", "value": 2}],
            action_values=[{"action_type": "offsite_conversion.fb_pixel_purchase", "value": 150}],
        )
    raw.add(
        "google_ads_customer",
        customer_id=555,
        customer_descriptive_name="Golden EU",
        customer_currency_code="EUR",
        customer_time_zone="Europe/Berlin",
        segments_date=dt.date(2026, 3, 1),
    )
    for extracted in (EXTRACTED, EXTRACTED + 3 * days):  # re-emitted by a later sync (conversions settle)
        raw.add(
            "google_ads_campaign",
            extracted_at=extracted,
            customer_id=555,
            campaign_id=77,
            campaign_name="Generic",
            segments_date=dt.date(2026, 3, 14),
            segments_ad_network_type="SEARCH",
            segments_device="MOBILE",
            metrics_clicks=10,
            metrics_impressions=300,
            metrics_cost_micros=100_000_000,
            metrics_conversions=1,
            metrics_conversions_value=Decimal("50"),
        )
    raw.add("exchange_rates_rates", date=dt.date(2026, 3, 13), base="EUR", rates={"EUR": 1, "USD": 1.10})
    raw.add("exchange_rates_rates", date=dt.date(2026, 3, 16), base="EUR", rates={"EUR": 1, "USD": 1.20})

    # Email: received a day before order 1002, clicked two hours before it.
    raw.add("klaviyo_metrics", type="metric", id="m_recv", attributes={"name": "Received Email"})
    raw.add("klaviyo_metrics", type="metric", id="m_click", attributes={"name": "Clicked Email"})
    raw.add("klaviyo_profiles", type="profile", id="p102", attributes={"email": "C102@example.com"})
    raw.add(
        "klaviyo_campaigns",
        type="campaign",
        id="camp1",
        attributes={"name": "March drop", "channel": "email"},
    )
    for eid, metric, when in (("e1", "m_recv", t2 - days), ("e2", "m_click", t2 - dt.timedelta(hours=2))):
        raw.add(
            "klaviyo_events",
            type="event",
            id=eid,
            datetime=when,
            attributes={"timestamp": int(when.timestamp()), "event_properties": {"$message": "camp1"}},
            relationships={
                "metric": {"data": {"type": "metric", "id": metric}},
                "profile": {"data": {"type": "profile", "id": "p102"}},
            },
        )

    # A welcome-flow email delivered to p201 late on 10 March (Los Angeles) and opened twice and clicked on
    # 11 March: the opens and the click belong to the 10 March send, never to a day without a delivery.
    # p202 clicks without an open event (images blocked): the click implies the open. A second flow message
    # to p201 on 12 March is never opened.
    raw.add("klaviyo_metrics", type="metric", id="m_open", attributes={"name": "Opened Email"})
    raw.add("klaviyo_flows", type="flow", id="flow1", attributes={"name": "Welcome"})
    sent = dt.datetime(2026, 3, 11, 6, 0, tzinfo=UTC)  # 23:00 on 10 March in Los Angeles
    flow_events = (
        ("f1", "m_recv", "p201", "msg1", sent),
        ("f2", "m_open", "p201", "msg1", sent + dt.timedelta(hours=9)),
        ("f3", "m_open", "p201", "msg1", sent + dt.timedelta(hours=10)),
        ("f4", "m_click", "p201", "msg1", sent + dt.timedelta(hours=10, minutes=1)),
        ("f5", "m_recv", "p202", "msg1", sent),
        ("f6", "m_click", "p202", "msg1", sent + dt.timedelta(hours=12)),
        ("f7", "m_recv", "p201", "msg2", sent + 2 * days),
    )
    for eid, metric, profile, message, when in flow_events:
        raw.add(
            "klaviyo_events",
            type="event",
            id=eid,
            datetime=when,
            attributes={
                "timestamp": int(when.timestamp()),
                "event_properties": {"$flow": "flow1", "$message": message},
            },
            relationships={
                "metric": {"data": {"type": "metric", "id": metric}},
                "profile": {"data": {"type": "profile", "id": profile}},
            },
        )
    # Attentive SMS: sent on 12 March, link clicked twice on 13 March by the same subscriber.
    sms_sent = dt.datetime(2026, 3, 13, 4, 0, tzinfo=UTC)  # 21:00 on 12 March in Los Angeles
    for table, when in (
        ("attentive_sms_sent", sms_sent),
        ("attentive_sms_message_link_click", sms_sent + dt.timedelta(hours=10)),
        ("attentive_sms_message_link_click", sms_sent + dt.timedelta(hours=11)),
    ):
        raw.add(
            table,
            type="sms." + table.removeprefix("attentive_sms_"),
            timestamp=when,
            message_id="att1",
            message_name="Spring SMS",
            message_type="CAMPAIGN",
            message_channel="TEXT",
            subscriber_external_id="sub1",
            subscriber_phone="+15550000001",
        )

    # Referrers, classified by domain suffix (never by substring).
    for i, (referrer, _) in enumerate(REFERRER_CHANNELS):
        raw.session(f"sref-{i}", None, dt.datetime(2026, 2, 20, 18, 0, tzinfo=UTC), anonymous_id=f"anon-ref-{i}",
                    referrer=referrer)  # fmt: skip

    # The other merchant: 23:30 UTC on 1 March is already 2 March in Berlin; same order id, other shop.
    create_raw_schema(conn, OTHER["key"])
    other = Raw(conn, OTHER)
    other.order(1001, 901, dt.datetime(2026, 3, 1, 23, 30, tzinfo=UTC), gross="60.00")
    # Google Ads in micros, one row per network x device: 3 x 1.005 is 3.015 -> 3.02 (not 3 x 1.01 = 3.03).
    other.add("google_ads_customer", customer_id=666, customer_currency_code="EUR", segments_date=dt.date(2026, 3, 1))
    for device in ("MOBILE", "DESKTOP", "TABLET"):
        other.add(
            "google_ads_campaign", customer_id=666, campaign_id=88, campaign_name="Cents",
            segments_date=dt.date(2026, 3, 2), segments_ad_network_type="SEARCH", segments_device=device,
            metrics_cost_micros=1_005_000,
        )  # fmt: skip
    conn.commit()


@pytest.fixture(scope="module")
def golden(scratch_db_factory):
    db = scratch_db_factory()
    with connect(db) as conn:
        build_golden_raw(conn)
    result = dbt_invoke(["build"], merchants=[MERCHANT, OTHER], db=db)
    failures = [(r.unique_id, r.status, r.message) for r in result.results if r.status not in ("success", "pass")]
    assert result.success, failures or result.error
    with connect(db) as conn:
        yield conn


def rows(conn, query: str, *params) -> list[tuple]:
    return conn.execute(query, params).fetchall()


def test_time_decay_weights_halve_every_seven_days(golden):
    got = rows(
        golden,
        """
        select session_id, round(time_decay_weight, 4), touch_count from analytics.attribution_touches
        where merchant_id = 7 and order_id = 1001 order by touch_index""",
    )
    assert got == [
        ("s101-14", Decimal("0.1429"), 3),
        ("s101-7", Decimal("0.2857"), 3),
        ("s101-0", Decimal("0.5714"), 3),
    ]
    view = rows(
        golden,
        "select round(weight, 4) from analytics.time_decay where merchant_id = 7 and order_id = 1001 "
        "order by touch_index",
    )
    assert [w for (w,) in view] == [Decimal("0.1429"), Decimal("0.2857"), Decimal("0.5714")]


def test_position_based_with_four_touches_is_40_10_10_40(golden):
    got = rows(golden, "select weight from analytics.position_based where order_id = 1002 order by touch_index")
    assert [round(w, 4) for (w,) in got] == [Decimal("0.4"), Decimal("0.1"), Decimal("0.1"), Decimal("0.4")]
    linear = rows(golden, "select weight from analytics.multi_touch_linear where order_id = 1002")
    assert sorted(round(w, 4) for (w,) in linear) == [Decimal("0.25")] * 4
    first_last = rows(
        golden,
        """
        select f.touch_index, f.weight, l.weight from analytics.first_touch f
        join analytics.last_touch l using (merchant_id, order_id, touch_index)
        where order_id = 1002 and (f.weight > 0 or l.weight > 0) order by 1""",
    )
    assert first_last == [(1, 1, 0), (4, 0, 1)]


def test_attributed_revenue_is_the_orders_net_revenue(golden):
    got = rows(
        golden,
        """
        select attribution_model, sum(attributed_revenue) from analytics.fct_attribution_daily
        where date_day = '2026-03-22' group by 1 order by 1""",
    )
    assert got == [
        (m, Decimal("72.00"))
        for m in ("first_touch", "last_touch", "multi_touch_linear", "position_based", "time_decay")
    ]
    # order 1001 (net 100.00, three touches in three channels): every model adds up to the cent, also
    # under the linear model (33.33... each), where rounding each channel's share would lose a cent
    whole = rows(
        golden,
        """
        select attribution_model, sum(attributed_revenue) from analytics.fct_attribution_daily
        where date_day = '2026-03-20' group by 1 order by 1""",
    )
    assert whole == [
        (m, Decimal("100.00"))
        for m in ("first_touch", "last_touch", "multi_touch_linear", "position_based", "time_decay")
    ]
    # order 1001 (net 100) under time decay: 14 / 7 / 0 days before the order
    channels = rows(
        golden,
        """
        select channel, attributed_revenue from analytics.fct_attribution_daily
        where date_day = '2026-03-20' and attribution_model = 'time_decay' order by channel""",
    )
    assert [(c, round(v, 2)) for c, v in channels] == [
        ("email", Decimal("57.14")),
        ("organic_search", Decimal("28.57")),
        ("paid_social", Decimal("14.29")),
    ]


def test_refund_in_a_later_month_lowers_the_orders_cohort(golden):
    got = rows(
        golden,
        """
        select months_since_first_order, cohort_size, active_customers, orders, net_revenue,
               cum_net_revenue_per_customer, retention_rate
        from analytics.fct_ltv where cohort_month = '2026-01-01' order by 1""",
    )
    assert got == [
        (0, 1, 1, 1, Decimal("150.00"), Decimal("150.0000"), Decimal("1.0000")),
        (1, 1, 0, 0, Decimal("0.00"), Decimal("150.0000"), Decimal("0.0000")),
        (2, 1, 1, 1, Decimal("30.00"), Decimal("180.0000"), Decimal("1.0000")),
    ]
    refund = rows(golden, "select refund_date, order_date, refund_subtotal from analytics.fct_refunds")
    assert refund == [(dt.date(2026, 3, 5), dt.date(2026, 1, 15), Decimal("50.00"))]


def test_duplicates_and_later_versions_count_once(golden):
    got = rows(golden, "select gross_sales, net_revenue from analytics.fct_orders where order_id = 1004")
    assert got == [(Decimal("90.00"), Decimal("90.00"))]
    day = rows(golden, "select orders, gross_revenue from analytics.fct_daily_summary where date_day = '2026-02-03'")
    assert day == [(1, Decimal("90.00"))]


def test_order_at_2330_local_lands_on_the_local_date(golden):
    got = rows(golden, "select order_date from analytics.fct_orders where order_id = 1005")
    assert got == [(dt.date(2026, 2, 10),)]
    day = rows(
        golden,
        """
        select date_day, orders, net_revenue, new_customers from analytics.fct_daily_summary
        where date_day in ('2026-02-10', '2026-02-11') order by 1""",
    )
    assert day == [(dt.date(2026, 2, 10), 1, Decimal("40.00"), 1), (dt.date(2026, 2, 11), 0, Decimal("0"), 0)]


def test_test_and_cancelled_orders_are_flagged_and_excluded(golden):
    got = rows(
        golden,
        """
        select order_id, is_test, is_cancelled, is_revenue_order, customer_order_seq, new_vs_repeat
        from analytics.fct_orders where order_id in (1006, 1007) order by 1""",
    )
    assert got == [(1006, True, False, False, None, None), (1007, False, True, False, None, None)]
    touched = rows(golden, "select count(*) from analytics.attribution_touches where order_id in (1006, 1007)")
    assert touched == [(0,)]


def test_new_vs_repeat_and_sequence(golden):
    got = rows(
        golden,
        """
        select order_id, customer_order_seq, new_vs_repeat from analytics.fct_orders
        where customer_id = 103 order by 1""",
    )
    assert got == [(1003, 1, "new"), (1013, 2, "repeat")]


def test_ad_spend_restated_and_converted_to_shop_currency(golden):
    got = rows(
        golden,
        """
        select platform, date_day, spend_account_currency, fx_rate, spend, currency, conversions_value
        from analytics.fct_ad_spend_daily where merchant_id = 7 order by platform""",
    )
    assert got == [
        (
            "facebook",
            dt.date(2026, 3, 10),
            Decimal("55.00"),
            Decimal("1"),
            Decimal("55.00"),
            "USD",
            Decimal("150.00"),
        ),
        (
            "google_ads",
            dt.date(2026, 3, 14),
            Decimal("100.00"),
            Decimal("1.10"),
            Decimal("110.00"),
            "USD",
            Decimal("55.00"),
        ),
    ]
    channel = rows(
        golden,
        """
        select channel, spend from analytics.fct_channel_daily where date_day = '2026-03-14'""",
    )
    assert channel == [("paid_search", Decimal("110.00"))]
    # a Google Ads row re-emitted by a later sync and a restated Meta day count once in the summary too
    summary = rows(
        golden,
        """
        select date_day, ad_spend from analytics.fct_daily_summary
        where merchant_id = 7 and date_day in ('2026-03-10', '2026-03-14') order by 1""",
    )
    assert summary == [(dt.date(2026, 3, 10), Decimal("55.00")), (dt.date(2026, 3, 14), Decimal("110.00"))]


def test_email_click_attributes_the_order(golden):
    got = rows(
        golden,
        """
        select provider, campaign_or_flow_name, sum(sends), sum(delivered), sum(clicks), sum(unique_clicks),
               sum(attributed_orders), sum(attributed_revenue)
        from analytics.fct_email_engagement where message_type = 'campaign' group by 1, 2""",
    )
    assert got == [("klaviyo", "March drop", 1, 1, 1, 1, 1, Decimal("72.00"))]


def test_opens_and_clicks_count_on_the_send_date_and_never_exceed_delivered(golden):
    got = rows(
        golden,
        """
        select date_day, campaign_or_flow_name, delivered, opens, unique_opens, clicks, unique_clicks
        from analytics.fct_email_engagement where message_type = 'flow' order by date_day""",
    )
    assert got == [
        (dt.date(2026, 3, 10), "Welcome", 2, 2, 2, 2, 2),
        (dt.date(2026, 3, 12), "Welcome", 1, 0, 0, 0, 0),
    ]
    sms = rows(
        golden,
        "select date_day, delivered, clicks, unique_clicks, unique_opens from analytics.fct_sms_engagement",
    )
    assert sms == [(dt.date(2026, 3, 12), 1, 2, 1, 0)]


def test_sessions_are_stitched_to_the_customer_by_anonymous_id(golden):
    got = rows(
        golden,
        """
        select session_id, customer_id, is_stitched, channel from analytics.fct_sessions
        where anonymous_id = 'anon-101' order by started_at""",
    )
    assert got == [
        ("s101-31", 101, True, "paid_search"),
        ("s101-14", 101, True, "paid_social"),
        ("s101-7", 101, True, "organic_search"),
        ("s101-0", 101, False, "email"),
        ("s101-after", 101, False, "direct"),
    ]


def test_source_freshness_by_hand_checks_each_landed_table_once(golden):
    db = {
        "host": golden.info.host,
        "port": golden.info.port,
        "user": golden.info.user,
        "password": "",
        "dbname": golden.info.dbname,
    }
    # One dbt invocation over the landed tables, all stores together (the hourly alerts per store come from the
    # freshness check); a table no store has landed rows in is not checked.
    result = dbt_invoke(["source", "freshness"], merchants=[MERCHANT, OTHER], db=db)
    by_source = {r.unique_id: r for r in result.freshness}
    orders = by_source["source.analytics.raw.shopify_orders"]
    assert orders.max_loaded_at == EXTRACTED
    assert orders.status == "error"  # landed months ago: past the 48-hour error threshold
    assert all(r.status != "runtime error" for r in result.freshness)  # no empty table checked
    assert not result.success


def test_merchants_are_kept_apart_each_in_its_timezone(golden):
    got = rows(
        golden,
        """
        select merchant_id, order_id, order_date, net_revenue, currency from analytics.fct_orders
        where order_id = 1001 order by merchant_id""",
    )
    assert got == [
        (7, 1001, dt.date(2026, 3, 20), Decimal("100.00"), "USD"),
        (8, 1001, dt.date(2026, 3, 2), Decimal("60.00"), "USD"),
    ]
    day = rows(golden, "select date_day, orders, currency from analytics.fct_daily_summary where merchant_id = 8")
    assert day == [(dt.date(2026, 3, 2), 1, "EUR")]


def test_google_ads_cost_is_summed_in_micros_and_divided_once(golden):
    got = rows(
        golden,
        "select spend_account_currency, spend, currency from analytics.fct_ad_spend_daily"
        " where merchant_id = 8 and campaign_id = '88'",
    )
    assert got == [(Decimal("3.02"), Decimal("3.02"), "EUR")]


def test_referrers_are_classified_by_domain_suffix(golden):
    got = rows(
        golden,
        "select referrer, channel from analytics.fct_sessions where session_id like 'sref-%%'"
        " order by substring(session_id from 6)::int",
    )
    assert got == REFERRER_CHANNELS
