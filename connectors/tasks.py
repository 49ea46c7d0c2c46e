"""Thin Celery tasks over connectors.services. Arguments are ids and plain values only."""

from __future__ import annotations

import logging
import random

from celery import shared_task
from django.conf import settings
from django.db import OperationalError

from connectors import services
from connectors.clients.base import RateLimited, Transient
from connectors.models import ConnectorCredential

logger = logging.getLogger(__name__)

REFRESH_MAX_RETRIES = 5


def _countdown(retries: int, retry_after: float | None = None) -> float:
    """Exponential backoff with jitter: ~30 s, 60 s, 120 s...; never sooner than a provider's Retry-After."""
    base = 30 * 2**retries
    return max(random.uniform(base / 2, base), retry_after or 0)


@shared_task(name="connectors.credential_refresh", bind=True, max_retries=REFRESH_MAX_RETRIES, acks_late=True)
def credential_refresh_task(self, credential_id: int, force: bool = False) -> None:
    """Idempotent: the service re-checks under the row lock, so a duplicate delivery finds nothing to do
    (a forced refresh, from admin's "refresh now", renews once more at most — harmless)."""
    try:
        services.credential_refresh(credential_id=credential_id, force=force)
    except ConnectorCredential.DoesNotExist:
        return
    except services.CredentialUnusable:
        return  # terminal, already recorded and alerted by the service
    except services.RefreshRetryable as exc:
        if self.request.retries >= self.max_retries:
            logger.warning("credential %s refresh: giving up after %s retries", credential_id, self.request.retries)
            return
        countdown = _countdown(self.request.retries, exc.extra.get("retry_after"))
        if countdown > settings.TASK_MAX_COUNTDOWN_SECONDS:
            # A provider asking for a longer wait than the broker may hold a message (config/celery.py): the
            # failure set next_attempt_at no sooner than its Retry-After, and the sweeper takes it up then.
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
