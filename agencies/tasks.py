"""Thin Celery tasks over agencies.services: sending queued invitations, expiring them, the nightly reconcile."""

from __future__ import annotations

from celery import shared_task

from agencies import services
from notifications.clients.clerk import ClerkRateLimited, ClerkTransientError


@shared_task(
    name="agencies.agency_invitation_send",
    bind=True,
    # The service fails the row after INVITATION_MAX_ATTEMPTS Clerk errors; waits for the hourly budget are not
    # failures, so this cap only stops a runaway loop (the sweeper picks up a row whose retries ran out).
    max_retries=50,
    # Safe to redeliver: the service locks the row and sends only a queued one, so Clerk is asked once.
    acks_late=True,
    time_limit=60,
    soft_time_limit=45,
)
def agency_invitation_send_task(self, invitation_id: int) -> str:
    try:
        invitation = services.agency_invitation_send(invitation_id=invitation_id)
    except services.InvitationRetryLater as exc:
        raise self.retry(countdown=max(1.0, exc.countdown), exc=exc) from exc
    return invitation.status


@shared_task(name="agencies.agency_invitations_sweep", time_limit=120, soft_time_limit=90)
def agency_invitations_sweep_task() -> int:
    """Fan out one send per queued invitation that is due (rows whose task was lost or gave up)."""
    due = services.agency_invitations_due()
    for invitation_id in due:
        agency_invitation_send_task.delay(invitation_id)
    return len(due)


@shared_task(name="agencies.agency_invitations_expire", time_limit=120, soft_time_limit=90)
def agency_invitations_expire_task() -> int:
    return services.agency_invitations_expire()


@shared_task(
    name="agencies.agency_members_reconcile",
    bind=True,
    max_retries=5,
    autoretry_for=(ClerkTransientError, ClerkRateLimited),
    retry_backoff=60,
    retry_backoff_max=600,  # settings.TASK_MAX_COUNTDOWN_SECONDS: longer waits outlive the visibility timeout
    retry_jitter=True,
    time_limit=600,
    soft_time_limit=540,
)
def agency_members_reconcile_task(self, agency_id: int) -> dict:
    result = services.agency_members_reconcile(agency_id=agency_id)
    return {"seen": result.seen, "changed": result.changed, "removed": result.removed, "suspended": result.suspended}


@shared_task(name="agencies.agency_members_reconcile_all", time_limit=120, soft_time_limit=90)
def agency_members_reconcile_all_task() -> int:
    """The nightly sweeper: one reconcile per active agency (and the old webhook message ids forgotten)."""
    services.clerk_webhook_deliveries_purge()
    agency_ids = services.agency_ids_to_reconcile()
    for agency_id in agency_ids:
        agency_members_reconcile_task.delay(agency_id)
    return len(agency_ids)
