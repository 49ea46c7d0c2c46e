"""Benchmark: what building and checking the models costs as the same data is spread over more stores.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/tenants.py [--stores 1,50,500]

For each store count N, in a database of its own (dropped at the end unless --keep), migrated like the app's:
N active stores share --days days x --orders-per-day orders in all (each store gets its share, at least one a
day), written by the demo generator into their raw schemas, each with the raw-data changes ingestion records
when a sync lands. Then, timed, through the app's own build path (analytics.services):

- ``history_load``: each store's raw rows copied into the landed tables, store by store (what the coalesced
  build after each store's first sync does, once per store);
- ``full_build``: the nightly ``dbt build`` from nothing, every store's new raw rows loaded first
  (``full_build_load`` of it: nothing new by then, one probe statement a store);
- ``one_store_day``: one more day lands in one store, then the coalesced build its changes ask for;
- ``every_store_day``: one more day lands in every store, then the coalesced build;
- ``no_change_build``: the coalesced build again with nothing new (``plain_no_change_build``: the nightly
  ``dbt build`` with nothing new, which still runs every model's incremental query and every test);
- ``freshness``: ``dbt source freshness`` over the landed tables (one query per table);
- ``build_locks_max``: the most locks the full build's sessions held at once (sampled every 0.2 s), against
  the server's ``max_locks_per_transaction x max_connections``.

Each store count runs in a process of its own (Django's settings name one database). Prints
``name: value unit`` lines, suffixed by the store count (``full_build_50: 31.2 s``). The issue's goals (issue
15): no-change ≤ 2 s at any count; one store's day ≤ 5 s at 500; freshness ≤ 5 s at 500; full at 500 ≤ 1.5 x
full at 1; incremental ≤ full at every count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import connect, database_url, server

END = dt.date(2026, 11, 20)
TZ = "America/New_York"
# What the demo generator writes, as the sources ingestion names when their syncs land.
SOURCES = ("shopify", "meta", "google_ads", "klaviyo", "attentive", "exchange_rates", "web")


class LockSampler:
    """The most locks held at once by other sessions on the database, while it runs."""

    def __init__(self, db: dict) -> None:
        self.db, self.peak, self._stop = db, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with connect(self.db, autocommit=True) as conn:
            while not self._stop.is_set():
                (held,) = conn.execute(
                    "select count(*) from pg_locks l join pg_stat_activity a on a.pid = l.pid"
                    " where a.datname = current_database() and l.pid <> pg_backend_pid()"
                ).fetchone()
                self.peak = max(self.peak, held)
                time.sleep(0.2)

    def __enter__(self) -> LockSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def _check(runs) -> None:
    bad = [(r.pk, r.command, r.status, r.failures[:3], r.error[:300]) for r in runs if r.status != "success"]
    if bad:
        sys.exit(f"build failed: {bad}")


def _add_day(stores, days: int, per_store: int, day: dt.date) -> None:
    """One more day for each of `stores`: what the next day's syncs land, and the changes they record."""
    from analytics.demo_data import generate_demo_data
    from analytics.selectors import warehouse_connection_params

    with connect(warehouse_connection_params()) as conn:
        for store in stores:
            generate_demo_data(
                conn, merchant_key=store.key, shop_domain=store.shop_domain, timezone=TZ, currency="USD",
                days=days + (day - END).days, orders_per_day=per_store, seed=store.pk, end_date=day, from_date=day,
            )  # fmt: skip
    _mark(stores)


def _mark(stores) -> None:
    from django.utils import timezone

    from analytics.models import RawDataChange

    now = timezone.now()
    RawDataChange.objects.bulk_create(
        [RawDataChange(merchant_id=store.pk, source=source, at=now) for store in stores for source in SOURCES]
    )


def child(n: int, days: int, orders_per_day: int) -> None:
    """Run in the benchmark database (DATABASE_URL names it): set up N stores, then time the builds."""
    import django

    django.setup()
    from django.core.management import call_command

    from accounts.models import Merchant
    from analytics.demo_data import generate_demo_data
    from analytics.selectors import warehouse_connection_params
    from analytics.services import dbt_build_coalesced, dbt_run_execute

    call_command("migrate", verbosity=0)
    db = warehouse_connection_params()
    with connect(server(), autocommit=True) as conn:
        limit = conn.execute(
            "select current_setting('max_locks_per_transaction')::int * current_setting('max_connections')::int"
        ).fetchone()[0]
    stores = Merchant.objects.bulk_create(
        [
            Merchant(
                name=f"Store {i + 1}",
                key=f"t{i + 1}",
                shop_domain=f"t{i + 1}.myshopify.com",
                timezone=TZ,
                currency="USD",
            )
            for i in range(n)
        ]
    )
    per_store = max(1, orders_per_day // n)
    start = time.perf_counter()
    with connect(db) as conn:
        for store in stores:
            generate_demo_data(
                conn, merchant_key=store.key, shop_domain=store.shop_domain, timezone=TZ, currency="USD",
                days=days, orders_per_day=per_store, seed=store.pk, end_date=END,
            )  # fmt: skip
    _mark(stores)
    with connect(db, autocommit=True) as conn:
        conn.execute("analyze")
    print(f"stores_{n}: {n} stores x {per_store} orders/day x {days} days", flush=True)
    print(f"generation_{n}: {time.perf_counter() - start:.1f} s", flush=True)

    from analytics import dbt_runner

    load_seconds: list[float] = []
    invoke = dbt_runner.dbt_invoke

    def timed_invoke(*args, **kwargs):
        result = invoke(*args, **kwargs)
        load_seconds.append(result.load_seconds)
        slowest = sorted(result.results, key=lambda r: -r.execution_time)[:6]
        # (to stderr: where the time went, for whoever reads the figures)
        print("  slowest: " + ", ".join(f"{r.unique_id.split('.')[-1]} {r.execution_time:.1f}" for r in slowest),
              file=sys.stderr, flush=True)  # fmt: skip
        return result

    dbt_runner.dbt_invoke = timed_invoke

    def timed(name: str, call) -> None:
        load_seconds.clear()
        start = time.perf_counter()
        runs = call()
        elapsed = time.perf_counter() - start
        _check(runs)
        print(f"{name}_{n}: {elapsed:.1f} s", flush=True)
        if load_seconds:
            print(f"{name}_load_{n}: {sum(load_seconds):.1f} s", flush=True)

    # Each store's history lands with its first sync, and the coalesced build that follows loads it: once per
    # store, in its own build. Timed here on its own, then the nightly build over every store.
    from analytics import landing

    start = time.perf_counter()
    with connect(db) as conn:
        for store in stores:
            merchant = {"id": store.pk, "key": store.key, "timezone": TZ, "currency": "USD"}
            landing.raw_load(conn, merchants=[merchant], scope={store.pk: None})
    elapsed = time.perf_counter() - start
    print(f"history_load_{n}: {elapsed:.1f} s ({elapsed / n * 1000:.0f} ms a store)", flush=True)
    with LockSampler(db) as locks:
        timed("full_build", lambda: [dbt_run_execute(args=["build"])])
    print(f"build_locks_max_{n}: {locks.peak} locks (server limit {limit})", flush=True)
    day = END + dt.timedelta(days=1)
    _add_day(stores[:1], days, per_store, day)
    timed("one_store_day", lambda: dbt_build_coalesced())
    _add_day(stores, days, per_store, day + dt.timedelta(days=1))
    timed("every_store_day", lambda: dbt_build_coalesced())
    timed("no_change_build", lambda: dbt_build_coalesced())
    timed("plain_no_change_build", lambda: [dbt_run_execute(args=["build"])])
    timed("freshness", lambda: [_freshness(dbt_run_execute)])


def _freshness(run_execute):
    run = run_execute(args=["source", "freshness"])
    # the data ends on a fixed day: stale is the expected verdict, a table that could not be checked is not
    if run.status != "success" and any(f["status"] == "runtime error" for f in run.freshness):
        sys.exit(f"freshness could not check: {run.freshness}")
    run.status = "success"
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", default="1,50,500", help="comma-separated store counts")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--orders-per-day", type=int, default=200, help="orders a day over all stores")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.days, args.orders_per_day)
        return
    try:
        counts = [int(c) for c in args.stores.split(",")]
    except ValueError:
        sys.exit("--stores takes comma-separated numbers, e.g. 1,50,500")
    if not counts or min(counts) < 1:
        sys.exit("--stores takes positive numbers")
    srv = server()
    for n in counts:
        name = f"tenants_bench_{n}_{secrets.token_hex(3)}"
        url, _ = database_url(name)
        with connect(srv, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        env = {
            **os.environ, "DATABASE_URL": url, "DJANGO_DEV": "1", "DEBUG": "0", "LOG_LEVEL": "WARNING",
            "DJANGO_SETTINGS_MODULE": "config.settings", "DO_NOT_TRACK": "1", "DBT_QUIET": "true",
        }  # fmt: skip
        try:
            cmd = [sys.executable, __file__, "--child", str(n), "--days", str(args.days)]
            done = subprocess.run([*cmd, "--orders-per-day", str(args.orders_per_day)], env=env, check=False)
            if done.returncode:
                sys.exit(done.returncode)
        finally:
            if args.keep:
                print(f"kept_database_{n}: {name}")
            else:
                with connect(srv, autocommit=True) as conn:
                    conn.execute(f'drop database if exists "{name}" with (force)')
                from analytics.dbt_runner import PROJECT_DIR

                shutil.rmtree(PROJECT_DIR / "target" / name, ignore_errors=True)


if __name__ == "__main__":
    main()
