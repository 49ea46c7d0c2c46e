"""The outbox in Django admin: filters, search, bodies, resend and cancel (audited), no secrets."""

from __future__ import annotations

import logging
from unittest import mock

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from notifications.choices import NotificationStatus
from notifications.models import NotificationOptOut
from notifications.services import notification_deliver
from tests.accounts.factories import MerchantFactory
from tests.notifications.factories import NotificationFactory

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:notifications_notification_changelist")
OPT_OUTS = reverse("admin:notifications_notificationoptout_changelist")
# Every action the notifications admin offers, each with its test below that it writes an audit event.
AUDITED_ACTIONS = {CHANGELIST: {"resend", "cancel"}, OPT_OUTS: set()}


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


def _offered_actions(response) -> set[str]:
    form = response.context["action_form"]
    return {value for value, _ in form.fields["action"].choices if value}


@pytest.mark.parametrize("changelist", sorted(AUDITED_ACTIONS))
def test_every_action_the_admin_offers_is_one_whose_audit_is_tested(admin_client, changelist):
    NotificationFactory()
    NotificationOptOut.objects.create(merchant=MerchantFactory(), clerk_user_id="user_x", kind="export_ready")
    response = admin_client.get(changelist)
    assert response.status_code == 200
    offered = _offered_actions(response) if response.context.get("action_form") else set()
    assert offered == AUDITED_ACTIONS[changelist]


def _assert_staff_audit(event, user, *, action: str, target_id: int, merchant_id: int) -> None:
    assert event.action == action
    assert (event.actor_type, event.actor_id, event.actor_label) == ("staff", str(user.pk), user.get_username())
    assert (event.target_type, event.target_id, event.merchant_id) == ("notification", str(target_id), merchant_id)
    assert (event.ip, event.user_agent) == ("127.0.0.1", "admin-test-browser")


def test_resend_action_requeues_finished_rows_after_commit_and_audits(
    admin_client, admin_user, delay, django_capture_on_commit_callbacks
):
    failed = NotificationFactory(status=NotificationStatus.FAILED, last_error="gave up", attempts=20)
    pending = NotificationFactory(status=NotificationStatus.PENDING)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            CHANGELIST,
            {"action": "resend", "_selected_action": [failed.pk, pending.pk]},
            follow=True,
            HTTP_USER_AGENT="admin-test-browser",
        )
    messages = [str(m) for m in response.context["messages"]]
    assert "1 notification(s) queued again." in messages
    assert f"Notification {pending.pk} is pending; only finished notifications can be resent." in messages
    failed.refresh_from_db()
    assert failed.status == NotificationStatus.PENDING
    assert failed.last_error == ""
    delay.assert_called_once_with(failed.pk)
    [event] = AuditEvent.objects.filter(action__startswith="notification.")  # none for the refused row
    _assert_staff_audit(
        event, admin_user, action="notification.resend", target_id=failed.pk, merchant_id=failed.merchant_id
    )
    assert event.metadata == {"kind": failed.kind, "previous_status": "failed"}


def test_cancel_action_stops_pending_rows_only_and_audits(admin_client, admin_user):
    pending = NotificationFactory(status=NotificationStatus.PENDING)
    sent = NotificationFactory(status=NotificationStatus.SENT)
    admin_client.post(
        CHANGELIST,
        {"action": "cancel", "_selected_action": [pending.pk, sent.pk]},
        HTTP_USER_AGENT="admin-test-browser",
    )
    pending.refresh_from_db()
    sent.refresh_from_db()
    assert pending.status == NotificationStatus.CANCELLED
    assert pending.last_error == "cancelled by admin"
    assert sent.status == NotificationStatus.SENT
    [event] = AuditEvent.objects.filter(action__startswith="notification.")
    _assert_staff_audit(
        event, admin_user, action="notification.cancel", target_id=pending.pk, merchant_id=pending.merchant_id
    )
    assert event.metadata == {"kind": pending.kind}
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


def test_opt_outs_are_shown_to_staff_but_never_changed_by_them(admin_client):
    opt_out = NotificationOptOut.objects.create(merchant=MerchantFactory(), clerk_user_id="user_x", kind="export_ready")
    assert admin_client.get(OPT_OUTS).status_code == 200
    change = reverse("admin:notifications_notificationoptout_change", args=[opt_out.pk])
    assert admin_client.get(change).status_code == 200  # view only
    assert admin_client.post(change, {"kind": "data_stale"}).status_code == 403
    assert admin_client.get(reverse("admin:notifications_notificationoptout_add")).status_code == 403
    delete = reverse("admin:notifications_notificationoptout_delete", args=[opt_out.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    # The bulk delete Django offers by default is not there to be posted either.
    admin_client.post(OPT_OUTS, {"action": "delete_selected", "_selected_action": [opt_out.pk], "post": "yes"})
    opt_out.refresh_from_db()  # still there, unchanged
    assert opt_out.kind == "export_ready"
