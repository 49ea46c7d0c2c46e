"""A store's owner exports the audit log in Chromium under the production CSP: asks for it on the page, sees it
succeed, and downloads the gzip file through a freshly signed link."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.choices import Role
from compliance.models import AuditEvent, AuditExport
from tests.accounts.factories import MembershipFactory
from tests.compliance.export_fixtures import compliance_storage  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("compliance_storage")]


@pytest.fixture
def csp_violations(page):
    seen: list[str] = []
    page.on(
        "console", lambda msg: seen.append(f"{page.url}: {msg.text}") if "Content Security Policy" in msg.text else None
    )
    page.on("pageerror", lambda exc: seen.append(str(exc)))
    yield seen
    assert seen == []


@pytest.fixture
def eager():
    """The export runs inline, in the live server's thread, when the request that asked for it commits."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture
def owner(clerk):
    clerk.user("user_olivia", first_name="Olivia", last_name="Owner", email="olivia@alpine.example")
    return MembershipFactory(clerk_user_id="user_olivia", merchant__name="Alpine Gear", role=Role.OWNER)


def test_an_owner_exports_the_audit_log_and_downloads_it(page, app_url, owner, eager, csp_violations, tmp_path):
    AuditEvent.objects.create(
        occurred_at=timezone.now() - dt.timedelta(hours=1),
        actor_type="clerk_user",
        actor_id="user_olivia",
        action="template.saved",
        merchant=owner.merchant,
        metadata={"name": "=cmd"},
    )
    page.goto(f"{app_url}/m/{owner.merchant_id}/audit/exports/")
    page.get_by_role("button", name="Sign in as Olivia Owner").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log exports")

    page.get_by_label("Actions").fill("template.saved")
    page.get_by_role("button", name="Request export").click()
    expect(page.get_by_role("status")).to_contain_text("Export requested")
    page.reload()
    export = AuditExport.objects.get()
    row = page.locator(f"tr[data-export='{export.pk}']")
    expect(row).to_have_attribute("data-state", "succeeded")
    expect(row).to_contain_text(export.sha256)

    with page.expect_download() as caught:
        row.get_by_role("button", name="Download").click()
    download = caught.value
    assert download.suggested_filename == export.file_name
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    data = saved.read_bytes()
    assert hashlib.sha256(data).hexdigest() == export.sha256
    [line] = gzip.decompress(data).decode().splitlines()
    assert json.loads(line)["metadata"] == {"name": "=cmd"}
    assert AuditEvent.objects.filter(action="audit_export.downloaded", actor_id="user_olivia").count() == 1
