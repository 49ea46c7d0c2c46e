"""compliance/storage.py: files saved through the Storage API, signed 10-minute links, and the download view's
answers — 200 for the owner or staff, 403 expired, 404 for anyone else or a forged link, 410 for a file gone."""

from __future__ import annotations

import gzip
import re
import time

import pytest
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.files.base import ContentFile
from django.utils import timezone

from accounts.choices import Role
from compliance.models import AuditEvent
from compliance.storage import (
    FILE_GONE,
    LINK_EXPIRED,
    download_link,
    download_token_sign,
    file_delete,
    file_save,
    file_storage,
)
from tests.accounts.factories import MembershipFactory
from tests.compliance.export_fixtures import compliance_storage, succeeded_export  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compliance_storage")]

CONTENT = b'{"id": 1, "action": "test.happened"}\n{"id": 2, "action": "test.happened"}\n'


@pytest.fixture
def owner(clerk):
    for user_id in ("user_owner", "user_other_owner", "user_member"):
        clerk.user(user_id)
    return MembershipFactory(role=Role.OWNER, clerk_user_id="user_owner")


@pytest.fixture
def export(owner):
    return succeeded_export(merchant=owner.merchant, content=CONTENT, name="audit-store.ndjson.gz")


def get(client, url, clerk=None, user_id=None):
    headers = clerk.auth_header(user_id) if user_id else {}
    return client.get(url, **headers)


def test_the_owner_downloads_the_stored_bytes_as_an_attachment(client, clerk, owner, export):
    response = get(client, download_link(export).url, clerk, "user_owner")
    assert response.status_code == 200
    body = b"".join(response.streaming_content)
    assert gzip.decompress(body) == CONTENT
    assert response["Content-Type"] == "application/gzip"
    assert response["Content-Disposition"] == 'attachment; filename="audit-store.ndjson.gz"'
    assert "Content-Encoding" not in response  # a browser must save the .gz, not unpack it


def test_a_download_is_audited_with_the_downloader(client, clerk, owner, export):
    client.get(download_link(export).url, REMOTE_ADDR="203.0.113.9", **clerk.auth_header("user_owner"))
    event = AuditEvent.objects.get(action="audit_export.downloaded")
    assert (event.actor_type, event.actor_id, event.target_type, event.target_id, event.merchant_id, event.ip) == (
        "clerk_user",
        "user_owner",
        "compliance.auditexport",
        str(export.pk),
        owner.merchant_id,
        "203.0.113.9",
    )
    assert event.metadata == {"file_name": "audit-store.ndjson.gz"}


def test_an_expired_link_is_403_and_downloads_nothing(client, clerk, owner, export, monkeypatch, settings):
    signed_at = time.time() - settings.COMPLIANCE_DOWNLOAD_LINK_SECONDS - 1
    with monkeypatch.context() as clock:
        clock.setattr(signing.time, "time", lambda: signed_at)
        url = download_link(export).url
    response = get(client, url, clerk, "user_owner")
    assert response.status_code == 403
    assert LINK_EXPIRED in response.content.decode()
    assert not AuditEvent.objects.filter(action="audit_export.downloaded").exists()


def test_a_link_still_within_its_ten_minutes_works(client, clerk, owner, export, monkeypatch, settings):
    assert settings.COMPLIANCE_DOWNLOAD_LINK_SECONDS == 600
    signed_at = time.time() - 590
    with monkeypatch.context() as clock:
        clock.setattr(signing.time, "time", lambda: signed_at)
        url = download_link(export).url
    assert get(client, url, clerk, "user_owner").status_code == 200


def test_another_merchants_link_is_404(client, clerk, owner, export):
    MembershipFactory(role=Role.OWNER, clerk_user_id="user_other_owner")  # owner of another store
    response = get(client, download_link(export).url, clerk, "user_other_owner")
    assert response.status_code == 404
    assert not AuditEvent.objects.filter(action="audit_export.downloaded").exists()


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
def test_members_who_are_not_owners_get_404(client, clerk, owner, export, role):
    MembershipFactory(merchant=owner.merchant, role=role, clerk_user_id="user_member")
    assert get(client, download_link(export).url, clerk, "user_member").status_code == 404


def test_anonymous_gets_404(client, export):
    assert client.get(download_link(export).url).status_code == 404


def test_an_inactive_merchants_owner_gets_404(client, clerk, owner, export):
    owner.merchant.is_active = False
    owner.merchant.save(update_fields=["is_active"])
    assert get(client, download_link(export).url, clerk, "user_owner").status_code == 404


def test_staff_download_any_merchants_export_and_global_ones(client, owner, export):
    staff = get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    global_export = succeeded_export(merchant=None, content=b"{}\n", name="audit-global.ndjson.gz")
    client.force_login(staff)
    for item in (export, global_export):
        response = client.get(download_link(item).url)
        assert response.status_code == 200
        b"".join(response.streaming_content)
    events = AuditEvent.objects.filter(action="audit_export.downloaded").order_by("id")
    assert [(e.actor_type, e.actor_id, e.merchant_id) for e in events] == [
        ("staff", str(staff.pk), owner.merchant_id),
        ("staff", str(staff.pk), None),
    ]


def test_a_global_export_is_404_to_a_merchant_owner(client, clerk, owner):
    global_export = succeeded_export(merchant=None)
    assert get(client, download_link(global_export).url, clerk, "user_owner").status_code == 404


@pytest.mark.parametrize("tamper", ["forged", "other-salt", "truncated"])
def test_a_forged_link_is_404(client, clerk, owner, export, tamper):
    token = download_token_sign(export)
    if tamper == "forged":
        token = signing.dumps({"m": "compliance.auditexport", "pk": export.pk, "k": export.file_key}, key="guessed")
    elif tamper == "other-salt":  # a value the app signed for something else
        token = signing.dumps({"m": "compliance.auditexport", "pk": export.pk, "k": export.file_key})
    else:
        token = token[:-3]
    assert get(client, f"/compliance/files/{token}/", clerk, "user_owner").status_code == 404


def test_a_file_deleted_from_the_storage_is_410_not_500(client, clerk, owner, export):
    url = download_link(export).url
    file_delete(export.file_key)
    response = get(client, url, clerk, "user_owner")
    assert response.status_code == 410
    assert FILE_GONE in response.content.decode()


def test_a_file_retention_removed_is_410_and_older_links_die_with_it(client, clerk, owner, export):
    url = download_link(export).url
    export.file_key = ""
    export.save(update_fields=["file_key"])
    assert get(client, url, clerk, "user_owner").status_code == 410
    with pytest.raises(ValueError):
        download_link(export)


def test_a_link_names_one_file_key_not_whatever_the_row_holds_later(client, clerk, owner, export):
    url = download_link(export).url
    export.file_key = file_save(kind="audit-exports", name="other.ndjson.gz", content=ContentFile(b"x"))
    export.save(update_fields=["file_key"])
    assert get(client, url, clerk, "user_owner").status_code == 410


def test_only_get_is_answered(client, clerk, owner, export):
    url = download_link(export).url
    assert client.post(url, **clerk.auth_header("user_owner")).status_code == 405


def test_keys_are_unguessable_and_never_reused():
    keys = {file_save(kind="audit-exports", name="same.ndjson.gz", content=ContentFile(b"x")) for _ in range(3)}
    assert len(keys) == 3
    assert all(re.fullmatch(r"audit-exports/\d{4}/\d{2}/[0-9a-f]{32}/same\.ndjson\.gz", key) for key in keys)
    assert all(file_storage().exists(key) for key in keys)


def test_deleting_a_file_twice_is_not_an_error():
    key = file_save(kind="audit-exports", name="gone.ndjson.gz", content=ContentFile(b"x"))
    file_delete(key)
    file_delete(key)
    file_delete("")
    assert not file_storage().exists(key)


def test_the_link_is_absolute_given_the_request_and_expires_in_ten_minutes(rf, export):
    link = download_link(export, request=rf.get("/"))
    assert link.url.startswith("http://testserver/compliance/files/")
    remaining = (link.expires_at - timezone.now()).total_seconds()
    assert 595 < remaining <= 600
