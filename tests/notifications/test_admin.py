"""The outbox in Django admin: filters, search, bodies, resend and cancel (audited), no secrets."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from notifications.choices import NotificationStatus
from notifications.services import notification_deliver
from tests.accounts.factories import MerchantFactory
from tests.notifications.factories import NotificationFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:notifications_notification_changelist")


@pytest.fixture
def delay():
    with mock.patch("notifications.tasks.notification_deliver_task.delay") as patched:
        yield patched


def _ids(response) -> set[int]:
    return {row.pk for row in response.context["cl"].result_list}


def test_filters_by_status_kind_and_merchant(admin_client):
    merchant = MerchantFactory()
    failed = NotificationFactory(merchant=merchant, status=NotificationStatus.FAILED, kind="export_ready")
    NotificationFactory(merchant=merchant, status=NotificationStatus.SENT, kind="export_ready")
    NotificationFactory(status=NotificationStatus.FAILED, kind="export_ready")
    response = admin_client.get(
        CHANGELIST, {"status": "failed", "kind": "export_ready", "merchant__id__exact": merchant.pk}
    )
    assert response.status_code == 200
    assert _ids(response) == {failed.pk}


def test_search_by_address_and_user_id(admin_client):
    by_email = NotificationFactory(to_email="ada@example.com")
    by_user = NotificationFactory(clerk_user_id="user_search_me")
    NotificationFactory()
    assert _ids(admin_client.get(CHANGELIST, {"q": "ada@example"})) == {by_email.pk}
    assert _ids(admin_client.get(CHANGELIST, {"q": "user_search_me"})) == {by_user.pk}


def test_change_page_shows_bodies_escaped(admin_client):
    notification = NotificationFactory(body_text="Hello text", body_html="<p onclick='x'>Hello html</p>")
    response = admin_client.get(reverse("admin:notifications_notification_change", args=[notification.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Hello text" in page
    assert "&lt;p onclick=&#x27;x&#x27;&gt;Hello html&lt;/p&gt;" in page


def test_resend_action_requeues_finished_rows_after_commit_and_audits(
    admin_client, delay, django_capture_on_commit_callbacks
):
    failed = NotificationFactory(status=NotificationStatus.FAILED, last_error="gave up", attempts=20)
    pending = NotificationFactory(status=NotificationStatus.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST, {"action": "resend", "_selected_action": [failed.pk, pending.pk]}, follow=True
        )
    messages = [str(m) for m in response.context["messages"]]
    assert "1 notification(s) queued again." in messages
    assert f"Notification {pending.pk} is pending; only finished notifications can be resent." in messages
    failed.refresh_from_db()
    assert failed.status == NotificationStatus.PENDING
    assert failed.last_error == ""
    delay.assert_called_once_with(failed.pk)
    event = AuditEvent.objects.get(action="notification.resend")
    assert event.target_id == str(failed.pk)
    assert event.metadata == {"kind": failed.kind, "previous_status": "failed"}


def test_cancel_action_stops_pending_rows_only(admin_client):
    pending = NotificationFactory(status=NotificationStatus.PENDING)
    sent = NotificationFactory(status=NotificationStatus.SENT)
    admin_client.post(CHANGELIST, {"action": "cancel", "_selected_action": [pending.pk, sent.pk]})
    pending.refresh_from_db()
    sent.refresh_from_db()
    assert pending.status == NotificationStatus.CANCELLED
    assert pending.last_error == "cancelled by admin"
    assert sent.status == NotificationStatus.SENT
    assert AuditEvent.objects.filter(action="notification.cancel", target_id=str(pending.pk)).count() == 1
    # A cancelled row is never sent by a task that was already queued.
    assert notification_deliver(notification_id=pending.pk) is None


def test_secrets_never_reach_logs_errors_or_admin(admin_client, clerk, sandbox, settings, caplog):
    secret_key = "sk_test_Do0NotLeakThisKey0123456789"
    webhook_secret = settings.CLERK_WEBHOOK_SECRET
    settings.CLERK_SECRET_KEY = secret_key
    clerk.user("user_ada", email="ada@example.com")
    notification = NotificationFactory(clerk_user_id="user_ada")
    sandbox.fault("clerk.users.get", 401)
    with caplog.at_level(logging.DEBUG):
        result = notification_deliver(notification_id=notification.pk)
        admin_client.post("/webhooks/clerk/", "{}", content_type="application/json")  # bad signature
    assert result.status == NotificationStatus.FAILED
    pages = (
        admin_client.get(CHANGELIST).content.decode()
        + admin_client.get(reverse("admin:notifications_notification_change", args=[notification.pk])).content.decode()
    )
    for secret in (secret_key, webhook_secret, webhook_secret.removeprefix("whsec_")):
        assert secret not in result.last_error
        assert secret not in caplog.text
        assert secret not in pages
