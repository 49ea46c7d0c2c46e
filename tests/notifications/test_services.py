"""notification_create and merchant_admins_notify: what is stored, what is enqueued, what is refused."""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from accounts.choices import Role
from notifications import services
from notifications.choices import CRITICAL_KINDS, NotificationKind, NotificationStatus
from notifications.models import Notification
from notifications.services import NotificationError, merchant_admins_notify, notification_create
from tests.accounts.factories import MembershipFactory, MerchantFactory

pytestmark = pytest.mark.django_db

CONTEXT = {"source": "Meta Ads", "last_synced_at": "2026-11-25 06:00 UTC", "details_url": "https://x.example/d"}


@pytest.fixture
def delay():
    with mock.patch("notifications.tasks.notification_deliver_task.delay") as patched:
        yield patched


def test_critical_kinds_are_the_credential_alerts_and_the_uninstall():
    # Each means the store's data stopped (or is about to stop) flowing: none can be muted.
    assert {
        NotificationKind.CREDENTIAL_NEEDS_REAUTH,
        NotificationKind.CREDENTIAL_EXPIRING,
        NotificationKind.STORE_UNINSTALLED,
        # Not a stopped flow but a legal deadline: the store must pass a customer's data on within 30 days.
        NotificationKind.PRIVACY_DATA_READY,
    } == CRITICAL_KINDS


def test_create_renders_the_templates_and_enqueues_after_commit(delay, django_capture_on_commit_callbacks, settings):
    settings.APP_BASE_URL = "https://app.example.com"
    merchant = MerchantFactory(name="Acme & Co")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notification = notification_create(
            merchant=merchant, clerk_user_id="user_1", kind=NotificationKind.DATA_STALE, context=CONTEXT
        )
        assert not delay.called
    assert len(callbacks) == 1
    callbacks[0]()
    delay.assert_called_once_with(notification.pk)

    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING
    assert notification.attempts == 0
    assert notification.subject == "Meta Ads for Acme & Co is out of date"
    assert "Meta Ads has not synced since 2026-11-25 06:00 UTC" in notification.body_text
    assert "Acme & Co" in notification.body_text  # plain text is not HTML-escaped
    assert "Acme &amp; Co" in notification.body_html
    assert "https://app.example.com/notifications/unsubscribe/" in notification.body_text
    assert notification.give_up_at - notification.created_at == pytest.approx(services.RETRY_FOR, abs=timedelta(1))


def test_critical_kinds_carry_no_unsubscribe_link(delay):
    notification = notification_create(
        merchant=MerchantFactory(),
        clerk_user_id="user_1",
        kind=NotificationKind.CREDENTIAL_NEEDS_REAUTH,
        context={"provider": "Meta", "reconnect_url": "https://app.example.com/c/1"},
    )
    assert "unsubscribe" not in notification.body_text.lower()
    assert "cannot be turned off" in notification.body_text
    assert notification.subject == f"Action needed: reconnect Meta for {notification.merchant.name}"


@pytest.mark.parametrize("kind", NotificationKind.values)
def test_every_kind_has_templates(delay, kind):
    notification = notification_create(merchant=MerchantFactory(), clerk_user_id="user_1", kind=kind, context={})
    assert notification.subject and notification.body_text.strip() and "<html" in notification.body_html


def test_same_dedupe_key_within_the_window_returns_the_first(delay, django_capture_on_commit_callbacks):
    merchant = MerchantFactory()
    kwargs = {"merchant": merchant, "clerk_user_id": "user_1", "kind": NotificationKind.DATA_STALE, "context": CONTEXT}
    with django_capture_on_commit_callbacks(execute=True):
        first = notification_create(**kwargs, dedupe_key="stale:meta", dedupe_window=timedelta(hours=6))
        second = notification_create(**kwargs, dedupe_key="stale:meta", dedupe_window=timedelta(hours=6))
    assert second.pk == first.pk
    assert Notification.objects.count() == 1
    assert delay.call_count == 1


def test_dedupe_key_outside_the_window_creates_a_new_one(delay):
    merchant = MerchantFactory()
    kwargs = {"merchant": merchant, "clerk_user_id": "user_1", "kind": NotificationKind.DATA_STALE, "context": CONTEXT}
    first = notification_create(**kwargs, dedupe_key="k", dedupe_window=timedelta(hours=1))
    Notification.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=2))
    second = notification_create(**kwargs, dedupe_key="k", dedupe_window=timedelta(hours=1))
    assert second.pk != first.pk


def test_a_failed_earlier_alert_does_not_block_a_new_one(delay):
    merchant = MerchantFactory()
    kwargs = {"merchant": merchant, "clerk_user_id": "user_1", "kind": NotificationKind.DATA_STALE, "context": CONTEXT}
    first = notification_create(**kwargs, dedupe_key="k")
    Notification.objects.filter(pk=first.pk).update(status=NotificationStatus.FAILED)
    assert notification_create(**kwargs, dedupe_key="k").pk != first.pk


def test_dedupe_is_per_recipient_and_per_kind(delay):
    merchant = MerchantFactory()
    a = notification_create(merchant=merchant, clerk_user_id="u1", kind="data_stale", context={}, dedupe_key="k")
    b = notification_create(merchant=merchant, clerk_user_id="u2", kind="data_stale", context={}, dedupe_key="k")
    c = notification_create(merchant=merchant, clerk_user_id="u1", kind="export_ready", context={}, dedupe_key="k")
    assert len({a.pk, b.pk, c.pk}) == 3


def test_without_a_dedupe_key_every_call_creates_a_notification(delay):
    merchant = MerchantFactory()
    for _ in range(2):
        notification_create(merchant=merchant, clerk_user_id="u1", kind="export_ready", context={})
    assert Notification.objects.count() == 2


def test_a_muted_kind_is_recorded_as_suppressed_and_not_enqueued(delay, django_capture_on_commit_callbacks):
    merchant = MerchantFactory()
    services.notification_opt_out_create(merchant_id=merchant.pk, clerk_user_id="u1", kind="dbt_run_failed")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        notification = notification_create(merchant=merchant, clerk_user_id="u1", kind="dbt_run_failed", context={})
    assert notification.status == NotificationStatus.SUPPRESSED
    assert notification.last_error == "the recipient opted out of this kind"
    assert callbacks == []
    assert not delay.called


def test_critical_kinds_cannot_be_muted():
    merchant = MerchantFactory()
    with pytest.raises(NotificationError, match="critical and cannot be muted"):
        services.notification_opt_out_create(
            merchant_id=merchant.pk, clerk_user_id="u1", kind=NotificationKind.CREDENTIAL_NEEDS_REAUTH
        )


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"when": timezone.now()}, "plain JSON values"),
        ({"access_token": "abc"}, "must not carry secrets"),
        ({"note": "Bearer abcdef"}, "must not carry secrets"),
        ({"key": "sk_live_abcdefghijklmnop"}, "must not carry secrets"),
    ],
)
def test_context_must_be_plain_and_secret_free(delay, context, message):
    with pytest.raises(NotificationError, match=message):
        notification_create(merchant=MerchantFactory(), clerk_user_id="u1", kind="data_stale", context=context)
    assert Notification.objects.count() == 0


def test_unknown_kind_and_missing_user_are_refused(delay):
    merchant = MerchantFactory()
    with pytest.raises(NotificationError, match="Unknown notification kind"):
        notification_create(merchant=merchant, clerk_user_id="u1", kind="nope", context={})
    with pytest.raises(NotificationError, match="Clerk user id"):
        notification_create(merchant=merchant, clerk_user_id="", kind="data_stale", context={})


def test_merchant_admins_notify_reaches_owners_and_admins_only(delay, django_capture_on_commit_callbacks):
    merchant = MerchantFactory()
    owner = MembershipFactory(merchant=merchant, role=Role.OWNER)
    admin = MembershipFactory(merchant=merchant, role=Role.ADMIN)
    MembershipFactory(merchant=merchant, role=Role.VIEWER)
    MembershipFactory(role=Role.OWNER)  # another merchant's owner
    with django_capture_on_commit_callbacks(execute=True):
        created = merchant_admins_notify(
            merchant=merchant,
            kind=NotificationKind.CREDENTIAL_NEEDS_REAUTH,
            context={"provider": "Google Ads"},
            dedupe_key="credential:7",
        )
        again = merchant_admins_notify(
            merchant=merchant,
            kind=NotificationKind.CREDENTIAL_NEEDS_REAUTH,
            context={"provider": "Google Ads"},
            dedupe_key="credential:7",
        )
    assert sorted(n.clerk_user_id for n in created) == sorted([owner.clerk_user_id, admin.clerk_user_id])
    assert [n.pk for n in again] == [n.pk for n in created]
    assert delay.call_count == 2


def test_merchant_without_admins_logs_a_warning(delay, caplog):
    merchant = MerchantFactory()
    MembershipFactory(merchant=merchant, role=Role.VIEWER)
    assert merchant_admins_notify(merchant=merchant, kind="dbt_run_failed", context={}) == []
    assert f"merchant {merchant.pk} has no owner or admin to notify about dbt_run_failed" in caplog.text


def test_a_broker_outage_does_not_fail_the_caller_and_the_sweeper_recovers(django_capture_on_commit_callbacks):
    merchant = MerchantFactory()
    with (
        mock.patch("notifications.tasks.notification_deliver_task.delay", side_effect=ConnectionError("broker down")),
        django_capture_on_commit_callbacks(execute=True),
    ):
        notification = notification_create(merchant=merchant, clerk_user_id="u1", kind="export_ready", context={})
    assert Notification.objects.get(pk=notification.pk).status == NotificationStatus.PENDING

    Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now() - timedelta(hours=1))
    with (
        mock.patch("notifications.tasks.notification_deliver_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert services.notifications_sweep() == [notification.pk]
    delay.assert_called_once_with(notification.pk)
