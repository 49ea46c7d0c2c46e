"""No job starves another: a scheduled dbt run that finds the lock held waits for it (Celery retries) until its
schedule's expiry, then is recorded `skipped` and staff told; a run holding the lock too long is reported once."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from celery.exceptions import Retry
from celery.signals import after_task_publish
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from analytics.choices import DbtRunStatus, DbtTrigger
from analytics.models import DbtRun
from analytics.selectors import warehouse_connection_params
from analytics.services import (
    DBT_LOCK_KEY,
    FULL_BUILD_ARGS,
    coalesced_build_args,
    dbt_runs_overdue_report,
    merchants_digest,
)
from analytics.tasks import dbt_build_coalesced_task, run_dbt_task
from dashboards.cache import marts_version
from notifications.choices import NotificationKind
from notifications.models import Notification

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

SMALL_RUN = ["run", "--select", "dim_merchants"]


@pytest.fixture(autouse=True)
def own_warehouse(scratch_db_factory, monkeypatch) -> dict:
    """dbt builds in a database of its own (test_run_dbt says why)."""
    db = scratch_db_factory()
    monkeypatch.setattr("analytics.services.warehouse_connection_params", lambda: dict(db))
    return db


@pytest.fixture
def lock_held_elsewhere():
    """Another process's session holds the dbt lock (in the app's database), its run recorded as running."""
    holder = DbtRun.objects.create(
        command="build", args=["build"], triggered_by=DbtTrigger.DATA_CHANGED,
        started_at=timezone.now() - dt.timedelta(minutes=20), merchant_ids=[],
    )  # fmt: skip
    with psycopg.connect(**warehouse_connection_params(), autocommit=True) as other_process:
        other_process.execute("SELECT pg_advisory_lock(%s)", [DBT_LOCK_KEY])
        yield holder


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("ops", "ops@example.com", "pw-ops-12345", is_staff=True)


@pytest.fixture
def published() -> list[dict]:
    """The run_dbt messages published to the (test) broker, where no worker takes them: Celery's own signal."""
    sent: list[dict] = []

    def record(sender=None, headers=None, body=None, **kwargs):
        if sender == "analytics.run_dbt":
            _args, task_kwargs, _embed = body
            sent.append(
                {
                    "kwargs": task_kwargs,
                    "eta": dt.datetime.fromisoformat(headers["eta"]) if headers.get("eta") else None,
                    "expires": dt.datetime.fromisoformat(headers["expires"]) if headers.get("expires") else None,
                }
            )

    after_task_publish.connect(record, weak=False)
    yield sent
    after_task_publish.disconnect(record)


def deliver(task, *, expires: dt.datetime | None = None, **kwargs):
    """Run the task as a worker runs a message from beat (its request carrying the schedule's expiry)."""
    task.push_request(
        id="beat-message",
        called_directly=False,
        is_eager=False,
        retries=0,
        args=[],
        kwargs=kwargs,
        expires=expires.isoformat() if expires else None,
        delivery_info={"exchange": "", "routing_key": "celery"},
    )
    try:
        return task.run(**kwargs)
    finally:
        task.pop_request()


def test_a_scheduled_run_that_finds_the_lock_held_asks_again_until_its_expiry(lock_held_elsewhere, published, settings):
    settings.DBT_LOCK_RETRY_SECONDS = 300
    expiry = timezone.now() + dt.timedelta(hours=6)  # the nightly schedule's: 6 h

    with pytest.raises(Retry):
        deliver(run_dbt_task, expires=expiry, args=["build"])

    [retry] = published
    kwargs = retry["kwargs"]
    assert kwargs["args"] == ["build"] and kwargs["blocked_by_id"] == lock_held_elsewhere.pk
    assert dt.datetime.fromisoformat(kwargs["deadline"]) == expiry
    first_attempt = dt.datetime.fromisoformat(kwargs["requested_at"])
    assert abs((retry["eta"] - first_attempt).total_seconds() - 300) < 5
    # the retry's own message outlives the expiry, so the last attempt is delivered (and records the skip)
    assert retry["expires"] > expiry
    # admin shows it waiting: for which run, since when, until when
    waiting = DbtRun.objects.get(pk=kwargs["waiting_run_id"])
    assert (waiting.status, waiting.command, waiting.triggered_by) == (DbtRunStatus.WAITING, "build", "schedule")
    assert (waiting.blocked_by, waiting.requested_at) == (lock_held_elsewhere, first_attempt)
    assert waiting.wait_until == expiry
    assert waiting.error.startswith(f"waiting for the dbt lock (held by run #{lock_held_elsewhere.pk}, `dbt build`")
    assert not Notification.objects.exists()
    # a waiting row built nothing: the holder's end still changes the dashboards' cache version
    assert marts_version().startswith(f"{lock_held_elsewhere.pk}:running")

    # Near the deadline the wait is cut to it: the last attempt comes at the deadline, not after.
    soon = timezone.now() + dt.timedelta(seconds=40)
    with pytest.raises(Retry):
        deliver(run_dbt_task, **{**kwargs, "deadline": soon.isoformat()})
    last = published[1]
    assert abs((last["eta"] - soon).total_seconds()) <= 2
    assert last["kwargs"]["requested_at"] == kwargs["requested_at"]  # the first attempt's time is kept
    assert last["kwargs"]["waiting_run_id"] == waiting.pk  # the same row, brought up to date
    assert DbtRun.objects.filter(status=DbtRunStatus.WAITING).count() == 1

    # At the deadline, the lock still held: that row becomes the skipped run, and staff hear.
    deliver(run_dbt_task, **{**last["kwargs"], "deadline": (timezone.now() - dt.timedelta(seconds=1)).isoformat()})
    waiting.refresh_from_db()
    assert waiting.status == DbtRunStatus.SKIPPED and waiting.error.startswith("skipped: the dbt lock was held")
    assert not DbtRun.objects.filter(status=DbtRunStatus.WAITING).exists()


def test_without_an_expiry_the_wait_is_bounded_by_the_setting(lock_held_elsewhere, published, settings):
    settings.DBT_LOCK_WAIT_MAX_SECONDS = 3600
    before = timezone.now()
    with pytest.raises(Retry):
        deliver(run_dbt_task, args=["test"])
    deadline = dt.datetime.fromisoformat(published[0]["kwargs"]["deadline"])
    assert before + dt.timedelta(seconds=3600) <= deadline <= timezone.now() + dt.timedelta(seconds=3600)


def test_run_inline_a_locked_run_is_recorded_skipped_at_once_rather_than_spinning(lock_held_elsewhere, staff):
    result = run_dbt_task.apply(kwargs={"args": ["build"]})  # CELERY_TASK_ALWAYS_EAGER runs a retry at once
    assert result.state == "SUCCESS"
    assert DbtRun.objects.get(pk=result.get()).status == DbtRunStatus.SKIPPED


def test_past_its_deadline_the_run_is_recorded_skipped_and_staff_hear_once_a_day(lock_held_elsewhere, staff):
    requested = timezone.now() - dt.timedelta(hours=6)
    kwargs = {
        "args": ["build"],
        "requested_at": requested.isoformat(),
        "deadline": (timezone.now() - dt.timedelta(seconds=1)).isoformat(),
        "blocked_by_id": lock_held_elsewhere.pk,
    }
    first = deliver(run_dbt_task, **kwargs)
    deliver(run_dbt_task, **kwargs)  # a second give-up the same day (the command run again): staff hear once

    skipped = DbtRun.objects.get(pk=first)
    assert skipped.status == DbtRunStatus.SKIPPED and skipped.triggered_by == DbtTrigger.SCHEDULE
    assert (skipped.command, skipped.requested_at, skipped.blocked_by) == ("build", requested, lock_held_elsewhere)
    assert skipped.error.startswith("skipped: the dbt lock was held from ")
    assert f"held by run #{lock_held_elsewhere.pk}, `dbt build`" in skipped.error
    assert DbtRun.objects.filter(status=DbtRunStatus.SKIPPED).count() == 2  # each attempt that gave up is a row
    [told] = Notification.objects.filter(staff_user=staff)
    assert told.kind == NotificationKind.DBT_RUN_FAILED
    assert told.subject == f"[Ops] dbt build skipped (run #{skipped.pk})"
    assert f"held by run #{lock_held_elsewhere.pk}" in told.body_text
    assert not Notification.objects.filter(merchant__isnull=False).exists()

    # A skipped row built nothing: the holder's end still changes the dashboards' cache version.
    version = marts_version()
    assert version.startswith(f"{lock_held_elsewhere.pk}:running")
    DbtRun.objects.filter(pk=lock_held_elsewhere.pk).update(status=DbtRunStatus.SUCCESS, finished_at=timezone.now())
    assert marts_version() != version


def test_a_skipped_run_does_not_force_the_next_coalesced_build_to_build_everything():
    merchants: list[dict] = []
    now = timezone.now()
    DbtRun.objects.create(
        command="build", args=FULL_BUILD_ARGS, status=DbtRunStatus.SUCCESS, started_at=now - dt.timedelta(hours=2),
        finished_at=now - dt.timedelta(hours=1), merchants_digest=merchants_digest(merchants),
    )  # fmt: skip
    DbtRun.objects.create(command="test", args=["test"], status=DbtRunStatus.SKIPPED, started_at=now)
    assert coalesced_build_args(sources={"klaviyo"}, merchants_digest=merchants_digest(merchants)) == [
        "build",
        "--select",
        "source:raw.klaviyo_*+",
    ]


@pytest.fixture
def lock_released_later():
    """The holder's run is recorded; its lock already gone (it finished): what the retry finds."""
    holder = DbtRun.objects.create(
        command="build", args=["build"], triggered_by=DbtTrigger.DATA_CHANGED, status=DbtRunStatus.SUCCESS,
        started_at=timezone.now() - dt.timedelta(minutes=50), finished_at=timezone.now(), merchant_ids=[],
    )  # fmt: skip
    return holder


def test_the_retry_that_finds_the_lock_free_runs_and_records_its_wait(lock_released_later):
    requested = timezone.now() - dt.timedelta(minutes=45)
    deadline = timezone.now() + dt.timedelta(hours=5)
    waiting = DbtRun.objects.create(
        command=" ".join(SMALL_RUN), args=SMALL_RUN, triggered_by=DbtTrigger.SCHEDULE, status=DbtRunStatus.WAITING,
        started_at=requested, requested_at=requested, wait_until=deadline, blocked_by=lock_released_later,
    )  # fmt: skip
    kwargs = {
        "args": SMALL_RUN,
        "requested_at": requested.isoformat(),
        "deadline": deadline.isoformat(),
        "blocked_by_id": lock_released_later.pk,
        "waiting_run_id": waiting.pk,
    }
    run = DbtRun.objects.get(pk=deliver(run_dbt_task, **kwargs))
    assert run.status == DbtRunStatus.SUCCESS, run.error or run.failures
    assert (run.requested_at, run.blocked_by, run.triggered_by) == (requested, lock_released_later, "schedule")
    assert run.pk > waiting.pk  # created under the lock, in order
    assert not DbtRun.objects.filter(pk=waiting.pk).exists()  # the run's own row says it waited


def test_a_run_holding_the_lock_too_long_is_reported_to_staff_once(lock_held_elsewhere, staff, settings):
    settings.DBT_RUN_OVERDUE_MINUTES = 60
    holder = lock_held_elsewhere
    dbt_build_coalesced_task.apply()  # the 5-minute sweep: 20 minutes in, nothing to say
    assert not Notification.objects.exists()

    DbtRun.objects.filter(pk=holder.pk).update(started_at=timezone.now() - dt.timedelta(minutes=75))
    for _ in range(3):  # three sweeps, five minutes apart
        assert dbt_build_coalesced_task.apply().get() == []

    [told] = Notification.objects.filter(staff_user=staff)
    holder.refresh_from_db()
    assert holder.lock_overdue_alerted_at is not None and holder.status == DbtRunStatus.RUNNING
    assert told.kind == NotificationKind.DBT_RUN_FAILED
    assert f"dbt run #{holder.pk} (`dbt build`) has held the dbt lock for 75 minutes" in told.body_text
    assert "ended with status" not in told.body_text


def test_a_dead_run_left_running_is_not_reported_as_holding_the_lock(staff, settings):
    settings.DBT_RUN_OVERDUE_MINUTES = 60
    dead = DbtRun.objects.create(
        command="build", args=["build"], started_at=timezone.now() - dt.timedelta(hours=3), merchant_ids=[]
    )
    assert dbt_runs_overdue_report() is None  # nobody holds the lock: the next run reaps it (and tells staff)
    dead.refresh_from_db()
    assert dead.lock_overdue_alerted_at is None
    assert not Notification.objects.exists()


def test_admin_shows_a_skipped_run_and_what_it_waited_for(lock_held_elsewhere, admin_client):
    requested = timezone.now() - dt.timedelta(hours=6)
    skipped = DbtRun.objects.get(
        pk=deliver(
            run_dbt_task,
            args=["build"],
            requested_at=requested.isoformat(),
            deadline=(timezone.now() - dt.timedelta(seconds=1)).isoformat(),
            blocked_by_id=lock_held_elsewhere.pk,
        )
    )
    page = admin_client.get(reverse("admin:analytics_dbtrun_changelist") + "?status=skipped").content.decode()
    assert "Skipped (lock held)" in page and f"run #{lock_held_elsewhere.pk} since " in page
    assert reverse("admin:analytics_dbtrun_change", args=[skipped.pk]) in page
    assert admin_client.get(reverse("admin:analytics_dbtrun_change", args=[skipped.pk])).status_code == 200


def test_a_wait_whose_retry_was_lost_is_recorded_skipped_by_the_sweep(staff, settings):
    settings.DBT_LOCK_RETRY_SECONDS = 300
    now = timezone.now()
    lost = DbtRun.objects.create(
        command="build", args=["build"], triggered_by=DbtTrigger.SCHEDULE, status=DbtRunStatus.WAITING,
        started_at=now - dt.timedelta(hours=7), requested_at=now - dt.timedelta(hours=7),
        wait_until=now - dt.timedelta(minutes=20),
    )  # fmt: skip
    still = DbtRun.objects.create(
        command="test", args=["test"], triggered_by=DbtTrigger.SCHEDULE, status=DbtRunStatus.WAITING,
        started_at=now - dt.timedelta(hours=1), requested_at=now - dt.timedelta(hours=1),
        wait_until=now - dt.timedelta(minutes=2),  # its last attempt may still be on its way
    )  # fmt: skip

    for _ in range(2):
        dbt_build_coalesced_task.apply()

    lost.refresh_from_db()
    still.refresh_from_db()
    assert lost.status == DbtRunStatus.SKIPPED and "its next attempt never came" in lost.error
    assert still.status == DbtRunStatus.WAITING
    [told] = Notification.objects.filter(staff_user=staff)
    assert told.subject == f"[Ops] dbt build skipped (run #{lost.pk})"
