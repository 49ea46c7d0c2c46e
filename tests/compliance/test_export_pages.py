"""/m/<id>/audit/exports/: a store's owners ask for exports over days of the store's time zone, follow them and
download each through a freshly signed link; admins and viewers are refused, anyone else's store is 404."""

from __future__ import annotations

import datetime as dt
import gzip

import pytest
from django.utils.html import escape

from accounts.choices import Role
from compliance.models import AuditEvent, AuditExport
from compliance.views import DATE_ORDER, NOT_OWNER
from tests.accounts.factories import MembershipFactory
from tests.compliance.export_fixtures import compliance_storage, succeeded_export  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compliance_storage")]


@pytest.fixture
def owner(clerk):
    for user_id in ("user_owner", "user_viewer", "user_other"):
        clerk.user(user_id)
    membership = MembershipFactory(role=Role.OWNER, clerk_user_id="user_owner")  # America/New_York
    MembershipFactory(merchant=membership.merchant, role=Role.VIEWER, clerk_user_id="user_viewer")
    MembershipFactory(role=Role.OWNER, clerk_user_id="user_other")
    return membership


def page(merchant_id: int) -> str:
    return f"/m/{merchant_id}/audit/exports/"


def test_the_owner_sees_the_form_and_the_exports(client, clerk, owner):
    export = succeeded_export(merchant=owner.merchant)
    response = client.get(page(owner.merchant_id), **clerk.auth_header("user_owner"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="first_day"' in html and 'name="format"' in html
    assert f'data-export="{export.pk}" data-state="succeeded"' in html
    assert export.sha256 in html
    assert f"/m/{owner.merchant_id}/audit/exports/{export.pk}/download/" in html
    assert export.file_key not in html  # where the file is stored is never shown


def test_a_request_covers_the_days_in_the_stores_time_zone(client, clerk, owner, django_capture_on_commit_callbacks):
    form = {"first_day": "2026-03-01", "last_day": "2026-03-02", "actions": "credential.refreshed, template.saved"}
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(page(owner.merchant_id), {**form, "format": "csv"}, **clerk.auth_header("user_owner"))
    assert response.status_code == 302
    assert response["Location"] == page(owner.merchant_id)
    export = AuditExport.objects.get()
    assert (export.merchant_id, export.format, export.actions, export.requested_by_id) == (
        owner.merchant_id,
        "csv",
        ["credential.refreshed", "template.saved"],
        "user_owner",
    )
    # New York is UTC-5 in early March: the two days run from 05:00 UTC on the 1st to 05:00 UTC on the 3rd.
    assert (export.occurred_from, export.occurred_to) == (
        dt.datetime(2026, 3, 1, 5, tzinfo=dt.UTC),
        dt.datetime(2026, 3, 3, 5, tzinfo=dt.UTC),
    )
    assert len(callbacks) == 1
    assert AuditEvent.objects.filter(action="audit_export.requested", actor_id="user_owner").count() == 1


@pytest.mark.parametrize(
    ("form", "field", "message"),
    [
        ({"first_day": "2026-03-02", "last_day": "2026-03-01"}, "last_day", DATE_ORDER),
        ({"first_day": "tomorrow", "last_day": "2026-03-01"}, "first_day", "Enter a valid date."),
        ({"last_day": "2026-03-01"}, "first_day", "This field is required."),
        ({"first_day": "2026-03-01", "last_day": "2026-03-01", "format": "xlsx"}, "format", "Select a valid choice."),
        ({"first_day": "2026-03-01", "last_day": "2026-03-01", "target_id": "7"}, None, "A target id needs"),
        ({"first_day": "2026-03-01", "last_day": "2026-03-01", "actions": "x " * 51}, None, "At most 50 values."),
    ],
)
def test_bad_input_is_a_400_naming_the_field(client, clerk, owner, form, field, message):
    response = client.post(page(owner.merchant_id), {"format": "ndjson", **form}, **clerk.auth_header("user_owner"))
    assert response.status_code == 400
    html = response.content.decode()
    assert message in html
    if field:
        assert f'data-field="{field}"' in html
    assert not AuditExport.objects.exists()


def test_download_signs_a_fresh_link_and_follows_it(client, clerk, owner):
    export = succeeded_export(merchant=owner.merchant, content=b'{"id": 7}\n')
    auth = clerk.auth_header("user_owner")
    response = client.post(f"{page(owner.merchant_id)}{export.pk}/download/", **auth)
    assert response.status_code == 303
    assert response["Location"].startswith("/compliance/files/")
    download = client.get(response["Location"], **auth)
    assert gzip.decompress(b"".join(download.streaming_content)) == b'{"id": 7}\n'


def test_download_of_an_export_without_a_file_says_why(client, clerk, owner):
    export = succeeded_export(merchant=owner.merchant)
    AuditExport.objects.filter(pk=export.pk).update(file_key="")
    auth = clerk.auth_header("user_owner")
    response = client.post(f"{page(owner.merchant_id)}{export.pk}/download/", **auth, follow=True)
    assert "This export has no file to download (it is succeeded" in response.content.decode()


def test_viewers_and_admins_are_refused(client, clerk, owner):
    auth = clerk.auth_header("user_viewer")
    export = succeeded_export(merchant=owner.merchant)
    for response in (
        client.get(page(owner.merchant_id), **auth),
        client.post(page(owner.merchant_id), {"first_day": "2026-03-01", "last_day": "2026-03-01"}, **auth),
        client.post(f"{page(owner.merchant_id)}{export.pk}/download/", **auth),
    ):
        assert response.status_code == 403
        assert escape(NOT_OWNER) in response.content.decode()
    assert AuditExport.objects.count() == 1


def test_another_stores_page_and_exports_are_404(client, clerk, owner):
    export = succeeded_export(merchant=owner.merchant)
    auth = clerk.auth_header("user_other")
    assert client.get(page(owner.merchant_id), **auth).status_code == 404
    other = MembershipFactory._meta.model.objects.get(clerk_user_id="user_other").merchant_id
    assert client.post(f"{page(other)}{export.pk}/download/", **auth).status_code == 404


def test_anonymous_is_sent_to_sign_in(client, owner):
    response = client.get(page(owner.merchant_id))
    assert response.status_code == 302
    assert response["Location"].startswith("/sign-in")


def test_the_store_page_links_owners_and_only_owners_to_the_exports(client, clerk, owner):
    link = f'href="{page(owner.merchant_id)}"'
    assert link in client.get(f"/m/{owner.merchant_id}/", **clerk.auth_header("user_owner")).content.decode()
    assert link not in client.get(f"/m/{owner.merchant_id}/", **clerk.auth_header("user_viewer")).content.decode()


def test_an_agency_with_a_manager_grant_is_refused_on_the_page_and_the_api(client, clerk, owner):
    from agencies.choices import AgencyRole, GrantLevel
    from tests.agencies.factories import AccessGrantFactory, AgencyMemberFactory

    clerk.user("user_agent_admin")
    member = AgencyMemberFactory(clerk_user_id="user_agent_admin", role=AgencyRole.ADMIN)
    AccessGrantFactory(agency=member.agency, merchant=owner.merchant, level=GrantLevel.MANAGER)
    export = succeeded_export(merchant=owner.merchant)
    auth = clerk.auth_header("user_agent_admin")
    assert client.get(f"/m/{owner.merchant_id}/", **auth).status_code == 200  # the grant opens the store
    response = client.get(page(owner.merchant_id), **auth)
    assert response.status_code == 403
    assert escape(NOT_OWNER) in response.content.decode()
    assert client.post(f"{page(owner.merchant_id)}{export.pk}/download/", **auth).status_code == 403
    assert client.get(f"/api/merchants/{owner.merchant_id}/audit-exports/", **auth).status_code == 404
