"""Run the ingestion flows, then search logs, admin pages, stored rows and errors for any secret: the
providers' tokens and keys, the app secrets sent in source configurations, Airbyte's client secret and
bearer tokens, and the destination's password."""

from __future__ import annotations

import json

import pytest
from django.core import serializers
from django.urls import reverse

from compliance.services import Actor
from connectors import services as connector_services
from connectors.choices import Provider
from connectors.clients.base import Unauthorized
from ingestion.client import Unprocessable
from ingestion.models import Pipeline, SyncJob, Workspace
from ingestion.services import job_poll, pipeline_follow_credential, pipeline_sync
from tests.connectors.test_no_plaintext import project_log  # noqa: F401 -- the project's log handler, at DEBUG
from tests.ingestion.conftest import CLIENT_SECRET
from tests.ingestion.factories import credential_for

pytestmark = pytest.mark.django_db

DESTINATION_PASSWORD = "warehouse-destination-password-7f3a"


def test_no_secret_in_logs_admin_rows_or_errors(
    airbyte,
    providers,
    sandbox,
    settings,
    admin_client,
    eager,
    django_capture_on_commit_callbacks,
    project_log,  # noqa: F811
):
    settings.AIRBYTE_DESTINATION_HOST = "warehouse.internal"
    settings.AIRBYTE_DESTINATION_DATABASE = "analytics"
    settings.AIRBYTE_DESTINATION_USER = "airbyte"
    settings.AIRBYTE_DESTINATION_PASSWORD = DESTINATION_PASSWORD
    settings.GOOGLE_ADS_DEVELOPER_TOKEN = "google-developer-token-for-tests"
    secrets = {DESTINATION_PASSWORD, CLIENT_SECRET, settings.META_APP_SECRET, settings.GOOGLE_OAUTH_CLIENT_SECRET,
               settings.GOOGLE_ADS_DEVELOPER_TOKEN}  # fmt: skip

    meta = credential_for(Provider.META, providers)
    google = credential_for(Provider.GOOGLE_ADS, providers, merchant=meta.merchant)
    klaviyo = credential_for(Provider.KLAVIYO, providers, merchant=meta.merchant)
    for credential in (meta, google, klaviyo):
        secrets.add(connector_services.credential_secret(credential))
        pipeline_follow_credential(credential_id=credential.pk)
    secrets.add(connector_services.decrypt_secret(google.refresh_token_enc))

    # A refresh (PATCH), syncs that succeed and fail, a reconnect needed, a disconnect.
    with django_capture_on_commit_callbacks(execute=True):
        connector_services.credential_refresh(credential_id=meta.pk, force=True)
    meta.refresh_from_db()
    secrets.add(connector_services.credential_secret(meta))
    for pipeline, outcome in zip(Pipeline.objects.order_by("pk"), ("succeeded", "failed", "succeeded"), strict=True):
        airbyte.script_job(status=outcome, errorType="config_error" if outcome == "failed" else None)
        job = pipeline_sync(pipeline_id=pipeline.pk)
        airbyte.advance(job.airbyte_job_id, outcome)
        job_poll(job_id=job.pk)
    with django_capture_on_commit_callbacks(execute=True):
        connector_services.credential_mark_needs_reauth(credential_id=google.pk, error=Unauthorized("no", code="x"))
        connector_services.credential_revoke(credential_id=klaviyo.pk, actor=Actor.system("test"))

    # Airbyte refusing a configuration with the secret in its message: our error and the row show none.
    other = credential_for(Provider.KLAVIYO, providers)
    key = connector_services.credential_secret(other)
    secrets.add(key)
    problem = {"status": 422, "title": "unprocessable-entity", "data": {"message": f"api_key {key} is not valid"}}
    sandbox.fault("airbyte.sources.create", 422, body=problem)
    with pytest.raises(Unprocessable) as refused:
        pipeline_follow_credential(credential_id=other.pk)
    errors = [str(refused.value), repr(refused.value), Pipeline.objects.get(credential=other).last_error_message]

    secrets |= set(airbyte.issued_tokens())
    pages = [
        admin_client.get(reverse(f"admin:ingestion_{name}_changelist")).content.decode()
        for name in ("pipeline", "syncjob", "workspace")
    ]
    pages += [admin_client.get(reverse("admin:ingestion_pipeline_change", args=[p.pk])).content.decode()
              for p in Pipeline.objects.all()]  # fmt: skip
    pages += [admin_client.get(reverse("admin:ingestion_syncjob_change", args=[j.pk])).content.decode()
              for j in SyncJob.objects.all()]  # fmt: skip
    pages.append(admin_client.get(reverse("admin:ingestion_workspace_change", args=[Workspace.objects.get().pk]))
                 .content.decode())  # fmt: skip
    assert all("Airbyte" in page or "ingestion" in page.lower() for page in pages)
    rows = serializers.serialize("json", [*Pipeline.objects.all(), *SyncJob.objects.all(), *Workspace.objects.all()])

    log = project_log.getvalue()
    assert "Airbyte source" in log and "updated: credentials.access_token" in log  # the flows did log
    secrets.discard("")
    for secret in secrets:
        assert secret not in log, "a secret in the logs"
        assert all(secret not in page for page in pages), "a secret in admin"
        assert secret not in rows, "a secret in ingestion's rows"
        assert all(secret not in error for error in errors), "a secret in an error"
    assert json.loads(rows)  # the rows were searched, not an empty dump


@pytest.mark.parametrize("provider", [Provider.META, Provider.GOOGLE_ADS, Provider.KLAVIYO])
def test_an_error_report_from_inside_a_source_create_carries_no_secret(airbyte, providers, settings, provider):
    """Raised in the HTTP layer (requests refuses the configured timeout) with the decrypted configuration,
    the Airbyte token and the destination password in the frames; rendered as Django would mail it.

    The secrets are read only after the report is rendered: this test's own frame is in the report too (the
    chained exception's traceback), and must not be what holds them."""
    from django.views.debug import ExceptionReporter

    from ingestion.client import AirbyteClient

    settings.DEBUG = False  # the filter hides nothing in debug mode, by design
    settings.AIRBYTE_DESTINATION_HOST = "warehouse.internal"
    settings.AIRBYTE_DESTINATION_PASSWORD = DESTINATION_PASSWORD
    credential = credential_for(provider, providers)
    AirbyteClient().list_sources()  # a token in the cache: the failure comes from the source's own call
    settings.CONNECTORS_HTTP_TIMEOUT = ("not-a-number", 1.0)

    with pytest.raises(ValueError) as caught:
        pipeline_follow_credential(credential_id=credential.pk)

    reporter = ExceptionReporter(None, caught.type, caught.value, caught.tb.tb_next)  # from the service down
    report = reporter.get_traceback_text() + reporter.get_traceback_html()
    assert "_source_ensure" in report and "create_source" in report and "_request" in report
    for secret in _secrets_of(credential, settings, airbyte):
        assert secret not in report


def _secrets_of(credential, settings, airbyte) -> list[str]:
    found = [connector_services.credential_secret(credential), settings.META_APP_SECRET, CLIENT_SECRET,
             settings.GOOGLE_OAUTH_CLIENT_SECRET, DESTINATION_PASSWORD, *airbyte.issued_tokens()]  # fmt: skip
    if credential.refresh_token_enc:
        found.append(connector_services.decrypt_secret(credential.refresh_token_enc))
    return [secret for secret in found if secret]
