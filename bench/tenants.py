"""Benchmark: what building and checking the models costs as the same data is spread over more stores.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/tenants.py [--stores 1,50,500]

For each store count N, in a database of its own (dropped at the end unless --keep): N stores share
--days days x --orders-per-day orders in all (each store gets its share, at least one a day), written by
the demo generator into their raw schemas; then, timed, with every store in the `merchants` var:

- ``full_build``: ``dbt build`` from nothing;
- ``one_store_day``: one more day lands in one store, then an incremental ``dbt build``;
- ``every_store_day``: one more day lands in every store, then an incremental ``dbt build``;
- ``no_change_build``: ``dbt build`` again with nothing new;
- ``freshness``: ``dbt source freshness`` (skipped above --freshness-max-stores: it grows with stores x tables);
- ``build_locks_max``: the most locks the build's sessions held at once (sampled every 0.2 s), against the
  server's ``max_locks_per_transaction x max_connections``.

Prints ``name: value unit`` lines, suffixed by the store count (``full_build_50: 31.2 s``).
The issue's goals (issue 15): no-change ≤ 2 s at any count; one store's day ≤ 5 s at 500; freshness ≤ 5 s at
500; full at 500 ≤ 1.5 x full at 1; incremental ≤ full at every count.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _common import connect, server

from analytics.dbt_runner import PROJECT_DIR, dbt_invoke
from analytics.demo_data import generate_demo_data

END = dt.date(2026, 11, 20)
TZ = "America/New_York"


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


def timed(args: list[str], db: dict, merchants: list[dict], *, stale_ok: bool = False) -> float:
    """Seconds `dbt <args>` took; exits on any failure (`stale_ok`: a freshness verdict is not one — the data
    ends on a fixed day — but a source that could not be checked is)."""
    start = time.perf_counter()
    result = dbt_invoke(args, merchants=merchants, db=db)
    elapsed = time.perf_counter() - start
    ok = ("success", "pass") + (("warn", "error") if stale_ok else ())
    bad = [(r.unique_id, r.status) for r in result.results if r.status not in ok]
    if (not result.success and not stale_ok) or bad or result.error:
        sys.exit(f"dbt {' '.join(args)} failed: {result.error} {bad[:10]}")
    return elapsed


def add_day(db: dict, stores: list[dict], days: int, per_store: int, day: dt.date) -> int:
    """One more day for each of `stores`: what the next day's syncs would land (the generator's append mode)."""
    rows = 0
    with connect(db) as conn:
        for store in stores:
            counts = generate_demo_data(
                conn, merchant_key=store["key"], shop_domain=f"{store['key']}.myshopify.com", timezone=TZ,
                currency="USD", days=days + (day - END).days, orders_per_day=per_store, seed=store["id"],
                end_date=day, from_date=day,
            )  # fmt: skip
            rows += sum(counts.values())
    return rows


def bench(n: int, args: argparse.Namespace, srv: dict) -> None:
    db = {**srv, "dbname": f"tenants_bench_{n}_{secrets.token_hex(3)}"}
    with connect(srv, autocommit=True) as conn:
        conn.execute(f'create database "{db["dbname"]}"')
        limit = conn.execute(
            "select current_setting('max_locks_per_transaction')::int * current_setting('max_connections')::int"
        ).fetchone()[0]
    merchants = [{"id": i + 1, "key": f"t{i + 1}", "timezone": TZ, "currency": "USD"} for i in range(n)]
    per_store = max(1, args.orders_per_day // n)
    try:
        start = time.perf_counter()
        with connect(db) as conn:
            for m in merchants:
                generate_demo_data(
                    conn, merchant_key=m["key"], shop_domain=f"{m['key']}.myshopify.com", timezone=TZ,
                    currency="USD", days=args.days, orders_per_day=per_store, seed=m["id"], end_date=END,
                )  # fmt: skip
        with connect(db, autocommit=True) as conn:
            conn.execute("analyze")
        print(f"stores_{n}: {n} stores x {per_store} orders/day x {args.days} days", flush=True)
        print(f"generation_{n}: {time.perf_counter() - start:.1f} s", flush=True)
        with LockSampler(db) as locks:
            print(f"full_build_{n}: {timed(['build'], db, merchants):.1f} s", flush=True)
        print(f"build_locks_max_{n}: {locks.peak} locks (server limit {limit})", flush=True)
        day = END + dt.timedelta(days=1)
        add_day(db, merchants[:1], args.days, per_store, day)
        print(f"one_store_day_{n}: {timed(['build'], db, merchants):.1f} s", flush=True)
        add_day(db, merchants, args.days, per_store, day + dt.timedelta(days=1))
        print(f"every_store_day_{n}: {timed(['build'], db, merchants):.1f} s", flush=True)
        print(f"no_change_build_{n}: {timed(['build'], db, merchants):.1f} s", flush=True)
        if n <= args.freshness_max_stores:
            freshness = timed(["source", "freshness"], db, merchants, stale_ok=True)
            print(f"freshness_{n}: {freshness:.1f} s", flush=True)
        else:
            print(f"freshness_{n}: skipped (above --freshness-max-stores {args.freshness_max_stores})", flush=True)
    finally:
        if not args.keep:
            with connect(srv, autocommit=True) as conn:
                conn.execute(f'drop database if exists "{db["dbname"]}" with (force)')
            shutil.rmtree(PROJECT_DIR / "target" / db["dbname"], ignore_errors=True)


def main() -> None:
    os.environ.setdefault("DBT_QUIET", "true")  # keep the output to the figures
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", default="1,50,500", help="comma-separated store counts")
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--orders-per-day", type=int, default=200, help="orders a day over all stores")
    parser.add_argument("--freshness-max-stores", type=int, default=50)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases")
    args = parser.parse_args()
    try:
        counts = [int(c) for c in args.stores.split(",")]
    except ValueError:
        sys.exit("--stores takes comma-separated numbers, e.g. 1,50,500")
    if not counts or min(counts) < 1:
        sys.exit("--stores takes positive numbers")
    srv = server()
    for n in counts:
        bench(n, args, srv)


if __name__ == "__main__":
    main()
