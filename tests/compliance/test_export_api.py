"""/api/merchants/<id>/audit-exports/: owners create, list and read exports and get fresh download links; admins
and viewers 403; anyone else's merchant or export 404; bad input 400 by field."""

from __future__ import annotations

import gzip
import json

import pytest

from accounts.choices import Role
from compliance.api.views import NOT_DOWNLOADABLE
from compliance.choices import ExportState
from compliance.models import AuditEvent, AuditExport
from tests.accounts.factories import MembershipFactory
from tests.compliance.export_fixtures import compliance_storage, succeeded_export  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compliance_storage")]

BODY = {"occurred_from": "2026-03-01T00:00:00Z", "occurred_to": "2026-03-02T00:00:00Z"}


@pytest.fixture
def owner(clerk):
    for user_id in ("user_owner", "user_admin", "user_other"):
        clerk.user(user_id)
    membership = MembershipFactory(role=Role.OWNER, clerk_user_id="user_owner")
    MembershipFactory(merchant=membership.merchant, role=Role.ADMIN, clerk_user_id="user_admin")
    MembershipFactory(role=Role.OWNER, clerk_user_id="user_other")
    return membership


@pytest.fixture
def eager():
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def url(merchant_id: int, suffix: str = "") -> str:
    return f"/api/merchants/{merchant_id}/audit-exports/{suffix}"


def post(client, clerk, path, body, user="user_owner"):
    return client.post(path, json.dumps(body), content_type="application/json", **clerk.auth_header(user))


def test_an_owner_exports_polls_and_downloads(client, clerk, owner, eager, django_capture_on_commit_callbacks):
    merchant = owner.merchant
    AuditEvent.objects.create(
        occurred_at="2026-03-01T10:00:00Z", actor_type="system", action="credential.refreshed", merchant=merchant
    )
    with django_capture_on_commit_callbacks(execute=True):
        created = post(client, clerk, url(merchant.pk), {**BODY, "actions": ["credential.refreshed"]})
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["state"], body["merchant_id"], body["actions"], body["format"]) == (
        "pending",
        merchant.pk,
        ["credential.refreshed"],
        "ndjson",
    )
    assert "file_key" not in body  # where a file is stored is never shown

    detail = client.get(url(merchant.pk, f"{body['id']}/"), **clerk.auth_header("user_owner")).json()
    assert (detail["state"], detail["row_count"], detail["download_available"]) == ("succeeded", 1, True)
    assert len(detail["sha256"]) == 64

    link = post(client, clerk, url(merchant.pk, f"{body['id']}/download-link/"), {})
    assert link.status_code == 200
    assert set(link.json()) == {"url", "expires_at"}
    assert link.json()["url"].startswith("http://testserver/compliance/files/")
    download = client.get(link.json()["url"], **clerk.auth_header("user_owner"))
    assert download.status_code == 200
    lines = gzip.decompress(b"".join(download.streaming_content)).decode().splitlines()
    assert [json.loads(line)["action"] for line in lines] == ["credential.refreshed"]

    again = post(client, clerk, url(merchant.pk, f"{body['id']}/download-link/"), {})  # re-signed on request
    assert client.get(again.json()["url"], **clerk.auth_header("user_owner")).status_code == 200
    assert AuditEvent.objects.filter(action="audit_export.downloaded").count() == 2

    listed = client.get(url(merchant.pk), **clerk.auth_header("user_owner")).json()
    assert [item["id"] for item in listed["results"]] == [body["id"]]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"occurred_from": ["This field is required."], "occurred_to": ["This field is required."]}),
        ({**BODY, "occurred_to": BODY["occurred_from"]}, {"occurred_to": ["The end must be after the start."]}),
        ({**BODY, "target_id": "7"}, {"target_type": ["A target id needs its target type."]}),
        ({**BODY, "format": "xlsx"}, {"format": ['"xlsx" is not a valid choice.']}),
        ({**BODY, "actions": "credential.refreshed"}, {"actions": ['Expected a list of items but got type "str".']}),
        ({**BODY, "actions": ["x"] * 51}, {"actions": ["Ensure this field has no more than 50 elements."]}),
        ({**BODY, "actor_ids": [" "]}, {"actor_ids": ["Item 1: This field may not be blank."]}),
        (
            {**BODY, "actions": ["ok", "x" * 101, "\ud800"]},
            {
                "actions": [
                    "Item 2: Ensure this field has no more than 100 characters.",
                    "Item 3: Surrogate characters are not allowed: U+D800.",
                ]
            },
        ),
        ({**BODY, "occurred_from": "yesterday"}, {"occurred_from"}),  # DRF's message lists the formats
    ],
)
def test_bad_input_is_a_400_by_field_and_creates_nothing(client, clerk, owner, body, errors):
    response = post(client, clerk, url(owner.merchant_id), body)
    assert response.status_code == 400
    assert (set(response.json()) if isinstance(errors, set) else response.json()) == errors
    assert not AuditExport.objects.exists()


def test_admins_of_the_store_are_403(client, clerk, owner):
    auth = clerk.auth_header("user_admin")
    assert client.get(url(owner.merchant_id), **auth).status_code == 403
    assert post(client, clerk, url(owner.merchant_id), BODY, user="user_admin").status_code == 403
    assert not AuditExport.objects.exists()


def test_another_merchants_exports_are_404(client, clerk, owner):
    export = succeeded_export(merchant=owner.merchant)
    auth = clerk.auth_header("user_other")
    assert client.get(url(owner.merchant_id), **auth).status_code == 404
    assert client.get(url(owner.merchant_id, f"{export.pk}/"), **auth).status_code == 404
    assert (
        post(client, clerk, url(owner.merchant_id, f"{export.pk}/download-link/"), {}, "user_other").status_code == 404
    )
    other = MembershipFactory._meta.model.objects.get(clerk_user_id="user_other").merchant_id
    # the other owner's own merchant, with this export's id: still 404
    assert client.get(url(other, f"{export.pk}/"), **auth).status_code == 404
    assert post(client, clerk, url(other, f"{export.pk}/download-link/"), {}, "user_other").status_code == 404


def test_no_link_for_an_export_without_a_file(client, clerk, owner):
    export = succeeded_export(merchant=owner.merchant)
    AuditExport.objects.filter(pk=export.pk).update(file_key="")
    response = post(client, clerk, url(owner.merchant_id, f"{export.pk}/download-link/"), {})
    assert response.status_code == 409
    assert response.json() == {"state": [NOT_DOWNLOADABLE.format(state="succeeded")]}


def test_anonymous_is_401(client, owner):
    assert client.get(url(owner.merchant_id)).status_code == 401


def test_a_pending_export_has_no_link(client, clerk, owner, django_capture_on_commit_callbacks):
    created = post(client, clerk, url(owner.merchant_id), BODY).json()
    assert AuditExport.objects.get(pk=created["id"]).state == ExportState.PENDING
    response = post(client, clerk, url(owner.merchant_id, f"{created['id']}/download-link/"), {})
    assert response.status_code == 409
    assert response.json()["state"][0].startswith("This export has no file to download: it is pending")
