"""`make run`'s demo data arrives through Airbyte (ingestion/demo.py): a demo store connected through the
sandbox's consent pages, its history brought in by the first sync of each pipeline, one build, the API.

Everything is real: connect services, the lifecycle hook, pipeline_sync and job_poll over HTTP to the sandbox's
Airbyte (jobs run on their own here, as under `make run`), its worker writing into a scratch warehouse, dbt.
"""

from __future__ import annotations

import collections
import datetime as dt
from zoneinfo import ZoneInfo

import psycopg
import pytest

from accounts.choices import Role
from analytics.choices import DbtRunStatus
from analytics.models import DbtRun
from collector import intake, ratelimit
from collector.models import EventCount
from connectors.choices import Provider
from connectors.demo import demo_connect
from ingestion.client import AirbyteClient
from ingestion.demo import DemoIngestFailed, demo_ingest
from ingestion.models import Pipeline, SyncJob
from sandbox.server import SandboxControlError
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


@pytest.fixture(autouse=True)
def _fresh_collector_state(settings):
    intake.write_keys_forget()
    ratelimit.limiter_reset()
    settings.REDIS_URL = ""
    intake._counts.clear()
    yield
    ratelimit.limiter_reset()
    intake._counts.clear()


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
    assert seeded["attentive_email_sent"] == _raw_count(warehouse, store, "attentive_email_sent") > 0
    # Not the sessions: those are built from the pixel's events the world's visitors sent through the collector.
    assert "web_sessions" not in seeded and "web_events" not in seeded
    assert _raw_count(warehouse, store, "web_events") > 0
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


def _shopify_connection(store) -> str:
    return Pipeline.objects.get(merchant=store, credential__provider=Provider.SHOPIFY).connection_id


def _world_events(control, connection_id: str, limit: int = 5000) -> list[dict]:
    """Every page of the world's pixel events, as the sandbox serves them."""
    events, after = [], None
    while True:
        page = control.airbyte_world_events(connection_id, after=after, limit=limit)
        events.extend(page["events"])
        if page["next"] is None:
            return events
        after = page["next"]


def _web_events(db: dict, merchant) -> list[tuple]:
    with psycopg.connect(**db) as conn:
        return conn.execute(
            f"select event_id, event_name, client_id, order_id, customer_id, utm_source, gclid, fbclid, device "
            f"from {merchant.raw_schema}.web_events order by event_id"
        ).fetchall()


def test_the_world_s_visitors_events_arrive_through_the_collector_every_one_accepted(store, warehouse, airbyte):  # noqa: F811
    result = demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)

    generated = _world_events(airbyte.control, _shopify_connection(store))
    stored = _web_events(warehouse, store)
    assert collections.Counter(row[1] for row in stored) == collections.Counter(e["name"] for e in generated)
    assert {row[0] for row in stored} == {e["event_id"] for e in generated}
    assert len(generated) > 100
    names = {e["name"] for e in generated}
    assert names == {"page_viewed", "product_viewed", "product_added_to_cart", "checkout_started",
                     "checkout_completed"}  # fmt: skip
    posted = result.posted["demo_e2e"]
    assert posted == {"posted": len(generated), "accepted": len(generated), "duplicate": 0, "no_consent": 0,
                      "bot": 0, "batches": posted["batches"]}  # fmt: skip
    assert posted["batches"] >= len(generated) / 500
    # The collector's own counters: every event accepted, none refused, dropped as a bot or without consent.
    counts = EventCount.objects.filter(merchant=store)
    assert sum(c.accepted for c in counts) == len(generated)
    assert sum(c.rejected + c.bot + c.no_consent + c.duplicate for c in counts) == 0
    # Checkouts carry the world's orders: every completed checkout's order is a Shopify order of the store, with
    # its customer; the landing pages carry the sessions' utm and click ids.
    with psycopg.connect(**warehouse) as conn:
        orders = dict(conn.execute(f"select id, (customer->>'id')::bigint from {store.raw_schema}.shopify_orders"))
    completed = [row for row in stored if row[1] == "checkout_completed"]
    assert completed and all(orders.get(row[3]) == row[4] for row in completed)
    assert any(row[5] == "facebook" and row[7] for row in stored)
    assert any(row[5] == "google" and row[6] for row in stored)
    assert {row[8] for row in stored} == {"desktop", "mobile", "tablet"}
    # The build made the store's sessions from those events, and its orders' attribution from the sessions.
    with psycopg.connect(**warehouse) as conn:
        sources = dict(
            conn.execute(
                "select session_source, count(*) from analytics.fct_sessions where merchant_id = %s group by 1",
                [store.pk],
            )
        )
        attributed = dict(
            conn.execute(
                "select channel, sum(attributed_revenue) from analytics.fct_attribution_daily"
                " where merchant_id = %s and attribution_model = 'last_touch' group by 1",
                [store.pk],
            )
        )
    assert set(sources) == {"web_events"} and sources["web_events"] > 0
    assert attributed.get("paid_social", 0) > 0 and attributed.get("paid_search", 0) > 0


def test_a_second_run_posts_nothing_and_a_cut_short_run_is_completed_without_duplicates(store, warehouse, airbyte):  # noqa: F811
    demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)
    stored = _web_events(warehouse, store)

    again = demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)

    assert again.posted == {} and _web_events(warehouse, store) == stored
    # A run that stopped part-way (the last 40 events of the world never stored): the next one posts those.
    with psycopg.connect(**warehouse) as conn:
        conn.execute(
            f"delete from {store.raw_schema}.web_events where event_id in (select event_id from "
            f'{store.raw_schema}.web_events order by seq desc, event_id collate "C" desc limit 40)'
        )

    resumed = demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)

    assert resumed.posted["demo_e2e"]["posted"] == resumed.posted["demo_e2e"]["accepted"] == 40
    assert _web_events(warehouse, store) == stored


def test_the_world_s_events_are_the_same_every_time_and_pages_join_up(store, warehouse, airbyte):  # noqa: F811
    demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)
    connection_id = _shopify_connection(store)
    whole = _world_events(airbyte.control, connection_id)

    airbyte.world(seed=1)  # the same settings again: every world simulated afresh
    assert _world_events(airbyte.control, connection_id, limit=37) == whole
    keys = [(e["seq"], e["event_id"]) for e in whole]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    # Per visitor: a browser's events in time order with a rising seq; a normal browser's user agent.
    by_client = collections.defaultdict(list)
    for e in whole:
        by_client[e["client_id"]].append(e)
    assert all(len({e["user_agent"] for e in es if "iPad" in e["user_agent"]}) <= 1 for es in by_client.values())
    assert all("HeadlessChrome" not in e["user_agent"] and e["consent"]["analytics"] for e in whole)


def test_the_world_events_endpoint_refuses_a_bad_page_request(store, warehouse, airbyte):  # noqa: F811
    demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)
    connection_id = _shopify_connection(store)
    for after, limit, reason in [
        (None, 0, "limit must be an integer from 1 to 10000"),
        (None, 10_001, "limit must be an integer from 1 to 10000"),
        ({"at": "yesterday", "event_id": "w:1"}, 10, "after must be null or"),
        ({"at": 1}, 10, "after must be null or"),
    ]:
        with pytest.raises(SandboxControlError) as refused:
            airbyte.control.airbyte_world_events(connection_id, after=after, limit=limit)
        assert refused.value.status_code == 400 and reason in refused.value.body
    with pytest.raises(SandboxControlError) as missing:
        airbyte.control.airbyte_world_events("no-such-connection")
    assert missing.value.status_code == 404


def test_a_refused_batch_fails_the_demo_and_the_next_run_posts_all(store, warehouse, airbyte, settings):  # noqa: F811
    settings.COLLECTOR_MAX_EVENTS = 10  # every batch of the demo's is refused (400)

    with pytest.raises(DemoIngestFailed, match=r"demo_e2e: the collector answered 400 .*A batch has at most 10 events"):
        demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)

    generated = _world_events(airbyte.control, _shopify_connection(store))
    # The first batch was refused whole, and counted so; nothing was stored, and nothing more was sent.
    assert sum(c.rejected for c in EventCount.objects.filter(merchant=store)) == min(500, len(generated))
    assert sum(c.accepted for c in EventCount.objects.filter(merchant=store)) == 0
    settings.COLLECTOR_MAX_EVENTS = 500
    result = demo_ingest(merchants=[store], control=airbyte.control, worlds=WORLDS)
    assert result.posted["demo_e2e"]["accepted"] == len(generated) == len(_web_events(warehouse, store))
    assert result.built is not None and result.built.status == DbtRunStatus.SUCCESS
