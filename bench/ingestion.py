"""Benchmark: syncs finishing -> coalesced dbt builds.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/ingestion.py [--stores 20] [--window 60]

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), migrates it, writes
--days of demo raw data for --stores stores, runs the first full `build` (what exists before syncs arrive),
then starts a real Celery worker (filesystem broker in a temporary folder, as `make run` without Redis) and
has every store's sync succeed once, spread evenly over --window seconds, through
`analytics.services.raw_data_changed_mark` — the call ingestion makes. Each asks for the coalesced build
(`analytics.dbt_build_coalesced`, after its countdown); the worker runs them. When every change is built:

- coalesced_builds: how many builds the syncs caused (goal: 1 for 20 stores within a minute);
- sync_to_built p50/max: from a sync's success being recorded to the end of the build that took it in;
- build seconds per coalesced build, and the changes left unbuilt (must be 0).

Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def database_url(name: str) -> tuple[str, dict]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set")
    params = conninfo_to_dict(url)
    admin = {**params, "dbname": params.get("dbname") or "postgres"}
    user, host = params.get("user") or "postgres", params.get("host") or "127.0.0.1"
    password = f":{params['password']}" if params.get("password") else ""
    if host.startswith("/"):  # the embedded PostgreSQL of `make run`: a Unix socket directory
        return f"postgres://{user}{password}@/{name}?host={host}", admin
    return f"postgres://{user}{password}@{host}:{params.get('port') or 5432}/{name}", admin


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stores", type=int, default=20, help="stores whose syncs finish")
    parser.add_argument("--window", type=float, default=60.0, help="seconds over which the syncs finish")
    parser.add_argument("--days", type=int, default=30, help="days of demo raw data per store")
    parser.add_argument("--orders-per-day", type=int, default=20)
    parser.add_argument(
        "--coalesce-seconds", type=int, default=None, help="DBT_BUILD_COALESCE_SECONDS for the app (default: its own)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()
    if args.stores < 1 or args.window < 0:
        sys.exit("--stores must be at least 1 and --window not negative")

    name = f"bench_ingestion_{secrets.token_hex(3)}"
    url, admin = database_url(name)
    broker_dir = Path(tempfile.mkdtemp(prefix="bench-ingestion-celery-"))
    with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_DEV="1",
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        CELERY_BROKER_URL="filesystem://",
        CELERY_DATA_DIR=str(broker_dir),
        DBT_QUIET="true",  # dbt's own lines (errors aside) would bury the figures
    )
    if args.coalesce_seconds is not None:
        os.environ["DBT_BUILD_COALESCE_SECONDS"] = str(args.coalesce_seconds)
    for var in ("DATABASE_OWNER_URL", "WAREHOUSE_DATABASE_URL", "REDIS_URL", "CELERY_TASK_ALWAYS_EAGER"):
        os.environ.pop(var, None)  # one database, one role, this bench's own broker
    try:
        run(args, name)
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(broker_dir, ignore_errors=True)
        if not args.keep:
            with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            shutil.rmtree(ROOT / "analytics_dbt" / "target" / name, ignore_errors=True)


def run(args, name: str) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Merchant
    from analytics.choices import DbtRunStatus
    from analytics.models import DbtRun
    from analytics.selectors import raw_data_change_unbuilt_list
    from analytics.services import dbt_run_execute, merchant_demo_data_generate

    coalesce = settings.DBT_BUILD_COALESCE_SECONDS

    call_command("migrate", verbosity=0)
    stores = [
        Merchant.objects.create(
            name=f"Bench {n}", shop_domain=f"bench-{n}.myshopify.com", key=f"bench_{n}",
            timezone="America/New_York", currency="USD",
        )
        for n in range(args.stores)
    ]  # fmt: skip
    started = time.monotonic()
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        for n, store in enumerate(stores):
            merchant_demo_data_generate(
                conn, merchant=store, days=args.days, orders_per_day=args.orders_per_day, seed=n,
                end_date=dt.date.today(),
            )  # fmt: skip
        conn.commit()
    print(f"demo_data: {time.monotonic() - started:.1f} s ({args.stores} stores x {args.days} days)")

    first = dbt_run_execute(args=["build"])
    if first.status != DbtRunStatus.SUCCESS:
        sys.exit(f"the first build {first.status}: {first.error or first.failures[:3]}")
    print(f"first_full_build: {first.duration_seconds:.1f} s")
    connection.close()

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING", "--concurrency", "2"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        t0 = timezone.now()
        begun = time.monotonic()
        gap = args.window / args.stores  # all within the window: the last one `gap` before its end
        for n, store in enumerate(stores):
            delay = begun + n * gap - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            from analytics.services import raw_data_changed_mark

            raw_data_changed_mark(merchant_id=store.pk, source="shopify", at=timezone.now())
        syncs_done = time.monotonic()

        # Done when nothing is unbuilt or running, and stays so past the last request's countdown.
        deadline = time.monotonic() + 20 * 60
        quiet_since = None
        while time.monotonic() < deadline:
            busy = (
                raw_data_change_unbuilt_list().exists() or DbtRun.objects.filter(status=DbtRunStatus.RUNNING).exists()
            )
            now = time.monotonic()
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since > coalesce + 5 and now - syncs_done > coalesce + 5:
                break
            time.sleep(0.5)
        else:
            sys.exit("the changes were not built within 20 minutes")
        report(args, t0, coalesce)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(15)
        except subprocess.TimeoutExpired:  # a worker still holding countdown messages: the bench is over anyway
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(15)


def report(args, t0, coalesce: int) -> None:
    from analytics.choices import DbtTrigger
    from analytics.models import DbtRun, RawDataChange
    from analytics.selectors import raw_data_change_unbuilt_list

    builds = list(DbtRun.objects.filter(triggered_by=DbtTrigger.DATA_CHANGED, started_at__gte=t0).order_by("pk"))
    changes = list(RawDataChange.objects.select_related("consumed_by_run"))
    latencies = [
        (c.consumed_by_run.finished_at - c.recorded_at).total_seconds()
        for c in changes
        if c.consumed_by_run and c.consumed_by_run.finished_at
    ]
    print(f"syncs: {args.stores} stores")
    print(f"sync_window: {args.window:.0f} s")
    print(f"coalesce_countdown: {coalesce} s (DBT_BUILD_COALESCE_SECONDS)")
    print(f"coalesced_builds: {len(builds)} builds")
    for run in builds:
        taken = run.raw_data_changes.count()
        print(f"coalesced_build_{run.pk}: {run.duration_seconds:.1f} s ({run.status}, {taken} changes)")
    if latencies:
        print(f"sync_to_built_p50: {pct(latencies, 0.5):.1f} s")
        print(f"sync_to_built_max: {max(latencies):.1f} s")
    print(f"changes_unbuilt: {raw_data_change_unbuilt_list().count()} changes")


if __name__ == "__main__":
    main()
