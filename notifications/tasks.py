"""Thin Celery tasks over notifications.services; the retry policy lives in the service (see docs/async.md)."""

from __future__ import annotations

from celery import shared_task

from notifications import services


@shared_task(
    name="notifications.notification_deliver",
    bind=True,
    # The service gives up at the row's give_up_at (about a day); this cap only stops a runaway loop.
    max_retries=100,
    # Safe to redeliver: the service claims the row with a conditional UPDATE, so a second run is a no-op.
    acks_late=True,
    reject_on_worker_lost=True,
    # Below the outbox lease (services.SENDING_LEASE): a worker still running never loses its claim.
    time_limit=120,
    soft_time_limit=90,
)
def notification_deliver_task(self, notification_id: int) -> str | None:
    """The row's status afterwards: `sent`, a final failure, `pending` (a wait left to the sweeper) or
    `sending` (the mail server accepted it while the database was unreachable; the sweeper records it)."""
    try:
        notification = services.notification_deliver(notification_id=notification_id)
    except services.NotificationRetryLater as exc:
        raise self.retry(countdown=exc.countdown, exc=exc) from exc
    return notification.status if notification is not None else None


@shared_task(name="notifications.notifications_sweep", time_limit=300, soft_time_limit=240)
def notifications_sweep_task() -> int:
    return len(services.notifications_sweep())
