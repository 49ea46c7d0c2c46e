"""Benchmark: what authenticating with an agency token costs a metrics API request, beside a Clerk session.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/agency_tokens.py [--requests 400]
    ... [--redis redis://127.0.0.1:6379/15]   # DRF's throttles on Redis, as in production (else the DB cache)

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), migrates it, builds the
marts of one small demo store with `dbt run`, and creates an agency with an active grant on the store, its
admin, and a token listing the store. Then GET /api/merchants/<id>/metrics/overview/ in-process through
Django's full handler stack (middleware, DRF authentication, permission, throttles, store access) with DEBUG
off, alternately with the owner's Clerk session token and with the agency token, so the machine's slow spells
land on both alike. The metrics body comes from the dashboard cache (warm) either way: what differs is only
how the request is authenticated and its store resolved.

Prints ``name: value unit`` lines; ``token_auth_overhead`` is p50/p95 of the token requests minus p50/p95 of
the Clerk ones (goal: ≤ 1 ms added).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import bench_database, pct  # noqa: E402

MERCHANT = {"id": 1, "key": "tokbench", "timezone": "America/New_York", "currency": "USD"}
OWNER = "user_bench_owner"
ADMIN = "user_bench_agency_admin"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=400, help="requests per way in")
    parser.add_argument("--redis", help="REDIS_URL for the default cache (DRF's throttles count there)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    if args.redis:
        os.environ["REDIS_URL"] = args.redis
    else:
        os.environ.pop("REDIS_URL", None)
    # The rates far above what the benchmark sends: it measures the throttles' cost, not their refusals.
    with bench_database(
        "tok_bench", keep=args.keep, AGENCY_TOKEN_RATE="1000000/minute", AGENCY_TOKEN_AGENCY_RATE="1000000/minute"
    ):
        run(args)


def build() -> None:
    from analytics.dbt_runner import dbt_invoke
    from analytics.demo_data import generate_demo_data
    from analytics.selectors import warehouse_connection_params

    db = warehouse_connection_params()
    with psycopg.connect(**db) as conn:
        generate_demo_data(
            conn, merchant_key=MERCHANT["key"], shop_domain="tokbench.myshopify.com", timezone=MERCHANT["timezone"],
            currency=MERCHANT["currency"], days=40, orders_per_day=10, seed=2026, end_date=dt.date.today(),
        )  # fmt: skip
    result = dbt_invoke(["run"], merchants=[MERCHANT], db=db)
    if not result.success:
        sys.exit(f"dbt run failed: {result.error}")
    with psycopg.connect(**db, autocommit=True) as conn:
        conn.execute("vacuum analyze")


def run(args) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    from accounts.models import Membership, Merchant
    from agencies.choices import AgencyRole, GrantStatus, TokenScope
    from agencies.models import AccessGrant, Agency, AgencyMember
    from agencies.tokens import agency_token_create
    from analytics.models import DbtRun
    from sandbox.server import SandboxControl, SandboxServer

    call_command("migrate", verbosity=0)
    call_command("createcachetable", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    build()
    merchant = Merchant.objects.create(
        pk=MERCHANT["id"], name="Token bench", shop_domain="tokbench.myshopify.com", timezone=MERCHANT["timezone"],
        currency=MERCHANT["currency"], key=MERCHANT["key"],
    )  # fmt: skip
    Membership.objects.create(merchant=merchant, clerk_user_id=OWNER, role="owner")
    now = timezone.now()
    DbtRun.objects.create(command="run", status="success", started_at=now, finished_at=now)
    agency = Agency.objects.create(clerk_org_id="org_bench", name="Bench agency", slug="bench", created_by=ADMIN)
    AgencyMember.objects.create(agency=agency, clerk_user_id=ADMIN, clerk_role="org:admin", role=AgencyRole.ADMIN)
    AccessGrant.objects.create(agency=agency, merchant=merchant, status=GrantStatus.ACTIVE, approved_at=now)
    issued = agency_token_create(
        agency=agency, created_by=ADMIN, name="bench", scopes=[TokenScope.METRICS_READ], merchant_ids=[merchant.pk]
    )
    print(f"default_cache: {settings.CACHES['default']['BACKEND'].rsplit('.', 1)[-1]}")

    with SandboxServer() as sandbox:
        control = SandboxControl(sandbox.url)
        control.seed_clerk_user(OWNER, first_name="Bench", last_name="Owner")
        origin = "http://testserver"
        settings.CLERK_JWT_KEY = control.jwt_public_key()
        settings.CLERK_AUTHORIZED_PARTIES = [origin]
        session = control.mint_session_token(OWNER, azp=origin, ttl_seconds=3600)
        ways = {
            "clerk": {"HTTP_AUTHORIZATION": f"Bearer {session}"},
            "token": {"HTTP_AUTHORIZATION": f"Bearer {issued.plaintext}"},
        }
        client = Client()
        path = f"/api/merchants/{merchant.pk}/metrics/overview/"
        for headers in ways.values():  # fill the dashboard cache and every per-process memo
            for _ in range(20):
                response = client.get(path, **headers)
                if response.status_code != 200:
                    sys.exit(f"{path} answered {response.status_code}: {response.content[:200]!r}")
        cache.clear()  # the throttles' windows start empty
        times: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.requests):
            for way, headers in ways.items():
                started = time.perf_counter()
                response = client.get(path, **headers)
                times[way].append((time.perf_counter() - started) * 1000)
                if response.status_code != 200:
                    sys.exit(f"{way}: {path} answered {response.status_code}")
        for way, values in times.items():
            print(f"{way}_p50: {statistics.median(values):.3f} ms")
            print(f"{way}_p95: {pct(values, 0.95):.3f} ms")
        p50 = statistics.median(times["token"]) - statistics.median(times["clerk"])
        p95 = pct(times["token"], 0.95) - pct(times["clerk"], 0.95)
        print(f"token_auth_overhead: {p50:.3f} / {p95:.3f} ms (p50 / p95, {args.requests} requests each)")


if __name__ == "__main__":
    main()
