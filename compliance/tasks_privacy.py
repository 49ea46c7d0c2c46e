"""Thin tasks over compliance.privacy: one request's work, and the periodic sweep."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import OperationalError

logger = logging.getLogger(__name__)


@shared_task(
    name="compliance.privacy_request_process",
    acks_late=True,  # idempotent: only an open request is worked, under its row lock, and its SQL matches once
    autoretry_for=(OperationalError,),
    max_retries=5,
    retry_backoff=30,
    retry_jitter=True,
)
def privacy_request_process_task(request_id: int) -> str:
    from compliance.models import PrivacyRequest
    from compliance.privacy import privacy_request_process

    try:
        return privacy_request_process(request_id=request_id)
    except PrivacyRequest.DoesNotExist:
        return "missing"


@shared_task(name="compliance.privacy_requests_sweep", max_retries=0)
def privacy_requests_sweep_task() -> dict:
    from compliance.privacy import privacy_requests_sweep

    outcome = privacy_requests_sweep()
    return {"enqueued": outcome.enqueued, "alerted": outcome.alerted}
