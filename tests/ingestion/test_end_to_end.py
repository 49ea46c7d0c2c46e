"""Issue 14's acceptance test: connect a store → pipelines → syncs → raw rows → coalesced dbt build → the
overview metrics API shows exactly what the sandbox's Airbyte wrote.

Everything is real: the connect services (through the sandbox's consent pages, as connectors/demo.py does),
the lifecycle hook, pipeline_sync and job_poll over HTTP to the sandbox's Airbyte, whose worker writes the
simulated world's rows into a scratch warehouse database (AIRBYTE_DESTINATION_*), the coalesced dbt build
on that database, and the API reading the marts there. The expected totals are computed here, from the
records the sandbox reports it wrote (`written_records`), with docs/metrics.md's formulas.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connections
from django.db.utils import load_backend
from django.utils import timezone

from accounts.choices import Role
from analytics.choices import DbtRunStatus
from analytics.services import dbt_build_coalesced
from connectors.choices import Provider
from connectors.demo import demo_connect
from ingestion.choices import JobStatus, PipelineKind
from ingestion.models import Pipeline
from ingestion.services import ingestion_sweep, job_poll, pipeline_follow_store, pipeline_sync
from tests.accounts.factories import MembershipFactory
from tests.analytics.conftest import scratch_db_factory  # noqa: F401  (the scratch warehouse)

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])

TZ = "America/New_York"
HISTORY_DAYS = 14
# The world's frozen "now": late evening in New York (the day's rows all visible by its last hourly sync), some
# days back (so a day later is still the past).
NOW = (dt.datetime.now(ZoneInfo(TZ)) - dt.timedelta(days=4)).replace(hour=23, minute=30, second=0, microsecond=0)
AIRBYTE_PROVIDERS = (Provider.SHOPIFY, Provider.META, Provider.GOOGLE_ADS, Provider.KLAVIYO)
CENT = Decimal("0.01")


@pytest.fixture
def warehouse(scratch_db_factory, settings):  # noqa: F811
    """A scratch database is the warehouse: the sandbox's Airbyte writes into it, dbt builds in it, and the
    dashboards read it (the `warehouse` alias points at it for the test), so no other test's marts move."""
    db = scratch_db_factory()
    settings.AIRBYTE_DESTINATION_HOST = db["host"]
    settings.AIRBYTE_DESTINATION_PORT = db["port"]
    settings.AIRBYTE_DESTINATION_DATABASE = db["dbname"]
    settings.AIRBYTE_DESTINATION_USER = db["user"]
    settings.AIRBYTE_DESTINATION_PASSWORD = db["password"]
    settings.AIRBYTE_DESTINATION_SSL_MODE = "disable"
    previous = connections["warehouse"]
    own = {**previous.settings_dict, "NAME": db["dbname"], "HOST": db["host"], "PORT": db["port"]}
    own["USER"], own["PASSWORD"] = db["user"], db["password"]
    wrapper = load_backend(own["ENGINE"]).DatabaseWrapper(own, "warehouse")
    connections["warehouse"] = wrapper
    yield db
    wrapper.close()
    connections["warehouse"] = previous


@pytest.fixture
def eager():
    """Tasks run inline where they are enqueued: the connect → lifecycle hook → pipeline path."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def _sync_all(airbyte, pipelines: list[Pipeline]) -> None:
    """Each pipeline due, as the sweep sees it; its sync triggered and followed to its end, the job advanced
    through the sandbox."""
    assert sorted(ingestion_sweep().sync) == sorted(p.pk for p in pipelines)
    for pipeline in pipelines:
        job = pipeline_sync(pipeline_id=pipeline.pk)
        assert job is not None, pipeline.source_type
        airbyte.advance(job.airbyte_job_id)  # running
        assert job_poll(job_id=job.pk).status == JobStatus.RUNNING
        airbyte.advance(job.airbyte_job_id, "succeeded")
        assert job_poll(job_id=job.pk).status == JobStatus.SUCCEEDED


class Expected:
    """What the sandbox wrote, deduplicated the way staging does (latest version of each record)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[tuple, dict]] = defaultdict(dict)

    def take_rates(self, airbyte, connection_id: str) -> None:
        for record in airbyte.written_records(connection_id, "rates"):
            self.records["rates"][(record["date"],)] = record

    def _rate(self, day: dt.date, currency: str, shop_currency: str = "USD") -> Decimal:
        """Shop currency per unit of `currency`: the latest published rate on or before the day, else the first."""
        if currency == shop_currency:
            return Decimal(1)
        dated = sorted(self.records["rates"].values(), key=lambda r: r["date"])
        on_or_before = [r for r in dated if dt.date.fromisoformat(r["date"]) <= day] or dated[:1]
        rates = on_or_before[-1]["rates"]
        rates = json.loads(rates) if isinstance(rates, str) else rates
        return Decimal(str(rates[shop_currency])) / Decimal(str(rates[currency]))

    def take(self, airbyte, pipelines: list[Pipeline]) -> None:
        streams = {
            Provider.SHOPIFY: {"orders": ("id",), "order_refunds": ("id",)},
            Provider.META: {"ads_insights": ("date_start", "account_id", "ad_id")},
            Provider.GOOGLE_ADS: {"campaign": ("campaign_id", "segments_date", "segments_ad_network_type",
                                               "segments_device"), "customer": ("customer_id", "segments_date")},
        }  # fmt: skip
        for pipeline in pipelines:
            for stream, key in streams.get(pipeline.credential.provider, {}).items():
                for record in airbyte.written_records(pipeline.connection_id, stream):
                    self.records[stream][tuple(record[k] for k in key)] = record  # a later sync's version wins

    def totals(self, start: dt.date, end: dt.date) -> dict:
        tz = ZoneInfo(TZ)
        refunds: dict[str, Decimal] = defaultdict(Decimal)
        for refund in self.records["order_refunds"].values():
            lines = refund["refund_line_items"]
            for line in json.loads(lines) if isinstance(lines, str) else lines or []:
                refunds[str(refund["order_id"])] += Decimal(str(line["subtotal"]))
        net, orders, first_order = Decimal(0), 0, {}
        revenue_orders = [  # test and cancelled orders are not revenue orders
            o for o in self.records["orders"].values() if o["test"] not in (True, "t", "true") and not o["cancelled_at"]
        ]
        for order in sorted(revenue_orders, key=lambda o: o["created_at"]):
            day = dt.datetime.fromisoformat(order["created_at"]).astimezone(tz).date()
            customer = _customer_id(order)
            if customer and customer not in first_order:
                first_order[customer] = day
            if start <= day <= end:
                orders += 1
                net += (
                    Decimal(order["total_line_items_price"])
                    - Decimal(order["total_discounts"])
                    - refunds[str(order["id"])]
                )
        # Ad spend: per campaign-day in the account currency, then converted and rounded (fct_ad_spend_daily).
        spend = Decimal(0)
        meta: dict[tuple, Decimal] = defaultdict(Decimal)
        for row in self.records["ads_insights"].values():
            if start <= dt.date.fromisoformat(row["date_start"]) <= end:
                meta[(row["campaign_id"], row["date_start"], row["account_currency"])] += Decimal(row["spend"])
        for (_, day, currency), amount in meta.items():
            spend += (amount * self._rate(dt.date.fromisoformat(day), currency)).quantize(CENT, ROUND_HALF_UP)
        google_currency = {r["customer_id"]: r["customer_currency_code"] for r in self.records["customer"].values()}
        micros: dict[tuple, int] = defaultdict(int)
        for row in self.records["campaign"].values():
            if start <= dt.date.fromisoformat(row["segments_date"]) <= end:
                key = (row["customer_id"], row["campaign_id"], row["segments_date"])
                micros[key] += int(row["metrics_cost_micros"])
        for (customer, _, day), total in micros.items():
            amount = (Decimal(total) / 1_000_000).quantize(CENT, ROUND_HALF_UP)
            rate = self._rate(dt.date.fromisoformat(day), google_currency[customer])
            spend += (amount * rate).quantize(CENT, ROUND_HALF_UP)
        return {
            "net_revenue": str(net.quantize(CENT)),
            "orders": orders,
            "new_customers": sum(1 for day in first_order.values() if start <= day <= end),
            "ad_spend": str(spend.quantize(CENT)),
        }


def _customer_id(order: dict) -> str | None:
    customer = order.get("customer")
    if isinstance(customer, str):
        customer = json.loads(customer) if customer else None
    return str(customer["id"]) if customer and customer.get("id") else None


def _overview(client, clerk, membership, start: dt.date, end: dt.date) -> dict:
    response = client.get(
        f"/api/merchants/{membership.merchant.pk}/metrics/overview/",
        {"start": start.isoformat(), "end": end.isoformat()},
        **clerk.auth_header(membership.clerk_user_id),
    )
    assert response.status_code == 200, response.content
    kpis = response.json()["kpis"]["current"]
    return {key: kpis[key] for key in ("net_revenue", "orders", "new_customers", "ad_spend")}


def _build() -> None:
    runs = dbt_build_coalesced()
    assert runs and all(run.status == DbtRunStatus.SUCCESS for run in runs), [
        (run.status, run.error, run.failures[:3]) for run in runs
    ]


def test_a_connected_store_s_synced_data_reaches_the_overview_api(
    warehouse, eager, airbyte, providers, clerk, sandbox, client, settings
):
    airbyte.world(history_days=HISTORY_DAYS, orders_per_day=3, timezone=TZ, currency="USD", start_date=None)
    airbyte.set_clock(NOW.isoformat())
    membership = MembershipFactory(
        clerk_user_id=clerk.user("user_e2e_owner"), role=Role.OWNER, merchant__timezone=TZ, merchant__currency="USD",
        # The world a source reads is named by its shop (ad account, ...): the same store whatever ran before.
        merchant__shop_domain="e2e-outfitters.myshopify.com", merchant__key="e2e_outfitters",
    )  # fmt: skip
    demo_connect(membership=membership, app_url="http://testserver", control=sandbox)

    # The lifecycle made one pipeline per Airbyte source, into the store's raw schema.
    pipelines = list(Pipeline.objects.filter(merchant=membership.merchant).select_related("credential"))
    assert sorted(p.credential.provider for p in pipelines) == sorted(AIRBYTE_PROVIDERS)
    assert all(p.connection_id for p in pipelines)

    # The store has ad accounts (the sandbox's Google Ads one bills in EUR): the sweeper makes its exchange rates'
    # pipeline, our source and key, not a credential's.
    assert ingestion_sweep().follow_store == [membership.merchant.pk]
    fx = pipeline_follow_store(merchant_id=membership.merchant.pk)
    assert (fx.kind, fx.credential, fx.source_type, fx.sync_interval_seconds) == (
        PipelineKind.EXCHANGE_RATES, None, "exchange-rates", 86400,
    )  # fmt: skip
    pipelines = [fx, *pipelines]
    _sync_all(airbyte, pipelines)
    expected = Expected()
    expected.take_rates(airbyte, fx.connection_id)
    expected.take(airbyte, pipelines[1:])  # the rates are taken above
    assert expected.records["orders"] and expected.records["ads_insights"] and expected.records["campaign"]
    _build()

    today = NOW.date()
    first = today - dt.timedelta(days=HISTORY_DAYS - 1)
    assert _overview(client, clerk, membership, first, today) == expected.totals(first, today)
    assert _overview(client, clerk, membership, today, today) == expected.totals(today, today)

    # A day later: one more simulated day lands, and the API shows it.
    airbyte.set_clock((NOW + dt.timedelta(days=1)).isoformat())
    # The next hourly slot has come (the sweep's own clock is the wall clock's).
    Pipeline.objects.filter(merchant=membership.merchant).update(next_sync_at=timezone.now() - dt.timedelta(seconds=1))
    _sync_all(airbyte, pipelines)
    expected.take_rates(airbyte, fx.connection_id)
    expected.take(airbyte, pipelines[1:])  # the rates are taken above
    _build()
    tomorrow = today + dt.timedelta(days=1)
    new_day = expected.totals(tomorrow, tomorrow)
    assert new_day["orders"] > 0
    assert _overview(client, clerk, membership, tomorrow, tomorrow) == new_day
    assert _overview(client, clerk, membership, first, tomorrow) == expected.totals(first, tomorrow)
