"""One retry clock per credential (issue 17, item 3): a failing refresh is retried by its task at the row's
`next_attempt_at`, and the sweeper, running every five minutes in between, adds no attempt of its own; it only
rescues a row whose retry no task holds (a wait longer than the broker keeps a message), once overdue.

A virtual clock drives `timezone.now()`; the provider is the sandbox's Google token endpoint over real HTTP,
failing with 503 throughout, and its call log counts the attempts.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import itertools
import random
from unittest import mock

import pytest
from celery.exceptions import Retry
from django.conf import settings
from django.utils import timezone

from connectors import services, tasks
from connectors.choices import CredentialStatus
from connectors.models import ConnectorCredential
from connectors.selectors import REFRESH_RESCUE_GRACE
from tests.connectors.factories import google_credential

pytestmark = pytest.mark.django_db

TOKEN = "google.oauth.token"
SWEEP_EVERY = dt.timedelta(minutes=5)  # config/schedules.py: app:credential-refresh-sweep


@dataclasses.dataclass
class Attempt:
    at: dt.datetime
    by: str  # "sweep" (a task the sweeper enqueued) or "retry" (a task's own retry)
    failures: int
    status: str
    next_attempt_at: dt.datetime | None


def timeline(providers, credential: ConnectorCredential, *, seed: int, for_: dt.timedelta, sweep_phase: float):
    """Run sweeps every five minutes and every task at its time until `for_` has passed; the attempts made."""
    rng = random.Random(seed)
    start = timezone.now()
    clock = [start]
    events: list[tuple[dt.datetime, int, str, int]] = []
    seq = iter(range(10**6))

    def push(at: dt.datetime, kind: str, retries: int = 0) -> None:
        heapq.heappush(events, (at, next(seq), kind, retries))

    sweep = start + dt.timedelta(seconds=sweep_phase)
    while sweep < start + for_:
        push(sweep, "sweeper")
        sweep += SWEEP_EVERY
    enqueued_by = ["sweep"]

    def delay_on_commit(credential_id, *args, **kwargs):
        push(clock[0], enqueued_by[0], 0)

    countdowns = []

    def retry(*args, countdown, **kwargs):
        countdowns.append(countdown)
        raise Retry(when=countdown)  # what Task.retry raises: the worker reschedules the message

    attempts: list[Attempt] = []
    with (
        mock.patch("django.utils.timezone.now", lambda: clock[0]),
        mock.patch("random.uniform", lambda a, b: rng.uniform(a, b)),
        mock.patch.object(tasks.credential_refresh_task, "delay_on_commit", delay_on_commit),
        mock.patch.object(tasks.credential_refresh_task, "retry", side_effect=retry),
    ):
        while events:
            at, _, kind, retries = heapq.heappop(events)
            clock[0] = at
            if kind == "sweeper":
                services.credential_refresh_sweep()
                continue
            calls = providers.calls(TOKEN)
            countdowns.clear()
            tasks.credential_refresh_task.apply(args=[credential.pk], retries=retries if kind == "retry" else 0)
            if providers.calls(TOKEN) > calls:
                credential.refresh_from_db()
                by = "retry" if kind == "retry" else "sweep"
                attempts.append(
                    Attempt(at, by, credential.consecutive_failures, credential.status, credential.next_attempt_at)
                )
            if countdowns:
                push(at + dt.timedelta(seconds=countdowns[0]), "retry", (retries if kind == "retry" else 0) + 1)
    return start, attempts


@pytest.mark.parametrize("seed", range(6))
def test_a_failing_refresh_is_retried_on_one_clock_and_turns_error_on_schedule(providers, seed):
    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, 503, times=1000)
    # The sweeper's phase against the failures varies with the seed: whenever it runs, it adds nothing.
    _, attempts = timeline(providers, credential, seed=seed, for_=dt.timedelta(minutes=15), sweep_phase=seed * 50)
    limit = settings.CONNECTORS_REFRESH_MAX_FAILURES  # 5

    # Every attempt is counted once: the n-th call to Google is the n-th failure.
    assert [a.failures for a in attempts] == list(range(1, len(attempts) + 1))
    # The sweeper's first run starts the refresh; every later attempt is the task's retry, at the time the
    # previous failure wrote in next_attempt_at — the sweeper, which ran twice meanwhile, added none.
    assert [a.by for a in attempts[:limit]] == ["sweep"] + ["retry"] * (limit - 1)
    for before, after in itertools.pairwise(attempts[:limit]):
        assert after.at == before.next_attempt_at
    # The backoff between failures (30 s, then 30-60 s, 60-120 s, 120-240 s: 50-100 % of a doubling step, never
    # inside the 30 s negative cache) puts the credential in `error` at the fifth failure, 4 to 7.5 minutes in.
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(attempts[:limit])]
    for gap, step in zip(gaps, (30, 60, 120, 240), strict=True):
        assert max(30, step / 2) <= gap <= step
    assert [a.status for a in attempts[:limit]] == [CredentialStatus.ACTIVE] * (limit - 1) + [CredentialStatus.ERROR]
    turned_error = (attempts[limit - 1].at - attempts[0].at).total_seconds()
    assert 240 <= turned_error <= 450


def test_a_wait_longer_than_the_broker_holds_is_rescued_by_the_sweeper_once_overdue(providers):
    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, 429, headers={"Retry-After": "3600"}, times=1000)
    _, attempts = timeline(providers, credential, seed=1, for_=dt.timedelta(minutes=90), sweep_phase=7)

    assert [a.by for a in attempts] == ["sweep", "sweep"]  # no task held the hour's wait: the sweeper did
    first, second = attempts
    assert first.next_attempt_at - first.at >= dt.timedelta(seconds=3600)
    # Taken up by the first sweep once the row is overdue by the grace (a task that is merely late runs first).
    overdue_from = first.next_attempt_at + REFRESH_RESCUE_GRACE
    assert overdue_from <= second.at < overdue_from + SWEEP_EVERY
    assert second.failures == 2


def test_a_duplicate_task_retries_at_the_same_moment_and_the_pair_makes_one_attempt(providers):
    credential = google_credential(providers, expired=True)
    providers.control.fault(TOKEN, 503, times=1000)
    start = timezone.now()
    clock = [start]
    countdowns = []

    def retry(*args, countdown, **kwargs):
        countdowns.append(countdown)
        raise Retry(when=countdown)

    with (
        mock.patch("django.utils.timezone.now", lambda: clock[0]),
        mock.patch.object(tasks.credential_refresh_task, "retry", side_effect=retry),
    ):
        tasks.credential_refresh_task.apply(args=[credential.pk])  # fails: call 1
        clock[0] = start + dt.timedelta(seconds=10)  # a redelivered copy, inside the negative cache
        tasks.credential_refresh_task.apply(args=[credential.pk])
        credential.refresh_from_db()
        first, second = (start + dt.timedelta(seconds=countdowns[0]), clock[0] + dt.timedelta(seconds=countdowns[1]))
        assert first == second == credential.next_attempt_at  # both wait for the one clock
        clock[0] = credential.next_attempt_at
        tasks.credential_refresh_task.apply(args=[credential.pk], retries=1)  # call 2
        tasks.credential_refresh_task.apply(args=[credential.pk], retries=1)  # answered from the window
    assert providers.calls(TOKEN) == 2
    credential.refresh_from_db()
    assert credential.consecutive_failures == 2
    assert len(countdowns) == 4 and countdowns[2] == countdowns[3]  # still together, at the next next_attempt_at
