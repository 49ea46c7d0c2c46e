"""Thin Celery tasks over connectors.services. Arguments are ids and plain values only."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from connectors import services
from connectors.clients.base import RateLimited, Transient
from connectors.models import ConnectorCredential

logger = logging.getLogger(__name__)

# A runaway-loop stop only: a chain ends first, when the wait outgrows what the broker holds (see below).
REFRESH_MAX_RETRIES = 10


@shared_task(name="connectors.credential_refresh", bind=True, max_retries=REFRESH_MAX_RETRIES, acks_late=True)
def credential_refresh_task(self, credential_id: int, force: bool = False) -> None:
    """Idempotent: the service re-checks under the row lock, so a duplicate delivery finds nothing to do
    (a forced refresh, from admin's "refresh now", renews once more at most — harmless).

    One clock: a failed attempt wrote when to try again in the row's `next_attempt_at` (the service's backoff,
    `retry_at` on the error, also when the failure is another caller's, shared from the negative cache), and this
    task retries then — no formula of its own. Two tasks retrying the same failure meet at the same moment, and
    the negative cache lets one of them call. A refresh found under way (REFRESH_BUSY) is its caller's to finish;
    a row nobody retries (a wait longer than the broker holds a message, a lost task) is rescued by the sweeper
    once overdue (selectors.REFRESH_RESCUE_GRACE).
    """
    try:
        services.credential_refresh(credential_id=credential_id, force=force)
    except ConnectorCredential.DoesNotExist:
        return
    except services.CredentialUnusable:
        return  # terminal, already recorded and alerted by the service
    except services.RefreshRetryable as exc:
        retry_at = exc.extra.get("retry_at")
        if retry_at is None:
            logger.info("credential %s refresh: %s; left to the caller refreshing it", credential_id, exc.message)
            return
        if self.request.retries >= self.max_retries:
            logger.warning("credential %s refresh: giving up after %s retries", credential_id, self.request.retries)
            return
        countdown = max(0.0, (retry_at - timezone.now()).total_seconds())
        if countdown > settings.TASK_MAX_COUNTDOWN_SECONDS:
            # Longer than the broker may hold a message (config/celery.py): next_attempt_at keeps the time, and
            # the sweeper takes the row up once it is overdue.
            logger.info("credential %s refresh: waiting %.0f s for the sweeper", credential_id, countdown)
            return
        raise self.retry(exc=exc, countdown=countdown) from None


@shared_task(name="connectors.credential_refresh_sweep", acks_late=True)
def credential_refresh_sweep_task() -> int:
    """Fan out one refresh task per due credential; duplicates are harmless (see above)."""
    return len(services.credential_refresh_sweep())


@shared_task(
    name="connectors.google_token_revoke",
    bind=True,
    acks_late=True,  # idempotent (see below): a worker killed mid-call must not lose the revoke
    max_retries=3,
    autoretry_for=(Transient, RateLimited),
    retry_backoff=30,
    retry_jitter=True,
)
def google_token_revoke_task(self, encrypted_token: str) -> None:
    """Revoking twice is harmless: Google answers 400 for an already revoked token, which we ignore."""
    services.google_token_revoke(encrypted_token=encrypted_token)


@shared_task(
    name="connectors.attentive_webhook_delete",
    bind=True,
    acks_late=True,  # idempotent: deleting a webhook Attentive no longer has is a 404, counted as done
    max_retries=5,
    autoretry_for=(Transient, RateLimited),
    retry_backoff=30,
    retry_jitter=True,
)
def attentive_webhook_delete_task(self, encrypted_api_key: str, attentive_webhook_id: str) -> None:
    services.attentive_webhook_delete(encrypted_api_key=encrypted_api_key, attentive_webhook_id=attentive_webhook_id)


@shared_task(
    name="connectors.shopify_webhooks_register",
    bind=True,
    acks_late=True,  # idempotent: an existing subscription counts as done
    max_retries=5,
    autoretry_for=(Transient, RateLimited, services.RefreshRetryable),
    retry_backoff=30,
    retry_jitter=True,
)
def shopify_webhooks_register_task(self, credential_id: int) -> None:
    from connectors import shopify

    try:
        shopify.webhooks_register(credential_id=credential_id)
    except (ConnectorCredential.DoesNotExist, services.CredentialUnusable):
        return  # disconnected or uninstalled meanwhile; recorded by the service that said so


@shared_task(
    name="connectors.shopify_webhook_process",
    acks_late=True,  # idempotent: only a delivery still `received` is processed, under its row lock
    autoretry_for=(OperationalError,),
    max_retries=5,
    retry_backoff=10,
)
def shopify_webhook_process_task(delivery_id: int) -> str:
    from connectors import shopify

    try:
        return shopify.webhook_process(delivery_id=delivery_id)
    except OperationalError:
        raise  # the database: retried, the delivery is still `received`
    except Exception as exc:
        # Recorded on the delivery with its reason (staff see it in the admin); never silently dropped.
        logger.exception("shopify webhook delivery %s could not be processed", delivery_id)
        shopify.webhook_failed(delivery_id=delivery_id, error=exc)
        return "failed"
