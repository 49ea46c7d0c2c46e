"""Benchmark: an agency's portfolio page and API over 20 granted stores at 1/10 of scale M.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/portfolio.py [--keep]
    ... python bench/portfolio.py --database portfolio_bench_1234abcd   # reuse a kept database (skips the build)

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), migrates it, generates 20
stores' demo data (scale M's 730 days at a tenth of its orders per day, 30; USD, EUR and GBP shops, so the blend
converts) and builds the marts with `dbt run` — the slow part, hence --keep. An agency (reporting currency USD)
has all 20 granted, every fourth with costs hidden. Then, for the page `/agencies/<id>/` and the API
`/api/agencies/<id>/portfolio/` (default range: last 30 days vs the previous 30), through Django's full handler
stack in-process with DEBUG off, interleaved request by request:

- `<name>_p50/_p95`: as agency staff meet it, the mart figures served from the dashboard cache after the first
  request of a dbt cycle (freshness and connector problems are read on every request);
- `<name>_cold_p50/_cold_p95`: the dashboard cache emptied before each request (the first view after a build).

Target: p95 ≤ 150 ms. Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import bench_database, pct  # noqa: E402

STORES = 20
DAYS, ORDERS_PER_DAY = 730, 30  # scale M (bench/dashboards.py SCALES: 730 days x 300 orders/day), a tenth
CURRENCIES = ("USD", "EUR", "GBP", "USD")
TIMEZONES = ("America/New_York", "Europe/Berlin", "Europe/London", "America/Los_Angeles")
USER = "user_portfolio_bench"


def merchants() -> list[dict]:
    return [
        {"id": i, "key": f"pf_{i:02d}", "timezone": TIMEZONES[i % 4], "currency": CURRENCIES[i % 4]}
        for i in range(1, STORES + 1)
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--database", help="reuse this database (built by an earlier --keep run)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--days", type=int, default=DAYS, help="history per store (default: scale M's)")
    args = parser.parse_args()

    with bench_database("portfolio_bench", reuse=args.database, keep=args.keep):
        run(args, build_marts=not args.database)


def build(days: int) -> None:
    from analytics.dbt_runner import dbt_invoke
    from analytics.demo_data import generate_demo_data
    from analytics.selectors import warehouse_connection_params

    db = warehouse_connection_params()
    started = time.perf_counter()
    with psycopg.connect(**db) as conn:
        for m in merchants():
            generate_demo_data(
                conn, merchant_key=m["key"], shop_domain=f"{m['key'].replace('_', '-')}.myshopify.com",
                timezone=m["timezone"], currency=m["currency"], days=days, orders_per_day=ORDERS_PER_DAY,
                seed=3000 + m["id"], end_date=dt.date.today(),
            )  # fmt: skip
            conn.commit()
    with psycopg.connect(**db, autocommit=True) as conn:
        conn.execute("analyze")
    print(f"generation_time: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    result = dbt_invoke(["run"], merchants=merchants(), db=db)
    if not result.success:
        sys.exit(f"dbt run failed: {result.error}")
    print(f"dbt_run_time: {time.perf_counter() - started:.1f} s")
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

    from accounts.models import Merchant
    from agencies.choices import AgencyRole, GrantStatus
    from agencies.models import AccessGrant, Agency, AgencyMember
    from analytics.models import DbtRun
    from dashboards.cache import CACHE_ALIAS
    from sandbox.server import SandboxControl, SandboxServer

    print(f"stores: {STORES} ({args.days} days x {ORDERS_PER_DAY} orders/day each)")
    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    if build_marts:
        build(args.days)
    agency, _ = Agency.objects.get_or_create(
        slug="bench-agency",
        defaults={"clerk_org_id": "org_bench", "name": "Bench Agency", "reporting_currency": "USD",
                  "created_by": USER},
    )  # fmt: skip
    AgencyMember.objects.get_or_create(
        agency=agency, clerk_user_id=USER, defaults={"clerk_role": "org:admin", "role": AgencyRole.ADMIN}
    )
    for m in merchants():
        merchant, _ = Merchant.objects.update_or_create(
            pk=m["id"],
            defaults={"name": f"Store {m['id']:02d}", "shop_domain": f"{m['key'].replace('_', '-')}.myshopify.com",
                      "timezone": m["timezone"], "currency": m["currency"], "key": m["key"]},
        )  # fmt: skip
        AccessGrant.objects.get_or_create(
            agency=agency, merchant=merchant, status=GrantStatus.ACTIVE,
            defaults={"can_see_costs": m["id"] % 4 != 0, "approved_by": "user_owner", "approved_at": timezone.now()},
        )  # fmt: skip
    if not DbtRun.objects.filter(status="success").exists():
        now = timezone.now()
        DbtRun.objects.create(command="build", status="success", started_at=now, finished_at=now)

    with SandboxServer() as sandbox:
        control = SandboxControl(sandbox.url)
        control.seed_clerk_user(USER, first_name="Bench", last_name="Agency")
        origin = "http://testserver"
        settings.CLERK_JWT_KEY = control.jwt_public_key()
        settings.CLERK_API_URL = f"{sandbox.url}/clerk/v1"  # the top bar's name lookup
        settings.CLERK_SECRET_KEY = "sk_test_bench0000000000000"
        settings.CLERK_AUTHORIZED_PARTIES = [origin]
        token = control.mint_session_token(USER, azp=origin, ttl_seconds=3600)
        client = Client()
        client.cookies["__session"] = token
        api_headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        targets = [
            ("portfolio_page", f"/agencies/{agency.pk}/", {}),
            ("portfolio_api", f"/api/agencies/{agency.pk}/portfolio/", api_headers),
        ]
        dashboard_cache = caches[CACHE_ALIAS]

        def timed(path: str, headers: dict, cold: bool) -> float:
            if cold:
                dashboard_cache.clear()
            started = time.perf_counter()
            response = client.get(path, **headers)
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                sys.exit(f"{path} answered {response.status_code}")
            return elapsed

        for label, path, headers in targets:
            dashboard_cache.clear()
            statements: list[str] = []

            def count(execute, sql, params, many, context, statements=statements):
                statements.append(sql)
                return execute(sql, params, many, context)

            with connections["default"].execute_wrapper(count), connections["warehouse"].execute_wrapper(count):
                timed(path, headers, cold=False)
            body = client.get(path, **headers)
            if label == "portfolio_api":
                tiles = len(body.json()["stores"])
            else:  # no template context outside the test runner: count the tiles in the HTML
                tiles = body.content.decode().count('data-testid="store-tile"')
            warm, cold = [], []
            for _ in range(args.requests):
                warm.append(timed(path, headers, cold=False))
                cold.append(timed(path, headers, cold=True))
                timed(path, headers, cold=False)  # refill: the next warm request is a hit again
            print(f"{label}_stores: {tiles} tiles")
            print(f"{label}_p50: {statistics.median(warm):.1f} ms")
            print(f"{label}_p95: {pct(warm, 0.95):.1f} ms")
            print(f"{label}_cold_p50: {statistics.median(cold):.1f} ms ({len(statements)} statements)")
            print(f"{label}_cold_p95: {pct(cold, 0.95):.1f} ms")
            print(f"{label}_p95_target_met: {'yes' if max(pct(warm, 0.95), pct(cold, 0.95)) <= 150 else 'no'}")


if __name__ == "__main__":
    main()
