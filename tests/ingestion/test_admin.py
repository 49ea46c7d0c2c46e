"""Staff's pages: read-only rows, and the audited "sync now" and "reset" actions (through real HTTP to the sandbox)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from connectors.choices import Provider
from ingestion.choices import JobType
from ingestion.models import SyncJob
from ingestion.services import pipeline_follow_credential
from tests.ingestion.factories import credential_for

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("action", "job_type", "audited"),
    [("sync_now", JobType.SYNC, "ingestion.sync_requested"), ("reset", JobType.RESET, "ingestion.reset_requested")],
)
def test_an_admin_action_is_audited_and_starts_the_job_after_commit(
    admin_client, admin_user, airbyte, providers, eager, django_capture_on_commit_callbacks, action, job_type, audited
):
    pipeline = pipeline_follow_credential(credential_id=credential_for(Provider.KLAVIYO, providers).pk)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:ingestion_pipeline_changelist"), {"action": action, "_selected_action": [pipeline.pk]}
        )
    assert response.status_code == 302
    [job] = SyncJob.objects.filter(pipeline=pipeline)
    assert job.job_type == job_type
    [event] = AuditEvent.objects.filter(target_type="ingestion.pipeline")
    assert (event.action, event.actor_id, event.merchant_id) == (audited, str(admin_user.pk), pipeline.merchant_id)


def test_the_rows_cannot_be_added_changed_or_deleted_in_admin(admin_client, airbyte, providers):
    pipeline = pipeline_follow_credential(credential_id=credential_for(Provider.KLAVIYO, providers).pk)
    assert admin_client.get(reverse("admin:ingestion_pipeline_add")).status_code == 403
    page = admin_client.get(reverse("admin:ingestion_pipeline_change", args=[pipeline.pk]))
    assert page.status_code == 200 and b'name="_save"' not in page.content
    assert admin_client.post(reverse("admin:ingestion_pipeline_delete", args=[pipeline.pk])).status_code == 403
