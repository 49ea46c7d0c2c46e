"""Benchmark: the hourly freshness check (analytics.services.data_freshness_check) at 1, 50 and 500 stores.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/freshness.py \
        [--stores 1,50,500] [--days 60] [--repeat 7] [--keep]

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), migrates it, and writes
what ingestion records for each store, as it would have after --days of hourly syncs: an owner, Shopify, Meta and
Klaviyo credentials each with its Airbyte pipeline, one succeeded SyncJob and one RawDataChange per sync (every
change taken in by a build), each pipeline's `last_synced_at`; and an Attentive key with its webhook whose events
are a RawDataChange an hour. One store in 25 stopped syncing Klaviyo 72 hours ago (stale), one in 40 was installed
two hours ago (its first syncs not landed: awaiting). Stores are added to reach each count, then measured:

- ``freshness_query_<n>``: the one statement (selectors.source_freshness_list), median of --repeat runs;
- ``freshness_check_<n>``: the whole check — the statement, the check's row, and the notifications of the stale
  stores (staff, each stale store's owner: the first check of the day);
- ``freshness_check_repeat_<n>``: the same an hour later, every alert already sent today (deduped), median;
- ``freshness_statements_<n>``: statements the read ran (1 whatever n); counts of pairs, stale, rows held.

The goal (issue 15): ≤ 5 s at 500 stores. Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import database_url  # noqa: E402

AIRBYTE_PROVIDERS = ("shopify", "meta", "klaviyo")
STALE_EVERY, NEW_EVERY = 25, 40  # one store in 25 has Klaviyo stale, one in 40 is two hours old


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="1,50,500", help="store counts to measure at, ascending")
    parser.add_argument("--days", type=int, default=60, help="history of hourly syncs per pipeline")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database (its name is printed)")
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.stores.split(",")})

    name = f"fresh_bench_{secrets.token_hex(4)}"
    broker_dir = Path(tempfile.mkdtemp(prefix="bench-freshness-celery-"))
    url, admin = database_url(name)
    with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(
        DATABASE_URL=url, DJANGO_DEV="1", DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING",
        DO_NOT_TRACK="1", APP_BASE_URL="https://app.example.com",
        # the notifications' deliveries are queued to a broker of this bench's own, where no worker takes them
        CELERY_BROKER_URL="filesystem://", CELERY_DATA_DIR=str(broker_dir),
    )  # fmt: skip
    for var in ("DATABASE_OWNER_URL", "WAREHOUSE_DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER"):
        os.environ.pop(var, None)  # one database, one role; no broker to reach (deliveries are not measured)
    try:
        run(counts, args.days, args.repeat)
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(broker_dir, ignore_errors=True)
        if args.keep:
            print(f"kept_database: {name}")
        else:
            with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def add_stores(start: int, stop: int, *, days: int, now: dt.datetime, build_id: int, token_enc: str) -> None:
    """Stores start..stop-1 with their credentials, pipelines, webhooks, and `days` of hourly syncs."""
    from django.db import connection, transaction

    from accounts.models import Membership, Merchant
    from analytics.models import RawDataChange
    from connectors.models import AttentiveWebhook, ConnectorCredential
    from ingestion.models import Pipeline, SyncJob

    with transaction.atomic():
        merchants = Merchant.objects.bulk_create(
            Merchant(
                name=f"Store {i}",
                shop_domain=f"store-{i}.myshopify.com",
                key=f"store_{i}",
                timezone="America/New_York",
                currency="USD",
            )
            for i in range(start, stop)
        )
        Membership.objects.bulk_create(
            Membership(merchant=m, clerk_user_id=f"user_{m.key}", role="owner") for m in merchants
        )
        credentials = ConnectorCredential.objects.bulk_create(
            ConnectorCredential(
                merchant=m,
                provider=provider,
                auth_kind="oauth" if provider != "klaviyo" else "api_key",
                external_account_id=f"{provider}-{m.key}",
                access_token_enc=token_enc if provider != "klaviyo" else "",
                api_key_enc=token_enc if provider == "klaviyo" else "",
                status="active",
            )
            for m in merchants
            for provider in AIRBYTE_PROVIDERS
        )
        Pipeline.objects.bulk_create(
            Pipeline(
                credential=c,
                merchant_id=c.merchant_id,
                source_type=c.provider,
                source_id=f"src-{c.pk}",
                connection_id=f"conn-{c.pk}",
                status="active",
                start_date=(now - dt.timedelta(days=days)).date(),
            )
            for c in credentials
        )
        attentive = ConnectorCredential.objects.bulk_create(
            ConnectorCredential(
                merchant=m,
                provider="attentive",
                auth_kind="api_key",
                external_account_id=f"attentive-{m.key}",
                api_key_enc=token_enc,
                status="active",
            )
            for m in merchants
        )
        AttentiveWebhook.objects.bulk_create(
            AttentiveWebhook(
                merchant_id=c.merchant_id,
                credential=c,
                public_id=f"pub-{c.pk}",
                attentive_webhook_id=f"wh-{c.pk}",
                signing_key_enc=token_enc,
                events=["sms.sent"],
            )
            for c in attentive
        )
        ids = [m.pk for m in merchants]
        new = [m.pk for i, m in zip(range(start, stop), merchants, strict=True) if i % NEW_EVERY == NEW_EVERY - 1]
        stale = [m.pk for i, m in zip(range(start, stop), merchants, strict=True) if i % STALE_EVERY == 3]
        params = {"ids": ids, "new": new, "stale": stale, "now": now, "hours": days * 24, "build": build_id}
        with connection.cursor() as cursor:
            # Connected when their history began; a new store two hours ago.
            cursor.execute(
                f"""
                update {Pipeline._meta.db_table} set updated_at = %(now)s, created_at = case
                    when merchant_id = any(%(new)s) then %(now)s - interval '2 hours'
                    else %(now)s - %(hours)s * interval '1 hour' - interval '1 hour' end
                where merchant_id = any(%(ids)s)
                """,  # noqa: S608 — table names from the models
                params,
            )
            cursor.execute(
                f"""
                update {AttentiveWebhook._meta.db_table} set created_at = case
                    when merchant_id = any(%(new)s) then %(now)s - interval '2 hours'
                    else %(now)s - %(hours)s * interval '1 hour' - interval '1 hour' end
                where merchant_id = any(%(ids)s)
                """,  # noqa: S608
                params,
            )
            # An hourly sync per pipeline, each at a minute of its own (the sweeper's stagger); none for a new
            # store; the stale stores' Klaviyo stopped 72 hours ago.
            cursor.execute(
                f"""
                insert into {SyncJob._meta.db_table} (pipeline_id, connection_id, airbyte_job_id, job_type, status,
                    rows_synced, bytes_synced, started_at, finished_at, error_type, error_message, error_origin,
                    attached, polls, next_poll_at, created_at, updated_at)
                select p.id, p.connection_id, p.id::bigint * 1000000 + g, 'sync', 'succeeded', 120, 48000,
                       t.at - interval '4 minutes', t.at, '', '', '', false, 3, null, t.at - interval '4 minutes', t.at
                from {Pipeline._meta.db_table} p
                cross join lateral generate_series(
                    case when p.merchant_id = any(%(stale)s) and p.source_type = 'klaviyo' then 72 else 0 end,
                    %(hours)s - 1) g
                cross join lateral (select %(now)s - g * interval '1 hour' - (p.id %% 60) * interval '1 minute' as at) t
                where p.merchant_id = any(%(ids)s) and not p.merchant_id = any(%(new)s)
                """,  # noqa: S608 — table names from the models
                params,
            )
            cursor.execute(
                f"""
                update {Pipeline._meta.db_table} p set last_synced_at = j.last,
                    next_sync_at = j.last + interval '1 hour'
                from (select pipeline_id, max(finished_at) as last from {SyncJob._meta.db_table} j
                      join {Pipeline._meta.db_table} p on p.id = j.pipeline_id
                      where p.merchant_id = any(%(ids)s) group by pipeline_id) j
                where j.pipeline_id = p.id
                """,  # noqa: S608
                params,
            )
            # What each sync's success recorded (ingestion's _raw_changed), and Attentive's events an hour.
            cursor.execute(
                f"""
                insert into {RawDataChange._meta.db_table} (merchant_id, source, at, recorded_at, consumed_by_run_id)
                select p.merchant_id, c.provider, j.finished_at, j.finished_at, %(build)s
                from {SyncJob._meta.db_table} j
                join {Pipeline._meta.db_table} p on p.id = j.pipeline_id
                join {ConnectorCredential._meta.db_table} c on c.id = p.credential_id
                where p.merchant_id = any(%(ids)s)
                union all
                select m, 'attentive', %(now)s - g * interval '1 hour', %(now)s - g * interval '1 hour', %(build)s
                from unnest(%(ids)s::bigint[]) m cross join generate_series(0, %(hours)s - 1) g
                where not m = any(%(new)s)
                """,  # noqa: S608
                params,
            )
    with connection.cursor() as cursor:
        cursor.execute("analyze")


def run(counts: list[int], days: int, repeat: int) -> None:
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse
    from django.utils import timezone

    from analytics.models import DbtRun, RawDataChange
    from analytics.selectors import source_freshness_list
    from analytics.services import data_freshness_check
    from connectors.crypto import encrypt_secret
    from ingestion.models import SyncJob
    from notifications.services import staff_notify

    call_command("migrate", verbosity=0)
    get_user_model().objects.create_user("ops", "ops@example.com", secrets.token_urlsafe(16), is_staff=True)
    now = timezone.now().replace(microsecond=0)
    build = DbtRun.objects.create(command="build", args=["build"], status="success", started_at=now, finished_at=now)
    token_enc = encrypt_secret("bench-" + secrets.token_hex(8))
    # A worker that has run a task before: the notification modules imported, the templates compiled, the
    # broker connected. Without this the first check measures Python's imports (2-3 s), not the check.
    staff_notify(kind="data_stale", context={"check_id": 0, "stale_sources": []}, dedupe_key="bench-warm-up")
    reverse("connectors:list", kwargs={"merchant_id": 1})  # the URLconf, loaded by a merchant's unsubscribe link
    have = 0
    for n in counts:
        started = time.perf_counter()
        add_stores(have, n, days=days, now=now, build_id=build.pk, token_enc=token_enc)
        have = n
        print(f"generation_time_{n}: {time.perf_counter() - started:.1f} s", flush=True)
        print(f"sync_jobs_{n}: {SyncJob.objects.count()} rows", flush=True)
        print(f"raw_data_changes_{n}: {RawDataChange.objects.count()} rows", flush=True)

        reads = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            with CaptureQueriesContext(connection) as statements:
                rows = source_freshness_list()
            reads.append(time.perf_counter() - t0)
        print(f"freshness_statements_{n}: {len(statements)} statements", flush=True)
        print(f"freshness_pairs_{n}: {len(rows)} store sources", flush=True)
        print(f"freshness_query_{n}: {statistics.median(reads) * 1000:.1f} ms", flush=True)

        # The stores added since the last count are new (store, source) pairs: their alerts are sent, the
        # earlier stores' already were today (deduped), as at the hourly check after agencies bring stores.
        check_at = now + dt.timedelta(minutes=5)
        t0 = time.perf_counter()
        check = data_freshness_check(now=check_at)
        print(f"freshness_check_{n}: {(time.perf_counter() - t0) * 1000:.1f} ms", flush=True)
        print(f"freshness_stale_{n}: {len(check.stale)} store sources", flush=True)
        print(f"freshness_notified_stores_{n}: {len(check.merchants_notified)} stores", flush=True)
        repeats = []
        for hour in range(1, min(repeat, 4)):
            t0 = time.perf_counter()
            data_freshness_check(now=check_at + dt.timedelta(hours=hour))
            repeats.append(time.perf_counter() - t0)
        print(f"freshness_check_repeat_{n}: {statistics.median(repeats) * 1000:.1f} ms", flush=True)


if __name__ == "__main__":
    main()
