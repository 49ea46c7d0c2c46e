"""Thin Celery tasks over compliance's services (exports, retention). Arguments are ids only."""

from __future__ import annotations

from celery import shared_task

from compliance import exports, retention


@shared_task(
    name="compliance.retention_purge",
    max_retries=0,  # the next night's run resumes an interrupted one (retention.py); no retry storm on a failure
    # Safe to redeliver: the purge is idempotent and resumes where a killed run stopped.
    acks_late=True,
    reject_on_worker_lost=True,
    # The default limits (25/30 min, below the broker's visibility timeout): a backlog longer than that stops at
    # the soft limit, still `running`, and the next hour's run resumes it (config/schedules.py).
)
def retention_purge_task() -> dict | None:
    """What the run deleted per category; None when another purge holds the lock."""
    try:
        run = retention.retention_purge()
    except retention.PurgeLocked:
        return None
    return {"purge_run": run.pk, "deleted": run.deleted, "held": run.held}


@shared_task(name="compliance.audit_export_run", acks_late=True, max_retries=0)
def audit_export_run_task(export_id: int) -> None:
    """acks_late: the service is idempotent by state (only a pending export runs), so a redelivery after a
    worker died finds it running and leaves it to the sweeper. Never retried: a failure is recorded on the
    export with its reason, and the person asks again."""
    exports.audit_export_run(export_id=export_id)


@shared_task(name="compliance.audit_export_sweep", acks_late=True)
def audit_export_sweep_task() -> dict[str, int]:
    """Re-enqueue lost pending exports and fail those whose worker was lost; harmless when run twice."""
    return exports.audit_export_sweep()
