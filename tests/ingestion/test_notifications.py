"""Airbyte's webhook notifications (shared/INGESTION.md §1.7): the workspace's webhook is set to ours, a
notification is confirmed through GET /jobs/{id} before it counts, and a source's config_error turns the
credential needs-reconnect — which pauses the pipeline. Hostile input is a 4xx, never a 500."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from django.urls import reverse

from config.logging import REDACTED
from connectors import services as connector_services
from connectors.choices import CredentialStatus, Provider
from connectors.models import ConnectorCredential
from ingestion import services
from ingestion.choices import JobStatus, PipelineStatus
from ingestion.client import AirbyteClient
from ingestion.models import Pipeline, SyncJob, Workspace
from ingestion.services import job_poll, pipeline_follow_credential, pipeline_sync
from ingestion.tasks import ingestion_sweep_task
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory
from tests.ingestion.factories import credential_for

pytestmark = pytest.mark.django_db

BASE = "http://testserver"


@pytest.fixture
def hooked(airbyte, settings):
    """The app's notifications base URL set (the sandbox is told it at first use)."""
    settings.AIRBYTE_NOTIFICATIONS_BASE_URL = BASE
    return airbyte


@pytest.fixture
def pipeline(hooked, providers) -> Pipeline:
    credential = credential_for(Provider.KLAVIYO, providers)
    return pipeline_follow_credential(credential_id=credential.pk)


def _url(token: str | None = None) -> str:
    token = services.notification_tokens()[0] if token is None else token
    return f"{reverse('ingestion:airbyte_notification')}?token={token}"


def _body(job: SyncJob, **data: Any) -> dict[str, Any]:
    """§1.7's body for one of our jobs (what the sandbox sends; here for the cases no job ends for)."""
    return {
        "text": "…",
        "blocks": [],
        "data": {
            "workspace": {"id": Workspace.objects.get().workspace_id, "name": "w", "url": "u"},
            "connection": {"id": job.connection_id, "name": "c", "url": "u"},
            "jobId": job.airbyte_job_id,
            "success": False,
            **data,
        },
    }


def _post(client, body: Any, token: str | None = None, raw: bytes | None = None):
    content = raw if raw is not None else json.dumps(body).encode()
    return client.post(_url(token), data=content, content_type="application/json")


def test_first_use_points_the_workspace_failure_and_success_webhooks_at_us_once(hooked, providers):
    client = AirbyteClient()
    workspace_id = Workspace.objects.get_or_create(workspace_id=services.settings.AIRBYTE_WORKSPACE_ID)[0].workspace_id
    client.patch_workspace(workspace_id, notifications={"failure": {"email": {"enabled": True}}})  # set by hand

    credential = credential_for(Provider.KLAVIYO, providers)
    pipeline_follow_credential(credential_id=credential.pk)
    pipeline_follow_credential(credential_id=credential_for(Provider.META, providers).pk)
    ingestion_sweep_task.apply()

    notifications = client.get_workspace(workspace_id)["notifications"]
    url = notifications["failure"]["webhook"]["url"]
    assert url == f"{BASE}/webhooks/airbyte/?token={services.notification_tokens()[0]}"
    assert notifications["failure"] == {"email": {"enabled": True}, "webhook": {"enabled": True, "url": url}}
    assert notifications["success"] == {"webhook": {"enabled": True, "url": url}}
    assert len(hooked.control.calls("airbyte.workspaces.patch")) == 2  # ours once (and the test's own)
    assert services.notification_tokens()[0] not in Workspace.objects.get().notifications_digest


def test_a_new_secret_key_sets_the_webhook_again_and_the_old_token_still_works_while_it_is_a_fallback(
    pipeline, settings, client
):
    old = services.notification_tokens()[0]
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-for-this-test-" + "x" * 40
    assert services.workspace_notifications_ensure() is True
    url = AirbyteClient().get_workspace(settings.AIRBYTE_WORKSPACE_ID)["notifications"]["failure"]["webhook"]["url"]
    assert url.endswith(services.notification_tokens()[0]) and old not in url
    job = pipeline_sync(pipeline_id=pipeline.pk)
    assert _post(client, _body(job, success=True), token=old).status_code == 202  # pending: still running
    settings.SECRET_KEY_FALLBACKS = []
    assert _post(client, _body(job, success=True), token=old).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_a_source_config_error_notified_by_the_sandbox_makes_the_credential_need_reconnecting_and_pauses(
    airbyte, providers, settings, live_server, eager, caplog
):
    """The whole path over HTTP: the sandbox ends the job and POSTs §1.7's body to the URL we set; our view
    confirms the job through the API; connectors' needs-reconnect path tells the owner and the follow task
    pauses the connection."""
    settings.AIRBYTE_NOTIFICATIONS_BASE_URL = live_server.url
    credential = credential_for(Provider.KLAVIYO, providers)
    owner = MembershipFactory(merchant=credential.merchant)
    api_key = connector_services.credential_secret(credential)
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    airbyte.script_job(status="failed", errorType="config_error", errorOrigin="source",
                       errorMessage=f"Unauthorized: the API key {api_key} is not valid")  # fmt: skip
    job = pipeline_sync(pipeline_id=pipeline.pk)

    ended = airbyte.advance(job.airbyte_job_id, "failed")

    assert ended["notifications"] == [
        {"url": f"{live_server.url}/webhooks/airbyte/", "jobId": job.airbyte_job_id, "success": False, "status": 200}
    ]
    job.refresh_from_db()
    assert (job.status, job.error_type, job.error_origin) == (JobStatus.FAILED, "config_error", "source")
    assert job.error_message == f"Unauthorized: the API key {REDACTED} is not valid"
    credential.refresh_from_db()
    assert (credential.status, credential.last_error_code) == (CredentialStatus.NEEDS_REAUTH, "airbyte_config_error")
    assert api_key not in credential.last_error_message
    [notification] = Notification.objects.filter(merchant=credential.merchant)
    assert (notification.clerk_user_id, notification.kind) == (owner.clerk_user_id, "credential_needs_reauth")
    pipeline.refresh_from_db()
    assert pipeline.status == PipelineStatus.PAUSED and pipeline.next_sync_at is None
    assert pipeline.consecutive_failures == 0  # not retried: retrying cannot fix refused credentials
    [connection] = airbyte.state()["connections"]
    assert connection["status"] == "inactive"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert api_key not in logged and services.notification_tokens()[0] not in logged


@pytest.mark.django_db(transaction=True)
def test_a_success_notification_finishes_the_job_before_any_poll(airbyte, providers, settings, live_server):
    settings.AIRBYTE_NOTIFICATIONS_BASE_URL = live_server.url
    pipeline = pipeline_follow_credential(credential_id=credential_for(Provider.META, providers).pk)
    airbyte.script_job(rowsSynced=7)
    job = pipeline_sync(pipeline_id=pipeline.pk)
    assert airbyte.advance(job.airbyte_job_id, "succeeded")["notifications"][0]["status"] == 200
    job.refresh_from_db()
    assert (job.status, job.rows_synced, job.polls) == (JobStatus.SUCCEEDED, 7, 1)  # the view's confirming GET


@pytest.mark.parametrize(
    ("error_type", "error_origin"),
    [("system_error", "source"), ("config_error", "destination"), ("transient_error", "source")],
)
def test_other_failures_keep_the_retry_and_alert_path(pipeline, hooked, client, error_type, error_origin):
    hooked.script_job(status="failed", errorType=error_type, errorOrigin=error_origin, errorMessage="boom")
    job = pipeline_sync(pipeline_id=pipeline.pk)
    hooked.advance(job.airbyte_job_id, "failed")

    response = _post(client, _body(job, errorType=error_type, errorOrigin=error_origin, errorMessage="boom"))

    assert (response.status_code, response.json()) == (200, {"status": "recorded"})
    job.refresh_from_db()
    assert (job.status, job.error_type, job.error_origin, job.error_message) == (
        JobStatus.FAILED, error_type, error_origin, "boom",
    )  # fmt: skip
    pipeline.refresh_from_db()
    assert pipeline.consecutive_failures == 1 and pipeline.last_error_code == error_type
    assert pipeline.status == PipelineStatus.ACTIVE and pipeline.next_sync_at is not None  # retried
    assert ConnectorCredential.objects.get(pk=pipeline.credential_id).status == CredentialStatus.ACTIVE


def test_a_notification_after_the_poll_saw_the_failure_still_names_the_reason(pipeline, hooked, client):
    hooked.script_job(status="failed", errorType="config_error", errorOrigin="source")
    job = pipeline_sync(pipeline_id=pipeline.pk)
    hooked.advance(job.airbyte_job_id, "failed")
    assert job_poll(job_id=job.pk).error_type == "sync_failed"  # all the public API says

    response = _post(client, _body(job, errorType="config_error", errorOrigin="source", errorMessage="bad key"))

    assert response.status_code == 200
    job.refresh_from_db()
    assert (job.error_type, job.error_message) == ("config_error", "bad key")
    assert ConnectorCredential.objects.get(pk=pipeline.credential_id).status == CredentialStatus.NEEDS_REAUTH


def test_airbyte_down_while_confirming_keeps_the_reason_for_the_poller(pipeline, hooked, client, sandbox):
    hooked.script_job(status="failed", errorType="config_error", errorOrigin="source")
    job = pipeline_sync(pipeline_id=pipeline.pk)
    hooked.advance(job.airbyte_job_id, "failed")
    sandbox.fault("airbyte.jobs.get", 503, times=1)

    response = _post(client, _body(job, errorType="config_error", errorOrigin="source", errorMessage="bad key"))

    assert (response.status_code, response.json()) == (202, {"status": "pending"})
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and (job.error_type, job.error_origin) == ("config_error", "source")
    assert ConnectorCredential.objects.get(pk=pipeline.credential_id).status == CredentialStatus.ACTIVE
    assert Workspace.objects.get().api_down_since is not None

    assert job_poll(job_id=job.pk).status == JobStatus.FAILED  # Airbyte answers again: confirmed
    job.refresh_from_db()
    assert (job.error_type, job.error_message) == ("config_error", "bad key")
    assert ConnectorCredential.objects.get(pk=pipeline.credential_id).status == CredentialStatus.NEEDS_REAUTH


def test_a_forged_failure_for_a_running_job_changes_nothing_once_the_job_succeeds(pipeline, hooked, client):
    job = pipeline_sync(pipeline_id=pipeline.pk)
    response = _post(client, _body(job, errorType="config_error", errorOrigin="source", errorMessage="forged"))
    assert (response.status_code, response.json()) == (202, {"status": "pending"})  # Airbyte: still pending
    assert ConnectorCredential.objects.get(pk=pipeline.credential_id).status == CredentialStatus.ACTIVE

    hooked.advance(job.airbyte_job_id, "succeeded")
    job = job_poll(job_id=job.pk)
    assert (job.status, job.error_type, job.error_origin, job.error_message) == (JobStatus.SUCCEEDED, "", "", "")
    assert ConnectorCredential.objects.get(pk=pipeline.credential_id).status == CredentialStatus.ACTIVE


def test_a_forged_or_foreign_job_id_is_ignored_with_a_202(pipeline, hooked, client):
    job = pipeline_sync(pipeline_id=pipeline.pk)
    before = list(SyncJob.objects.values())
    for forged in (_body(job, jobId=job.airbyte_job_id + 1000),
                   _body(job, connection={"id": "6f1d6c0e-0000-4000-8000-000000000000"})):  # fmt: skip
        response = _post(client, forged)
        assert (response.status_code, response.json()) == (202, {"status": "ignored"})
    assert list(SyncJob.objects.values()) == before


def test_no_token_or_a_wrong_one_is_a_403_and_never_confirms_anything(pipeline, hooked, client, caplog):
    job = pipeline_sync(pipeline_id=pipeline.pk)
    token = services.notification_tokens()[0]
    calls = len(hooked.control.calls("airbyte.jobs.get"))
    for wrong in ("", "x", token[:-1], token + "0", token.upper()):
        response = _post(client, _body(job), token=wrong)
        assert (response.status_code, response.json()) == (403, {"error": "forbidden"})
    assert client.post(reverse("ingestion:airbyte_notification"), data="{}", content_type="application/json"
                       ).status_code == 403  # fmt: skip
    assert len(hooked.control.calls("airbyte.jobs.get")) == calls
    assert token not in "\n".join(r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"null",
        b'"text"',
        b"{}",
        b'{"data": []}',
        b"[" * 5000 + b"]" * 5000,
        b'{"data": {"jobId": "1", "connection": {"id": "c"}, "success": false}}',
        b'{"data": {"jobId": true, "connection": {"id": "c"}, "success": false}}',
        b'{"data": {"jobId": -3, "connection": {"id": "c"}, "success": false}}',
        b'{"data": {"jobId": 1e400, "connection": {"id": "c"}, "success": false}}',
        b'{"data": {"jobId": 99999999999999999999999, "connection": {"id": "c"}, "success": false}}',
        b'{"data": {"jobId": 1, "connection": "c", "success": false}}',
        b'{"data": {"jobId": 1, "connection": {"id": 7}, "success": false}}',
        b'{"data": {"jobId": 1, "connection": {"id": "c"}}}',
        b'{"data": {"jobId": 1, "connection": {"id": "c"}, "success": "no"}}',
        b'{"data": {"jobId": 1, "connection": {"id": "c"}, "success": false, "errorType": {"a": 1}}}',
        b'{"data": {"jobId": 1, "connection": {"id": "c"}, "success": false, "errorMessage": 5}}',
        b'{"data": {"jobId": NaN, "connection": {"id": "c"}, "success": false}}',
    ],
)
def test_garbage_is_a_400_and_writes_nothing(pipeline, hooked, client, raw):
    job = pipeline_sync(pipeline_id=pipeline.pk)
    before = list(SyncJob.objects.values())
    response = _post(client, None, raw=raw)
    assert (response.status_code, response.json()) == (400, {"error": "not an Airbyte sync notification"})
    assert list(SyncJob.objects.values()) == before
    assert job.pk


def test_only_post_is_accepted(client, hooked):
    assert client.get(_url()).status_code == 405
    assert client.put(_url(), data="{}", content_type="application/json").status_code == 405


def test_the_token_is_never_in_a_response_the_admin_or_a_log_line(pipeline, hooked, client, admin_client, caplog):
    caplog.set_level(logging.DEBUG)
    token = services.notification_tokens()[0]
    job = pipeline_sync(pipeline_id=pipeline.pk)
    hooked.advance(job.airbyte_job_id, "failed")
    texts = [_post(client, _body(job, errorType="system_error")).content.decode()]
    for model in ("workspace", "pipeline", "syncjob"):
        texts.append(admin_client.get(reverse(f"admin:ingestion_{model}_changelist")).content.decode())
    texts.append(admin_client.get(reverse("admin:ingestion_syncjob_change", args=[job.pk])).content.decode())
    texts.append(admin_client.get(reverse("admin:ingestion_workspace_change",
                                          args=[Workspace.objects.get().pk])).content.decode())  # fmt: skip
    texts += [r.getMessage() for r in caplog.records]
    assert all(token not in text for text in texts)


def test_a_body_over_the_upload_limit_is_a_400_not_a_500(pipeline, hooked, client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    job = pipeline_sync(pipeline_id=pipeline.pk)
    response = _post(client, _body(job, errorMessage="x" * 5000))
    assert response.status_code == 400
    assert SyncJob.objects.get(pk=job.pk).error_message == ""


def test_the_webhook_url_is_logged_without_its_token():
    from config.logging import redact_url

    token = services.notification_tokens()[0]
    logged = redact_url(f"https://app.example.com/webhooks/airbyte/?token={token}")
    assert token not in logged and logged.startswith("https://app.example.com/webhooks/airbyte/")


@pytest.mark.parametrize(
    "notifications",
    [
        {"failure": {"webhook": {"enabled": "yes"}}},
        {"failure": {"webhook": {"enabled": True, "url": "ftp://x"}}},
        {"failures": {}},
        {"failure": {"sms": {}}},
    ],
)
def test_the_sandbox_refuses_a_malformed_notifications_patch_as_airbyte_does(airbyte, settings, notifications):
    from ingestion.client import Permanent

    with pytest.raises(Permanent) as refused:
        AirbyteClient().patch_workspace(settings.AIRBYTE_WORKSPACE_ID, notifications=notifications)
    assert refused.value.status == 400
    assert AirbyteClient().get_workspace(settings.AIRBYTE_WORKSPACE_ID)["notifications"] == {}


def test_a_workspace_refusing_the_webhook_does_not_stop_a_connect(hooked, providers, sandbox):
    sandbox.fault("airbyte.workspaces.patch", 400, times=1)
    pipeline = pipeline_follow_credential(credential_id=credential_for(Provider.KLAVIYO, providers).pk)
    assert pipeline.status == PipelineStatus.ACTIVE and pipeline.connection_id
    assert Workspace.objects.get().notifications_digest == ""  # not set: the sweeper tries again
    assert services.workspace_notifications_ensure() is True
