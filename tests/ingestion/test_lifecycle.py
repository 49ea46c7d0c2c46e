"""The pipeline follows the credential: connect, refresh, needs reconnecting, disconnect — against the
sandbox's Airbyte over real HTTP (shared/INGESTION.md §1, §3)."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings

from analytics.raw_schema import RAW_TABLES
from compliance.services import Actor
from connectors import services as connector_services
from connectors.choices import CredentialStatus, Provider
from connectors.clients.base import Unauthorized
from ingestion.choices import PipelineStatus
from ingestion.models import Pipeline, Workspace
from ingestion.services import pipeline_follow_credential
from ingestion.sources import SOURCES, changed_part, digests
from tests.ingestion.factories import credential_for

pytestmark = pytest.mark.django_db

EXPECTED_STREAMS = {
    Provider.META: [
        {"name": "ads_insights", "syncMode": "incremental_deduped_history", "cursorField": ["date_start"],
         "primaryKey": [["date_start"], ["account_id"], ["ad_id"]]},
        {"name": "campaigns", "syncMode": "incremental_deduped_history", "cursorField": ["updated_time"],
         "primaryKey": [["id"]]},
    ],
    Provider.GOOGLE_ADS: [
        {"name": "campaign", "syncMode": "incremental_deduped_history", "cursorField": ["segments.date"],
         "primaryKey": [["campaign.id"], ["segments.date"], ["segments.ad_network_type"], ["segments.device"]]},
        {"name": "customer", "syncMode": "incremental_deduped_history", "cursorField": ["segments.date"],
         "primaryKey": [["customer.id"], ["segments.date"]]},
    ],
    Provider.KLAVIYO: [
        {"name": name, "syncMode": "incremental_deduped_history", "cursorField": [cursor], "primaryKey": [["id"]]}
        for name, cursor in (("events", "datetime"), ("metrics", "updated"), ("campaigns", "updated_at"),
                             ("flows", "updated"), ("profiles", "updated"))
    ],
}  # fmt: skip
EXPECTED_STREAMS[Provider.SHOPIFY] = [
    {"name": "orders", "syncMode": "incremental_deduped_history", "cursorField": ["updated_at"],
     "primaryKey": [["id"]]},
    {"name": "order_refunds", "syncMode": "incremental_deduped_history", "cursorField": ["created_at"],
     "primaryKey": [["id"]]},
    {"name": "customers", "syncMode": "incremental_deduped_history", "cursorField": ["updated_at"],
     "primaryKey": [["id"]]},
    {"name": "shop", "syncMode": "full_refresh_overwrite"},
]  # fmt: skip
PREFIXES = {Provider.META: "facebook_marketing_", Provider.GOOGLE_ADS: "google_ads_", Provider.KLAVIYO: "klaviyo_",
            Provider.SHOPIFY: "shopify_"}  # fmt: skip
SOURCE_TYPES = {Provider.META: "facebook-marketing", Provider.GOOGLE_ADS: "google-ads", Provider.KLAVIYO: "klaviyo",
                Provider.SHOPIFY: "shopify"}  # fmt: skip


def test_every_stream_lands_in_a_raw_table_the_marts_read():
    for provider, kind in SOURCES.items():
        tables = {f"{kind.prefix}{stream.name}" for stream in kind.streams}
        assert tables <= set(RAW_TABLES), provider
        # ... and every raw table of that source is synced (Attentive, web sessions and rates are not Airbyte's).
        assert {t for t in RAW_TABLES if t.startswith(kind.prefix)} == tables, provider


@pytest.mark.parametrize("provider", [Provider.META, Provider.GOOGLE_ADS, Provider.KLAVIYO, Provider.SHOPIFY])
def test_connect_creates_the_source_and_a_manual_connection_into_the_raw_schema(airbyte, providers, provider):
    credential = credential_for(provider, providers)

    pipeline = pipeline_follow_credential(credential_id=credential.pk)

    state = airbyte.state()
    [source], [destination], [connection] = state["sources"], state["destinations"], state["connections"]
    assert source["sourceType"] == SOURCE_TYPES[provider] and source["sourceId"] == pipeline.source_id
    assert destination["destinationType"] == "postgres"
    assert Workspace.objects.get().destination_id == destination["destinationId"]
    assert {key: connection[key] for key in ("sourceId", "destinationId", "namespaceDefinition", "namespaceFormat",
                                             "prefix", "schedule", "status")} == {
        "sourceId": pipeline.source_id,
        "destinationId": destination["destinationId"],
        "namespaceDefinition": "custom_format",
        "namespaceFormat": credential.merchant.raw_schema,
        "prefix": PREFIXES[provider],
        "schedule": {"scheduleType": "manual"},
        "status": "active",
    }  # fmt: skip
    assert connection["configurations"]["streams"] == EXPECTED_STREAMS[provider]
    assert pipeline.status == PipelineStatus.ACTIVE and pipeline.connection_id == connection["connectionId"]
    assert pipeline.next_sync_at is not None  # the first sync (the history) is due at once

    stored = airbyte.stored_source_configuration(pipeline.source_id)
    if provider == Provider.META:
        assert stored["account_ids"] == ["111111111111111"]
        assert stored["credentials"]["access_token"] == connector_services.credential_secret(credential)
        assert stored["credentials"]["auth_type"] == "Client"
    elif provider == Provider.SHOPIFY:
        assert stored["shop"] == credential.external_account_id
        app = {key: getattr(settings, name, "") for key, name in (("client_id", "SHOPIFY_API_KEY"),
                                                                  ("client_secret", "SHOPIFY_API_SECRET"))}  # fmt: skip
        assert stored["credentials"] == {"auth_method": "oauth2.0",
                                         "access_token": connector_services.credential_secret(credential),
                                         **{key: value for key, value in app.items() if value}}  # fmt: skip
    elif provider == Provider.GOOGLE_ADS:
        assert stored["customer_id"] == "1234567890"
        assert "access_token" not in stored["credentials"]  # the connector renews its own
    else:
        assert stored["api_key"] == connector_services.credential_secret(credential)


def test_a_second_connect_reuses_the_destination_and_following_again_changes_nothing(airbyte, providers):
    first = credential_for(Provider.META, providers)
    second = credential_for(Provider.KLAVIYO, providers, merchant=first.merchant)
    pipeline_follow_credential(credential_id=first.pk)
    pipeline_follow_credential(credential_id=second.pk)
    pipeline_follow_credential(credential_id=first.pk)

    state = airbyte.state()
    assert len(state["destinations"]) == 1 and len(state["sources"]) == 2 and len(state["connections"]) == 2
    assert len(airbyte.control.calls("airbyte.destinations.create")) == 1
    assert airbyte.control.calls("airbyte.sources.patch") == []  # nothing changed: nothing sent


def test_connect_through_the_credential_service_creates_the_pipeline_after_commit(
    airbyte, providers, eager, django_capture_on_commit_callbacks
):
    credential = credential_for(Provider.META, providers)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        connector_services.credential_store(
            merchant=credential.merchant,
            provider=Provider.META,
            auth_kind=credential.auth_kind,
            secrets=connector_services.NewSecrets(
                external_account_id=credential.external_account_id,
                account_label="Acme",
                access_token=providers.meta_token(kind="long", ttl=5183944),
                metadata={"ad_accounts": [{"id": "act_222", "name": "Other"}]},
            ),
            actor=Actor.system("test"),
        )
    assert len(callbacks) == 1
    pipeline = Pipeline.objects.get(credential=credential)
    assert pipeline.status == PipelineStatus.ACTIVE
    assert airbyte.stored_source_configuration(pipeline.source_id)["account_ids"] == ["222"]


def test_a_refreshed_token_is_patched_alone_into_the_source(
    airbyte, providers, eager, django_capture_on_commit_callbacks, caplog
):
    credential = credential_for(Provider.META, providers)
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    before = airbyte.stored_source_configuration(pipeline.source_id)

    caplog.set_level(logging.INFO, logger="ingestion.services")
    with django_capture_on_commit_callbacks(execute=True):
        connector_services.credential_refresh(credential_id=credential.pk, force=True)

    credential.refresh_from_db()
    new_token = connector_services.credential_secret(credential)
    assert new_token != before["credentials"]["access_token"]
    assert len(airbyte.control.calls("airbyte.sources.patch")) == 1
    after = airbyte.stored_source_configuration(pipeline.source_id)
    assert after == {**before, "credentials": {**before["credentials"], "access_token": new_token}}
    # What was sent: the token's leaf and nothing else (the log names the paths, never the values).
    assert f"Airbyte source {pipeline.source_id} updated: credentials.access_token" in caplog.messages
    assert new_token not in caplog.text


def test_a_rotated_shopify_token_is_patched_alone_into_the_source(
    airbyte, providers, eager, django_capture_on_commit_callbacks
):
    credential = credential_for(Provider.SHOPIFY, providers)
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    before = airbyte.stored_source_configuration(pipeline.source_id)
    with django_capture_on_commit_callbacks(execute=True):
        connector_services.credential_refresh(credential_id=credential.pk, force=True)
    credential.refresh_from_db()
    new_token = connector_services.credential_secret(credential)
    assert new_token != before["credentials"]["access_token"]
    assert len(airbyte.control.calls("airbyte.sources.patch")) == 1
    after = airbyte.stored_source_configuration(pipeline.source_id)
    assert after == {**before, "credentials": {**before["credentials"], "access_token": new_token}}


def test_the_changed_part_is_only_the_leaves_that_changed():
    sent = digests({"account_ids": ["1"], "credentials": {"auth_type": "Client", "access_token": "old"}, "n": 28})
    configuration = {"account_ids": ["1"], "credentials": {"auth_type": "Client", "access_token": "new"}, "n": 28}
    assert changed_part(configuration, sent) == {"credentials": {"access_token": "new"}}
    assert changed_part({**configuration, "account_ids": ["1", "2"]}, digests(configuration)) == {
        "account_ids": ["1", "2"]
    }
    assert changed_part(configuration, digests(configuration)) == {}


def test_a_google_refresh_sends_nothing_the_connector_renews_its_own_token(
    airbyte, providers, eager, django_capture_on_commit_callbacks
):
    credential = credential_for(Provider.GOOGLE_ADS, providers)
    pipeline_follow_credential(credential_id=credential.pk)
    with django_capture_on_commit_callbacks(execute=True):
        connector_services.credential_refresh(credential_id=credential.pk, force=True)
    assert airbyte.control.calls("airbyte.sources.patch") == []


def test_needs_reconnecting_pauses_the_connection_and_a_reconnect_resumes_it(
    airbyte, providers, eager, django_capture_on_commit_callbacks
):
    credential = credential_for(Provider.META, providers)
    pipeline = pipeline_follow_credential(credential_id=credential.pk)

    with django_capture_on_commit_callbacks(execute=True):
        connector_services.credential_mark_needs_reauth(
            credential_id=credential.pk, error=Unauthorized("token refused", code="token_refused")
        )
    pipeline.refresh_from_db()
    [connection] = airbyte.state()["connections"]
    assert connection["status"] == "inactive" and pipeline.status == PipelineStatus.PAUSED
    assert pipeline.next_sync_at is None

    token = providers.meta_token(kind="long", ttl=5183944)
    with django_capture_on_commit_callbacks(execute=True):
        connector_services.credential_store(
            merchant=credential.merchant, provider=Provider.META, auth_kind=credential.auth_kind,
            secrets=connector_services.NewSecrets(external_account_id=credential.external_account_id,
                                                  account_label="Acme", access_token=token,
                                                  metadata=credential.metadata),
            actor=Actor.system("test"),
        )  # fmt: skip
    pipeline.refresh_from_db()
    [connection] = airbyte.state()["connections"]
    assert connection["status"] == "active" and pipeline.status == PipelineStatus.ACTIVE
    assert airbyte.stored_source_configuration(pipeline.source_id)["credentials"]["access_token"] == token
    assert len(airbyte.state()["sources"]) == 1  # the same source, updated


def test_disconnect_deactivates_then_deletes_the_connection_and_the_source(
    airbyte, providers, eager, django_capture_on_commit_callbacks
):
    credential = credential_for(Provider.KLAVIYO, providers)
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    connection_id, source_id = pipeline.connection_id, pipeline.source_id

    with django_capture_on_commit_callbacks(execute=True):
        connector_services.credential_revoke(credential_id=credential.pk, actor=Actor.system("test"))

    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.DELETED and pipeline.connection_id == pipeline.source_id == ""
    calls = [(c["method"], c["path"].rsplit("/", 1)[-1]) for c in airbyte.control.calls() if c["route"] and
             c["route"].startswith(("airbyte.connections", "airbyte.sources"))][-3:]  # fmt: skip
    assert calls == [("PATCH", connection_id), ("DELETE", connection_id), ("DELETE", source_id)]
    state = airbyte.state()
    assert state["sources"] == []
    assert [c["status"] for c in state["connections"]] == ["deprecated"]  # Airbyte keeps deleted ones so


def test_airbyte_down_during_connect_keeps_what_was_made_and_the_sweeper_finishes_it(airbyte, providers, sandbox):
    from ingestion.services import AirbyteUnreachable, ingestion_sweep

    credential = credential_for(Provider.META, providers)
    sandbox.fault("airbyte.connections.create", 503, times=1)
    with pytest.raises(AirbyteUnreachable):
        pipeline_follow_credential(credential_id=credential.pk)
    pipeline = Pipeline.objects.get(credential=credential)
    assert pipeline.source_id and not pipeline.connection_id and pipeline.status == PipelineStatus.PENDING

    assert ingestion_sweep().follow == [credential.pk]
    pipeline_follow_credential(credential_id=credential.pk)
    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.ACTIVE and pipeline.connection_id
    assert len(airbyte.state()["sources"]) == 1  # not created twice


def test_a_credential_status_change_the_task_missed_is_reconciled_by_the_sweeper(airbyte, providers):
    from ingestion.services import ingestion_sweep

    credential = credential_for(Provider.META, providers)
    pipeline_follow_credential(credential_id=credential.pk)
    type(credential).objects.filter(pk=credential.pk).update(status=CredentialStatus.NEEDS_REAUTH)
    assert ingestion_sweep().follow == [credential.pk]
    pipeline_follow_credential(credential_id=credential.pk)
    assert ingestion_sweep().follow == []
    assert airbyte.state()["connections"][0]["status"] == "inactive"


def test_a_source_deleted_in_airbyte_is_made_again(airbyte, providers):
    from ingestion.client import AirbyteClient

    credential = credential_for(Provider.KLAVIYO, providers)
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    AirbyteClient().delete_connection(pipeline.connection_id)
    AirbyteClient().delete_source(pipeline.source_id)
    Pipeline.objects.filter(pk=pipeline.pk).update(source_digests={})  # so the reconcile has something to PATCH

    again = pipeline_follow_credential(credential_id=credential.pk)
    assert again.status == PipelineStatus.ACTIVE and again.source_id != pipeline.source_id
    [source] = airbyte.state()["sources"]
    assert source["sourceId"] == again.source_id
    live = [c for c in airbyte.state()["connections"] if c["status"] == "active"]
    assert [c["connectionId"] for c in live] == [again.connection_id]


def test_an_uninstalled_store_is_paused_and_resumes_when_it_is_back(airbyte, providers):
    from ingestion.services import ingestion_sweep, pipeline_sync

    credential = credential_for(Provider.META, providers)
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    merchant = credential.merchant
    merchant.is_active = False  # what the Shopify uninstall webhook does, with the Shopify credential revoked
    merchant.save(update_fields=["is_active"])

    assert pipeline_sync(pipeline_id=pipeline.pk) is None
    assert ingestion_sweep().follow == [credential.pk]
    pipeline_follow_credential(credential_id=credential.pk)
    assert ingestion_sweep().follow == []  # paused, and not followed again every minute
    assert airbyte.state()["connections"][0]["status"] == "inactive"

    merchant.is_active = True
    merchant.save(update_fields=["is_active"])
    assert ingestion_sweep().follow == [credential.pk]
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    assert pipeline.status == PipelineStatus.ACTIVE and airbyte.state()["connections"][0]["status"] == "active"


def test_the_follow_task_retries_while_airbyte_is_down_then_leaves_it_to_the_sweeper(
    airbyte, providers, sandbox, eager
):
    from ingestion.services import ingestion_sweep
    from ingestion.tasks import FOLLOW_MAX_RETRIES, pipeline_follow_credential_task

    credential = credential_for(Provider.KLAVIYO, providers)
    sandbox.fault("airbyte.sources.create", 503, times=FOLLOW_MAX_RETRIES + 1)
    pipeline_follow_credential_task.apply(args=[credential.pk]).get()
    assert len(airbyte.control.calls("airbyte.sources.create")) == FOLLOW_MAX_RETRIES + 1
    assert Pipeline.objects.get(credential=credential).status == PipelineStatus.PENDING
    assert ingestion_sweep().follow == [credential.pk]
    pipeline_follow_credential_task.apply(args=[credential.pk]).get()
    assert Pipeline.objects.get(credential=credential).status == PipelineStatus.ACTIVE


def test_the_destination_is_the_warehouse_also_through_a_unix_socket(settings):
    from ingestion.services import destination_configuration

    settings.AIRBYTE_DESTINATION_HOST = ""
    warehouse = {**settings.DATABASES["warehouse"], "HOST": "", "OPTIONS": {"host": "/run/embedded-postgres"}}
    settings.DATABASES = {**settings.DATABASES, "warehouse": warehouse}
    configuration = destination_configuration()
    assert (configuration["host"], configuration["database"]) == ("/run/embedded-postgres", warehouse["NAME"])
    settings.DATABASES = {**settings.DATABASES, "warehouse": {**warehouse, "HOST": "db.internal", "OPTIONS": {}}}
    assert destination_configuration()["host"] == "db.internal"
