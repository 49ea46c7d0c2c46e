"""The hourly freshness check (analytics.services.data_freshness_check): when each active store's each connected
source last landed data, from what ingestion records — one statement for every store, no dbt, no dbt lock."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.choices import Role
from analytics.choices import FreshnessStatus
from analytics.models import DataFreshnessCheck, RawDataChange
from analytics.selectors import source_freshness_list, warehouse_connection_params
from analytics.services import DBT_LOCK_KEY, DbtRunLocked, data_freshness_check, dbt_lock_held, dbt_run_execute
from analytics.tasks import data_freshness_check_task
from config.schedules import SCHEDULES
from connectors.choices import AuthKind, CredentialStatus, Provider
from connectors.models import AttentiveWebhook
from ingestion.choices import PipelineKind, PipelineStatus
from ingestion.models import Pipeline
from notifications.choices import NotificationKind
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory, MerchantFactory
from tests.connectors.factories import CredentialFactory

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 12, 4, 12, 5, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


def _set_created(pipeline_or_webhook, at: dt.datetime) -> None:
    type(pipeline_or_webhook).objects.filter(pk=pipeline_or_webhook.pk).update(created_at=at)


def connect(
    merchant,
    provider: str,
    *,
    landed_hours_ago: float | None,
    connected_hours_ago: float = 24 * 90,
    status: str = PipelineStatus.ACTIVE,
    credential_status: str = CredentialStatus.ACTIVE,
) -> Pipeline:
    """A credential and its Airbyte pipeline, connected and last synced that long before NOW."""
    credential = CredentialFactory(merchant=merchant, provider=provider, status=credential_status)
    pipeline = Pipeline.objects.create(
        merchant=merchant,
        credential=credential,
        source_type=provider,
        status=status,
        start_date=dt.date(2025, 1, 1),
        last_synced_at=None if landed_hours_ago is None else NOW - landed_hours_ago * HOUR,
    )
    _set_created(pipeline, NOW - connected_hours_ago * HOUR)
    return pipeline


def connect_attentive(
    merchant, *, landed_hours_ago: float | None, connected_hours_ago: float = 24 * 90, disabled: bool = False
) -> AttentiveWebhook:
    """An Attentive key and its webhook; its events' landing is a RawDataChange of `attentive`, as the intake makes."""
    credential = CredentialFactory(
        merchant=merchant, provider=Provider.ATTENTIVE, auth_kind=AuthKind.API_KEY, access_token="", api_key="k" * 32,
        expires_at=None, external_account_id=f"attentive-{merchant.key}",
    )  # fmt: skip
    webhook = AttentiveWebhook.objects.create(
        merchant=merchant,
        credential=credential,
        public_id=f"pub{merchant.pk}x{credential.pk}",
        attentive_webhook_id=f"wh-{credential.pk}",
        signing_key_enc="v1:test:unused",
        disabled_at=NOW if disabled else None,
    )
    _set_created(webhook, NOW - connected_hours_ago * HOUR)
    if landed_hours_ago is not None:
        # older events first: the check reads the latest
        for hours in (landed_hours_ago + 30, landed_hours_ago):
            RawDataChange.objects.create(merchant=merchant, source="attentive", at=NOW - hours * HOUR)
    return webhook


def statuses(now: dt.datetime = NOW) -> dict[tuple[str, str], str]:
    warn, error = 24 * HOUR, 48 * HOUR
    return {
        (row.merchant_key, row.source): row.status(now=now, warn_after=warn, error_after=error)
        for row in source_freshness_list()
    }


def test_stale_late_fresh_not_connected_and_first_sync_pending_are_told_apart():
    shop = MerchantFactory(key="shop_a")
    connect(shop, Provider.SHOPIFY, landed_hours_ago=1)
    connect(shop, Provider.META, landed_hours_ago=30)
    connect(shop, Provider.KLAVIYO, landed_hours_ago=50)
    connect(shop, Provider.GOOGLE_ADS, landed_hours_ago=24 * 30, status=PipelineStatus.DELETED)  # disconnected
    connect_attentive(shop, landed_hours_ago=3)
    # the store's own exchange-rates pipeline: no freshness expectation (none in dbt's _sources.yml either)
    rates = Pipeline.objects.create(
        merchant=shop, kind=PipelineKind.EXCHANGE_RATES, source_type="exchange-rates", status=PipelineStatus.ACTIVE,
        start_date=dt.date(2025, 1, 1), last_synced_at=NOW - 24 * 10 * HOUR,
    )  # fmt: skip
    assert rates.pk

    new = MerchantFactory(key="new_shop")  # installed ten hours ago, first sync still running
    connect(new, Provider.SHOPIFY, landed_hours_ago=None, connected_hours_ago=10)
    connect_attentive(new, landed_hours_ago=None, connected_hours_ago=10)
    stuck = MerchantFactory(key="stuck_shop")  # installed three days ago, its first sync never landed
    connect(stuck, Provider.SHOPIFY, landed_hours_ago=None, connected_hours_ago=72)

    reauth = MerchantFactory(key="reauth_shop")  # told to reconnect: not connected now, whatever the pipeline says
    connect(reauth, Provider.META, landed_hours_ago=24 * 5, credential_status=CredentialStatus.NEEDS_REAUTH)
    gone = MerchantFactory(key="gone_shop", is_active=False)  # uninstalled
    connect(gone, Provider.SHOPIFY, landed_hours_ago=24 * 5)
    quiet = MerchantFactory(key="quiet_shop")  # Attentive disconnected (its webhook disabled) long ago
    connect_attentive(quiet, landed_hours_ago=24 * 20, disabled=True)

    assert statuses() == {
        ("shop_a", "shopify"): FreshnessStatus.FRESH,
        ("shop_a", "meta"): FreshnessStatus.WARN,
        ("shop_a", "klaviyo"): FreshnessStatus.STALE,
        ("shop_a", "attentive"): FreshnessStatus.FRESH,
        ("new_shop", "shopify"): FreshnessStatus.AWAITING_FIRST_SYNC,
        ("new_shop", "attentive"): FreshnessStatus.AWAITING_FIRST_SYNC,
        ("stuck_shop", "shopify"): FreshnessStatus.STALE,
    }


def test_a_store_is_judged_on_its_own_rows_and_a_source_on_its_stalest_account():
    stale, fresh = MerchantFactory(key="stale_one"), MerchantFactory(key="fresh_one")
    connect(stale, Provider.KLAVIYO, landed_hours_ago=60)
    connect_attentive(stale, landed_hours_ago=70)
    connect(fresh, Provider.KLAVIYO, landed_hours_ago=2)
    connect_attentive(fresh, landed_hours_ago=2)
    # two Meta ad accounts: one syncs, the other stopped two days ago — the store misses that account's spend
    two = MerchantFactory(key="two_accounts")
    connect(two, Provider.META, landed_hours_ago=1)
    connect(two, Provider.META, landed_hours_ago=49)

    assert statuses() == {
        ("fresh_one", "klaviyo"): FreshnessStatus.FRESH,
        ("fresh_one", "attentive"): FreshnessStatus.FRESH,
        ("stale_one", "klaviyo"): FreshnessStatus.STALE,
        ("stale_one", "attentive"): FreshnessStatus.STALE,
        ("two_accounts", "meta"): FreshnessStatus.STALE,
    }
    [meta] = [row for row in source_freshness_list() if row.merchant_key == "two_accounts"]
    assert meta.landed_at == NOW - 49 * HOUR


def _stores(n: int, start: int) -> None:
    for i in range(start, start + n):
        merchant = MerchantFactory(key=f"bulk_{i}")
        for provider in (Provider.SHOPIFY, Provider.META, Provider.KLAVIYO):
            connect(merchant, provider, landed_hours_ago=1)
        connect_attentive(merchant, landed_hours_ago=1)


def test_one_statement_whatever_the_number_of_stores():
    counts = {}
    for n, start in ((1, 0), (24, 1)):
        _stores(n, start)
        with CaptureQueriesContext(connection) as read:
            rows = source_freshness_list()
        with CaptureQueriesContext(connection) as check:
            recorded = data_freshness_check(now=NOW)
        counts[n] = (len(read), len(check))
        assert len(rows) == recorded.sources_checked == 4 * recorded.stores_checked
    assert counts[1] == counts[24]
    assert counts[1][0] == 1  # the read is one statement; the check adds only its own row's insert
    assert counts[1][1] == 2


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("ops", "ops@example.com", "pw-ops-12345", is_staff=True)


def test_stale_sources_are_recorded_and_told_once_a_day_per_store_and_source(staff, settings):
    settings.APP_BASE_URL = "https://app.example.com"
    owner = MembershipFactory(role=Role.OWNER, merchant__key="late_shop", merchant__name="Late Shop")
    admin = MembershipFactory(role=Role.ADMIN, merchant=owner.merchant)
    MembershipFactory(role=Role.VIEWER, merchant=owner.merchant)  # viewers are not told
    shop = owner.merchant
    connect(shop, Provider.KLAVIYO, landed_hours_ago=50)
    connect(shop, Provider.SHOPIFY, landed_hours_ago=1)
    other = MembershipFactory(role=Role.OWNER, merchant__key="fine_shop").merchant
    connect(other, Provider.KLAVIYO, landed_hours_ago=1)

    first = data_freshness_check(now=NOW)
    second = data_freshness_check(now=NOW + HOUR)  # the next hour: still stale, nobody told again

    assert (first.stores_checked, first.sources_checked, first.warn_hours, first.error_hours) == (2, 3, 24, 48)
    assert first.stale == [
        {
            "merchant_id": shop.pk,
            "merchant_key": "late_shop",
            "source": "klaviyo",
            "landed_at": (NOW - 50 * HOUR).isoformat(),
            "connected_at": (NOW - 24 * 90 * HOUR).isoformat(),
            "age_hours": 50.0,
        }
    ]
    assert first.late == [] and first.duration_seconds < 5
    assert (first.staff_notified, first.merchants_notified) == (True, [shop.pk])
    assert second.staff_notified is False and second.stale[0]["age_hours"] == 51.0

    [to_staff] = Notification.objects.filter(staff_user=staff)
    assert to_staff.kind == NotificationKind.DATA_STALE
    assert to_staff.subject == f"[Ops] Stale data: late_shop: Klaviyo: last data 50 hours ago (check #{first.pk})"
    found = f"freshness check #{first.pk} found 1 connected store source with no data landed for over 48 hours"
    assert found in to_staff.body_text
    assert f"https://app.example.com/admin/analytics/datafreshnesscheck/{first.pk}/change/" in to_staff.body_text
    to_store = Notification.objects.filter(merchant=shop).order_by("clerk_user_id")
    assert sorted(to_store.values_list("clerk_user_id", "kind")) == sorted(
        [(owner.clerk_user_id, NotificationKind.DATA_STALE), (admin.clerk_user_id, NotificationKind.DATA_STALE)]
    )
    body = to_store[0].body_text
    assert "Klaviyo has not synced since " + (NOW - 50 * HOUR).date().isoformat() in body
    assert "Klaviyo: last data 50 hours ago" in body
    assert f"https://app.example.com/m/{shop.pk}/connectors/" in body
    assert not Notification.objects.filter(merchant=other).exists()

    # Later that day Shopify goes stale too: that pair is new — staff hear again, the store about Shopify only.
    Pipeline.objects.filter(merchant=shop, source_type=Provider.SHOPIFY).update(last_synced_at=NOW - 47 * HOUR)
    third = data_freshness_check(now=NOW + 2 * HOUR)
    assert {e["source"] for e in third.stale} == {"klaviyo", "shopify"} and third.staff_notified
    assert Notification.objects.filter(staff_user=staff).count() == 2
    assert Notification.objects.filter(merchant=shop).count() == 4  # owner and admin, one per source

    # The next day, still stale: told again, once.
    for hour in (0, 1):
        data_freshness_check(now=NOW + dt.timedelta(days=1, hours=hour))
    assert Notification.objects.filter(staff_user=staff).count() == 3
    assert Notification.objects.filter(merchant=shop).count() == 8


def test_nothing_stale_tells_nobody(staff):
    shop = MembershipFactory(role=Role.OWNER).merchant
    connect(shop, Provider.SHOPIFY, landed_hours_ago=30)  # late, not stale
    check = data_freshness_check(now=NOW)
    assert [e["source"] for e in check.late] == ["shopify"] and check.stale == []
    assert not Notification.objects.exists()


@pytest.mark.django_db(databases=["default", "warehouse"])
def test_the_check_runs_while_another_session_holds_the_dbt_lock(staff):
    shop = MembershipFactory(role=Role.OWNER).merchant
    connect(shop, Provider.SHOPIFY, landed_hours_ago=60)
    with psycopg.connect(**warehouse_connection_params(), autocommit=True) as other_process:
        other_process.execute("SELECT pg_advisory_lock(%s)", [DBT_LOCK_KEY])
        assert dbt_lock_held()
        with pytest.raises(DbtRunLocked):  # a dbt run would have to wait...
            dbt_run_execute(args=["build"])
        check_id = data_freshness_check_task.apply().get()  # ...the check does not
        other_process.execute("SELECT pg_advisory_unlock(%s)", [DBT_LOCK_KEY])
    assert not dbt_lock_held()
    check = DataFreshnessCheck.objects.get(pk=check_id)
    assert [e["source"] for e in check.stale] == ["shopify"]
    assert Notification.objects.filter(staff_user=staff).count() == 1


def test_beat_runs_the_check_hourly_instead_of_dbt_source_freshness():
    by_name = {s.name: s for s in SCHEDULES}
    assert "app:dbt-source-freshness-hourly" not in by_name
    assert not any(s.kwargs.get("args") == ["source", "freshness"] for s in SCHEDULES)
    check = by_name["app:data-freshness-hourly"]
    assert (check.task, check.crontab) == ("analytics.data_freshness_check", {"minute": "5"})
    assert check.expires_seconds == 50 * 60


def test_now_defaults_to_the_clock():
    shop = MerchantFactory()
    connect(shop, Provider.SHOPIFY, landed_hours_ago=None, connected_hours_ago=0)
    Pipeline.objects.filter(merchant=shop).update(created_at=timezone.now(), last_synced_at=timezone.now())
    check = data_freshness_check()
    assert (check.sources_checked, check.stale, check.late) == (1, [], [])


def test_admin_lists_the_checks_read_only_with_their_stale_sources(admin_client):
    shop = MerchantFactory(key="admin_shop")
    connect(shop, Provider.KLAVIYO, landed_hours_ago=50)
    connect(shop, Provider.SHOPIFY, landed_hours_ago=30)
    check = data_freshness_check(now=NOW)

    page = admin_client.get(reverse("admin:analytics_datafreshnesscheck_changelist")).content.decode()
    assert reverse("admin:analytics_datafreshnesscheck_change", args=[check.pk]) in page
    detail = admin_client.get(reverse("admin:analytics_datafreshnesscheck_change", args=[check.pk]))
    assert detail.status_code == 200
    body = detail.content.decode()
    assert "<td>admin_shop</td><td>klaviyo</td>" in body and "<td>admin_shop</td><td>shopify</td>" in body
    assert admin_client.get(reverse("admin:analytics_datafreshnesscheck_add")).status_code == 403


@pytest.mark.parametrize(
    ("overrides", "line"),
    [
        (
            {"DATA_FRESHNESS_WARN_HOURS": "50"},
            "DATA_FRESHNESS_WARN_HOURS must be at least 1 and at most DATA_FRESHNESS_ERROR_HOURS",
        ),
        (
            {"DBT_LOCK_RETRY_SECONDS": "900"},
            "DBT_LOCK_RETRY_SECONDS must be between 1 and 600 (the longest a task may wait in the broker)",
        ),
    ],
)
def test_thresholds_that_cannot_work_stop_the_boot_with_one_line(overrides, line):
    from tests.config.test_settings_boot import _production_env, _run

    result = _run(_production_env(**overrides), "check")
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines() == [f"configuration error: {line}"]
