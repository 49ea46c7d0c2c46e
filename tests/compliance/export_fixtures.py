"""Fixtures for the audit export tests (tests/compliance/test_export*.py), imported by each of them."""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib

import pytest
from django.core.files.base import ContentFile
from django.utils import timezone

from compliance.choices import ActorType, ExportState
from compliance.models import AuditExport
from compliance.storage import file_save


@pytest.fixture
def compliance_storage(settings, tmp_path):
    """The compliance files in a folder of this test's own (Django resets `storages` when STORAGES changes)."""
    location = tmp_path / "compliance-files"
    settings.STORAGES = {
        **settings.STORAGES,
        "compliance_files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": location},
        },
    }
    return location


def succeeded_export(*, merchant, content: bytes = b'{"id": 1}\n', name: str = "audit.ndjson.gz") -> AuditExport:
    """An export as audit_export_run leaves it, its gzip file saved through the real storage API."""
    data = gzip.compress(content)
    now = timezone.now()
    return AuditExport.objects.create(
        merchant=merchant,
        occurred_from=now - dt.timedelta(days=1),
        occurred_to=now,
        state=ExportState.SUCCEEDED,
        row_count=content.count(b"\n"),
        byte_size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        file_key=file_save(kind="audit-exports", name=name, content=ContentFile(data)),
        file_name=name,
        requested_by_type=ActorType.SYSTEM,
        started_at=now,
        finished_at=now,
    )
