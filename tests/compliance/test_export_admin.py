"""The audit export admin: staff ask for merchant or global exports through the same service, refusals show by
field, rows are read-only, and each page signs fresh download links."""

from __future__ import annotations

import pytest

from compliance.models import AuditEvent, AuditExport
from tests.accounts.factories import MerchantFactory
from tests.compliance.export_fixtures import compliance_storage, succeeded_export  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compliance_storage")]

ADD = "/admin/compliance/auditexport/add/"
FORM = {
    "occurred_from_0": "2026-03-01",
    "occurred_from_1": "00:00:00",
    "occurred_to_0": "2026-03-02",
    "occurred_to_1": "00:00:00",
    "actions": "credential.refreshed,template.saved",
    "actor_ids": "",
    "target_type": "",
    "target_id": "",
    "format": "ndjson",
}


def test_staff_ask_for_a_global_export_through_the_service(
    admin_client, admin_user, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = admin_client.post(ADD, {**FORM, "merchant": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    export = AuditExport.objects.get()
    assert (export.merchant_id, export.actions, export.state, export.requested_by_type, export.requested_by_id) == (
        None,
        ["credential.refreshed", "template.saved"],
        "pending",
        "staff",
        str(admin_user.pk),
    )
    assert len(callbacks) == 1  # the run, after commit
    requested = AuditEvent.objects.get(action="audit_export.requested")
    assert (requested.actor_type, requested.metadata["scope"]) == ("staff", "global")


def test_staff_ask_for_a_merchants_export(admin_client):
    merchant = MerchantFactory()
    assert admin_client.post(ADD, {**FORM, "merchant": merchant.pk}).status_code == 302
    assert AuditExport.objects.get().merchant_id == merchant.pk


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"occurred_to_0": "2026-03-01"}, "The end must be after the start."),
        ({"target_id": "7"}, "A target id needs its target type."),
        ({"actions": ",".join(["x"] * 51)}, "At most 50 values."),
    ],
)
def test_refusals_show_on_the_form_and_create_nothing(admin_client, changes, message):
    response = admin_client.post(ADD, {**FORM, "merchant": "", **changes})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not AuditExport.objects.exists()


def test_the_list_signs_download_links_and_rows_are_read_only(admin_client):
    export = succeeded_export(merchant=MerchantFactory(), name="audit-x.ndjson.gz")
    listing = admin_client.get("/admin/compliance/auditexport/").content.decode()
    assert 'href="/compliance/files/' in listing and "audit-x.ndjson.gz" in listing
    assert export.file_key not in listing
    detail = admin_client.get(f"/admin/compliance/auditexport/{export.pk}/change/")
    assert detail.status_code == 200
    assert 'name="occurred_from_0"' not in detail.content.decode()  # nothing editable
    assert admin_client.post(f"/admin/compliance/auditexport/{export.pk}/delete/").status_code == 403
    assert AuditExport.objects.filter(pk=export.pk).exists()
