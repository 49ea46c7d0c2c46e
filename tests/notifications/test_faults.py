"""Database faults around delivery, for real: the worker's PostgreSQL backend is terminated by another session
at the moment the SMTP sink accepts the message (before our client hears "250"), so the `sent` UPDATE is the
first statement to find the connection dead. One email, whatever happens to the database afterwards."""

from __future__ import annotations

import socket
from datetime import timedelta
from unittest import mock

import psycopg
import pytest
from django.db import connection
from django.db.models import F

from notifications import services
from notifications.choices import NotificationKind, NotificationStatus
from notifications.models import Notification
from notifications.services import notification_create
from notifications.tasks import notification_deliver_task
from tests.accounts.factories import MerchantFactory

# The worker's connection is killed and reopened: the rows must be committed, not inside a test transaction.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def enqueued():
    """Ids enqueued (after commit) since the last call; the test plays the worker and runs them with the real task."""
    with mock.patch("notifications.tasks.notification_deliver_task.delay") as delay:

        def take() -> list[int]:
            ids = [call.args[0] for call in delay.call_args_list]
            delay.reset_mock()
            return ids

        yield take


def _create(clerk, enqueued) -> Notification:
    clerk.user("user_ada", email="ada@example.com")
    merchant = MerchantFactory(name="Acme Store")
    notification = notification_create(
        merchant=merchant, clerk_user_id="user_ada", kind=NotificationKind.DATA_STALE, context={"source": "Meta"}
    )
    assert enqueued() == [notification.pk]  # the test runs this first delivery itself
    return notification


def _terminate_on_accept(mailer, pid: int) -> list[bool]:
    """When the sink accepts DATA, terminate backend `pid` from a session of its own (same role: allowed)."""
    params = connection.get_connection_params()
    terminated: list[bool] = []

    def kill(message):
        if terminated:
            return  # only the first acceptance
        with psycopg.connect(**params, autocommit=True) as killer:
            terminated.append(killer.execute("SELECT pg_terminate_backend(%s)", [pid]).fetchone()[0])

    mailer.mailbox.on_accept(kill)
    return terminated


def _worker_backend_pid() -> int:
    connection.ensure_connection()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _between_tasks() -> None:
    connection.close()  # what Celery's Django fixup does before and after each task (not for eager runs)


def _lease_passes(notification_id: int) -> None:
    """As if the lease ran out: the sweeper treats the claim as a dead worker's."""
    Notification.objects.filter(pk=notification_id, status=NotificationStatus.SENDING).update(
        claimed_at=F("claimed_at") - services.SENDING_LEASE - timedelta(seconds=1)
    )


def _sweep_and_run(enqueued) -> list[int]:
    requeued = services.notifications_sweep()
    for notification_id in enqueued():
        notification_deliver_task.apply(args=[notification_id])
        _between_tasks()
    return requeued


def test_connection_killed_after_smtp_accept_is_finished_on_a_fresh_connection(clerk, mailer, enqueued):
    notification = _create(clerk, enqueued)
    terminated = _terminate_on_accept(mailer, _worker_backend_pid())

    result = notification_deliver_task.apply(args=[notification.pk])
    _between_tasks()

    _lease_passes(notification.pk)
    requeued = _sweep_and_run(enqueued)
    assert terminated == [True]
    assert len(mailer.messages()) == 1
    assert requeued == []
    assert result.get() == NotificationStatus.SENT
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.attempts == 1
    assert notification.to_email == "ada@example.com"
    assert notification.sent_at is not None
    assert notification.claimed_at is None


def _dead_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again on return: connecting there is refused


def test_database_down_after_smtp_accept_the_sweeper_marks_it_sent_instead_of_resending(clerk, mailer, enqueued):
    notification = _create(clerk, enqueued)
    terminated = _terminate_on_accept(mailer, _worker_backend_pid())
    # The open session keeps working until it is killed; every reconnection after that is refused, as while
    # the database restarts or fails over.
    reachable = connection.settings_dict
    options = {k: v for k, v in reachable.get("OPTIONS", {}).items() if k != "host"}
    connection.settings_dict = {**reachable, "HOST": "127.0.0.1", "PORT": str(_dead_port()), "OPTIONS": options}
    try:
        result = notification_deliver_task.apply(args=[notification.pk])
    finally:
        connection.settings_dict = reachable
    _between_tasks()

    assert terminated == [True]
    assert result.get() == NotificationStatus.SENDING  # accepted by the mail server; the database never heard
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENDING
    assert len(mailer.messages()) == 1

    # The database is back; a sweep within the lease leaves the row to its worker.
    assert _sweep_and_run(enqueued) == []
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENDING

    _lease_passes(notification.pk)
    assert _sweep_and_run(enqueued) == []
    assert len(mailer.messages()) == 1
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert notification.last_error == ""
    assert notification.to_email == "ada@example.com"
    assert notification.sent_at is not None
    assert notification.attempts == 1
    # Nothing is left behind for a later sweep or a staff resend to trip over.
    assert _sweep_and_run(enqueued) == []
    assert len(mailer.messages()) == 1


def test_a_dead_workers_claim_without_an_smtp_acceptance_is_sent_again(clerk, mailer, enqueued):
    notification = _create(clerk, enqueued)
    # A worker claimed it and died before the mail server accepted anything.
    Notification.objects.filter(pk=notification.pk).update(
        status=NotificationStatus.SENDING, claimed_at=F("created_at")
    )
    _lease_passes(notification.pk)
    assert _sweep_and_run(enqueued) == [notification.pk]
    notification.refresh_from_db()
    assert notification.status == NotificationStatus.SENT
    assert len(mailer.messages()) == 1


def test_a_connection_killed_before_the_claim_is_replaced_and_the_message_sent(clerk, mailer, enqueued):
    notification = _create(clerk, enqueued)
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as killer:
        assert killer.execute("SELECT pg_terminate_backend(%s)", [_worker_backend_pid()]).fetchone()[0]

    assert notification_deliver_task.apply(args=[notification.pk]).get() == NotificationStatus.SENT
    assert len(mailer.messages()) == 1


def test_a_sweep_that_cannot_read_the_cache_leaves_expired_claims_alone(clerk, mailer, enqueued, settings):
    claimed = _create(clerk, enqueued)
    Notification.objects.filter(pk=claimed.pk).update(status=NotificationStatus.SENDING, claimed_at=F("created_at"))
    _lease_passes(claimed.pk)
    lost = notification_create(merchant=claimed.merchant, clerk_user_id="user_ada", kind="export_ready", context={})
    Notification.objects.filter(pk=lost.pk).update(next_attempt_at=F("created_at") - services.PENDING_GRACE * 2)
    enqueued()
    # The cache is a Redis nobody listens on: whether the mail server accepted the claim cannot be known.
    reachable = settings.CACHES
    dead = f"redis://127.0.0.1:{_dead_port()}/0"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": dead}}
    try:
        assert services.notifications_sweep() == [lost.pk]  # a lost task is not in doubt: enqueued again
    finally:
        settings.CACHES = reachable
    claimed.refresh_from_db()
    assert claimed.status == NotificationStatus.SENDING  # left for a sweep that can read the cache
    assert enqueued() == [lost.pk]
