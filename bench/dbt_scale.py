"""Benchmark: demo-data generation and dbt build times at a given scale.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/dbt_scale.py [--scale M]

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), generates one
merchant's raw data, runs ``dbt build`` from nothing (full), appends one more day of data and runs
``dbt build`` again (incremental: the nightly job; its tests check the rows it wrote), then ``dbt test``
over every row (the weekly job). Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import connect, server

from analytics.dbt_runner import PROJECT_DIR, dbt_invoke
from analytics.demo_data import generate_demo_data

SCALES = {  # days, orders per day
    "S": (90, 50),
    "M": (730, 300),
}
END = dt.date(2026, 11, 20)
MERCHANT = {"id": 1, "key": "bench", "timezone": "America/New_York", "currency": "USD"}
SHOP = {
    "merchant_key": "bench",
    "shop_domain": "bench-store.myshopify.com",
    "timezone": "America/New_York",
    "currency": "USD",
}


def timed_dbt(args: list[str], db: dict) -> float:
    start = time.perf_counter()
    result = dbt_invoke(args, merchants=[MERCHANT], db=db)
    elapsed = time.perf_counter() - start
    bad = [(r.unique_id, r.status) for r in result.results if r.status not in ("success", "pass")]
    if not result.success or bad:
        sys.exit(f"dbt {' '.join(args)} failed: {result.error} {bad[:10]}")
    return elapsed


def main() -> None:
    os.environ.setdefault("DBT_QUIET", "true")  # keep the output to the figures
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=sorted(SCALES), default="M")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()
    days, per_day = SCALES[args.scale]
    srv = server()
    db = {**srv, "dbname": f"dbt_bench_{secrets.token_hex(4)}"}
    with connect(srv, autocommit=True) as conn:
        conn.execute(f'create database "{db["dbname"]}"')
    try:
        with connect(db) as conn:
            start = time.perf_counter()
            counts = generate_demo_data(conn, **SHOP, days=days, orders_per_day=per_day, seed=2026, end_date=END)
            gen_s = time.perf_counter() - start
            rows = sum(counts.values())
            print(f"scale: {args.scale} ({days} days x {per_day} orders/day)", flush=True)
            print(f"generation_rows: {rows} rows", flush=True)
            print(f"generation_time: {gen_s:.1f} s", flush=True)
            print(f"generation_rows_per_s: {rows / gen_s:.0f} rows/s", flush=True)
            print(f"raw_web_sessions: {counts['web_sessions']} rows", flush=True)
            print(f"raw_klaviyo_events: {counts['klaviyo_events']} rows", flush=True)
        with connect(db, autocommit=True) as conn:
            conn.execute("analyze")
        full = timed_dbt(["build"], db)
        print(f"full_build: {full:.1f} s", flush=True)
        with connect(db) as conn:
            more = generate_demo_data(
                conn,
                **SHOP,
                days=days + 1,
                orders_per_day=per_day,
                seed=2026,
                end_date=END + dt.timedelta(days=1),
                from_date=END + dt.timedelta(days=1),
            )
            print(f"appended_rows: {sum(more.values())} rows", flush=True)
        incremental = timed_dbt(["build"], db)
        print(f"incremental_build: {incremental:.1f} s", flush=True)
        print(f"incremental_build_ratio: {100 * incremental / full:.1f} %", flush=True)
        print(f"full_test: {timed_dbt(['test'], db):.1f} s", flush=True)
    finally:
        if not args.keep:
            with connect(srv, autocommit=True) as conn:
                conn.execute(f'drop database if exists "{db["dbname"]}" with (force)')
            shutil.rmtree(PROJECT_DIR / "target" / db["dbname"], ignore_errors=True)


if __name__ == "__main__":
    main()
