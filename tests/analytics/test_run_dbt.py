"""run_dbt, the cron/beat wrapper around dbt: failures are recorded and alerted, overlaps exit cleanly."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.choices import Role
from analytics.choices import DbtRunStatus
from analytics.demo_data import generate_demo_data
from analytics.models import DbtRun
from analytics.selectors import warehouse_connection_params
from analytics.services import DBT_LOCK_KEY
from notifications.choices import NotificationKind
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


def test_overlapping_run_exits_cleanly_and_records_nothing(capsys):
    with psycopg.connect(**warehouse_connection_params(), autocommit=True) as other_process:
        other_process.execute("SELECT pg_advisory_lock(%s)", [DBT_LOCK_KEY])
        call_command("run_dbt", "build")
    assert "another dbt run is in progress" in capsys.readouterr().out
    assert not DbtRun.objects.exists()


def test_bad_selector_fails_the_command_and_is_recorded():
    with pytest.raises(CommandError, match=r"dbt run #\d+ error"):
        call_command("run_dbt", "build", "--select", "no_such_model")
    run = DbtRun.objects.get()
    assert run.status == DbtRunStatus.ERROR
    assert run.command == "build --select no_such_model"
    assert run.finished_at is not None and run.duration_seconds is not None
    assert "Compilation Error" in run.error


def test_run_dbt_without_arguments_is_refused():
    with pytest.raises(CommandError, match="give dbt a command"):
        call_command("run_dbt")
    assert not DbtRun.objects.exists()


@pytest.fixture
def stale_merchant():
    """A merchant whose raw data was last loaded five days ago (committed: dbt reads it from its own session)."""
    owner = MembershipFactory(role=Role.OWNER, merchant__key="stale_shop")
    MembershipFactory(merchant=owner.merchant, role=Role.VIEWER)
    merchant = owner.merchant
    params = warehouse_connection_params()
    with psycopg.connect(**params) as conn:
        generate_demo_data(
            conn,
            merchant_key=merchant.key,
            shop_domain=merchant.shop_domain,
            timezone=merchant.timezone,
            currency=merchant.currency,
            days=3,
            orders_per_day=3,
            seed=7,
            end_date=dt.date.today() - dt.timedelta(days=5),
        )
    yield owner
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS raw_{merchant.key} CASCADE")


def test_stale_source_is_a_freshness_error_with_one_notification_per_recipient(stale_merchant):
    staff = get_user_model().objects.create_user("ops", "ops@example.com", "pw-ops-12345", is_staff=True)

    for _ in range(2):  # the hourly schedule runs again: the alert is not repeated
        with pytest.raises(CommandError, match="failed"):
            call_command("run_dbt", "source", "freshness")

    runs = list(DbtRun.objects.order_by("id"))
    assert [r.status for r in runs] == [DbtRunStatus.FAILED, DbtRunStatus.FAILED]
    errors = [f for f in runs[0].freshness if f["status"] == "error"]
    assert errors and all(f["merchant_key"] == "stale_shop" for f in errors)
    assert all(f["max_loaded_at"] < (dt.datetime.now(dt.UTC) - dt.timedelta(hours=48)).isoformat() for f in errors)

    to_merchant = Notification.objects.filter(merchant=stale_merchant.merchant)
    assert list(to_merchant.values_list("clerk_user_id", "kind")) == [
        (stale_merchant.clerk_user_id, NotificationKind.DATA_STALE)
    ]
    assert Notification.objects.filter(staff_user=staff, kind=NotificationKind.DATA_STALE).count() == 1
