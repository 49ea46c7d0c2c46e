"""Benchmark: dashboard pages and metrics API against marts built at a given scale.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/dashboards.py [--scale M] [--keep]
    ... python bench/dashboards.py --database dash_bench_1234abcd   # reuse a kept database (skips the build)

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), migrates it,
generates one merchant's demo data and builds the marts with `dbt run`. Then, for each page and API
endpoint (default range: last 30 days; LTV: 12 months):

- server time: p50/p95 over --requests requests through Django's full handler stack (middleware, auth,
  selectors, templates), in-process with DEBUG off. Twice: as merchants meet it, where every request
  after the first of a dbt cycle is served from the dashboard cache (`<name>_p95`), and with that cache
  emptied before each request, as the first view after a build (`<name>_cold_p95`);
- bare SQL: p50/p95 of replaying exactly the SQL statements a cold request ran, on a raw cursor;
- the three interleaved request by request, so the machine's slow spells (a shared VM's) weigh on each alike;
- the ratio of each p95 to the bare SQL p95 (goal ≤ 1.5; p95 goal ≤ 150 ms);
- API throughput: requests per second to /metrics/overview/ under gunicorn with 2 workers (goal ≥ 300).

Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import bench_database, free_port, pct  # noqa: E402

SCALES = {"S": (90, 50), "M": (730, 300)}  # days, orders per day: the Analytics issue's scales
MERCHANT = {"id": 1, "key": "bench", "timezone": "America/New_York", "currency": "USD"}
USER = "user_bench"


def recorder(statements: list, alias: str):
    """A connection execute_wrapper that keeps every statement a request runs, to replay it bare."""

    def wrapper(execute, sql, params, many, context):
        # Reads only: replaying a write (session, cache) would fail or change what the next request sees.
        if sql.lstrip().lower().startswith(("select", "with")):
            statements.append((alias, sql, params))
        return execute(sql, params, many, context)

    return wrapper


def record(client, path: str, headers: dict) -> list[tuple[str, str, object]]:
    """Request `path` once and return the reads it ran, on either database."""
    from django.db import connections

    statements: list[tuple[str, str, object]] = []
    with (
        connections["default"].execute_wrapper(recorder(statements, "default")),
        connections["warehouse"].execute_wrapper(recorder(statements, "warehouse")),
    ):
        response = client.get(path, **headers)
    if response.status_code != 200:
        sys.exit(f"{path} answered {response.status_code}")
    return statements


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", choices=sorted(SCALES), default="M")
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--database", help="reuse this database (built by an earlier --keep run)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--throughput-seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with bench_database("dash_bench", reuse=args.database, keep=args.keep):
        run(args, build_marts=not args.database)


def build(scale: str) -> None:
    from analytics.dbt_runner import dbt_invoke
    from analytics.demo_data import generate_demo_data
    from analytics.selectors import warehouse_connection_params

    days, per_day = SCALES[scale]
    db = warehouse_connection_params()
    started = time.perf_counter()
    with psycopg.connect(**db) as conn:
        generate_demo_data(
            conn, merchant_key=MERCHANT["key"], shop_domain="bench.myshopify.com", timezone=MERCHANT["timezone"],
            currency=MERCHANT["currency"], days=days, orders_per_day=per_day, seed=2026, end_date=dt.date.today(),
        )  # fmt: skip
    with psycopg.connect(**db, autocommit=True) as conn:
        conn.execute("analyze")
    print(f"generation_time: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    result = dbt_invoke(["run"], merchants=[MERCHANT], db=db)
    if not result.success:
        sys.exit(f"dbt run failed: {result.error}")
    print(f"dbt_run_time: {time.perf_counter() - started:.1f} s")
    # Merchants read the marts hours after the nightly build, not while PostgreSQL is still setting hint
    # bits and vacuuming millions of new rows: measure from that settled state.
    with psycopg.connect(**db, autocommit=True) as conn:
        conn.execute("vacuum analyze")
        conn.execute("checkpoint")


def run(args, build_marts: bool) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import caches
    from django.core.management import call_command
    from django.db import connections
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Membership, Merchant
    from analytics.models import DbtRun
    from dashboards.cache import CACHE_ALIAS
    from dashboards.layouts import PAGE_LAYOUTS
    from dashboards.models import DashboardTemplate
    from sandbox.server import SandboxControl, SandboxServer

    days, per_day = SCALES[args.scale]
    print(f"scale: {args.scale} ({days} days x {per_day} orders/day)")
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    # DEBUG is off, as in production: templates need the hashed static manifest (staticfiles/, git-ignored).
    call_command("collectstatic", interactive=False, verbosity=0)
    if build_marts:
        build(args.scale)
    merchant, _ = Merchant.objects.update_or_create(
        pk=MERCHANT["id"],
        defaults={"name": "Bench", "shop_domain": "bench.myshopify.com", "timezone": MERCHANT["timezone"],
                  "currency": MERCHANT["currency"], "key": MERCHANT["key"]},
    )  # fmt: skip
    Membership.objects.get_or_create(merchant=merchant, clerk_user_id=USER, defaults={"role": "owner"})
    if not DbtRun.objects.filter(status="success").exists():
        now = timezone.now()
        DbtRun.objects.create(command="build", status="success", started_at=now, finished_at=now)
    template, _ = DashboardTemplate.objects.get_or_create(
        merchant=merchant, name="Bench", defaults={"layout": PAGE_LAYOUTS["overview"], "created_by": USER}
    )

    with SandboxServer() as sandbox:
        control = SandboxControl(sandbox.url)
        control.seed_clerk_user(USER, first_name="Bench", last_name="User")
        origin = "http://testserver"
        settings.CLERK_JWT_KEY = control.jwt_public_key()
        settings.CLERK_AUTHORIZED_PARTIES = [origin]
        token = control.mint_session_token(USER, azp=origin, ttl_seconds=3600)
        client = Client()
        client.cookies["__session"] = token
        api_headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}

        m = merchant.pk
        targets = [
            ("page_overview", f"/m/{m}/overview/", {}),
            ("page_ltv", f"/m/{m}/ltv/", {}),
            ("page_attribution", f"/m/{m}/attribution/", {}),
            ("page_engagement", f"/m/{m}/engagement/", {}),
            ("page_custom_dashboard", f"/m/{m}/dashboards/{template.pk}/", {}),
            ("api_overview", f"/api/merchants/{m}/metrics/overview/", api_headers),
            ("api_ltv", f"/api/merchants/{m}/metrics/ltv/", api_headers),
            ("api_attribution", f"/api/merchants/{m}/metrics/attribution/", api_headers),
            ("api_attribution_compare", f"/api/merchants/{m}/metrics/attribution/compare/", api_headers),
            ("api_engagement", f"/api/merchants/{m}/metrics/engagement/", api_headers),
        ]
        dashboard_cache = caches[CACHE_ALIAS]

        def timed(path: str, headers: dict, cold: bool) -> float:
            if cold:
                dashboard_cache.clear()
            started = time.perf_counter()
            client.get(path, **headers)
            return (time.perf_counter() - started) * 1000

        def replay(statements: list) -> float:
            started = time.perf_counter()
            for alias, sql, params in statements:
                with connections[alias].cursor() as cursor:
                    cursor.execute(sql, params)
                    if cursor.description:
                        cursor.fetchall()
            return (time.perf_counter() - started) * 1000

        for label, path, headers in targets:
            dashboard_cache.clear()
            statements = record(client, path, headers)  # a cold request: everything the page needs
            hit_statements = record(client, path, headers)  # the same again, served from the cache
            # Interleaved, so that a slow spell of the machine lands on all three alike.
            warm, cold, bare = [], [], []
            for _ in range(args.requests):
                warm.append(timed(path, headers, cold=False))
                bare.append(replay(statements))
                cold.append(timed(path, headers, cold=True))
                timed(path, headers, cold=False)  # refill: the next warm request is a hit again
            sql95 = pct(bare, 0.95)
            print(f"{label}_p50: {statistics.median(warm):.1f} ms ({len(hit_statements)} statements)")
            print(f"{label}_p95: {pct(warm, 0.95):.1f} ms")
            print(f"{label}_cold_p50: {statistics.median(cold):.1f} ms")
            print(f"{label}_cold_p95: {pct(cold, 0.95):.1f} ms")
            print(f"{label}_sql_p50: {statistics.median(bare):.1f} ms ({len(statements)} statements)")
            print(f"{label}_sql_p95: {sql95:.1f} ms")
            print(f"{label}_p95_over_sql_p95: {pct(warm, 0.95) / sql95:.2f} x")
            print(f"{label}_cold_p95_over_sql_p95: {pct(cold, 0.95) / sql95:.2f} x")

        throughput(args, token)


def throughput(args, token: str) -> None:
    import requests
    from django.db import connections

    connections.close_all()
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    from django.conf import settings

    env = {
        **os.environ,
        "CLERK_JWT_KEY": settings.CLERK_JWT_KEY,
        "CLERK_AUTHORIZED_PARTIES": "http://testserver",
        "ALLOWED_HOSTS": "127.0.0.1,localhost,testserver",
        "CONN_MAX_AGE": "600",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", "2", "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning"],
        cwd=ROOT, env=env, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"{origin}/api/merchants/{MERCHANT['id']}/metrics/overview/"
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(url, headers=headers, timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                sys.exit("gunicorn did not answer 200 within 30 s")
            time.sleep(0.2)
        for _ in range(20):  # warm both workers' connections
            requests.get(url, headers=headers, timeout=5)
        done = 0
        failed = 0
        lock = threading.Lock()
        stop_at = time.monotonic() + args.throughput_seconds
        path = urlsplit(url).path

        def worker(_: int) -> None:
            # http.client, not requests: the load generator shares the machine's two cores with the
            # server, and requests spends several times more CPU per call. Gunicorn's sync workers close
            # each connection after the response, so every request opens a new one either way.
            nonlocal done, failed
            while time.monotonic() < stop_at:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                try:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    ok = response.status == 200
                finally:
                    conn.close()
                with lock:
                    done += ok
                    failed += not ok

        started, client_cpu = time.monotonic(), time.process_time()
        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(worker, range(args.concurrency)))
        elapsed = time.monotonic() - started
        client_cpu = time.process_time() - client_cpu
        print("api_throughput_workers: 2 gunicorn sync workers")
        print(f"api_throughput_clients: {args.concurrency} threads")
        print(f"api_throughput: {done / elapsed:.0f} req/s")
        print(f"api_throughput_errors: {failed} requests")
        print(f"api_throughput_client_cpu: {100 * client_cpu / elapsed:.0f} % of one core")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
