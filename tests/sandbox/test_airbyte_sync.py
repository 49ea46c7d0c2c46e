"""The sandbox's Airbyte writes the simulated world into the Postgres destination it was given, by cursor.

Real parts only: the sandbox over HTTP on loopback, a scratch PostgreSQL database as the destination.
The world is short (14 days, a few orders a day) and its clock is frozen, so every run is identical.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest
import requests

from sandbox.world.world import world_cache_stats, world_identity
from tests.airbyte_sandbox import WORKSPACE_ID, AirbyteSandbox
from tests.analytics.conftest import connect, scratch_db_factory  # noqa: F401  (the fixture, reused)

from .test_airbyte import Api

NOW = "2026-03-14T12:00:00+00:00"
DAY = 86400


def by_id(record: dict) -> int:
    return record["id"]


SHOPIFY_STREAMS = [
    {"name": "orders", "syncMode": "incremental_deduped_history"},
    {"name": "customers", "syncMode": "incremental_append"},
    {"name": "order_refunds", "syncMode": "incremental_deduped_history"},
    {"name": "shop", "syncMode": "full_refresh_overwrite"},
]


@pytest.fixture(scope="module")
def warehouse(scratch_db_factory):  # noqa: F811
    return scratch_db_factory()


@pytest.fixture
def airbyte(control) -> AirbyteSandbox:
    sandbox = AirbyteSandbox(control)
    sandbox.manual_jobs()
    sandbox.world(history_days=14, orders_per_day=6, timezone="America/Los_Angeles")
    sandbox.set_clock(NOW)
    return sandbox


@pytest.fixture
def api(server, airbyte) -> Api:
    return Api(f"{server.url}/airbyte/v1")


@pytest.fixture
def db(warehouse):
    with connect(warehouse, autocommit=True) as conn:
        yield conn
        schemas = conn.execute("select nspname from pg_namespace where nspname like 'raw\\_%'").fetchall()
        for (schema,) in schemas:
            conn.execute(f'drop schema "{schema}" cascade')


def _destination_config(warehouse: dict, **overrides) -> dict:
    return {
        "destinationType": "postgres",
        "host": warehouse["host"],
        "port": warehouse["port"],
        "database": warehouse["dbname"],
        "schema": "public",
        "username": warehouse["user"],
        "password": warehouse["password"] or "no-password-needed",
        "ssl_mode": {"mode": "prefer"},
        **overrides,
    }


def _pipeline(api: Api, destination_id: str, *, source: dict, namespace: str, prefix: str, streams: list) -> str:
    created = api("POST", "/sources", json={"name": namespace, "workspaceId": WORKSPACE_ID, "configuration": source})
    assert created.status_code == 200, created.text
    connection = api(
        "POST",
        "/connections",
        json={
            "sourceId": created.json()["sourceId"],
            "destinationId": destination_id,
            "namespaceDefinition": "custom_format",
            "namespaceFormat": namespace,
            "prefix": prefix,
            "configurations": {"streams": streams},
        },
    )
    assert connection.status_code == 200, connection.text
    return connection.json()["connectionId"]


def _destination(api: Api, warehouse: dict, **overrides) -> str:
    answer = api(
        "POST",
        "/destinations",
        json={
            "name": "warehouse",
            "workspaceId": WORKSPACE_ID,
            "configuration": _destination_config(warehouse, **overrides),
        },
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["destinationId"]


def _shopify(shop: str) -> dict:
    return {"sourceType": "shopify", "shop": shop, "credentials": {"auth_method": "api_password", "api_password": "pw"}}


def _shop_pipeline(api, warehouse, *, shop="acme", namespace="raw_m_42", streams=SHOPIFY_STREAMS) -> str:
    return _pipeline(
        api,
        _destination(api, warehouse),
        source=_shopify(shop),
        namespace=namespace,
        prefix="shopify_",
        streams=streams,
    )


def _run(api: Api, airbyte: AirbyteSandbox, connection_id: str, job_type: str = "sync") -> dict:
    """Trigger a job and let it run to its end (the worker's end: no forced outcome)."""
    created = api("POST", "/jobs", json={"connectionId": connection_id, "jobType": job_type})
    assert created.status_code == 200, created.text
    job = created.json()
    airbyte.advance(job["jobId"])
    airbyte.advance(job["jobId"])
    return api("GET", f"/jobs/{job['jobId']}").json()


def _count(db, query: str, *args) -> int:
    return db.execute(query, args).fetchone()[0]


def test_first_sync_writes_the_history_and_reports_rows_and_bytes(api, airbyte, warehouse, db):
    connection_id = _shop_pipeline(api, warehouse)
    job = _run(api, airbyte, connection_id)
    assert job["status"] == "succeeded"
    report = airbyte.last_sync(connection_id)
    streams = report["streams"]
    assert set(streams) == {"orders", "customers", "order_refunds", "shop"}
    assert job["rowsSynced"] == report["rows"] == sum(s["rows"] for s in streams.values())
    assert job["bytesSynced"] == report["bytes"] == sum(s["bytes"] for s in streams.values()) > 0
    assert streams["orders"]["table"] == "raw_m_42.shopify_orders" and streams["orders"]["window"][0] is None
    orders = streams["orders"]
    assert orders["rows"] > 40  # two weeks of ~6 orders a day
    # The table holds exactly what the report says: one row per order, the totals the report sums.
    count, distinct, total, extracted, generations, sync_ids = db.execute(
        "select count(*), count(distinct id), sum(total_price),"
        " min(_airbyte_extracted_at) = max(_airbyte_extracted_at),"
        " array_agg(distinct _airbyte_generation_id), array_agg(distinct (_airbyte_meta ->> 'sync_id')::bigint)"
        " from raw_m_42.shopify_orders"
    ).fetchone()
    assert count == distinct == orders["rows"]
    assert total == Decimal(orders["sums"]["total_price"])
    assert extracted and generations == [0] and sync_ids == [job["jobId"]]
    assert _count(db, "select count(*) from raw_m_42.shopify_shop") == 1
    # Two weeks: orders placed since the first day (local midnight, 2026-03-01 in Los Angeles), and older
    # orders only in a version made within the two weeks (fulfilled, cancelled, refunded).
    older, last_created = db.execute(
        "select count(*) filter (where created_at < '2026-03-01 08:00:00+00'"
        " and updated_at < '2026-03-01 08:00:00+00'),"
        " max(created_at) from raw_m_42.shopify_orders"
    ).fetchone()
    assert older == 0
    assert last_created < dt.datetime(2026, 3, 14, 12, tzinfo=dt.UTC)
    assert _count(db, "select count(*) from raw_m_42.shopify_customers") == streams["customers"]["rows"]
    # Nothing changed in the world since: the next sync writes nothing.
    again = _run(api, airbyte, connection_id)
    assert (again["status"], again["rowsSynced"]) == ("succeeded", 1)  # only the full-refresh shop snapshot
    assert _count(db, "select count(*) from raw_m_42.shopify_orders") == count


def test_a_later_sync_writes_only_what_changed_and_equals_one_sync_of_everything(api, airbyte, warehouse, db):
    stepwise = _shop_pipeline(api, warehouse)
    first = _run(api, airbyte, stepwise)
    first_rows = airbyte.last_sync(stepwise)["streams"]
    airbyte.advance_clock(2 * DAY)
    second = _run(api, airbyte, stepwise)
    report = airbyte.last_sync(stepwise)
    orders = report["streams"]["orders"]
    assert orders["window"][0] == first_rows["orders"]["window"][1]  # from where the first sync stopped
    assert 0 < orders["rows"] < first_rows["orders"]["rows"]
    # New orders, and later versions of orders the first sync wrote (fulfilled, refunded, re-emitted).
    later_versions = _count(
        db,
        "select count(*) from raw_m_42.shopify_orders where (_airbyte_meta ->> 'sync_id')::bigint = %s"
        " and created_at < '2026-03-14 12:00:00+00'",
        second["jobId"],
    )
    assert 0 < later_versions < orders["rows"]
    assert _count(db, "select count(*) - count(distinct id) from raw_m_42.shopify_orders") == 0
    written = airbyte.written_records(stepwise, "orders")  # what an end-to-end test recomputes totals from
    assert len(written) == orders["rows"] and sum(Decimal(o["total_price"]) for o in written) == Decimal(
        orders["sums"]["total_price"]
    )
    in_table = db.execute(
        "select id, updated_at, financial_status, test, line_items from raw_m_42.shopify_orders"
        " where (_airbyte_meta ->> 'sync_id')::bigint = %s order by id",
        [second["jobId"]],
    ).fetchall()
    assert [(o["id"], o["financial_status"], o["test"], o["line_items"]) for o in sorted(written, key=by_id)] == [
        (row[0], row[2], row[3], row[4]) for row in in_table
    ]
    appended = _count(
        db,
        "select count(*) from raw_m_42.shopify_customers where (_airbyte_meta ->> 'sync_id')::bigint = %s",
        second["jobId"],
    )
    assert appended == report["streams"]["customers"]["rows"] > 0
    assert second["rowsSynced"] == report["rows"] and first["jobId"] < second["jobId"]

    # One connection that syncs once at the same "now" ends with the same orders and refunds.
    at_once = _shop_pipeline(api, warehouse, namespace="raw_m_43")
    _run(api, airbyte, at_once)
    for table in ("shopify_orders", "shopify_order_refunds"):
        columns = "id, updated_at, financial_status, total_price" if table == "shopify_orders" else "id, order_id"
        rows = [db.execute(f"select {columns} from {schema}.{table} order by id").fetchall()
                for schema in ("raw_m_42", "raw_m_43")]  # fmt: skip
        assert rows[0] == rows[1] and rows[0]


def test_dedup_keeps_one_row_per_key_append_keeps_every_version(api, airbyte, warehouse, db):
    deduped = _shop_pipeline(api, warehouse, streams=[{"name": "orders", "syncMode": "incremental_deduped_history"}])
    appended = _shop_pipeline(
        api, warehouse, namespace="raw_m_43", streams=[{"name": "orders", "syncMode": "incremental_append"}]
    )
    for day in range(3):
        if day:
            airbyte.advance_clock(DAY)
        for connection_id in (deduped, appended):
            assert _run(api, airbyte, connection_id)["status"] == "succeeded"
    dedup_rows, dedup_ids = db.execute("select count(*), count(distinct id) from raw_m_42.shopify_orders").fetchone()
    append_rows, append_ids = db.execute("select count(*), count(distinct id) from raw_m_43.shopify_orders").fetchone()
    assert dedup_rows == dedup_ids == append_ids
    assert append_rows > append_ids  # an order written again when it changed keeps its earlier rows
    # The deduplicated table holds each order's latest version: the highest updated_at the appended one has.
    latest = db.execute("select id, max(updated_at) from raw_m_43.shopify_orders group by id order by id").fetchall()
    assert db.execute("select id, updated_at from raw_m_42.shopify_orders order by id").fetchall() == latest


def test_reset_empties_the_streams_and_the_next_sync_writes_a_new_generation(api, airbyte, warehouse, db):
    connection_id = _shop_pipeline(api, warehouse)
    first = _run(api, airbyte, connection_id)
    orders = _count(db, "select count(*) from raw_m_42.shopify_orders")
    reset = _run(api, airbyte, connection_id, job_type="reset")
    assert (reset["status"], reset["jobType"], reset["rowsSynced"]) == ("succeeded", "reset", 0)
    assert airbyte.last_sync(connection_id)["streams"]["orders"]["generation"] == 1
    assert _count(db, "select count(*) from raw_m_42.shopify_orders") == 0
    assert _count(db, "select count(*) from raw_m_42.shopify_customers") == 0
    again = _run(api, airbyte, connection_id)
    assert again["rowsSynced"] == first["rowsSynced"]  # the whole history again
    assert db.execute(
        "select count(*), array_agg(distinct _airbyte_generation_id) from raw_m_42.shopify_orders"
    ).fetchone() == (orders, [1])
    _run(api, airbyte, connection_id, job_type="clear")
    assert airbyte.last_sync(connection_id)["streams"]["orders"]["generation"] == 2


def test_two_stores_get_different_worlds_and_one_store_always_the_same(api, airbyte, warehouse, db):
    airbyte.world(worlds={"shopify:globex": {"orders_per_day": 2}})  # a smaller store
    acme = _shop_pipeline(api, warehouse, shop="acme")
    globex = _shop_pipeline(api, warehouse, shop="https://globex.myshopify.com", namespace="raw_m_43")
    acme_again = _shop_pipeline(api, warehouse, shop="acme.myshopify.com", namespace="raw_m_44")
    for connection_id in (acme, globex, acme_again):
        _run(api, airbyte, connection_id)
    sums = {c: airbyte.last_sync(c)["streams"]["orders"]["sums"]["total_price"] for c in (acme, globex, acme_again)}
    orders = {c: airbyte.last_sync(c)["streams"]["orders"]["rows"] for c in (acme, globex)}
    assert sums[acme] == sums[acme_again] != sums[globex]
    assert orders[globex] < orders[acme] / 2
    shops = [db.execute(f"select myshopify_domain from {s}.shopify_shop").fetchone()[0]
             for s in ("raw_m_42", "raw_m_43")]  # fmt: skip
    assert shops == ["acme.myshopify.com", "globex.myshopify.com"]
    shared = _count(db, "select count(*) from raw_m_42.shopify_orders a join raw_m_43.shopify_orders b using (id)")
    assert shared == 0


def test_linked_sources_read_one_merchant(api, airbyte, warehouse, db):
    """Linked to the shop, a Meta account's campaigns are the ones the shop's world refers to."""
    airbyte.world(links={"meta:111": "shopify:acme", "meta:222": "shopify:acme"})
    destination_id = _destination(api, warehouse)
    streams = [{"name": "campaigns", "syncMode": "full_refresh_overwrite"}]
    for account, namespace in (("111", "raw_m_42"), ("222", "raw_m_43"), ("333", "raw_m_44")):
        meta = {"sourceType": "facebook-marketing", "account_ids": [account],
                "credentials": {"auth_type": "Service", "access_token": "EAAB-token"}}  # fmt: skip
        connection_id = _pipeline(
            api, destination_id, source=meta, namespace=namespace, prefix="facebook_marketing_", streams=streams
        )
        _run(api, airbyte, connection_id)
        expected = "shopify:acme" if account != "333" else "meta:333"
        assert airbyte.last_sync(connection_id)["identity"] == expected
    campaigns = [db.execute(f"select id, name from {s}.facebook_marketing_campaigns order by id").fetchall()
                 for s in ("raw_m_42", "raw_m_43", "raw_m_44")]  # fmt: skip
    assert campaigns[0] == campaigns[1] and {i for i, _ in campaigns[0]}.isdisjoint({i for i, _ in campaigns[2]})
    assert requests.post(f"{airbyte.url}/_control/airbyte/world", json={"links": ["x"]}, timeout=5).status_code == 400


def test_a_shop_the_sandbox_shopify_knows_lives_in_its_time_zone_and_currency(server, api, airbyte, warehouse, db):
    shop = {"shop": "acme.myshopify.com", "iana_timezone": "Europe/Berlin", "currency": "EUR"}
    assert requests.post(f"{server.url}/_control/shopify/shops", json=shop, timeout=5).status_code == 200
    airbyte.world(links={"meta:111": "shopify:acme"})
    destination_id = _destination(api, warehouse)
    shopify_id = _pipeline(api, destination_id, source=_shopify("acme"), namespace="raw_m_42", prefix="shopify_",
                           streams=[{"name": "shop", "syncMode": "full_refresh_overwrite"}])  # fmt: skip
    meta = {"sourceType": "facebook-marketing", "account_ids": ["111"],
            "credentials": {"auth_type": "Service", "access_token": "EAAB-token"}}  # fmt: skip
    meta_id = _pipeline(api, destination_id, source=meta, namespace="raw_m_42", prefix="facebook_marketing_",
                        streams=[{"name": "ads_insights", "syncMode": "incremental_deduped_history"}])  # fmt: skip
    _run(api, airbyte, shopify_id)
    _run(api, airbyte, meta_id)
    profile = db.execute("select iana_timezone, currency from raw_m_42.shopify_shop").fetchone()
    assert profile == ("Europe/Berlin", "EUR")
    currencies = db.execute("select distinct account_currency from raw_m_42.facebook_marketing_ads_insights").fetchall()
    assert currencies == [("EUR",)]


def test_meta_insights_of_recent_days_are_restated_by_later_syncs(api, airbyte, warehouse, db):
    meta = {
        "sourceType": "facebook-marketing",
        "account_ids": ["111111111111111"],
        "credentials": {"auth_type": "Service", "access_token": "EAAB-token"},
    }
    connection_id = _pipeline(
        api,
        _destination(api, warehouse),
        source=meta,
        namespace="raw_m_42",
        prefix="facebook_marketing_",
        streams=[{"name": "ads_insights", "syncMode": "incremental_deduped_history"}, {"name": "campaigns"}],
    )
    _run(api, airbyte, connection_id)
    before = dict(db.execute("select date_start || ad_id, spend from raw_m_42.facebook_marketing_ads_insights"))
    airbyte.advance_clock(3 * DAY)
    second = _run(api, airbyte, connection_id)
    restated = db.execute(
        "select date_start || ad_id, spend from raw_m_42.facebook_marketing_ads_insights"
        " where (_airbyte_meta ->> 'sync_id')::bigint = %s and date_start < '2026-03-13'",
        [second["jobId"]],
    ).fetchall()
    restated = [(key, spend) for key, spend in restated if key in before]
    assert restated and any(before[key] != spend for key, spend in restated)
    assert (
        _count(
            db,
            "select count(*) from (select 1 from raw_m_42.facebook_marketing_ads_insights"
            " group by date_start, account_id, ad_id having count(*) > 1) d",
        )
        == 0
    )
    assert _count(db, "select count(*) from raw_m_42.facebook_marketing_campaigns") == 2  # full refresh overwrite


def test_an_unreachable_destination_fails_the_job_without_its_password_and_keeps_the_cursor(
    api, airbyte, warehouse, db
):
    destination_id = _destination(api, warehouse, port=1, password="hunter2-warehouse")
    connection_id = _pipeline(
        api, destination_id, source=_shopify("acme"), namespace="raw_m_42", prefix="shopify_", streams=SHOPIFY_STREAMS
    )
    failed = _run(api, airbyte, connection_id)
    assert failed["status"] == "failed" and failed["rowsSynced"] == 0
    detail = airbyte.job(failed["jobId"])
    assert detail["errorType"] == "system_error" and detail["errorOrigin"] == "destination"
    assert detail["errorMessage"].startswith(
        f"Could not connect to the destination postgres://{warehouse['user']}@{warehouse['host']}:1/"
    )
    assert "hunter2" not in detail["errorMessage"] and "hunter2" not in str(airbyte.last_sync(connection_id))
    assert _count(db, "select count(*) from pg_namespace where nspname = 'raw_m_42'") == 0
    # Fixed: the next sync writes the whole history (the failed one moved no cursor).
    api("PATCH", f"/destinations/{destination_id}", json={"configuration": {"port": warehouse["port"]}})
    good = _run(api, airbyte, connection_id)
    assert good["status"] == "succeeded"
    assert airbyte.last_sync(connection_id)["streams"]["orders"]["window"][0] is None


def test_jobs_that_run_by_the_clock_end_when_the_worker_is_done(api, airbyte, warehouse, db):
    connection_id = _shop_pipeline(api, warehouse)
    airbyte.configure(pending_seconds=0, running_seconds=0)
    job = api("POST", "/jobs", json={"connectionId": connection_id, "jobType": "sync"}).json()
    deadline = time.monotonic() + 20
    while job["status"] not in ("succeeded", "failed") and time.monotonic() < deadline:
        time.sleep(0.05)
        job = api("GET", f"/jobs/{job['jobId']}").json()
    assert job["status"] == "succeeded"
    assert job["rowsSynced"] == airbyte.last_sync(connection_id)["rows"] > 0
    assert _count(db, "select count(*) from raw_m_42.shopify_orders") > 0
    # A slow job (scripted timing only) still writes, once its time is over.
    airbyte.script_job(runningSeconds=0.5)
    airbyte.advance_clock(DAY)
    slow = api("POST", "/jobs", json={"connectionId": connection_id, "jobType": "sync"}).json()
    assert api("GET", f"/jobs/{slow['jobId']}").json()["status"] == "running"
    time.sleep(0.7)
    deadline = time.monotonic() + 20
    while (slow := api("GET", f"/jobs/{slow['jobId']}").json())["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow["status"] == "succeeded" and slow["rowsSynced"] == airbyte.last_sync(connection_id)["rows"] > 0
    # An outcome saying how the job ends replaces the worker: nothing written, the scripted numbers reported.
    airbyte.script_job(rowsSynced=5, bytesSynced=50, runningSeconds=0)
    airbyte.advance_clock(DAY)
    scripted = api("POST", "/jobs", json={"connectionId": connection_id, "jobType": "sync"}).json()
    assert (scripted["status"], scripted["rowsSynced"], scripted["bytesSynced"]) == ("succeeded", 5, 50)
    assert airbyte.last_sync(connection_id)["jobId"] == slow["jobId"]


def test_world_and_clock_controls_validate_and_report(server, airbyte):
    base = f"{server.url}/_control/airbyte/world"
    world = requests.get(base, timeout=5).json()
    assert world["history_days"] == 14 and world["orders_per_day"] == 6 and world["timezone"] == "America/Los_Angeles"
    assert world["clock"] == {"now": NOW, "frozen": True}
    assert airbyte.advance_clock(3600)["now"] == "2026-03-14T13:00:00+00:00"
    for bad in ({"history_days": 0}, {"colour": "red"}, {"timezone": "Mars/Olympus"}, {"currency": "usd"},
                {"start_date": "yesterday"}, {"worlds": {"shopify:x": {"orders_per_day": 0}}},
                {"worlds": {"shopify:x": {"links": {}}}}, {"worlds": []}):  # fmt: skip
        assert requests.post(base, json=bad, timeout=5).status_code == 400
    for bad in ({}, {"now": "noon"}, {"now": "2026-03-14T12:00:00"}, {"advance": -1}, {"wall": False},
                {"now": NOW, "advance": 1}):  # fmt: skip
        assert requests.post(f"{base}/clock", json=bad, timeout=5).status_code == 400
    wall = requests.post(f"{base}/clock", json={"wall": True}, timeout=5).json()
    assert wall["frozen"] is False
    assert requests.get(f"{server.url}/_control/airbyte/connections/nope/last-sync", timeout=5).status_code == 404


def test_google_ads_and_klaviyo_streams_land_in_their_tables(server, api, airbyte, warehouse, db):
    destination_id = _destination(api, warehouse)
    key = requests.post(f"{server.url}/_control/klaviyo/keys", json={}, timeout=5).json()
    google = {
        "sourceType": "google-ads",
        "customer_id": "1234567890",
        "credentials": {"developer_token": "dev", "client_id": "cid", "client_secret": "cs", "refresh_token": "rt"},
    }
    google_id = _pipeline(
        api, destination_id, source=google, namespace="raw_m_42", prefix="google_ads_",
        streams=[{"name": "campaign", "syncMode": "incremental_deduped_history"},
                 {"name": "customer", "syncMode": "incremental_deduped_history"}],
    )  # fmt: skip
    klaviyo_id = _pipeline(
        api, destination_id, source={"sourceType": "klaviyo", "api_key": key["api_key"]}, namespace="raw_m_42",
        prefix="klaviyo_", streams=[{"name": n, "syncMode": "incremental_deduped_history"}
                                    for n in ("events", "profiles", "metrics", "flows", "campaigns")],
    )  # fmt: skip
    for connection_id in (google_id, klaviyo_id):
        assert _run(api, airbyte, connection_id)["status"] == "succeeded"
    airbyte.advance_clock(DAY)
    _run(api, airbyte, google_id)
    # Deduplicated on the catalog's key: every campaign keeps a row per day, network and device.
    per_day = db.execute(
        "select count(*) from raw_m_42.google_ads_campaign group by campaign_id, segments_date"
    ).fetchall()
    assert per_day and {n for (n,) in per_day} == {6}
    cost = airbyte.last_sync(google_id)["streams"]["campaign"]["sums"]["metrics_cost_micros"]
    assert isinstance(cost, int) and cost > 0
    assert airbyte.last_sync(google_id)["identity"] == "google:1234567890"
    # A key the sandbox's Klaviyo issued reads its account's world (a rotated key: the same merchant).
    assert airbyte.last_sync(klaviyo_id)["identity"] == f"klaviyo:{key['account_id']}"
    klaviyo = airbyte.last_sync(klaviyo_id)["streams"]
    assert klaviyo["metrics"]["rows"] == 9 and klaviyo["flows"]["rows"] == 4
    assert _count(db, "select count(*) from raw_m_42.klaviyo_events") == klaviyo["events"]["rows"] > 100


SOURCES = {  # prefix -> (configuration, streams the marts read)
    "shopify_": (_shopify("acme"), ["orders", "order_refunds", "customers", "shop"]),
    "facebook_marketing_": (
        {"sourceType": "facebook-marketing", "account_ids": ["111"],
         "credentials": {"auth_type": "Service", "access_token": "EAAB-token"}},
        ["ads_insights", "campaigns"],
    ),
    "google_ads_": (
        {"sourceType": "google-ads", "customer_id": "1234567890",
         "credentials": {"developer_token": "d", "client_id": "c", "client_secret": "s", "refresh_token": "r"}},
        ["campaign", "customer"],
    ),
    "exchange_rates_": ({"sourceType": "exchange-rates", "access_key": "k", "start_date": "2026-01-01"}, ["rates"]),
    "klaviyo_": ({"sourceType": "klaviyo", "api_key": "pk_k"}, ["events", "profiles", "metrics", "flows", "campaigns"]),
}  # fmt: skip


def test_the_models_build_on_synced_data_and_reconcile_with_what_the_syncs_wrote(api, airbyte, warehouse, db):
    from analytics.dbt_runner import dbt_invoke
    from analytics.raw_schema import create_raw_schema

    destination_id = _destination(api, warehouse)
    connections = {}
    for prefix, (configuration, names) in SOURCES.items():
        streams = [{"name": n, "syncMode": "incremental_deduped_history"} for n in names if n not in ("shop",)]
        streams += [{"name": "shop", "syncMode": "full_refresh_overwrite"}] if "shop" in names else []
        connections[prefix] = _pipeline(
            api, destination_id, source=configuration, namespace="raw_m_42", prefix=prefix, streams=streams
        )
        assert _run(api, airbyte, connections[prefix])["status"] == "succeeded"
    with connect(warehouse) as conn:
        create_raw_schema(conn, "m_42")  # Attentive and web sessions do not come through Airbyte
    merchant = {"id": 42, "key": "m_42", "timezone": "America/Los_Angeles", "currency": "USD"}
    result = dbt_invoke(["build"], merchants=[merchant], db=warehouse)
    failures = [(r.unique_id, r.status, r.message) for r in result.results if r.status not in ("success", "pass")]
    assert result.success and not failures, failures
    meta = airbyte.last_sync(connections["facebook_marketing_"])["streams"]["ads_insights"]["sums"]["spend"]
    mart = db.execute(
        "select sum(spend_account_currency) from analytics.fct_ad_spend_daily where platform = 'facebook'"
    ).fetchone()[0]
    assert mart == Decimal(meta) > 0
    orders = airbyte.written_records(connections["shopify_"], "orders")
    placed = {o["id"] for o in orders if not o["test"]}
    assert _count(db, "select count(*) from analytics.fct_orders where merchant_id = 42") == len(placed) > 40


def test_a_stores_sources_and_its_next_days_sync_read_one_world_simulated_once(api, airbyte, warehouse, db):
    """The world is simulated once for the four sources of a store, the listing of what they wrote and the
    next day's sync; changing the world's settings forgets it (tests/sandbox/test_world.py: cached == replayed)."""
    klaviyo = world_identity("klaviyo", SOURCES["klaviyo_"][0])
    airbyte.world(links={"meta:111": "shopify:acme", "google:1234567890": "shopify:acme", klaviyo: "shopify:acme"})
    assert world_cache_stats()["worlds"] == 0  # a settings change empties the cache
    before = world_cache_stats()
    destination_id = _destination(api, warehouse)
    connections = {}
    for prefix in ("shopify_", "facebook_marketing_", "google_ads_", "klaviyo_"):
        configuration, names = SOURCES[prefix]
        streams = [{"name": n, "syncMode": "full_refresh_overwrite" if n == "shop" else "incremental_deduped_history"}
                   for n in names]  # fmt: skip
        connections[prefix] = _pipeline(
            api, destination_id, source=configuration, namespace="raw_m_42", prefix=prefix, streams=streams
        )
        assert _run(api, airbyte, connections[prefix])["status"] == "succeeded"
        assert airbyte.last_sync(connections[prefix])["identity"] == "shopify:acme"
    history = airbyte.last_sync(connections["shopify_"])["streams"]["orders"]
    assert len(airbyte.written_records(connections["shopify_"], "orders")) == history["rows"] > 40
    simulated = world_cache_stats()
    assert simulated["replays"] - before["replays"] == 1 and simulated["worlds"] == 1

    airbyte.advance_clock(DAY)
    assert _run(api, airbyte, connections["shopify_"])["status"] == "succeeded"
    orders = airbyte.last_sync(connections["shopify_"])["streams"]["orders"]
    written = airbyte.written_records(connections["shopify_"], "orders")
    assert 0 < len(written) == orders["rows"] < history["rows"]
    assert sum(Decimal(o["total_price"]) for o in written) == Decimal(orders["sums"]["total_price"])
    assert world_cache_stats() == simulated  # within the days simulated ahead: nothing simulated again


def test_a_stores_first_syncs_running_at_once_into_one_new_namespace_all_succeed(api, airbyte, warehouse, db):
    """They wait for one simulation of their world, then all create the namespace at the same moment."""
    klaviyo = world_identity("klaviyo", SOURCES["klaviyo_"][0])
    airbyte.world(links={"meta:111": "shopify:acme", "google:1234567890": "shopify:acme", klaviyo: "shopify:acme"})
    destination_id = _destination(api, warehouse)
    for attempt in range(3):  # a collision needs the jobs to meet: a few stores' worth of chances
        connections = []
        for prefix in ("shopify_", "facebook_marketing_", "google_ads_", "klaviyo_"):
            configuration, names = SOURCES[prefix]
            streams = [{"name": n, "syncMode": "full_refresh_overwrite" if n == "shop" else "incremental_append"}
                       for n in names]  # fmt: skip
            connections.append(
                _pipeline(api, destination_id, source=configuration, namespace=f"raw_m_{60 + attempt}",
                          prefix=prefix, streams=streams)
            )  # fmt: skip
        airbyte.configure(pending_seconds=0, running_seconds=0)
        jobs = [api("POST", "/jobs", json={"connectionId": c, "jobType": "sync"}).json() for c in connections]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = [api("GET", f"/jobs/{job['jobId']}").json() for job in jobs]
            if all(job["status"] in ("succeeded", "failed") for job in jobs):
                break
            time.sleep(0.05)
        assert [job["status"] for job in jobs] == ["succeeded"] * 4, [airbyte.job(j["jobId"]) for j in jobs]
        airbyte.manual_jobs()
        airbyte.world(seed=attempt + 2)  # a world not simulated yet: the next store's jobs wait for it again
