"""A store's own pipeline — the exchange rates the marts convert ad spend with — follows the store, not a
credential: made for each installed store with an ad account, paused when it is uninstalled or has none left,
synced daily by the same sweeper; against the sandbox's Airbyte over real HTTP."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from compliance.services import Actor
from connectors import services as connector_services
from connectors.choices import CredentialStatus, Provider
from ingestion.choices import JobStatus, PipelineKind, PipelineStatus
from ingestion.models import Pipeline
from ingestion.services import ingestion_sweep, job_poll, pipeline_follow_store, pipeline_sync
from ingestion.tasks import ingestion_sweep_task
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory
from tests.ingestion.factories import credential_for

pytestmark = pytest.mark.django_db

ACCESS_KEY = "exchange-rates-access-key-for-tests-91c2"


@pytest.fixture
def rates_key(settings):
    settings.EXCHANGE_RATES_ACCESS_KEY = ACCESS_KEY


@pytest.mark.parametrize("provider", [Provider.META, Provider.GOOGLE_ADS])
def test_a_store_with_an_ad_account_gets_one_exchange_rates_pipeline_of_ours(airbyte, providers, rates_key, provider):
    credential = credential_for(provider, providers)
    merchant = credential.merchant
    assert ingestion_sweep().follow_store == [merchant.pk]

    pipeline = pipeline_follow_store(merchant_id=merchant.pk)
    assert pipeline_follow_store(merchant_id=merchant.pk).pk == pipeline.pk  # following again changes nothing

    assert (pipeline.kind, pipeline.credential_id, pipeline.status) == (
        PipelineKind.EXCHANGE_RATES, None, PipelineStatus.ACTIVE,
    )  # fmt: skip
    assert pipeline.sync_interval_seconds == 86400 and pipeline.next_sync_at is not None
    [source] = [s for s in airbyte.state()["sources"] if s["sourceType"] == "exchange-rates"]
    assert source["sourceId"] == pipeline.source_id
    assert airbyte.stored_source_configuration(pipeline.source_id) == {
        "access_key": ACCESS_KEY, "start_date": pipeline.start_date.isoformat(), "ignore_weekends": True,
    }  # fmt: skip
    [connection] = [c for c in airbyte.state()["connections"] if c["sourceId"] == pipeline.source_id]
    assert (connection["namespaceFormat"], connection["prefix"], connection["status"]) == (
        merchant.raw_schema, "exchange_rates_", "active",
    )  # fmt: skip
    assert connection["configurations"]["streams"] == [
        {"name": "rates", "syncMode": "incremental_deduped_history", "cursorField": ["date"], "primaryKey": [["date"]]}
    ]
    assert len(airbyte.control.calls("airbyte.sources.create")) == 1
    assert ingestion_sweep().follow_store == []


def test_a_store_without_ad_accounts_or_without_our_key_gets_none(airbyte, providers, settings):
    klaviyo = credential_for(Provider.KLAVIYO, providers)
    settings.EXCHANGE_RATES_ACCESS_KEY = ACCESS_KEY
    assert ingestion_sweep().follow_store == []
    assert pipeline_follow_store(merchant_id=klaviyo.merchant_id) is None

    meta = credential_for(Provider.META, providers)
    settings.EXCHANGE_RATES_ACCESS_KEY = ""
    assert ingestion_sweep().follow_store == []
    assert pipeline_follow_store(merchant_id=meta.merchant_id) is None
    assert not Pipeline.objects.filter(kind=PipelineKind.EXCHANGE_RATES).exists()
    assert airbyte.control.calls("airbyte.sources.create") == []


def test_uninstalled_or_without_ad_accounts_it_pauses_and_a_reinstall_resumes_it(airbyte, providers, rates_key):
    credential = credential_for(Provider.META, providers)
    merchant = credential.merchant
    pipeline = pipeline_follow_store(merchant_id=merchant.pk)

    merchant.is_active = False
    merchant.save()
    assert ingestion_sweep().follow_store == [merchant.pk]
    assert pipeline_follow_store(merchant_id=merchant.pk).status == PipelineStatus.PAUSED
    assert airbyte.state()["connections"][0]["status"] == "inactive"
    assert ingestion_sweep().follow_store == []
    assert pipeline_sync(pipeline_id=pipeline.pk, force=True) is None

    merchant.is_active = True
    merchant.save()
    assert ingestion_sweep().follow_store == [merchant.pk]
    resumed = pipeline_follow_store(merchant_id=merchant.pk)
    assert resumed.pk == pipeline.pk and resumed.status == PipelineStatus.ACTIVE
    assert airbyte.state()["connections"][0]["status"] == "active"

    connector_services.credential_revoke(credential_id=credential.pk, actor=Actor.system("test"))
    assert ingestion_sweep().follow_store == [merchant.pk]  # no ad account left: nothing to convert
    assert pipeline_follow_store(merchant_id=merchant.pk).status == PipelineStatus.PAUSED


def test_an_ad_account_needing_reconnecting_keeps_the_rates_coming(airbyte, providers, rates_key):
    credential = credential_for(Provider.GOOGLE_ADS, providers)
    pipeline_follow_store(merchant_id=credential.merchant_id)
    credential.status = CredentialStatus.NEEDS_REAUTH
    credential.save()
    assert ingestion_sweep().follow_store == []  # its history still needs converting


def test_one_exchange_rates_pipeline_per_store_and_never_with_a_credential(airbyte, providers, rates_key):
    credential = credential_for(Provider.META, providers)
    pipeline = pipeline_follow_store(merchant_id=credential.merchant_id)
    for kwargs in ({"kind": PipelineKind.EXCHANGE_RATES},  # a second for the store
                   {"kind": PipelineKind.EXCHANGE_RATES, "credential": credential}):  # fmt: skip  # with a credential
        with pytest.raises(IntegrityError), transaction.atomic():
            Pipeline.objects.create(merchant_id=pipeline.merchant_id, source_type="x", start_date=pipeline.start_date,
                                    **kwargs)  # fmt: skip


def test_it_syncs_daily_through_the_sweeper_and_a_success_asks_for_the_build(airbyte, providers, rates_key, eager):
    from analytics.models import RawDataChange

    credential = credential_for(Provider.META, providers)
    pipeline = pipeline_follow_store(merchant_id=credential.merchant_id)
    assert pipeline.pk in ingestion_sweep().sync
    job = pipeline_sync(pipeline_id=pipeline.pk)
    airbyte.advance(job.airbyte_job_id, "succeeded")
    assert job_poll(job_id=job.pk).status == JobStatus.SUCCEEDED

    pipeline.refresh_from_db()
    now = timezone.now()
    assert now < pipeline.next_sync_at <= now + dt.timedelta(days=1)  # its slot of the day
    assert pipeline.pk not in ingestion_sweep().sync
    assert pipeline.pk in ingestion_sweep(now=now + dt.timedelta(days=1, seconds=1)).sync
    [change] = RawDataChange.objects.filter(merchant_id=pipeline.merchant_id)
    assert change.source == "exchange_rates"
    rows = airbyte.last_sync(pipeline.connection_id)["streams"]["rates"]["rows"]
    assert rows > 0


def test_the_sweep_task_makes_it(airbyte, providers, rates_key, eager):
    credential = credential_for(Provider.META, providers)
    counts = ingestion_sweep_task.apply().get()
    assert counts["follow_store"] == 1
    assert Pipeline.objects.get(kind=PipelineKind.EXCHANGE_RATES, merchant_id=credential.merchant_id).connection_id


def test_its_failures_alert_staff_not_the_store(airbyte, providers, rates_key, settings, caplog):
    settings.AIRBYTE_SYNC_ALERT_AFTER_FAILURES = 1
    credential = credential_for(Provider.META, providers)
    MembershipFactory(merchant=credential.merchant)
    pipeline = pipeline_follow_store(merchant_id=credential.merchant_id)
    airbyte.script_job(status="failed", errorType="config_error", errorOrigin="source")  # our key refused, say
    job = pipeline_sync(pipeline_id=pipeline.pk)
    airbyte.advance(job.airbyte_job_id, "failed")
    job_poll(job_id=job.pk)
    pipeline.refresh_from_db()
    assert pipeline.consecutive_failures == 1 and pipeline.failure_alerted_at is not None
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "syncs in a row" in r.getMessage()]
    assert not Notification.objects.filter(merchant=credential.merchant).exists()


def test_the_access_key_is_in_no_log_admin_page_or_row(airbyte, providers, rates_key, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    credential = credential_for(Provider.META, providers)
    pipeline = pipeline_follow_store(merchant_id=credential.merchant_id)
    job = pipeline_sync(pipeline_id=pipeline.pk)
    airbyte.advance(job.airbyte_job_id, "failed")
    job_poll(job_id=job.pk)
    pages = [admin_client.get(reverse("admin:ingestion_pipeline_change", args=[pipeline.pk])).content.decode(),
             admin_client.get(reverse("admin:ingestion_pipeline_changelist")).content.decode()]  # fmt: skip
    rows = [str(list(Pipeline.objects.values())), str(pipeline.source_digests)]
    assert all(ACCESS_KEY not in text for text in [*pages, *rows, *(r.getMessage() for r in caplog.records)])
