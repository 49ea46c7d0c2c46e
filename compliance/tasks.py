"""Thin Celery tasks over compliance.exports. Arguments are ids only."""

from __future__ import annotations

from celery import shared_task

from compliance import exports


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
