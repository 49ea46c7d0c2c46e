"""Benchmark: customers/redact of one customer at a given scale (compliance/redaction.py).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/redaction.py [--scale M] [--keep]
    ... python bench/redaction.py --database redact_bench_1234abcd   # reuse a kept database (skips the build)

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), generates one merchant's
demo data at bench/dashboards.py's scale, builds the models with `dbt run`, then redacts the customer with the
most orders: finding their linked identifiers, rewriting their rows in raw_<key>, landed and every dbt table, and
recording the digests — what the customers/redact task does, in one transaction (goal ≤ 10 s at scale M). Then
times the load step's re-application to a re-synced copy of the customer. Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import sys
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import database_url  # noqa: E402

SCALES = {"S": (90, 50), "M": (730, 300)}  # days, orders per day: bench/dashboards.py's (the Analytics issue's)

MERCHANT = {"id": 1, "key": "bench", "timezone": "America/New_York", "currency": "USD"}


def build(db: dict, scale: str) -> None:
    from analytics.dbt_runner import dbt_invoke
    from analytics.demo_data import generate_demo_data

    days, per_day = SCALES[scale]
    started = time.perf_counter()
    with psycopg.connect(**db) as conn:
        generate_demo_data(
            conn, merchant_key=MERCHANT["key"], shop_domain="bench.myshopify.com", timezone=MERCHANT["timezone"],
            currency=MERCHANT["currency"], days=days, orders_per_day=per_day, seed=2026, end_date=dt.date.today(),
        )  # fmt: skip
    print(f"generation_time: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    result = dbt_invoke(["run"], merchants=[MERCHANT], db=db)
    if not result.success:
        sys.exit(f"dbt run failed: {result.error}")
    print(f"dbt_run_time: {time.perf_counter() - started:.1f} s")
    print(f"load_step_time: {result.load_seconds:.1f} s (the first load also builds the lookup indexes)")
    with psycopg.connect(**db, autocommit=True) as conn:
        conn.execute("vacuum analyze")


def measure(db: dict) -> None:
    from analytics.landing import raw_load
    from compliance import redaction

    with psycopg.connect(**db) as conn:
        row = conn.execute(
            "select (customer ->> 'id')::bigint, email, count(*) from raw_bench.shopify_orders"
            " where (customer ->> 'id')::bigint > 0 group by 1, 2 order by 3 desc, 1 limit 1"
        ).fetchone()
        customer_id, email, orders = row
        sizes = conn.execute(
            "select sum(n_live_tup)::bigint from pg_stat_user_tables"
            " where schemaname in ('raw_bench', 'landed', 'analytics', 'analytics_staging')"
        ).fetchone()[0]
        print(f"warehouse_rows: {sizes}")
        print(f"customer_orders: {orders}")
        seed = redaction.Identifiers()
        seed.add(customer_id=customer_id, email=email)
        started = time.perf_counter()
        found = redaction.identifiers_discover(conn, merchant_id=MERCHANT["id"], key=MERCHANT["key"], seed=seed)
        print(f"discover_seconds: {time.perf_counter() - started:.2f} s")
        outcome = redaction.customer_redact(conn, merchant_id=MERCHANT["id"], key=MERCHANT["key"], identifiers=found)
        conn.commit()
        elapsed = time.perf_counter() - started
        print(f"rows_rewritten: {sum(outcome.rows.values())}")
        print(f"tables_touched: {len(outcome.rows)}")
        print(f"redact_one_customer_seconds: {elapsed:.2f} s")
        for table, seconds in sorted(outcome.seconds.items(), key=lambda kv: -kv[1])[:8]:
            print(f"slowest_statement: {table} {seconds:.2f} s")
        # Airbyte syncs the customer again: the load step re-applies the redaction to the new rows.
        conn.execute(
            "insert into raw_bench.shopify_customers (id, email, first_name, _airbyte_raw_id, _airbyte_extracted_at,"
            " _airbyte_meta, _airbyte_generation_id) values (%s, %s, 'Again', %s, now(), '{}', 0)",
            [customer_id, email, uuid.uuid4()],
        )
        conn.commit()
        started = time.perf_counter()
        raw_load(conn, merchants=[MERCHANT], scope={MERCHANT["id"]: ["shopify_customers"]})
        print(f"load_with_reapply_seconds: {time.perf_counter() - started:.2f} s")
        left = conn.execute("select count(*) from landed.shopify_customers where email = %s", [email]).fetchone()[0]
        print(f"resynced_rows_left_in_the_clear: {left}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=sorted(SCALES), default="M")
    parser.add_argument("--database", help="reuse this database (built by an earlier --keep run)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    name = args.database or f"redact_bench_{secrets.token_hex(4)}"
    url, admin = database_url(name)
    if not args.database:
        with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(DATABASE_URL=url, DJANGO_DEV="1", DJANGO_SETTINGS_MODULE="config.settings", DO_NOT_TRACK="1",
                      LOG_LEVEL="WARNING")  # fmt: skip
    import django

    django.setup()
    from analytics.selectors import warehouse_connection_params

    db = warehouse_connection_params()
    try:
        days, per_day = SCALES[args.scale]
        print(f"scale: {args.scale} ({days} days x {per_day} orders/day)")
        if not args.database:
            build(db, args.scale)
        measure(db)
    finally:
        if not args.keep and not args.database:
            with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif args.keep:
            print(f"kept_database: {name}")


if __name__ == "__main__":
    main()
