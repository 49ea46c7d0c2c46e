"""Thin Celery tasks over ingestion.services. Arguments are ids and plain values only.

Every task is idempotent (the services re-check their rows under lock), so `acks_late` is safe: a worker
killed mid-task has its message run again, and whatever is still lost is found by the sweeper.
"""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from config.retry import backoff
from connectors.models import ConnectorCredential
from ingestion import services
from ingestion.client import ProviderError
from ingestion.models import Pipeline, SyncJob

logger = logging.getLogger(__name__)

FOLLOW_MAX_RETRIES = 5
SWEEP_FANOUT_EXPIRES_SECONDS = 55  # the sweep runs every minute


def _follow_countdown(retries: int) -> float:
    """~30 s, 60 s, 120 s... while Airbyte is unreachable; the broker caps a countdown at 10 minutes anyway."""
    return backoff(retries + 1, base=30, ceiling=settings.TASK_MAX_COUNTDOWN_SECONDS)


@shared_task(name="ingestion.pipeline_follow_credential", bind=True, max_retries=FOLLOW_MAX_RETRIES, acks_late=True)
def pipeline_follow_credential_task(self, credential_id: int) -> None:
    """Enqueued after commit by every audited change of a credential (connectors/services.py)."""
    try:
        services.pipeline_follow_credential(credential_id=credential_id)
    except ConnectorCredential.DoesNotExist:
        return
    except services.AirbyteUnreachable as exc:
        if self.request.retries >= self.max_retries:
            return  # the sweeper reconciles it once Airbyte answers
        raise self.retry(exc=exc, countdown=_follow_countdown(self.request.retries)) from None
    except ProviderError:
        return  # refused: recorded on the pipeline, retried by the sweeper after its backoff


@shared_task(name="ingestion.pipeline_follow_store", bind=True, max_retries=FOLLOW_MAX_RETRIES, acks_late=True)
def pipeline_follow_store_task(self, merchant_id: int) -> None:
    """A store's own pipeline (exchange rates) follows the store: enqueued by the sweeper."""
    try:
        services.pipeline_follow_store(merchant_id=merchant_id)
    except services.AirbyteUnreachable as exc:
        if self.request.retries >= self.max_retries:
            return  # the sweeper reconciles it once Airbyte answers
        raise self.retry(exc=exc, countdown=_follow_countdown(self.request.retries)) from None
    except ProviderError:
        return  # refused: recorded on the pipeline, retried by the sweeper after its backoff


@shared_task(name="ingestion.pipeline_orphan_teardown", acks_late=True)
def pipeline_orphan_teardown_task(pipeline_id: int) -> bool:
    """A deleted store's (or credential's) pipeline: removed from Airbyte, then forgotten. Not retried here:
    until it is gone the sweeper lists it again every minute."""
    return services.pipeline_orphan_teardown(pipeline_id=pipeline_id)


@shared_task(name="ingestion.pipeline_sync", bind=True, acks_late=True)
def pipeline_sync_task(self, pipeline_id: int, force: bool = False, job_type: str = "sync") -> int | None:
    try:
        job = services.pipeline_sync(pipeline_id=pipeline_id, force=force, job_type=job_type)
    except Pipeline.DoesNotExist:
        return None
    # Run inline (eager: debugging, tests) a countdown means nothing: the sweeper follows the job instead.
    if job is not None and not job.is_terminal and not self.request.is_eager:
        job_poll_task.apply_async(args=[job.pk], countdown=services.POLL_FIRST_SECONDS)
    return job.pk if job is not None else None


@shared_task(name="ingestion.job_poll", bind=True, acks_late=True)
def job_poll_task(self, job_id: int) -> str | None:
    """Poll once; while the job runs, poll again at its next_poll_at (the sweeper takes over a lost chain)."""
    try:
        job = services.job_poll(job_id=job_id)
    except SyncJob.DoesNotExist:
        return None
    if not job.is_terminal and job.next_poll_at is not None and not self.request.is_eager:
        wait = max(0.0, (job.next_poll_at - timezone.now()) / dt.timedelta(seconds=1))
        job_poll_task.apply_async(args=[job.pk], countdown=wait)
    return job.status


@shared_task(name="ingestion.sweep", acks_late=True)
def ingestion_sweep_task() -> dict[str, int]:
    """Fan out one task per due row; duplicates of a task still queued are harmless (see above)."""
    try:  # after a deploy (a new SECRET_KEY or base URL) the workspace's webhook is set again; else no call
        services.workspace_notifications_ensure()
    except ProviderError as exc:
        logger.warning("Airbyte workspace notifications not set (%s); the next sweep tries again", exc.code)
    plan = services.ingestion_sweep()
    # Each expires before the next sweep enqueues it again: a backed-up queue holds one of each, not dozens.
    for task, ids in ((pipeline_follow_credential_task, plan.follow), (pipeline_follow_store_task, plan.follow_store),
                      (pipeline_orphan_teardown_task, plan.teardown), (pipeline_sync_task, plan.sync),
                      (job_poll_task, plan.poll)):  # fmt: skip
        for row_id in ids:
            task.apply_async(args=[row_id], expires=SWEEP_FANOUT_EXPIRES_SECONDS)
    counts = {"follow": len(plan.follow), "follow_store": len(plan.follow_store), "teardown": len(plan.teardown),
              "sync": len(plan.sync), "poll": len(plan.poll)}  # fmt: skip
    if any(counts.values()):
        logger.info("ingestion sweep: %s", counts)
    return counts
