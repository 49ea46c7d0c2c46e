"""`make run`'s demo data arrives through Airbyte (ingestion/demo.py): a demo store connected through the
sandbox's consent pages, its history brought in by the first sync of each pipeline, one build, the API.

Everything is real: connect services, the lifecycle hook, pipeline_sync and job_poll over HTTP to the sandbox's
Airbyte (jobs run on their own here, as under `make run`), its worker writing into a scratch warehouse, dbt.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import psycopg
import pytest

from accounts.choices import Role
from analytics.choices import DbtRunStatus
from analytics.models import DbtRun
from connectors.choices import Provider
from connectors.demo import demo_connect
from ingestion.client import AirbyteClient
from ingestion.demo import DemoIngestFailed, demo_ingest
from ingestion.models import Pipeline, SyncJob
from tests.accounts.factories import MembershipFactory
from tests.analytics.conftest import scratch_db_factory  # noqa: F401  (the scratch warehouse)
from tests.ingestion.test_end_to_end import warehouse  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])

TZ = "America/New_York"
WORLDS = {"demo_e2e": {"days": 6, "orders_per_day": 3, "seed": 1}}
NOW = (dt.datetime.now(ZoneInfo(TZ)) - dt.timedelta(days=2)).replace(hour=22, minute=0, second=0, microsecond=0)


@pytest.fixture
def store(warehouse, airbyte, providers, clerk, sandbox, eager):  # noqa: F811  (the destination first)
    airbyte.configure(pending_seconds=0, running_seconds=0)  # jobs run on their own, as under `make run`
    airbyte.set_clock(NOW.isoformat())
    membership = MembershipFactory(
        clerk_user_id=clerk.user("user_demo_e2e"), role=Role.OWNER, merchant__timezone=TZ, merchant__currency="USD",
        merchant__shop_domain="demo-e2e.myshopify.com", merchant__key="demo_e2e",
    )  # fmt: skip
    demo_connect(membership=membership, app_url="http://testserver", control=sandbox)
    return membership.merchant


def _raw_count(db: dict, merchant, table: str) -> int:
    with psycopg.connect(**db) as conn:
        return conn.execute(f"select count(*) from {merchant.raw_schema}.{table}").fetchone()[0]


def test_the_first_run_syncs_each_pipeline_s_history_from_one_merchant_and_builds(store, warehouse, airbyte):  # noqa: F811
    result = demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)

    pipelines = list(Pipeline.objects.filter(merchant=store, credential__isnull=False).select_related("credential"))
    providers = sorted(p.credential.provider for p in pipelines)
    assert providers == sorted([Provider.SHOPIFY, Provider.META, Provider.GOOGLE_ADS, Provider.KLAVIYO])
    assert all(p.last_synced_at is not None for p in pipelines)
    assert result.built is not None and result.built.status == DbtRunStatus.SUCCESS
    # One simulated merchant behind every source: the Meta, Google and Klaviyo syncs read the Shopify world.
    worlds = {p.credential.provider: airbyte.last_sync(p.connection_id)["identity"] for p in pipelines}
    assert set(worlds.values()) == {"shopify:demo-e2e"}
    # The inputs no sandbox connector carries yet were written from the same world, once.
    seeded = result.seeded["demo_e2e"]
    assert seeded["web_sessions"] == _raw_count(warehouse, store, "web_sessions") > 0
    assert seeded["attentive_email_sent"] == _raw_count(warehouse, store, "attentive_email_sent") > 0
    shopify = next(p for p in pipelines if p.credential.provider == Provider.SHOPIFY)
    orders = {r["id"] for r in airbyte.written_records(shopify.connection_id, "orders")}
    assert len(orders) == _raw_count(warehouse, store, "shopify_orders") > 0


def test_a_second_run_starts_nothing_and_builds_nothing(store, warehouse, airbyte):  # noqa: F811
    demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)
    jobs, builds = SyncJob.objects.count(), DbtRun.objects.count()

    again = demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)

    assert (again.synced, again.seeded, again.built) == ([], {}, None)
    assert (SyncJob.objects.count(), DbtRun.objects.count()) == (jobs, builds)


def test_a_pipeline_airbyte_lost_is_made_again_without_a_second_history_sync(store, warehouse, airbyte):  # noqa: F811
    demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)
    meta = Pipeline.objects.get(merchant=store, credential__provider=Provider.META)
    lost = meta.connection_id
    AirbyteClient().delete_connection(lost)  # a restarted sandbox, or someone's hand in Airbyte's UI

    demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)

    meta.refresh_from_db()
    assert meta.connection_id and meta.connection_id != lost
    assert meta.last_synced_at is not None  # its history is here: the sweeper's next slot syncs the new one
    assert not SyncJob.objects.filter(pipeline=meta, connection_id=meta.connection_id).exists()


def test_a_store_that_is_not_a_demo_store_is_refused(store, warehouse, airbyte):  # noqa: F811
    with pytest.raises(DemoIngestFailed, match="demo_e2e is not a demo store"):
        demo_ingest(merchants=[store], control=airbyte.control)
    assert not SyncJob.objects.exists()
