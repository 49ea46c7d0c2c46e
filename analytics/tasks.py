"""Celery tasks for the analytics pipeline: thin wrappers of the same service the command uses."""

from __future__ import annotations

import logging

from celery import shared_task

from analytics.choices import DbtTrigger
from analytics.services import DbtRunLocked, dbt_build_coalesced, dbt_build_coalesced_when_due, dbt_run_execute

logger = logging.getLogger(__name__)


@shared_task(name="analytics.run_dbt", max_retries=0, acks_late=False)
def run_dbt_task(args: list[str]) -> int | None:
    """Run dbt from beat. Not retried: the next scheduled run is the retry, and a failure alerts.

    Not acks_late: a dbt build is long and a redelivery after a worker restart would start a second one;
    the advisory lock makes an overlap exit anyway.
    """
    try:
        return dbt_run_execute(args=args, triggered_by=DbtTrigger.SCHEDULE).pk
    except DbtRunLocked as exc:
        logger.info("scheduled dbt run skipped", extra={"reason": str(exc)})
        return None


@shared_task(name="analytics.dbt_build_coalesced", bind=True, max_retries=0, acks_late=False)
def dbt_build_coalesced_task(self, change_id: int | None = None) -> list[int]:
    """Build the raw-data changes not built yet once they are due (asked for by each sync's success, with the
    change's id, and by the sweeper); a request that comes early asks again for when they will be.

    Not retried and not acks_late: many requests are expected for one build and all but one step aside, find
    the lock held or nothing to do; the changes themselves are kept in the database, so a lost request loses
    nothing (the next request, the sweeper, or the nightly build takes them in). Run inline
    (CELERY_TASK_ALWAYS_EAGER, for debugging) a request cannot wait for a countdown, so it builds at once
    rather than asking again, inline, for ever.
    """
    if self.request.is_eager:
        return [run.pk for run in dbt_build_coalesced()]
    return [run.pk for run in dbt_build_coalesced_when_due(change_id=change_id)]
