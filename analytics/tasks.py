"""Celery tasks for the analytics pipeline: thin wrappers of the same service the command uses."""

from __future__ import annotations

import datetime as dt
import logging

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from analytics.services import (
    DbtRunWaiting,
    data_freshness_check,
    dbt_build_coalesced,
    dbt_build_coalesced_when_due,
    dbt_lock_sweep,
    dbt_run_scheduled,
)

logger = logging.getLogger(__name__)


def _when(value: str | dt.datetime | None) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value)


@shared_task(name="analytics.run_dbt", bind=True, max_retries=None, acks_late=False)
def run_dbt_task(
    self,
    args: list[str],
    requested_at: str | None = None,
    deadline: str | None = None,
    blocked_by_id: int | None = None,
    waiting_run_id: int | None = None,
) -> int | None:
    """Run dbt from beat. A dbt failure is not retried: the next scheduled run is the retry, and a failure alerts.

    The lock held is not a failure: the run is recorded `waiting` and asks again every DBT_LOCK_RETRY_SECONDS
    until its schedule's expiry (the message's `expires`, which beat sets; DBT_LOCK_WAIT_MAX_SECONDS without one),
    then is recorded `skipped` and staff are told (services.dbt_run_scheduled). The deadline, the first attempt's
    time and the waiting row travel in the retry's kwargs, and the retry's own expiry is set past the deadline, so
    the last attempt is delivered (and records the skip) rather than dropped by the worker as expired.

    Not acks_late: a dbt build is long and a redelivery after a worker restart would start a second one;
    the advisory lock makes an overlap wait anyway.
    """
    now = timezone.now()
    until = (
        _when(deadline) or _when(self.request.expires) or now + dt.timedelta(seconds=settings.DBT_LOCK_WAIT_MAX_SECONDS)
    )
    if self.request.is_eager:
        # Run inline (CELERY_TASK_ALWAYS_EAGER, debugging) a retry runs at once, inline, ignoring its countdown: a
        # wait would spin. It is recorded skipped at once instead.
        until = now
    outcome = dbt_run_scheduled(
        args=args,
        deadline=until,
        requested_at=_when(requested_at),
        blocked_by_id=blocked_by_id,
        waiting_run_id=waiting_run_id,
    )
    if isinstance(outcome, DbtRunWaiting):
        raise self.retry(
            countdown=outcome.countdown,
            kwargs={
                "args": args,
                "requested_at": outcome.requested_at.isoformat(),
                "deadline": until.isoformat(),
                "blocked_by_id": outcome.holder_id,
                "waiting_run_id": outcome.waiting_run_id,
            },
            expires=until + dt.timedelta(seconds=settings.DBT_LOCK_RETRY_SECONDS + 60),
        )
    return outcome.pk


@shared_task(name="analytics.dbt_build_coalesced", bind=True, max_retries=0, acks_late=False)
def dbt_build_coalesced_task(self, change_id: int | None = None) -> list[int]:
    """Build the raw-data changes not built yet once they are due (asked for by each sync's success, with the
    change's id, and by the sweeper); a request that comes early asks again for when they will be.

    Not retried and not acks_late: many requests are expected for one build and all but one step aside, find
    the lock held or nothing to do; the changes themselves are kept in the database, so a lost request loses
    nothing (the next request, the sweeper, or the nightly build takes them in). Run inline
    (CELERY_TASK_ALWAYS_EAGER, for debugging) a request cannot wait for a countdown, so it builds at once
    rather than asking again, inline, for ever.

    The sweep (no `change_id`) also reports, once, a run that holds the dbt lock far longer than expected, and
    records skipped a scheduled run whose wait for the lock lost its retry (services.dbt_lock_sweep): the sweep
    is what meets the lock every 5 minutes.
    """
    if change_id is None:
        dbt_lock_sweep()
    if self.request.is_eager:
        return [run.pk for run in dbt_build_coalesced()]
    return [run.pk for run in dbt_build_coalesced_when_due(change_id=change_id)]


@shared_task(name="analytics.data_freshness_check", max_retries=0, acks_late=False)
def data_freshness_check_task() -> int:
    """The hourly freshness check (services.data_freshness_check): one statement, milliseconds, no dbt lock.

    Not retried: the next hour's check is the retry, and its alerts are deduped per day. Not acks_late either: a
    redelivered check would only record one more row (its alerts deduped).
    """
    return data_freshness_check().pk
