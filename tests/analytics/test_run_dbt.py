"""run_dbt, the cron/beat wrapper around dbt: failures are recorded and alerted, overlaps exit cleanly."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from accounts.choices import Role
from analytics import selectors
from analytics.choices import DbtRunStatus
from analytics.demo_data import generate_demo_data
from analytics.models import DbtRun
from analytics.selectors import warehouse_connection_params
from analytics.services import DBT_LOCK_KEY
from compliance.models import AuditEvent
from notifications.choices import NotificationKind
from notifications.models import Notification
from notifications.services import notification_deliver
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


@pytest.fixture(autouse=True)
def own_warehouse(scratch_db_factory, monkeypatch) -> dict:
    """dbt builds in a database of its own in these tests. In the shared test database a build for these tests'
    stores would rebuild dim_merchants without the stores whose marts the dashboards tests read (and fail the
    relationship tests of the incremental marts that still hold them)."""
    db = scratch_db_factory()
    monkeypatch.setattr("analytics.services.warehouse_connection_params", lambda: dict(db))
    monkeypatch.setattr(f"{__name__}.warehouse_connection_params", lambda: dict(db))
    return db


def test_overlapping_run_exits_cleanly_and_records_nothing(capsys):
    # The lock lives in the app's database (Django's connection), not where dbt builds.
    with psycopg.connect(**selectors.warehouse_connection_params(), autocommit=True) as other_process:
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


def test_source_freshness_by_hand_is_recorded_and_alerts_nobody():
    """`run_dbt source freshness` stays an operator's look; the 48-hour alerts are the hourly freshness check's
    (analytics.services.data_freshness_check, tests/analytics/test_freshness.py), which reads no raw table."""
    store = MembershipFactory(role=Role.OWNER, merchant__key="looked_at").merchant
    get_user_model().objects.create_user("ops", "ops@example.com", "pw-ops-12345", is_staff=True)
    with psycopg.connect(**warehouse_connection_params()) as conn:
        generate_demo_data(
            conn, merchant_key=store.key, shop_domain=store.shop_domain, timezone=store.timezone,
            currency=store.currency, days=2, orders_per_day=2, seed=3, end_date=dt.date.today(),
        )  # fmt: skip
    try:
        call_command("run_dbt", "source", "freshness")
    except CommandError as exc:  # a source that is stale or missing fails the command, as dbt says
        assert "failed" in str(exc)
    run = DbtRun.objects.get()
    assert run.command == "source freshness" and run.status in (DbtRunStatus.SUCCESS, DbtRunStatus.FAILED)
    assert run.freshness and all(f["source"].startswith("source.analytics.") for f in run.freshness)
    assert not Notification.objects.exists()


SHOPIFY_ONLY = ("shopify_orders", "shopify_order_refunds", "shopify_customers", "shopify_shop")


@pytest.fixture
def stores_with_and_without_data():
    """Three active stores: one with data, one installed before its first sync (no raw schema at all), and one
    that connected Shopify only (its schema lacks every Klaviyo, Attentive, ad, rate and session table)."""
    full = MembershipFactory(role=Role.OWNER, merchant__key="full_shop").merchant
    new = MembershipFactory(role=Role.OWNER, merchant__key="new_shop").merchant
    partial = MembershipFactory(role=Role.OWNER, merchant__key="partial_shop").merchant
    params = warehouse_connection_params()
    end = dt.date.today()
    with psycopg.connect(**params) as conn:
        for merchant, seed in ((full, 5), (partial, 6)):
            generate_demo_data(
                conn, merchant_key=merchant.key, shop_domain=merchant.shop_domain, timezone=merchant.timezone,
                currency=merchant.currency, days=4, orders_per_day=5, seed=seed, end_date=end,
            )  # fmt: skip
        for (table,) in conn.execute(
            "select table_name from information_schema.tables where table_schema = 'raw_partial_shop'"
        ).fetchall():
            if table not in SHOPIFY_ONLY:
                conn.execute(f'drop table raw_partial_shop."{table}"')
        conn.commit()
    yield full, new, partial
    with psycopg.connect(**params, autocommit=True) as conn:
        for key in ("full_shop", "partial_shop", "new_shop"):
            conn.execute(f"DROP SCHEMA IF EXISTS raw_{key} CASCADE")


def _raw_revenue_orders(conn, merchant) -> list[tuple]:
    """Revenue orders per local date, straight from the raw rows (latest version of each order)."""
    return conn.execute(
        f"""
        select (created_at at time zone %s)::date, count(*), sum(total_line_items_price - total_discounts)
        from (select distinct on (id) * from raw_{merchant.key}.shopify_orders
              order by id, updated_at desc, _airbyte_extracted_at desc) as o
        where not coalesce(test, false) and cancelled_at is null
        group by 1 order by 1""",
        [merchant.timezone],
    ).fetchall()


def test_stores_without_data_build_as_empty_and_alert_nobody(stores_with_and_without_data):
    full, new, partial = stores_with_and_without_data
    call_command("run_dbt", "build")

    run = DbtRun.objects.get()
    assert run.status == DbtRunStatus.SUCCESS, run.failures or run.error
    assert run.merchant_ids == [full.pk, new.pk, partial.pk]
    assert not Notification.objects.exists()
    with psycopg.connect(**warehouse_connection_params()) as conn:
        for merchant in (full, partial):
            expected = _raw_revenue_orders(conn, merchant)
            assert expected
            got = conn.execute(
                "select date_day, orders, net_revenue + refunds from analytics.fct_daily_summary"
                " where merchant_id = %s and orders > 0 order by 1",
                [merchant.pk],
            ).fetchall()
            assert got == expected, merchant.key
        per_store = dict(
            conn.execute(
                "select m.merchant_id,"
                " (select count(*) from analytics.fct_sessions s where s.merchant_id = m.merchant_id)"
                " + (select count(*) from analytics.fct_messages f where f.merchant_id = m.merchant_id)"
                " + (select count(*) from analytics.fct_ad_spend_daily a where a.merchant_id = m.merchant_id)"
                " from analytics.dim_merchants m"
            ).fetchall()
        )
        assert per_store[full.pk] > 0 and per_store[partial.pk] == 0 and per_store[new.pk] == 0
        assert conn.execute(
            "select count(*) from analytics.fct_orders where merchant_id = %s", [new.pk]
        ).fetchone() == (0,)


def test_a_failure_naming_one_store_alerts_that_store_only(stores_with_and_without_data):
    staff = get_user_model().objects.create_user("ops", "ops@example.com", "pw-ops-12345", is_staff=True)
    with psycopg.connect(**warehouse_connection_params()) as conn:
        # an older connector version: the table is there without a column the models read
        conn.execute("alter table raw_partial_shop.shopify_orders drop column landing_site")
        conn.commit()

    with pytest.raises(CommandError, match="failed"):
        call_command("run_dbt", "build")

    run = DbtRun.objects.get()
    assert run.status == DbtRunStatus.FAILED
    # the load step refuses that store's table; every other table and store is loaded and built
    assert [f["unique_id"] for f in run.failures] == ["load.raw_partial_shop.shopify_orders"]
    assert "raw_partial_shop.shopify_orders could not be loaded" in run.failures[0]["message"]
    assert "lacks the columns landing_site" in run.failures[0]["message"]
    full, _, partial = stores_with_and_without_data
    with psycopg.connect(**warehouse_connection_params()) as conn:
        (full_orders,) = conn.execute(
            "select count(*) from analytics.fct_orders where merchant_id = %s", [full.pk]
        ).fetchone()
        (partial_customers,) = conn.execute(
            "select count(*) from analytics_staging.stg_shopify__customers where merchant_id = %s", [partial.pk]
        ).fetchone()
    assert full_orders > 0 and partial_customers > 0
    told = Notification.objects.filter(merchant__isnull=False)
    assert list(told.values_list("merchant__key", "kind")) == [("partial_shop", NotificationKind.DBT_RUN_FAILED)]
    assert Notification.objects.filter(staff_user=staff, kind=NotificationKind.DBT_RUN_FAILED).count() == 1


def test_a_killed_run_is_marked_interrupted_by_the_next_run_and_staff_hear_once(
    smtp_sink, settings, django_capture_on_commit_callbacks, client
):
    settings.APP_BASE_URL = "https://app.example.com"
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "pw-ops-12345")
    # what a SIGKILLed `run_dbt build` leaves: its row still `running`, its lock gone with its session
    killed = DbtRun.objects.create(
        command="build", args=["build"], started_at=timezone.now() - dt.timedelta(hours=9), merchant_ids=[]
    )

    with django_capture_on_commit_callbacks() as callbacks:
        call_command("run_dbt", "run", "--select", "dim_merchants")
        call_command("run_dbt", "run", "--select", "dim_merchants")  # the next night: reported once only

    killed.refresh_from_db()
    assert killed.status == DbtRunStatus.INTERRUPTED
    first, second = DbtRun.objects.exclude(pk=killed.pk).order_by("id")
    assert first.status == second.status == DbtRunStatus.SUCCESS
    assert first.started_at <= killed.finished_at <= first.finished_at
    assert killed.error.startswith("interrupted: the process running it ended") and f"run #{first.pk}" in killed.error
    audit = AuditEvent.objects.get(action="dbt_run.interrupted")
    assert (audit.target_id, audit.metadata["found_by_run"]) == (str(killed.pk), first.pk)

    [alert] = Notification.objects.all()
    assert (alert.staff_user, alert.kind, alert.merchant) == (staff, NotificationKind.DBT_RUN_FAILED, None)
    assert len(callbacks) == 1
    assert notification_deliver(notification_id=alert.pk).status == "sent"
    [message] = smtp_sink.messages()
    assert message["rcpt_tos"] == ["ops@example.com"]
    assert message["subject"] == f"[Ops] dbt build interrupted (run #{killed.pk})"
    assert "ended before it recorded how the run ended" in message["text"]

    client.force_login(staff)
    changelist = reverse("admin:analytics_dbtrun_changelist")
    page = client.get(changelist, {"status": DbtRunStatus.INTERRUPTED}).content.decode()
    assert "Interrupted" in page and reverse("admin:analytics_dbtrun_change", args=[killed.pk]) in page
    assert reverse("admin:analytics_dbtrun_change", args=[first.pk]) not in page
