"""A deleted store (or a store closed after its uninstall) leaves nothing in Airbyte and nothing looping in the
sweeper: its connections and sources are deleted there, its running jobs cancelled, its rows forgotten —
against the sandbox's Airbyte over real HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import Merchant
from compliance.services import Actor
from connectors import services as connector_services
from connectors.choices import Provider
from connectors.models import ConnectorCredential
from ingestion.choices import PipelineStatus
from ingestion.models import Pipeline, SyncJob
from ingestion.services import (
    ingestion_sweep,
    job_poll,
    pipeline_follow_credential,
    pipeline_follow_store,
    pipeline_orphan_teardown,
    pipeline_sync,
)
from ingestion.tasks import ingestion_sweep_task
from tests.ingestion.factories import credential_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def store(airbyte, providers, settings):
    """A store with Meta and Klaviyo pipelines, its exchange rates, and a Meta sync running."""
    settings.EXCHANGE_RATES_ACCESS_KEY = "exchange-rates-key-for-tests"
    meta = credential_for(Provider.META, providers)
    klaviyo = credential_for(Provider.KLAVIYO, providers, merchant=meta.merchant)
    pipelines = [pipeline_follow_credential(credential_id=c.pk) for c in (meta, klaviyo)]
    pipelines.append(pipeline_follow_store(merchant_id=meta.merchant_id))
    job = pipeline_sync(pipeline_id=pipelines[0].pk)
    airbyte.advance(job.airbyte_job_id)  # running
    assert len(_live(airbyte)["sources"]) == 3
    return meta.merchant, pipelines, job


def _live(airbyte) -> dict[str, list]:
    state = airbyte.state()
    live = [c["connectionId"] for c in state["connections"] if c["status"] != "deprecated"]
    return {"sources": [s["sourceId"] for s in state["sources"]], "connections": live}


def test_deleting_the_store_in_admin_removes_its_connections_and_sources_from_airbyte(
    airbyte, store, admin_client, eager
):
    merchant, pipelines, job = store
    response = admin_client.post(reverse("admin:accounts_merchant_delete", args=[merchant.pk]), {"post": "yes"})
    assert response.status_code == 302 and not Merchant.objects.filter(pk=merchant.pk).exists()

    # Orphaned, not forgotten: nothing of them syncs or polls, and the sweeper tears each down.
    plan = ingestion_sweep(now=timezone.now() + dt.timedelta(days=2))
    assert plan.teardown == sorted(p.pk for p in pipelines)
    assert plan.sync == [] and plan.poll == [] and plan.follow == [] and plan.follow_store == []
    assert pipeline_sync(pipeline_id=pipelines[1].pk, force=True) is None
    assert job_poll(job_id=job.pk).polls == 0  # not asked about: left to the teardown

    counts = ingestion_sweep_task.apply().get()  # fans out inline (eager): the teardown tasks run
    assert counts["teardown"] == 3

    assert _live(airbyte) == {"sources": [], "connections": []}
    assert airbyte.job(job.airbyte_job_id)["status"] == "cancelled"
    assert not Pipeline.objects.exists() and not SyncJob.objects.exists()
    assert ingestion_sweep(now=timezone.now() + dt.timedelta(days=2)) == type(plan)()  # nothing left looping
    assert [c["status"] for c in airbyte.control.calls("airbyte.connections.delete")] == [204, 204, 204]
    assert [c["status"] for c in airbyte.control.calls("airbyte.sources.delete")] == [204, 204, 204]


def test_airbyte_down_during_the_teardown_keeps_the_row_until_it_is_done(airbyte, store, sandbox):
    merchant, pipelines, _job = store
    Merchant.objects.filter(pk=merchant.pk).delete()
    target = Pipeline.objects.get(pk=pipelines[1].pk)
    sandbox.fault("airbyte.sources.delete", 503, times=1)

    assert pipeline_orphan_teardown(pipeline_id=target.pk) is False
    target.refresh_from_db()
    assert target.connection_id == "" and target.source_id  # the connection went; the source is still to go
    assert ingestion_sweep().teardown == sorted(p.pk for p in pipelines)

    assert pipeline_orphan_teardown(pipeline_id=target.pk) is True
    assert not Pipeline.objects.filter(pk=target.pk).exists()
    assert target.source_id not in _live(airbyte)["sources"]


def test_a_teardown_finding_things_already_gone_in_airbyte_still_completes(airbyte, store):
    from ingestion.client import AirbyteClient

    merchant, pipelines, job = store
    client = AirbyteClient()
    client.cancel_job(job.airbyte_job_id)
    client.delete_connection(pipelines[0].connection_id)
    client.delete_source(pipelines[0].source_id)
    Merchant.objects.filter(pk=merchant.pk).delete()
    assert pipeline_orphan_teardown(pipeline_id=pipelines[0].pk) is True
    assert not Pipeline.objects.filter(pk=pipelines[0].pk).exists()


def test_a_deleted_credential_row_s_pipeline_is_torn_down_too(airbyte, store):
    _merchant, pipelines, _job = store
    klaviyo = pipelines[1]
    ConnectorCredential.objects.filter(pk=klaviyo.credential_id).delete()
    assert ingestion_sweep().teardown == [klaviyo.pk]
    assert pipeline_orphan_teardown(pipeline_id=klaviyo.pk) is True
    assert klaviyo.source_id not in _live(airbyte)["sources"]
    assert Pipeline.objects.count() == 2  # the store's others are untouched


def _uninstall(merchant: Merchant, *, ago: dt.timedelta) -> None:
    """What connectors.shopify's app/uninstalled handling leaves (its Shopify credential revoked: none here)."""
    merchant.is_active = False
    merchant.uninstalled_at = timezone.now() - ago
    merchant.save()


def test_an_uninstalled_store_is_paused_then_once_closed_removed_from_airbyte_and_a_reinstall_starts_again(
    airbyte, store
):
    merchant, pipelines, job = store
    airbyte.advance(job.airbyte_job_id, "succeeded")
    job_poll(job_id=job.pk)
    _uninstall(merchant, ago=dt.timedelta(hours=1))
    plan = ingestion_sweep()
    for credential_id in plan.follow:
        pipeline_follow_credential(credential_id=credential_id)
    for merchant_id in plan.follow_store:
        pipeline_follow_store(merchant_id=merchant_id)
    assert {p.status for p in Pipeline.objects.all()} == {PipelineStatus.PAUSED}
    assert len(_live(airbyte)["sources"]) == 3  # a reinstall within the window resumes them as they were

    _uninstall(merchant, ago=dt.timedelta(days=3))  # closed: Shopify has erased the store by now
    plan = ingestion_sweep()
    assert sorted(plan.follow) == sorted(p.credential_id for p in pipelines[:2]) and plan.follow_store == [merchant.pk]
    for credential_id in plan.follow:
        pipeline_follow_credential(credential_id=credential_id)
    for merchant_id in plan.follow_store:
        pipeline_follow_store(merchant_id=merchant_id)
    assert {p.status for p in Pipeline.objects.all()} == {PipelineStatus.DELETED}
    assert _live(airbyte) == {"sources": [], "connections": []}
    plan = ingestion_sweep()
    assert (plan.follow, plan.follow_store, plan.sync, plan.teardown) == ([], [], [], [])  # settled

    merchant.is_active, merchant.uninstalled_at = True, None  # reinstalled (connectors.shopify.install_apply)
    merchant.save()
    plan = ingestion_sweep()
    assert sorted(plan.follow) == sorted(p.credential_id for p in pipelines[:2]) and plan.follow_store == [merchant.pk]
    for credential_id in plan.follow:
        assert pipeline_follow_credential(credential_id=credential_id).status == PipelineStatus.ACTIVE
    assert pipeline_follow_store(merchant_id=merchant.pk).status == PipelineStatus.ACTIVE
    assert len(_live(airbyte)["sources"]) == 3


def test_a_revoked_credential_of_a_closed_store_stays_deleted(airbyte, store):
    merchant, pipelines, _job = store
    connector_services.credential_revoke(credential_id=pipelines[1].credential_id, actor=Actor.system("test"))
    pipeline_follow_credential(credential_id=pipelines[1].credential_id)
    _uninstall(merchant, ago=dt.timedelta(days=3))
    assert pipelines[1].credential_id not in ingestion_sweep().follow
