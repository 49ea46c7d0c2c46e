"""Real marts for the dashboard tests: demo data for two merchants, built with dbt once per test session.

The marts live in the `analytics` schema of the pytest-django test database, which Django's flush between
transactional tests leaves alone; Merchant rows are created per test with the fixed ids the marts use.
"""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.db import connections

from accounts.choices import Role
from analytics.dbt_runner import dbt_invoke
from analytics.demo_data import generate_demo_data
from analytics.selectors import warehouse_connection_params
from tests.accounts.factories import MembershipFactory, MerchantFactory

DEMO_DAYS = 120
DEMO_ORDERS_PER_DAY = 15
MART_MERCHANTS = [
    {"id": 910001, "key": "dash_alpine", "name": "Alpine Gear", "shop_domain": "dash-alpine.myshopify.com",
     "timezone": "America/New_York", "currency": "USD", "seed": 11},
    {"id": 910002, "key": "dash_beach", "name": "Beach Things", "shop_domain": "dash-beach.myshopify.com",
     "timezone": "Europe/Berlin", "currency": "EUR", "seed": 12},
]  # fmt: skip


@pytest.fixture(scope="session")
def marts(django_db_setup, django_db_blocker):
    """Build the marts on the test database (≈15 s), once."""
    with django_db_blocker.unblock():
        db = warehouse_connection_params()
        end = dt.date.today()
        with psycopg.connect(**db) as conn:
            for m in MART_MERCHANTS:
                conn.execute(f"drop schema if exists raw_{m['key']} cascade")
                conn.commit()
                generate_demo_data(
                    conn, merchant_key=m["key"], shop_domain=m["shop_domain"], timezone=m["timezone"],
                    currency=m["currency"], days=DEMO_DAYS, orders_per_day=DEMO_ORDERS_PER_DAY, seed=m["seed"],
                    end_date=end,
                )  # fmt: skip
        merchants = [{k: m[k] for k in ("id", "key", "timezone", "currency")} for m in MART_MERCHANTS]
        result = dbt_invoke(["build"], merchants=merchants, db=db)
        # Data-test failures are the analytics suite's to report; here every model must have been built.
        unbuilt = [r for r in result.results if r.unique_id.startswith("model.") and r.status != "success"]
        assert result.results and not unbuilt, result.error or unbuilt
    yield MART_MERCHANTS
    # dbt (in-process) and the selectors leave connections open; the test database cannot be dropped while
    # any is. This database belongs to this test process alone. Only the app role's own sessions: it may not
    # end the owner's (or autovacuum's).
    connections["warehouse"].close()
    with django_db_blocker.unblock(), psycopg.connect(**db, autocommit=True) as conn:
        conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity"
            " where datname = current_database() and pid <> pg_backend_pid() and usename = current_user"
        )


def mart_merchant(index: int):
    spec = MART_MERCHANTS[index]
    return MerchantFactory(
        pk=spec["id"], key=spec["key"], name=spec["name"], shop_domain=spec["shop_domain"],
        timezone=spec["timezone"], currency=spec["currency"],
    )  # fmt: skip


@pytest.fixture
def alpine(marts):
    """The first mart merchant, as a Merchant row (the marts know it by id)."""
    return mart_merchant(0)


@pytest.fixture
def beach(marts):
    return mart_merchant(1)


@pytest.fixture
def owner(clerk, alpine):
    """A Clerk user who owns Alpine Gear only."""
    return MembershipFactory(clerk_user_id=clerk.user("user_olivia", first_name="Olivia", last_name="Owner"),
                             merchant=alpine, role=Role.OWNER)  # fmt: skip


@pytest.fixture
def outsider(clerk, beach):
    """A Clerk user who is a member of Beach Things only."""
    return MembershipFactory(clerk_user_id=clerk.user("user_bob"), merchant=beach, role=Role.OWNER)
