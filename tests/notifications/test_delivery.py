"""Delivery over real HTTP (Clerk sandbox) and a real SMTP conversation (aiosmtpd on loopback)."""

from __future__ import annotations

import threading
from datetime import timedelta
from unittest import mock

import pytest
from celery.exceptions import Retry
from django.db import connection
from django.utils import timezone

from notifications import services
from notifications.choices import NotificationKind, NotificationStatus
from notifications.models import Notification
from notifications.services import NotificationRetryLater, notification_create, notification_deliver
from notifications.tasks import notification_deliver_task, notifications_sweep_task
from tests.accounts.factories import MerchantFactory
from tests.notifications.factories import NotificationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_enqueue():
    with mock.patch("notifications.tasks.notification_deliver_task.delay") as patched:
        yield patched


def _create(clerk, kind=NotificationKind.DATA_STALE, user="user_ada", email="ada@example.com", **context):
    clerk.user(user, email=email)
    merchant = MerchantFactory(name="Acme Store")
    return notification_create(merchant=merchant, clerk_user_id=user, kind=kind, context=context or {"source": "Meta"})


def test_delivered_message_content_and_headers(clerk, mailer, no_enqueue):
    notification = _create(clerk, source="Meta Ads", details_url="https://app.example.com/m/1")
    result = notification_deliver(notification_id=notification.pk)

    assert result.status == NotificationStatus.SENT
    assert result.to_email == "ada@example.com"
    assert result.attempts == 1
    assert result.sent_at is not None
    assert result.last_error == ""
    [message] = mailer.messages()
    assert message["rcpt_tos"] == ["ada@example.com"]
    assert message["mail_from"] == "notifications@app.example.com"
    assert message["subject"] == "Meta Ads for Acme Store is out of date"
    headers = message["headers"]
    assert headers["From"] == "Marketing analytics <notifications@app.example.com>"
    assert headers["To"] == "ada@example.com"
    assert headers["Message-ID"] == f"<notification-{notification.pk}@app.example.com>"
    assert headers["List-Unsubscribe"].startswith("<https://app.example.com/notifications/unsubscribe/")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Meta Ads has not synced recently" in message["text"]
    assert "https://app.example.com/m/1" in message["text"]
    assert '<a href="https://app.example.com/m/1">See details</a>' in message["html"]


def test_critical_messages_have_no_list_unsubscribe(clerk, mailer, no_enqueue):
    notification = _create(clerk, kind=NotificationKind.CREDENTIAL_NEEDS_REAUTH, provider="Meta")
    notification_deliver(notification_id=notification.pk)
    [message] = mailer.messages()
    assert "List-Unsubscribe" not in message["headers"]
    assert message["subject"] == "Action needed: reconnect Meta for Acme Store"


def test_deleted_clerk_user_makes_it_undeliverable_with_the_reason(clerk, sandbox, mailer, no_enqueue):
    notification = _create(clerk)
    sandbox.delete_clerk_user("user_ada")
    result = notification_deliver(notification_id=notification.pk)
    assert result.status == NotificationStatus.UNDELIVERABLE
    assert result.last_error == "Clerk has no user user_ada (deleted?)"
    assert mailer.messages() == []


def test_no_verified_address_is_undeliverable(clerk, mailer, no_enqueue):
    notification = _create(clerk)
    clerk.user(
        "user_ada", email="ada@example.com", email_addresses=[{"email_address": "ada@example.com", "verified": False}]
    )
    result = notification_deliver(notification_id=notification.pk)
    assert result.status == NotificationStatus.UNDELIVERABLE
    assert "no verified email address" in result.last_error


def test_rate_limit_retry_after_is_honoured(clerk, sandbox, mailer, no_enqueue):
    notification = _create(clerk)
    sandbox.fault("clerk.users.get", 429, headers={"Retry-After": 120})
    before = timezone.now()
    with pytest.raises(NotificationRetryLater) as caught:
        notification_deliver(notification_id=notification.pk)
    assert caught.value.countdown >= 120
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING
    assert notification.last_error == "Clerk rate limit hit; retry after 120s"
    assert notification.next_attempt_at >= before + timedelta(seconds=120)
    assert notification.claimed_at is None

    # The task hands that countdown to Celery.
    sandbox.fault("clerk.users.get", 429, headers={"Retry-After": 90})
    with mock.patch.object(notification_deliver_task, "retry", side_effect=Retry()) as retry:
        notification_deliver_task.apply(args=[notification.pk])
    assert retry.call_args.kwargs["countdown"] >= 90


def test_clerk_5xx_is_retried_then_delivered(clerk, sandbox, mailer, no_enqueue):
    notification = _create(clerk)
    sandbox.fault("clerk.users.get", 503, times=2)
    # apply() runs Celery's retries eagerly, one after the other.
    result = notification_deliver_task.apply(args=[notification.pk])
    assert result.get() == NotificationStatus.SENT
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.attempts == 3
    assert len(sandbox.calls("clerk.users.get")) == 3
    assert len(mailer.messages()) == 1


def test_misconfigured_clerk_fails_at_once_without_retrying(clerk, sandbox, mailer, no_enqueue):
    notification = _create(clerk)
    sandbox.fault("clerk.users.get", 401)
    result = notification_deliver_task.apply(args=[notification.pk])
    assert result.get() == NotificationStatus.FAILED
    notification.refresh_from_db()
    assert "CLERK_SECRET_KEY" in notification.last_error
    assert notification.attempts == 1


def test_smtp_down_is_retried_and_delivered_exactly_once_when_back(clerk, mailer, no_enqueue):
    notification = _create(clerk)
    mailer.stop()
    with pytest.raises(NotificationRetryLater):
        notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING
    assert notification.last_error.startswith("mail server unreachable: ConnectionRefusedError")

    mailer.start()
    assert notification_deliver(notification_id=notification.pk).status == NotificationStatus.SENT
    assert notification_deliver(notification_id=notification.pk) is None  # a late duplicate task
    assert len(mailer.messages()) == 1
    notification.refresh_from_db()
    assert notification.attempts == 2


def test_smtp_temporary_refusals_are_retried_by_the_task(clerk, mailer, no_enqueue):
    notification = _create(clerk)
    mailer.refuse(451, times=2)
    assert notification_deliver_task.apply(args=[notification.pk]).get() == NotificationStatus.SENT
    assert len(mailer.messages()) == 1
    notification.refresh_from_db()
    assert notification.attempts == 3


def test_smtp_permanent_refusal_fails_with_the_servers_answer(clerk, mailer, no_enqueue):
    notification = _create(clerk)
    mailer.refuse(554)
    assert notification_deliver_task.apply(args=[notification.pk]).get() == NotificationStatus.FAILED
    notification.refresh_from_db()
    assert notification.last_error.startswith("the mail server answered 554")
    assert mailer.messages() == []


def test_gives_up_with_the_reason_once_the_retry_window_is_over(clerk, sandbox, mailer, no_enqueue):
    notification = _create(clerk)
    Notification.objects.filter(pk=notification.pk).update(give_up_at=timezone.now() + timedelta(seconds=5))
    sandbox.fault("clerk.users.get", 502)
    result = notification_deliver(notification_id=notification.pk)
    assert result.status == NotificationStatus.FAILED
    assert result.last_error == "gave up after 1 attempts: Clerk answered 502"


def test_an_unexpected_error_is_kept_visible_and_retried(clerk, mailer, no_enqueue):
    notification = _create(clerk)
    with (
        mock.patch("notifications.services.user_email_get", side_effect=RuntimeError("cache is down")),
        pytest.raises(NotificationRetryLater),
    ):
        notification_deliver(notification_id=notification.pk)
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING
    assert notification.last_error == "RuntimeError: cache is down"


def test_a_task_run_twice_sends_once(clerk, sandbox, mailer, no_enqueue):
    notification = _create(clerk)
    assert notification_deliver_task.apply(args=[notification.pk]).get() == NotificationStatus.SENT
    assert notification_deliver_task.apply(args=[notification.pk]).get() is None
    assert len(mailer.messages()) == 1
    assert len(sandbox.calls("clerk.users.get")) == 1


def test_cached_address_serves_the_second_notification(clerk, sandbox, mailer, no_enqueue):
    first = _create(clerk)
    second = notification_create(merchant=first.merchant, clerk_user_id="user_ada", kind="export_ready", context={})
    notification_deliver(notification_id=first.pk)
    notification_deliver(notification_id=second.pk)
    assert len(mailer.messages()) == 2
    assert len(sandbox.calls("clerk.users.get")) == 1


def test_missing_or_cancelled_rows_are_left_alone(mailer):
    assert notification_deliver(notification_id=987654) is None
    cancelled = NotificationFactory(status=NotificationStatus.CANCELLED)
    assert notification_deliver(notification_id=cancelled.pk) is None
    assert mailer.messages() == []


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_send_once(clerk, mailer, no_enqueue):
    notification = _create(clerk)
    barrier = threading.Barrier(4)
    results = []

    def worker():
        try:
            barrier.wait()
            results.append(notification_deliver(notification_id=notification.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r is not None for r in results) == 1
    assert len(mailer.messages()) == 1
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.attempts == 1


def test_sweeper_requeues_dead_workers_and_lost_tasks_only(no_enqueue, django_capture_on_commit_callbacks):
    now = timezone.now()
    dead = NotificationFactory(status=NotificationStatus.SENDING, claimed_at=now - timedelta(hours=1))
    lost = NotificationFactory(status=NotificationStatus.PENDING, next_attempt_at=now - timedelta(hours=1))
    NotificationFactory(status=NotificationStatus.SENDING, claimed_at=now)  # a live worker
    NotificationFactory(status=NotificationStatus.PENDING, next_attempt_at=now + timedelta(minutes=30))  # waiting
    NotificationFactory(status=NotificationStatus.PENDING, next_attempt_at=now)  # just queued
    NotificationFactory(status=NotificationStatus.SENT, next_attempt_at=now - timedelta(days=1))

    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_sweep_task.apply().get() == 2
    assert sorted(call.args[0] for call in no_enqueue.call_args_list) == sorted([dead.pk, lost.pk])
    dead.refresh_from_db()
    assert dead.status == NotificationStatus.PENDING
    assert dead.last_error == services.LOST_WORKER
    # Re-enqueued rows are not picked up again by the next sweep while they wait in the queue.
    with django_capture_on_commit_callbacks(execute=True):
        assert notifications_sweep_task.apply().get() == 0


def test_a_worker_reuses_one_smtp_session(clerk, mailer, no_enqueue):
    first = _create(clerk)
    second = notification_create(merchant=first.merchant, clerk_user_id="user_ada", kind="export_ready", context={})
    with mock.patch("notifications.services.get_connection", wraps=services.get_connection) as opened:
        notification_deliver(notification_id=first.pk)
        notification_deliver(notification_id=second.pk)
    assert opened.call_count == 1
    assert len(mailer.messages()) == 2


def test_a_session_the_server_dropped_is_reopened_within_the_same_attempt(clerk, mailer, no_enqueue):
    first = _create(clerk)
    second = notification_create(merchant=first.merchant, clerk_user_id="user_ada", kind="export_ready", context={})
    notification_deliver(notification_id=first.pk)
    mailer.stop()  # the relay restarts: the open session is dead
    mailer.start()
    result = notification_deliver(notification_id=second.pk)
    assert result.status == NotificationStatus.SENT
    assert result.attempts == 1
    assert len(mailer.messages()) == 2


def test_recipient_refused_permanently_is_undeliverable(clerk, mailer, no_enqueue):
    notification = _create(clerk)
    mailer.refuse(550, stage="rcpt")
    result = notification_deliver(notification_id=notification.pk)
    assert result.status == NotificationStatus.UNDELIVERABLE
    assert result.last_error == "the mail server refused the recipient (550)"


def test_recipient_refused_temporarily_is_retried(clerk, mailer, no_enqueue):
    notification = _create(clerk)
    mailer.refuse(450, stage="rcpt")
    assert notification_deliver_task.apply(args=[notification.pk]).get() == NotificationStatus.SENT
    assert len(mailer.messages()) == 1


def test_backoff_grows_with_jitter_and_retries_span_about_a_day():
    for attempts in range(1, 12):
        step = min(services.RETRY_MAX_SECONDS, services.RETRY_BASE_SECONDS * 2 ** (attempts - 1))
        delays = {services.retry_delay(attempts) for _ in range(20)}
        assert all(step / 2 <= d <= step for d in delays)
        assert len(delays) > 1  # jittered
    assert services.retry_delay(1, min_delay=300) >= 300
    # Worst case (every delay at its minimum) still gives up only after a day of attempts.
    elapsed, attempts = 0.0, 0
    while elapsed <= services.RETRY_FOR.total_seconds():
        attempts += 1
        elapsed += min(services.RETRY_MAX_SECONDS, services.RETRY_BASE_SECONDS * 2 ** (attempts - 1)) / 2
    assert 20 <= attempts <= 40


def test_a_wait_longer_than_the_broker_may_hold_is_left_to_the_sweeper(
    clerk, sandbox, mailer, no_enqueue, settings, django_capture_on_commit_callbacks
):
    notification = _create(clerk)
    retry_after = settings.TASK_MAX_COUNTDOWN_SECONDS * 6
    sandbox.fault("clerk.users.get", 429, headers={"Retry-After": retry_after})
    before = timezone.now()
    # apply() would run a Celery retry at once, eagerly: a pending result shows that none was asked for.
    assert notification_deliver_task.apply(args=[notification.pk]).get() == NotificationStatus.PENDING
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.PENDING
    assert notification.next_attempt_at >= before + timedelta(seconds=retry_after)
    assert mailer.messages() == []

    with django_capture_on_commit_callbacks(execute=True):
        assert services.notifications_sweep() == []  # not due yet
    Notification.objects.filter(pk=notification.pk).update(
        next_attempt_at=timezone.now() - services.PENDING_GRACE - timedelta(seconds=1)
    )  # the wait is over
    with django_capture_on_commit_callbacks(execute=True):
        assert services.notifications_sweep() == [notification.pk]
    no_enqueue.assert_called_once_with(notification.pk)
    assert notification_deliver_task.apply(args=[notification.pk]).get() == NotificationStatus.SENT
