"""staff_notify: platform alerts to operators through the same outbox (row, claim, retries, dedupe, admin)."""

from __future__ import annotations

import logging
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.urls import reverse
from django.utils import timezone

from compliance.choices import ActorType
from compliance.models import AuditEvent
from compliance.services import Actor
from notifications import services
from notifications.choices import NotificationKind, NotificationStatus
from notifications.models import Notification, NotificationOptOut
from notifications.services import (
    NotificationError,
    NotificationRetryLater,
    notification_deliver,
    notification_resend,
    notifications_sweep,
    staff_notify,
)
from tests.accounts.factories import MerchantFactory
from tests.notifications.factories import NotificationFactory

pytestmark = pytest.mark.django_db

User = get_user_model()
CHANGELIST = reverse("admin:notifications_notification_changelist")
RUN_CONTEXT = {
    "dbt_run_id": 42,
    "command": "build --select marts",
    "status": "failed",
    "failed_nodes": ["model.analytics.fct_orders", "test.analytics.not_null_orders_id"],
    "stale_sources": ["raw_shopify.orders"],
    "error": "",
}
STALE_CONTEXT = {**RUN_CONTEXT, "status": "success", "failed_nodes": [], "stale_sources": ["raw_meta.ads", "raw_x.y"]}


@pytest.fixture
def no_enqueue():
    with mock.patch("notifications.tasks.notification_deliver_task.delay") as patched:
        yield patched


@pytest.fixture
def staff_mailer(smtp_sink, settings):
    """A real SMTP sink and no Clerk at all: staff delivery must not need it."""
    settings.DEFAULT_FROM_EMAIL = "Marketing analytics <notifications@app.example.com>"
    settings.APP_BASE_URL = "https://app.example.com"
    with mock.patch("notifications.services.user_email_get", side_effect=AssertionError("Clerk was called")):
        yield smtp_sink


def _user(username: str, *, is_staff: bool = True, is_active: bool = True, email: str | None = None):
    return User.objects.create_user(
        username=username,
        email=f"{username}@ops.example.com" if email is None else email,
        is_staff=is_staff,
        is_active=is_active,
    )


def _notify(kind=NotificationKind.DBT_RUN_FAILED, context=None, **kwargs) -> list[Notification]:
    return staff_notify(kind=kind, context=RUN_CONTEXT if context is None else context, **kwargs)


# --- creating --------------------------------------------------------------------------------------


def test_one_notification_per_active_staff_user_with_an_email(no_enqueue, django_capture_on_commit_callbacks, settings):
    settings.APP_BASE_URL = "https://app.example.com"
    ada, bob = _user("ada"), _user("bob")
    _user("gone", is_active=False)
    _user("member", is_staff=False)
    _user("noemail", email="")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        created = _notify(dedupe_key="dbt_run_failed:build:2026-11-26")
        assert not no_enqueue.called  # only after commit
    assert {n.staff_user_id for n in created} == {ada.pk, bob.pk}
    assert len(callbacks) == 2
    assert sorted(call.args[0] for call in no_enqueue.call_args_list) == sorted(n.pk for n in created)
    for notification in created:
        notification.refresh_from_db()
        assert notification.merchant_id is None
        assert notification.clerk_user_id == ""
        assert notification.status == NotificationStatus.PENDING
        assert notification.next_attempt_at is not None and notification.give_up_at is not None
        assert notification.subject == "[Ops] dbt build --select marts failed (run #42)"
        admin_url = "https://app.example.com/admin/analytics/dbtrun/42/change/"
        assert f"Run details: {admin_url}" in notification.body_text
        assert f'<a href="{admin_url}">' in notification.body_html
        assert "- model.analytics.fct_orders" in notification.body_text
        assert "Platform operations · Marketing analytics" in notification.body_text
        assert "unsubscribe" not in notification.body_text.lower()
        assert "unsubscribe" not in notification.body_html.lower()
    assert Notification.objects.count() == 2


def test_data_stale_for_staff_lists_the_stale_sources(no_enqueue, settings):
    settings.APP_BASE_URL = "https://app.example.com"
    _user("ada")
    [notification] = _notify(kind=NotificationKind.DATA_STALE, context=STALE_CONTEXT)
    assert notification.subject == "[Ops] Stale data: raw_meta.ads, raw_x.y (run #42)"
    assert "- raw_meta.ads\n- raw_x.y" in notification.body_text
    assert "https://app.example.com/admin/analytics/dbtrun/42/change/" in notification.body_text


def test_merchant_version_of_the_same_context_says_dashboards_may_be_out_of_date(no_enqueue):
    merchant = MerchantFactory(name="Acme Store")
    for kind in (NotificationKind.DBT_RUN_FAILED, NotificationKind.DATA_STALE):
        notification = services.notification_create(
            merchant=merchant, clerk_user_id="user_ada", kind=kind, context=STALE_CONTEXT
        )
        assert "dashboards may be out of date" in notification.body_text
        assert "dashboards may be out of date" in notification.body_html
        assert "/admin/" not in notification.body_text + notification.body_html  # no admin links for merchants
        assert "Acme Store" in notification.subject


def test_dedupes_per_staff_user_kind_and_key(no_enqueue):
    ada = _user("ada")
    first = _notify(dedupe_key="k1")
    assert _notify(dedupe_key="k1") == first  # same rows back, nothing new
    bob = _user("bob")  # a newly added operator gets the alert; ada does not get it twice
    second = _notify(dedupe_key="k1")
    assert [n.pk for n in second if n.staff_user_id == ada.pk] == [first[0].pk]
    assert [n.staff_user_id for n in second if n.pk != first[0].pk] == [bob.pk]
    assert len(_notify(dedupe_key="k2")) == 2  # another key
    assert len(_notify(kind=NotificationKind.DATA_STALE, dedupe_key="k1")) == 2  # another kind
    assert Notification.objects.count() == 6


def test_dedupe_window_and_failed_rows_do_not_block(no_enqueue):
    _user("ada")
    [first] = _notify(dedupe_key="k")
    Notification.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(hours=2))
    assert _notify(dedupe_key="k", dedupe_window=timedelta(hours=3)) == [first]
    [second] = _notify(dedupe_key="k", dedupe_window=timedelta(hours=1))
    assert second.pk != first.pk
    Notification.objects.filter(pk=second.pk).update(status=NotificationStatus.FAILED)
    Notification.objects.filter(pk=first.pk).update(status=NotificationStatus.FAILED)
    [third] = _notify(dedupe_key="k")
    assert third.pk not in {first.pk, second.pk}


def test_no_staff_user_logs_one_warning_and_returns_nothing(no_enqueue, caplog):
    _user("member", is_staff=False)
    _user("noemail", email="")
    with caplog.at_level(logging.WARNING, logger="notifications.services"):
        assert _notify(dedupe_key="k") == []
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "no active staff user with an email" in warnings[0].getMessage()
    assert Notification.objects.count() == 0


def test_refuses_unknown_and_merchant_only_kinds_and_secrets(no_enqueue):
    _user("ada")
    with pytest.raises(NotificationError, match="Unknown notification kind"):
        staff_notify(kind="nope", context={})
    with pytest.raises(NotificationError, match="cannot go to staff"):
        staff_notify(kind=NotificationKind.CREDENTIAL_NEEDS_REAUTH, context={})
    with pytest.raises(NotificationError, match="secrets"):
        _notify(context={**RUN_CONTEXT, "error": "token sk_test_Do0NotLeakThisKey0123456789"})
    assert Notification.objects.count() == 0


def test_merchant_opt_outs_never_suppress_staff_alerts(no_enqueue):
    _user("ada")
    NotificationOptOut.objects.create(
        merchant=MerchantFactory(), clerk_user_id="user_ada", kind=NotificationKind.DBT_RUN_FAILED
    )
    with mock.patch("notifications.services.notification_is_muted", return_value=True) as muted:
        [notification] = _notify()
    muted.assert_not_called()
    assert notification.status == NotificationStatus.PENDING
    assert notification.last_error == ""


def test_rolled_back_caller_sends_nothing(no_enqueue, django_capture_on_commit_callbacks):
    _user("ada")
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        _notify()
        raise RuntimeError("the caller failed")
    assert callbacks == []
    assert Notification.objects.count() == 0


# --- the recipient constraint ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"with_merchant": True, "clerk_user_id": "user_1", "with_staff": True}, id="both"),
        pytest.param({"with_merchant": False, "clerk_user_id": "", "with_staff": False}, id="neither"),
        pytest.param({"with_merchant": False, "clerk_user_id": "user_1", "with_staff": True}, id="staff+clerk-id"),
        pytest.param({"with_merchant": True, "clerk_user_id": "", "with_staff": False}, id="merchant-no-user"),
        pytest.param({"with_merchant": False, "clerk_user_id": "user_1", "with_staff": False}, id="clerk-id-only"),
    ],
)
def test_constraint_rejects_anything_but_exactly_one_recipient(fields):
    merchant = MerchantFactory() if fields["with_merchant"] else None
    staff = _user("ada") if fields["with_staff"] else None
    with pytest.raises(IntegrityError, match="notification_one_recipient"), transaction.atomic():
        Notification.objects.create(
            merchant=merchant,
            clerk_user_id=fields["clerk_user_id"],
            staff_user=staff,
            kind=NotificationKind.DBT_RUN_FAILED,
            subject="s",
            body_text="t",
            body_html="h",
        )


def test_constraint_accepts_both_valid_shapes_and_staff_users_are_protected():
    staff = _user("ada")
    NotificationFactory()  # merchant + Clerk user, as today
    NotificationFactory(merchant=None, clerk_user_id="", staff_user=staff)
    assert Notification.objects.count() == 2
    with pytest.raises(ProtectedError), transaction.atomic():
        staff.delete()  # deactivate instead: the outbox keeps who was alerted


# --- delivering ------------------------------------------------------------------------------------


def test_delivers_to_the_staff_address_over_smtp_without_clerk(staff_mailer, no_enqueue):
    ada = _user("ada", email="ada@ops.example.com")
    [notification] = _notify()
    result = notification_deliver(notification_id=notification.pk)

    assert result.status == NotificationStatus.SENT
    assert result.to_email == "ada@ops.example.com"
    assert result.attempts == 1
    assert result.last_error == ""
    [message] = staff_mailer.messages()
    assert message["rcpt_tos"] == ["ada@ops.example.com"]
    assert message["subject"] == "[Ops] dbt build --select marts failed (run #42)"
    headers = message["headers"]
    assert headers["To"] == "ada@ops.example.com"
    assert headers["Message-ID"] == f"<notification-{notification.pk}@app.example.com>"
    assert "List-Unsubscribe" not in headers
    assert "List-Unsubscribe-Post" not in headers
    assert "https://app.example.com/admin/analytics/dbtrun/42/change/" in message["text"]
    assert '<a href="https://app.example.com/admin/analytics/dbtrun/42/change/">' in message["html"]
    # Claimed once: a second worker or a redelivered task does nothing.
    assert notification_deliver(notification_id=notification.pk) is None
    assert len(staff_mailer.messages()) == 1
    assert Notification.objects.get(pk=notification.pk).staff_user_id == ada.pk


def test_address_is_read_at_send_time(staff_mailer, no_enqueue):
    ada = _user("ada", email="old@ops.example.com")
    [notification] = _notify()
    ada.email = "new@ops.example.com"
    ada.save()
    assert notification_deliver(notification_id=notification.pk).to_email == "new@ops.example.com"
    assert staff_mailer.messages()[0]["rcpt_tos"] == ["new@ops.example.com"]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"email": ""}, "staff user {id} has no email address"),
        ({"is_active": False}, "staff user {id} is inactive"),
        ({"is_staff": False}, "user {id} is no longer staff"),
    ],
)
def test_staff_user_unusable_at_send_time_is_undeliverable(staff_mailer, no_enqueue, change, reason):
    ada = _user("ada")
    [notification] = _notify()
    User.objects.filter(pk=ada.pk).update(**change)
    result = notification_deliver(notification_id=notification.pk)
    assert result.status == NotificationStatus.UNDELIVERABLE
    assert result.last_error == reason.format(id=ada.pk)
    assert result.claimed_at is None
    assert staff_mailer.messages() == []


def test_transient_smtp_failure_is_retried_then_sent(staff_mailer, no_enqueue):
    _user("ada")
    [notification] = _notify()
    staff_mailer.refuse(451)
    with pytest.raises(NotificationRetryLater):
        notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING
    assert "451" in notification.last_error
    assert notification.next_attempt_at > timezone.now()
    assert notification_deliver(notification_id=notification.pk).status == NotificationStatus.SENT
    assert len(staff_mailer.messages()) == 1


def test_retries_end_in_failed_with_the_reason(staff_mailer, no_enqueue):
    _user("ada")
    [notification] = _notify()
    Notification.objects.filter(pk=notification.pk).update(give_up_at=timezone.now())
    staff_mailer.refuse(451)
    result = notification_deliver(notification_id=notification.pk)
    assert result.status == NotificationStatus.FAILED
    assert result.last_error.startswith("gave up after 1 attempts: the mail server answered 451")


def test_sweeper_requeues_a_lost_staff_notification(no_enqueue, django_capture_on_commit_callbacks):
    _user("ada")
    [notification] = _notify()
    Notification.objects.filter(pk=notification.pk).update(next_attempt_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_sweep() == [notification.pk]
    no_enqueue.assert_called_with(notification.pk)


def test_resend_of_a_staff_notification_is_audited_without_a_merchant(no_enqueue):
    ada = _user("ada")
    notification = NotificationFactory(
        merchant=None, clerk_user_id="", staff_user=ada, status=NotificationStatus.UNDELIVERABLE
    )
    result = notification_resend(notification=notification, actor=Actor(type=ActorType.STAFF, id="1", label="op"))
    assert result.status == NotificationStatus.PENDING
    event = AuditEvent.objects.get(action="notification.resend")
    assert event.merchant_id is None


# --- admin -----------------------------------------------------------------------------------------


def _ids(response) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


def test_admin_shows_the_recipient_and_filters_staff_vs_merchant(admin_client):
    ada = _user("ada", email="ada@ops.example.com")
    staff_row = NotificationFactory(merchant=None, clerk_user_id="", staff_user=ada)
    merchant_row = NotificationFactory(clerk_user_id="user_clerk_1")

    everything = admin_client.get(CHANGELIST)
    assert everything.status_code == 200
    page = everything.content.decode()
    assert "Staff: ada (ada@ops.example.com)" in page
    assert "Clerk user: user_clerk_1" in page
    assert _ids(admin_client.get(CHANGELIST, {"recipient": "staff"})) == {staff_row.pk}
    assert _ids(admin_client.get(CHANGELIST, {"recipient": "merchant"})) == {merchant_row.pk}
    assert _ids(admin_client.get(CHANGELIST, {"q": "ada@ops"})) == {staff_row.pk}

    detail = admin_client.get(reverse("admin:notifications_notification_change", args=[staff_row.pk]))
    assert detail.status_code == 200
    assert "Staff: ada (ada@ops.example.com)" in detail.content.decode()
