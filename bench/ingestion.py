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

The other half (``--half landing``; both by default): one store at ``--scale`` (M: 730 days x 300 orders a
day, the Analytics issue's scale) installed through Shopify in the sandbox (the install service, the lifecycle
hook making its Airbyte pipeline), its history synced by the sandbox's Airbyte into the bench database and
built once. Then the world's clock moves on a day and, with the Celery worker running:

- one_more_day_sync: the sync triggered (`pipeline_sync`), the sandbox writing the new day, `job_poll`
  recording its success (which asks for the coalesced build);
- one_more_day_synced_to_api: from that success until the API shows the day (countdown, build, read);
- one_more_day_to_api: from that sync's trigger until `/api/merchants/<id>/metrics/overview/` (Django's test
  client, a Clerk session token from the sandbox) shows the new day's orders as the sandbox wrote them
  (goal <= 60 s); the build's own seconds beside it.

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
from zoneinfo import ZoneInfo

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import database_url, pct  # noqa: E402

SCALES = {"S": (90, 50), "M": (730, 300)}  # days, orders per day (bench/dashboards.py, bench/dbt_scale.py)
TZ = "America/New_York"
API_ORIGIN = "http://testserver"  # Django's test client host, the azp the session token is minted for


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
    parser.add_argument("--half", choices=("coalescing", "landing", "both"), default="both")
    parser.add_argument("--scale", choices=sorted(SCALES), default="M", help="the landing half's store")
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
    sandbox = None
    if args.half in ("landing", "both"):
        from sandbox.server import SandboxServer

        sandbox = SandboxServer().start()  # before Django's settings: they point the providers at it (DEV)
        os.environ.update(
            SANDBOX_URL=sandbox.url, CLERK_API_URL=f"{sandbox.url}/clerk/v1", CLERK_AUTHORIZED_PARTIES=API_ORIGIN,
            CLERK_SECRET_KEY="sk_test_bench000000000000",
        )  # fmt: skip
        os.environ.pop("CLERK_JWT_KEY_FILE", None)
        from sandbox.server import SandboxControl

        os.environ["CLERK_JWT_KEY"] = SandboxControl(sandbox.url).jwt_public_key()
    try:
        if args.half in ("coalescing", "both"):
            run(args, name)
        if sandbox is not None:
            landing(args, sandbox.url)
    finally:
        if sandbox is not None:
            sandbox.stop()
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
    ceiling = settings.DBT_BUILD_COALESCE_MAX_SECONDS

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

    worker = start_worker()
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

        # Done when nothing is unbuilt or running, and stays so past the last request's countdown (the build starts
        # once the syncs have been quiet for `coalesce`, or at the latest `ceiling` after the first).
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
        report(args, t0, coalesce, ceiling)
    finally:
        stop_worker(worker)


def start_worker() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--loglevel", "WARNING", "--concurrency", "2"],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip


def stop_worker(worker: subprocess.Popen) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(15)
    except subprocess.TimeoutExpired:  # a worker still holding countdown messages: the bench is over anyway
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(15)


def report(args, t0, coalesce: int, ceiling: int) -> None:
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
    print(f"coalesce_quiet: {coalesce} s (DBT_BUILD_COALESCE_SECONDS)")
    print(f"coalesce_ceiling: {ceiling} s (DBT_BUILD_COALESCE_MAX_SECONDS)")
    print(f"coalesced_builds: {len(builds)} builds")
    for run in builds:
        taken = run.raw_data_changes.count()
        print(f"coalesced_build_{run.pk}: {run.duration_seconds:.1f} s ({run.status}, {taken} changes)")
    if latencies:
        print(f"sync_to_built_p50: {pct(latencies, 0.5):.1f} s")
        print(f"sync_to_built_max: {max(latencies):.1f} s")
    print(f"changes_unbuilt: {raw_data_change_unbuilt_list().count()} changes")


def _day_orders(airbyte, connection_id: str, day: dt.date) -> int:
    """Revenue orders (not test, not cancelled) the sandbox wrote, placed on `day` in the store's time zone."""
    zone = ZoneInfo(TZ)
    latest: dict[str, dict] = {}
    for record in airbyte.written_records(connection_id, "orders"):
        latest[record["id"]] = record
    return sum(
        1
        for o in latest.values()
        if o["test"] not in (True, "t", "true")
        and not o["cancelled_at"]
        and dt.datetime.fromisoformat(o["created_at"]).astimezone(zone).date() == day
    )


def landing(args, sandbox_url: str) -> None:
    """From a sync landing one more simulated day to the overview API showing it (module docstring)."""
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.utils import timezone

    from accounts.choices import Role
    from accounts.models import Membership, Merchant
    from analytics.choices import DbtRunStatus, DbtTrigger
    from analytics.models import DbtRun
    from config.celery import app
    from connectors.demo import _connect_shopify
    from ingestion.choices import JobStatus
    from ingestion.models import Pipeline
    from ingestion.services import job_poll, pipeline_sync
    from sandbox.server import SandboxControl
    from tests.airbyte_sandbox import AirbyteSandbox

    call_command("migrate", verbosity=0)  # again: a no-op after the coalescing half
    call_command("createcachetable", verbosity=0)  # the pages' and sessions' cache (DEV without Redis)
    days, per_day = SCALES[args.scale]
    control = SandboxControl(sandbox_url)
    airbyte = AirbyteSandbox(control)
    airbyte.manual_jobs()
    airbyte.world(history_days=days, orders_per_day=per_day, timezone=TZ, currency="USD")
    # Late evening some days back: the day's rows are all visible, and a day later is still the past.
    now = (dt.datetime.now(ZoneInfo(TZ)) - dt.timedelta(days=3)).replace(hour=23, minute=30, second=0, microsecond=0)
    airbyte.set_clock(now.isoformat())
    control.seed_clerk_user(
        "user_bench", first_name="Bench", last_name="Owner",
        email_addresses=[{"email_address": "bench@example.com", "verified": True}], primary_email="bench@example.com",
    )  # fmt: skip
    merchant = Merchant.objects.create(
        name="Bench landing", shop_domain="bench-landing.myshopify.com", key="bench_landing", timezone=TZ,
        currency="USD",
    )  # fmt: skip
    membership = Membership.objects.create(merchant=merchant, clerk_user_id="user_bench", role=Role.OWNER)

    # Install, history sync and first build inline (a worker's work, done here so the figure below is alone).
    app.conf.task_always_eager = True
    _connect_shopify(membership, control=control)  # the install service; its audit hook makes the pipeline
    pipeline = Pipeline.objects.get(merchant=merchant)
    started = time.monotonic()
    job = pipeline_sync(pipeline_id=pipeline.pk, force=True)
    airbyte.advance(job.airbyte_job_id)
    airbyte.advance(job.airbyte_job_id, "succeeded")
    app.conf.task_always_eager = False  # the history's build: inline, below, not the worker's
    from analytics.tasks import dbt_build_coalesced_task

    apply_async = dbt_build_coalesced_task.apply_async
    dbt_build_coalesced_task.apply_async = lambda *a, **k: None  # the history's build request: run inline below
    try:
        assert job_poll(job_id=job.pk).status == JobStatus.SUCCEEDED
    finally:
        dbt_build_coalesced_task.apply_async = apply_async
    print(f"history_sync: {time.monotonic() - started:.1f} s ({days} days x {per_day} orders/day)")
    from analytics.services import dbt_build_coalesced

    [first] = dbt_build_coalesced()
    if first.status != DbtRunStatus.SUCCESS:
        sys.exit(f"the history's build {first.status}: {first.error or first.failures[:3]}")
    print(f"history_build: {first.duration_seconds:.1f} s")
    connection.close()

    client = Client()
    new_day = (now + dt.timedelta(days=1)).date()

    def api_orders() -> int:
        token = control.mint_session_token("user_bench", azp=API_ORIGIN)
        response = client.get(
            f"/api/merchants/{merchant.pk}/metrics/overview/",
            {"start": new_day.isoformat(), "end": new_day.isoformat()},
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        if response.status_code != 200:
            sys.exit(f"the overview API answered {response.status_code}: {response.content[:300]!r}")
        return response.json()["kpis"]["current"]["orders"]

    assert api_orders() == 0
    worker = start_worker()
    try:
        time.sleep(5)  # the worker up
        airbyte.set_clock((now + dt.timedelta(days=1)).isoformat())
        t0, begun = timezone.now(), time.monotonic()
        job = pipeline_sync(pipeline_id=pipeline.pk, force=True)
        airbyte.advance(job.airbyte_job_id)
        airbyte.advance(job.airbyte_job_id, "succeeded")
        assert job_poll(job_id=job.pk).status == JobStatus.SUCCEEDED
        synced_at = time.monotonic()
        synced = synced_at - begun
        expected = _day_orders(airbyte, pipeline.connection_id, new_day)
        deadline = begun + 10 * 60
        while (shown := api_orders()) != expected:
            if time.monotonic() > deadline:
                sys.exit(f"the API showed {shown} orders for {new_day}, not {expected}, after 10 minutes")
            time.sleep(0.25)
        to_api = time.monotonic() - begun
        builds = list(DbtRun.objects.filter(triggered_by=DbtTrigger.DATA_CHANGED, started_at__gte=t0))
    finally:
        stop_worker(worker)
    print(f"landing_scale: {args.scale} ({days} days x {per_day} orders/day)")
    print(f"one_more_day_orders: {expected} orders")
    print(f"one_more_day_sync: {synced:.1f} s")
    for run in builds:
        print(f"one_more_day_build_{run.pk}: {run.duration_seconds or 0:.1f} s ({run.status})")
    # The sync's own seconds are the sandbox replaying its world to write the day; from its success recorded
    # on, it is ours: the coalescing countdown, the build, the API.
    print(f"one_more_day_synced_to_api: {to_api - synced:.1f} s")
    print(f"one_more_day_to_api: {to_api:.1f} s (goal 60 s)")


if __name__ == "__main__":
    main()
