"""Thin Celery tasks over collector.services."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

from connectors.clients.base import Forbidden, Permanent, RateLimited, Transient
from connectors.models import ConnectorCredential
from connectors.services import CredentialUnusable, RefreshRetryable

logger = logging.getLogger(__name__)


@shared_task(
    name="collector.pixel_activate",
    bind=True,
    acks_late=True,  # idempotent: create-or-update of the one pixel the app has on the shop
    max_retries=8,
    autoretry_for=(Transient, RateLimited, RefreshRetryable, OperationalError),
    retry_backoff=30,
    retry_backoff_max=600,  # the broker's countdown cap (config/celery.py)
    retry_jitter=True,
)
def pixel_activate_task(self, merchant_id: int) -> str:
    """The install never waits for or fails on this: a failure is recorded on the store's PixelActivation
    (admin shows it, with an "activate again" action) and transient ones are retried with backoff."""
    from collector import services

    try:
        return services.pixel_activate(merchant_id=merchant_id).status
    except (ConnectorCredential.DoesNotExist, CredentialUnusable):
        return "no usable Shopify credential"  # uninstalled or needs reauth: recorded where that was decided
    except (Forbidden, Permanent) as exc:
        # Shopify refused (a scope missing, settings it does not take): recorded on the activation by the
        # service; retrying the same call cannot help.
        logger.warning("pixel of merchant %s not activated: %s", merchant_id, exc)
        return "failed"
