"""Benchmark: token refresh under a storm of callers, and a sweep of many due credentials.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/refresh.py [--sweep 5000] [--workers 16]

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), migrates it,
starts the provider sandbox in-process on a free loopback port, then:

- storm: 50 threads call Google Ads through `credential_call` with one expired credential
  (goal: 1 token call, 50 successes);
- Shopify storm: the same with one expired Shopify credential (goal: 1 token call, 50 successes, the
  rotated refresh token stored);
- failing storms: the same against a token endpoint answering 503, then one hanging past the read
  timeout (goal: 1 token call each, 1 failure counted, status still active, every caller back within
  CONNECTORS_REFRESH_MAX_WAIT_SECONDS);
- sweep: N Google credentials due for refresh, selected by the sweeper's selector and refreshed by
  `--workers` threads calling the task's service, as Celery workers would (goal: all within 60 s).

Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import os
import secrets
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _database_url(name: str) -> tuple[str, dict]:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set")
    params = conninfo_to_dict(url)
    admin = {**params, "dbname": params.get("dbname") or "postgres"}
    user, host = params.get("user") or "postgres", params.get("host") or "127.0.0.1"
    password = f":{params['password']}" if params.get("password") else ""
    return f"postgres://{user}{password}@{host}:{params.get('port') or 5432}/{name}", admin


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweep", type=int, default=5000, help="due credentials in the sweep")
    parser.add_argument("--workers", type=int, default=16, help="concurrent refreshers (Celery concurrency)")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    name = f"bench_refresh_{secrets.token_hex(3)}"
    url, admin = _database_url(name)
    with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(DATABASE_URL=url, DJANGO_DEV="1", DJANGO_SETTINGS_MODULE="config.settings", LOG_LEVEL="WARNING")
    try:
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args) -> None:
    import django

    django.setup()
    logging.getLogger().setLevel(logging.WARNING)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Merchant
    from connectors import services
    from connectors.choices import AuthKind, Provider
    from connectors.clients.google import GoogleAdsClient
    from connectors.crypto import encrypt_secret
    from connectors.models import ConnectorCredential
    from connectors.selectors import credential_ids_due_for_refresh
    from sandbox.server import SandboxControl, SandboxServer

    call_command("migrate", verbosity=0)
    with SandboxServer() as sandbox:
        control = SandboxControl(sandbox.url)
        settings.GOOGLE_OAUTH_TOKEN_URL = f"{sandbox.url}/google/token"
        settings.GOOGLE_ADS_API_URL = f"{sandbox.url}/google/ads"
        settings.GOOGLE_OAUTH_CLIENT_ID, settings.GOOGLE_OAUTH_CLIENT_SECRET = "bench-client", "bench-secret"
        merchant = Merchant.objects.create(
            name="Bench", shop_domain="bench.myshopify.com", timezone="UTC", currency="USD", key="bench"
        )

        def credential(n: int, tokens: dict) -> ConnectorCredential:
            return ConnectorCredential(
                merchant=merchant,
                provider=Provider.GOOGLE_ADS,
                auth_kind=AuthKind.OAUTH,
                external_account_id=str(1_000_000_000 + n),
                access_token_enc=encrypt_secret(tokens["access_token"]),
                refresh_token_enc=encrypt_secret(tokens["refresh_token"]),
                expires_at=timezone.now() - dt.timedelta(seconds=5),
            )

        def issue() -> dict:
            return control._request("POST", "/_control/google/tokens", json={"ttl": -5}).json()

        # --- storm ----------------------------------------------------------------------------
        storm = credential(0, issue())
        storm.save()
        barrier = threading.Barrier(50)

        def caller(_: int) -> bool:
            try:
                barrier.wait()
                services.credential_call(
                    credential_id=storm.pk,
                    call=lambda token: GoogleAdsClient().search(access_token=token, customer_id="1", query="SELECT 1"),
                )
                return True
            finally:
                connection.close()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=50) as pool:
            ok = sum(pool.map(caller, range(50)))
        storm_seconds = time.perf_counter() - started
        print("refresh_storm_callers: 50 callers")
        print(f"refresh_storm_succeeded: {ok} callers")
        print(f"refresh_storm_token_calls: {len(control.calls('google.oauth.token'))} calls (goal 1)")
        print(f"refresh_storm_time: {storm_seconds:.2f} s")

        # --- Shopify storm: the refresh token rotates; the rotated one must be the one stored ---------
        from connectors.clients.shopify import ShopifyClient
        from connectors.crypto import decrypt_secret

        settings.SHOPIFY_ADMIN_URL = f"{sandbox.url}/shopify/{{shop}}"
        settings.SHOPIFY_API_KEY = "sandbox-shopify-api-key"
        settings.SHOPIFY_API_SECRET = "shpss_sandbox_shopify_api_secret_0000"
        shop = merchant.shop_domain
        pair = control._request("POST", "/_control/shopify/tokens", json={"shop": shop, "ttl": -5}).json()
        shopify_storm = ConnectorCredential.objects.create(
            merchant=merchant,
            provider=Provider.SHOPIFY,
            auth_kind=AuthKind.OAUTH,
            external_account_id=shop,
            access_token_enc=encrypt_secret(pair["access_token"]),
            refresh_token_enc=encrypt_secret(pair["refresh_token"]),
            expires_at=timezone.now() - dt.timedelta(seconds=5),
        )
        shopify_barrier = threading.Barrier(50)

        def shopify_caller(_: int) -> bool:
            try:
                shopify_barrier.wait()
                services.credential_call(
                    credential_id=shopify_storm.pk,
                    call=lambda token: ShopifyClient(shop=shop).shop(access_token=token),
                )
                return True
            finally:
                connection.close()

        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=50) as pool:
            ok = sum(pool.map(shopify_caller, range(50)))
        shopify_seconds = time.perf_counter() - started
        shopify_storm.refresh_from_db()
        rotated = decrypt_secret(shopify_storm.refresh_token_enc) != pair["refresh_token"]
        print(f"refresh_shopify_storm_succeeded: {ok} callers")
        token_calls = len(control.calls("shopify.oauth.access_token"))
        print(f"refresh_shopify_storm_token_calls: {token_calls} calls (goal 1)")
        print(f"refresh_shopify_storm_rotated_token_stored: {int(rotated)} bool (goal 1)")
        print(f"refresh_shopify_storm_time: {shopify_seconds:.2f} s")

        # --- failing storms ----------------------------------------------------------------------
        settings.CONNECTORS_HTTP_TIMEOUT = (2.0, 1.0)
        settings.CONNECTORS_REFRESH_MAX_WAIT_SECONDS = 5.0

        def failing_storm(label: str, n: int, **fault) -> None:
            control.reset()
            failing = credential(n, issue())
            failing.save()
            control.fault("google.oauth.token", times=50, **fault)
            barrier = threading.Barrier(50)

            def failing_caller(_: int) -> float:
                try:
                    barrier.wait()
                    started = time.perf_counter()
                    with contextlib.suppress(services.RefreshRetryable):
                        services.credential_call(credential_id=failing.pk, call=lambda token: None)
                    return time.perf_counter() - started
                finally:
                    connection.close()

            with ThreadPoolExecutor(max_workers=50) as pool:
                waits = list(pool.map(failing_caller, range(50)))
            failing.refresh_from_db()
            while fault.get("delay") and not control.calls("google.oauth.token"):
                time.sleep(0.05)  # the hanging answer is logged once the sandbox sends it
            print(f"refresh_{label}_token_calls: {len(control.calls('google.oauth.token'))} calls (goal 1)")
            print(f"refresh_{label}_failures_counted: {failing.consecutive_failures} failures (goal 1)")
            print(f"refresh_{label}_status: {failing.status} (goal active)")
            bound = settings.CONNECTORS_REFRESH_MAX_WAIT_SECONDS
            print(f"refresh_{label}_longest_wait: {max(waits):.2f} s (bound {bound:g} s)")

        failing_storm("storm_503", 10_000_001, status=503)
        failing_storm("storm_hang", 10_000_002, delay=3.0)

        # --- sweep ----------------------------------------------------------------------------
        control.reset()
        with ThreadPoolExecutor(max_workers=8) as pool:  # the control session pools 10 connections
            issued = list(pool.map(lambda _: issue(), range(args.sweep)))
        ConnectorCredential.objects.bulk_create(
            [credential(n + 1, tokens) for n, tokens in enumerate(issued)], batch_size=1000
        )

        def refresh(credential_id: int) -> bool:
            # Each worker thread keeps its database connection, as a Celery worker process does.
            try:
                services.credential_refresh(credential_id=credential_id)
                return True
            except services.ConnectorError:
                return False

        started = time.perf_counter()
        due = [pk for pk in credential_ids_due_for_refresh() if pk != storm.pk]
        with ThreadPoolExecutor(max_workers=args.workers) as pool:
            refreshed = sum(pool.map(refresh, due))
        sweep_seconds = time.perf_counter() - started
        still_due = len([pk for pk in credential_ids_due_for_refresh() if pk != storm.pk])
        print(f"refresh_sweep_due: {len(due)} credentials")
        print(f"refresh_sweep_refreshed: {refreshed} credentials")
        print(f"refresh_sweep_token_calls: {len(control.calls('google.oauth.token'))} calls")
        print(f"refresh_sweep_still_due_after: {still_due} credentials")
        print(f"refresh_sweep_time: {sweep_seconds:.1f} s (goal < 60 s, {args.workers} workers)")
        print(f"refresh_sweep_rate: {refreshed / sweep_seconds:.0f} refreshes/s")


if __name__ == "__main__":
    main()
