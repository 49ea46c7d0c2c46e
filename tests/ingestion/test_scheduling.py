"""Triggering, attaching, polling, retrying and alerting, against the sandbox's Airbyte over real HTTP.

Jobs in the sandbox wait in each stage until the test advances them (`airbyte.manual_jobs()`), so every
lifecycle here is deterministic.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import Counter

import pytest
from django.utils import timezone

from analytics.models import RawDataChange
from config.schedules import SCHEDULES
from connectors.choices import Provider
from ingestion import services
from ingestion.choices import JobStatus, JobType
from ingestion.client import AirbyteClient
from ingestion.models import Pipeline, SyncJob, Workspace
from ingestion.services import ingestion_sweep, job_poll, next_slot, pipeline_follow_credential, pipeline_sync
from ingestion.tasks import ingestion_sweep_task
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory
from tests.ingestion.factories import credential_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def pipeline(airbyte, providers) -> Pipeline:
    credential = credential_for(Provider.KLAVIYO, providers)
    return pipeline_follow_credential(credential_id=credential.pk)


def _due(pipeline: Pipeline) -> None:
    Pipeline.objects.filter(pk=pipeline.pk).update(next_sync_at=timezone.now() - dt.timedelta(seconds=1))


def _errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("ingestion")]


def test_a_due_pipeline_is_triggered_and_followed_to_its_end(airbyte, pipeline):
    assert ingestion_sweep().sync == [pipeline.pk]
    airbyte.script_job(rowsSynced=120, bytesSynced=4096)
    job = pipeline_sync(pipeline_id=pipeline.pk)
    assert job.status == JobStatus.PENDING and not job.attached and job.job_type == JobType.SYNC
    pipeline.refresh_from_db()
    assert pipeline.last_job == job and pipeline.next_sync_at > timezone.now()
    assert ingestion_sweep().sync == []  # not due again, and busy anyway

    airbyte.advance(job.airbyte_job_id)  # running
    assert job_poll(job_id=job.pk).status == JobStatus.RUNNING
    airbyte.advance(job.airbyte_job_id, "succeeded")
    job = job_poll(job_id=job.pk)
    assert (job.status, job.rows_synced, job.bytes_synced) == (JobStatus.SUCCEEDED, 120, 4096)
    assert job.started_at and job.finished_at and job.next_poll_at is None
    pipeline.refresh_from_db()
    assert pipeline.last_synced_at == job.finished_at and pipeline.consecutive_failures == 0
    # The store's raw data changed: the coalesced dbt build is asked to take it in.
    [change] = RawDataChange.objects.filter(merchant=pipeline.merchant)
    assert (change.source, change.at, change.consumed_by_run) == (pipeline.credential.provider, job.finished_at, None)


def test_a_sync_already_running_is_attached_to_not_started_again(airbyte, pipeline):
    running = AirbyteClient().start_job(pipeline.connection_id)  # started elsewhere (a lost trigger's)
    job = pipeline_sync(pipeline_id=pipeline.pk)
    assert job.airbyte_job_id == running["jobId"] and job.attached
    assert len(airbyte.control.calls("airbyte.jobs.create")) == 2  # ours answered 409
    assert [c["status"] for c in airbyte.control.calls("airbyte.jobs.create")] == [200, 409]


def test_incomplete_is_still_running(airbyte, pipeline):
    airbyte.script_job(incomplete=True)
    job = pipeline_sync(pipeline_id=pipeline.pk)
    airbyte.advance(job.airbyte_job_id)
    airbyte.advance(job.airbyte_job_id, "incomplete")
    job = job_poll(job_id=job.pk)
    assert job.status == JobStatus.INCOMPLETE and not job.is_terminal and job.next_poll_at > timezone.now()
    Pipeline.objects.filter(pk=pipeline.pk).update(next_sync_at=timezone.now())
    assert pipeline_sync(pipeline_id=pipeline.pk) is None  # one job at a time


def test_a_failed_job_is_retried_with_backoff_then_a_good_one_clears_the_failure(airbyte, pipeline):
    airbyte.script_job(status="failed", errorType="system_error")
    job = pipeline_sync(pipeline_id=pipeline.pk)
    airbyte.advance(job.airbyte_job_id, "failed")
    before = timezone.now()
    job = job_poll(job_id=job.pk)
    assert (job.status, job.error_type) == (JobStatus.FAILED, "sync_failed")
    pipeline.refresh_from_db()
    assert pipeline.consecutive_failures == 1 and pipeline.last_error_code == "sync_failed"
    assert not RawDataChange.objects.filter(merchant=pipeline.merchant).exists()  # nothing landed: no build
    regular = next_slot(pipeline.connection_id, pipeline.sync_interval_seconds, before)
    # Retried after 225-300 s, unless the regular slot comes sooner.
    assert before + dt.timedelta(seconds=220) <= pipeline.next_sync_at or pipeline.next_sync_at == regular
    assert pipeline.next_sync_at <= min(regular, before + dt.timedelta(seconds=305))

    _due(pipeline)
    second = pipeline_sync(pipeline_id=pipeline.pk)
    assert second.airbyte_job_id != job.airbyte_job_id
    airbyte.advance(second.airbyte_job_id, "succeeded")
    job_poll(job_id=second.pk)
    pipeline.refresh_from_db()
    assert pipeline.consecutive_failures == 0 and pipeline.last_error_code == "" and pipeline.last_synced_at


def test_n_failures_in_a_row_alert_the_store_admins_once(airbyte, pipeline, settings, caplog):
    settings.AIRBYTE_SYNC_ALERT_AFTER_FAILURES = 2
    owner = MembershipFactory(merchant=pipeline.merchant)
    for _ in range(4):
        airbyte.script_job(status="failed")
        _due(pipeline)
        job = pipeline_sync(pipeline_id=pipeline.pk)
        airbyte.advance(job.airbyte_job_id, "failed")
        job_poll(job_id=job.pk)
    pipeline.refresh_from_db()
    assert pipeline.consecutive_failures == 4 and pipeline.failure_alerted_at is not None
    [notification] = Notification.objects.filter(merchant=pipeline.merchant)
    assert notification.clerk_user_id == owner.clerk_user_id and notification.kind == "data_stale"
    assert notification.context["source"] == "Klaviyo"
    assert len([m for m in _errors(caplog) if "syncs in a row" in m]) == 1

    # A success ends the failing run; the next run of failures alerts again (after the outbox's day).
    _due(pipeline)
    job = pipeline_sync(pipeline_id=pipeline.pk)
    airbyte.advance(job.airbyte_job_id, "succeeded")
    job_poll(job_id=job.pk)
    pipeline.refresh_from_db()
    assert pipeline.failure_alerted_at is None and pipeline.consecutive_failures == 0


def test_airbyte_down_loses_nothing_alerts_once_and_the_syncs_catch_up(
    airbyte, providers, pipeline, sandbox, settings, caplog
):
    settings.AIRBYTE_OUTAGE_ALERT_SECONDS = 0
    running = pipeline_sync(pipeline_id=pipeline.pk)
    other = credential_for(Provider.META, providers, merchant=pipeline.merchant)
    second = pipeline_follow_credential(credential_id=other.pk)
    AirbyteClient().get_job(running.airbyte_job_id)  # a token in hand: the outage hits the job routes

    sandbox.fault("airbyte.jobs.create", 503, times=6)
    sandbox.fault("airbyte.jobs.get", 503, times=6)
    for _ in range(3):
        assert pipeline_sync(pipeline_id=second.pk) is None
        assert job_poll(job_id=running.pk).status == JobStatus.PENDING
    second.refresh_from_db()
    assert second.consecutive_failures == 0 and second.next_sync_at <= timezone.now()  # not the store's failure
    assert SyncJob.objects.filter(pipeline=second).count() == 0
    assert Workspace.objects.get().api_down_since is not None
    assert len(_errors(caplog)) == 1 and "Airbyte API unreachable" in _errors(caplog)[0]

    for _ in range(3):  # the rest of the scripted outage
        pipeline_sync(pipeline_id=second.pk)
        job_poll(job_id=running.pk)
    plan = ingestion_sweep(now=timezone.now() + dt.timedelta(minutes=5))
    assert plan.sync == [second.pk] and plan.poll == [running.pk]
    caught_up = pipeline_sync(pipeline_id=second.pk)
    airbyte.advance(running.airbyte_job_id, "succeeded")
    assert job_poll(job_id=running.pk).status == JobStatus.SUCCEEDED
    assert caught_up is not None and Workspace.objects.get().api_down_since is None
    assert len(_errors(caplog)) == 1  # one alert for the whole outage


def test_a_job_whose_poller_died_is_followed_by_the_sweeper(airbyte, pipeline, eager):
    job = pipeline_sync(pipeline_id=pipeline.pk)
    # The worker polling it was killed: its record stays non-terminal, its next poll long past.
    SyncJob.objects.filter(pk=job.pk).update(next_poll_at=timezone.now() - dt.timedelta(minutes=10))
    airbyte.advance(job.airbyte_job_id, "succeeded")

    assert ingestion_sweep().poll == [job.pk]
    counts = ingestion_sweep_task.apply().get()  # fans out inline (eager): the poll task runs
    assert counts["poll"] == 1
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED
    assert ingestion_sweep().poll == []


def test_a_poll_still_in_its_backoff_is_left_to_its_task(airbyte, pipeline):
    job = pipeline_sync(pipeline_id=pipeline.pk)
    assert job.next_poll_at > timezone.now()
    assert ingestion_sweep().poll == []


def test_a_token_expiring_at_sync_time_is_refreshed_and_patched_before_the_trigger(airbyte, providers):
    credential = credential_for(Provider.META, providers, ttl=3600)  # inside Meta's 7-day refresh window
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    old = airbyte.stored_source_configuration(pipeline.source_id)["credentials"]["access_token"]
    pipeline_sync(pipeline_id=pipeline.pk)
    watched = ("airbyte.sources.patch", "airbyte.jobs.create")
    routes = [c["route"] for c in airbyte.control.calls() if c["route"] in watched]
    assert routes == ["airbyte.sources.patch", "airbyte.jobs.create"]
    assert airbyte.stored_source_configuration(pipeline.source_id)["credentials"]["access_token"] != old


def test_connections_fire_at_staggered_slots():
    interval = 3600
    now = dt.datetime(2026, 12, 3, 14, 0, 0, tzinfo=dt.UTC)
    slots = [next_slot(str(uuid.uuid4()), interval, now) for _ in range(1000)]
    assert all(now < slot <= now + dt.timedelta(seconds=interval) for slot in slots)
    per_minute = Counter(slot.minute for slot in slots)
    assert len(per_minute) == 60 and max(per_minute.values()) <= 35  # ~17 a minute, never all at :00
    # A connection keeps its slot: the same minute every hour.
    key = "3f6c3d5e-1111-4222-8333-944455556666"
    first = next_slot(key, interval, now)
    assert next_slot(key, interval, first) == first + dt.timedelta(seconds=interval)
    assert next_slot(key, interval, first - dt.timedelta(seconds=1)) == first


def test_the_sweeper_is_scheduled_every_minute():
    [schedule] = [s for s in SCHEDULES if s.task == "ingestion.sweep"]
    assert schedule.every_seconds == 60 and schedule.expires_seconds < schedule.every_seconds


def test_staff_sync_now_and_reset_are_audited_and_run_after_commit(
    airbyte, pipeline, eager, django_capture_on_commit_callbacks
):
    from compliance.models import AuditEvent
    from compliance.services import Actor

    Pipeline.objects.filter(pk=pipeline.pk).update(next_sync_at=timezone.now() + dt.timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        services.pipeline_sync_request(pipeline_id=pipeline.pk, actor=Actor.system("staff-test"))
    [job] = SyncJob.objects.filter(pipeline=pipeline)
    assert job.job_type == JobType.SYNC
    airbyte.advance(job.airbyte_job_id, "succeeded")
    job_poll(job_id=job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        services.pipeline_sync_request(pipeline_id=pipeline.pk, actor=Actor.system("staff"), job_type=JobType.RESET)
    [reset] = SyncJob.objects.filter(pipeline=pipeline, job_type=JobType.RESET)
    airbyte.advance(reset.airbyte_job_id, "succeeded")
    job_poll(job_id=reset.pk)
    assert ingestion_sweep().sync == [pipeline.pk]  # emptied tables: the history is synced again at once
    # The sync and the reset each changed the raw tables (a reset empties them: the marts must follow).
    assert RawDataChange.objects.filter(merchant=pipeline.merchant).count() == 2
    events = AuditEvent.objects.filter(target_type="ingestion.pipeline").order_by("pk")
    assert list(events.values_list("action", flat=True)) == [
        "ingestion.sync_requested",
        "ingestion.reset_requested",
    ]


def test_a_token_refused_at_sync_time_starts_no_job_and_the_credential_needs_reconnecting(airbyte, providers):
    from connectors.choices import CredentialStatus
    from connectors.services import credential_secret

    credential = credential_for(Provider.META, providers, ttl=3600)
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    providers.meta_invalidate(credential_secret(credential))

    assert pipeline_sync(pipeline_id=pipeline.pk) is None
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.NEEDS_REAUTH
    assert airbyte.control.calls("airbyte.jobs.create") == []
    assert ingestion_sweep().follow == [credential.pk]  # → the connection is paused


def test_the_sweep_costs_the_same_few_queries_for_any_number_of_stores(django_assert_max_num_queries):
    import time

    from tests.connectors.factories import CredentialFactory

    now = timezone.now()
    credentials = CredentialFactory.create_batch(
        200, provider=Provider.KLAVIYO, auth_kind="api_key", access_token="", api_key="pk_" + "x" * 34
    )
    pipelines = Pipeline.objects.bulk_create(
        Pipeline(credential=c, merchant_id=c.merchant_id, source_type="klaviyo", start_date=now.date(),
                 connection_id=str(uuid.uuid4()), status="active", next_sync_at=now - dt.timedelta(minutes=1),
                 last_synced_at=now - dt.timedelta(hours=1))  # their hourly syncs (history syncs have a cap)
        for c in credentials
    )  # fmt: skip
    SyncJob.objects.bulk_create(
        SyncJob(
            pipeline=p,
            connection_id=p.connection_id,
            airbyte_job_id=i,
            status="running",
            next_poll_at=now - dt.timedelta(minutes=5),
        )
        for i, p in enumerate(pipelines[:100])
    )
    started = time.monotonic()
    with django_assert_max_num_queries(12):  # 1 teardown, 2 polls, 3 syncs, 4 + 2 follows: none per row
        plan = ingestion_sweep()
    elapsed = time.monotonic() - started
    assert len(plan.poll) == 100 and len(plan.sync) == 100 and plan.follow == []
    print(f"ingestion_sweep_200_pipelines: {elapsed * 1000:.1f} ms")


def test_a_connection_airbyte_lost_is_made_again_and_synced_without_counting_a_failure(airbyte, pipeline):
    AirbyteClient().delete_connection(pipeline.connection_id)
    assert pipeline_sync(pipeline_id=pipeline.pk) is None
    pipeline.refresh_from_db()
    assert pipeline.status == "pending" and pipeline.consecutive_failures == 0 and pipeline.connection_id == ""
    assert airbyte.state()["sources"] == []  # the orphan source went too

    assert ingestion_sweep().follow == [pipeline.credential_id]
    pipeline = pipeline_follow_credential(credential_id=pipeline.credential_id)
    assert pipeline.status == "active" and ingestion_sweep().sync == [pipeline.pk]
    assert pipeline_sync(pipeline_id=pipeline.pk) is not None


def test_a_connection_paused_by_hand_in_airbyte_is_resumed(airbyte, pipeline):
    AirbyteClient().patch_connection(pipeline.connection_id, status="inactive")
    assert pipeline_sync(pipeline_id=pipeline.pk) is None
    assert airbyte.state()["connections"][0]["status"] == "active"
    pipeline.refresh_from_db()
    assert pipeline.consecutive_failures == 0 and pipeline.next_sync_at <= timezone.now()  # still due
    assert pipeline_sync(pipeline_id=pipeline.pk) is not None


def test_a_job_id_reused_by_a_new_airbyte_is_another_job(airbyte, pipeline, sandbox):
    first = pipeline_sync(pipeline_id=pipeline.pk)
    airbyte.advance(first.airbyte_job_id, "succeeded")
    job_poll(job_id=first.pk)
    sandbox.reset()  # Airbyte replaced (the sandbox restarted): ids start again, our connection is gone
    airbyte.manual_jobs()
    from ingestion.client import TOKENS

    TOKENS.clear()
    _due(pipeline)
    assert pipeline_sync(pipeline_id=pipeline.pk) is None  # the connection is gone: made again
    pipeline = pipeline_follow_credential(credential_id=pipeline.credential_id)
    again = pipeline_sync(pipeline_id=pipeline.pk)
    assert again.airbyte_job_id == first.airbyte_job_id and again.pk != first.pk
    assert again.connection_id == pipeline.connection_id != first.connection_id
    state = airbyte.state()  # made once each in the new Airbyte, nothing orphaned
    assert (len(state["sources"]), len(state["destinations"]), len(state["connections"])) == (1, 1, 1)
    airbyte.advance(again.airbyte_job_id, "succeeded")
    assert job_poll(job_id=again.pk).status == JobStatus.SUCCEEDED


def test_paused_scheduled_syncs_start_none_but_running_jobs_are_still_followed(airbyte, pipeline, settings):
    airbyte.script_job(rowsSynced=5, bytesSynced=50)
    job = pipeline_sync(pipeline_id=pipeline.pk)  # started before the operator paused syncs
    Pipeline.objects.filter(pk=pipeline.pk).update(next_sync_at=timezone.now() - dt.timedelta(minutes=5))
    SyncJob.objects.filter(pk=job.pk).update(next_poll_at=timezone.now() - dt.timedelta(minutes=5))
    settings.AIRBYTE_SCHEDULED_SYNCS_PAUSED = True

    plan = ingestion_sweep()

    assert plan.sync == []  # nothing new is started while paused
    assert plan.poll == [job.pk]  # what already runs is followed to its end

    settings.AIRBYTE_SCHEDULED_SYNCS_PAUSED = False
    airbyte.advance(job.airbyte_job_id, "succeeded")
    job_poll(job_id=job.pk)
    assert ingestion_sweep().sync == [pipeline.pk]  # due, idle and unpaused: synced again


def _onboard(providers, count: int) -> list[Pipeline]:
    """An agency connecting `count` stores at once: each pipeline's first (history) sync is due now."""
    return [
        pipeline_follow_credential(credential_id=credential_for(Provider.KLAVIYO, providers).pk) for _ in range(count)
    ]


def test_a_batch_of_new_connections_starts_at_most_the_cap_of_history_syncs_at_once(airbyte, providers, settings):
    settings.AIRBYTE_HISTORY_SYNCS_MAX_CONCURRENT = 3
    pipelines = _onboard(providers, 8)
    assert all(p.next_sync_at <= timezone.now() and p.last_synced_at is None for p in pipelines)

    first = ingestion_sweep().sync
    assert first == [p.pk for p in pipelines[:3]]  # the first connected first
    jobs = [pipeline_sync(pipeline_id=pk) for pk in first]
    assert all(jobs)
    assert ingestion_sweep().sync == []  # every place taken: the other five wait, still due
    # A sync task that reaches a worker anyway (a sweep that raced, a duplicate) does not exceed the cap either.
    assert pipeline_sync(pipeline_id=pipelines[5].pk) is None
    assert len(airbyte.control.calls("airbyte.jobs.create")) == 3

    airbyte.advance(jobs[0].airbyte_job_id, "succeeded")
    job_poll(job_id=jobs[0].pk)  # its history is in: a place is free
    airbyte.advance(jobs[1].airbyte_job_id, "failed")
    job_poll(job_id=jobs[1].pk)  # failed: its retry is a history sync too, after its backoff
    assert ingestion_sweep().sync == [pipelines[3].pk, pipelines[4].pk]


def test_the_cap_leaves_regular_syncs_and_staff_s_sync_now_alone(airbyte, providers, settings):
    settings.AIRBYTE_HISTORY_SYNCS_MAX_CONCURRENT = 1
    synced, *new = _onboard(providers, 3)
    job = pipeline_sync(pipeline_id=synced.pk)
    airbyte.advance(job.airbyte_job_id, "succeeded")
    job_poll(job_id=job.pk)
    _due(synced)  # its hourly slot
    history = pipeline_sync(pipeline_id=new[0].pk)
    assert history is not None

    assert ingestion_sweep().sync == [synced.pk]  # the hourly one goes; the second history sync waits
    assert pipeline_sync(pipeline_id=synced.pk) is not None
    assert pipeline_sync(pipeline_id=new[1].pk, force=True) is not None  # staff's "sync now"


def test_without_a_cap_every_due_history_sync_goes(airbyte, providers, settings):
    settings.AIRBYTE_HISTORY_SYNCS_MAX_CONCURRENT = 0
    pipelines = _onboard(providers, 4)
    assert sorted(ingestion_sweep().sync) == sorted(p.pk for p in pipelines)
    assert all(pipeline_sync(pipeline_id=p.pk) for p in pipelines)
