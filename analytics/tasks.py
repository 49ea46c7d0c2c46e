"""Celery tasks for the analytics pipeline: thin wrappers of the same service the command uses."""

from __future__ import annotations

import logging

from celery import shared_task

from analytics.choices import DbtTrigger
from analytics.services import DbtRunLocked, dbt_run_execute

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
