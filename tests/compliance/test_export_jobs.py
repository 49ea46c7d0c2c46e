"""compliance/exports.py: an export's file holds exactly the audit rows of its range and filters, line by line,
in both formats; states move only forward; failures are recorded with their reason and leave no file; every
step is audited."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import io
import json

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from compliance import exports
from compliance.choices import ActorType, ExportFormat, ExportState
from compliance.models import AuditEvent, AuditExport
from compliance.services import Actor
from compliance.storage import file_storage
from tests.accounts.factories import MerchantFactory
from tests.compliance.export_fixtures import compliance_storage  # noqa: F401  (fixture)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("compliance_storage")]

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
OWNER = Actor(type=ActorType.CLERK_USER, id="user_owner", label="user_owner")
STAFF = Actor(type=ActorType.STAFF, id="1", label="ops")


@pytest.fixture
def eager():
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def event(merchant, minutes: float, action: str = "credential.refreshed", **fields) -> AuditEvent:
    return AuditEvent.objects.create(
        occurred_at=T0 + dt.timedelta(minutes=minutes),
        actor_type=fields.pop("actor_type", ActorType.CLERK_USER),
        actor_id=fields.pop("actor_id", "user_owner"),
        action=action,
        merchant=merchant,
        **fields,
    )


@pytest.fixture
def merchants():
    return MerchantFactory(key="store_a"), MerchantFactory(key="store_b")


@pytest.fixture
def log(merchants):
    """Events of two stores and none, inside and on both edges of the range [T0, T0 + 60 min)."""
    a, b = merchants
    return [
        event(a, -0.001, "credential.refreshed"),  # just before the range
        event(a, 0, "credential.refreshed", metadata={"provider": "meta", "nested": {"n": [1, 2.5, None]}}),
        event(
            a, 1, "template.saved", actor_label="Zoë “quoted” \\ back", ip="203.0.113.7", user_agent="UA/1\t\x01\u2028"
        ),
        event(a, 1, "credential.refreshed", target_type="connectors.credential", target_id="7", ip="2001:db8::1"),
        event(b, 2, "credential.refreshed", metadata={"other": "store"}),
        event(None, 3, "user.signed_in", actor_id="user_x", metadata={"emoji": "🙂", "line": "a\nb\u2029c\x85"}),
        event(a, 59.999, "export.created", actor_type=ActorType.SYSTEM, actor_id=""),
        event(a, 60, "credential.refreshed"),  # the range's end is exclusive
    ]


def expected_record(e: AuditEvent) -> dict:
    return {
        "id": e.pk,
        "occurred_at": e.occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": e.action,
        "actor": {"type": e.actor_type, "id": e.actor_id, "label": e.actor_label},
        "target": {"type": e.target_type, "id": e.target_id},
        "merchant_id": e.merchant_id,
        "ip": e.ip,
        "user_agent": e.user_agent,
        "metadata": e.metadata,
    }


def in_range(events, *, merchant=None, keep=lambda e: True) -> list[AuditEvent]:
    """What the table holds for the range, worked out here from the rows themselves, not by the export's query."""
    rows = [
        AuditEvent.objects.get(pk=e.pk)
        for e in events
        if T0 <= e.occurred_at < T0 + dt.timedelta(minutes=60) and (merchant is None or e.merchant_id == merchant.pk)
    ]
    return sorted((e for e in rows if keep(e)), key=lambda e: (e.occurred_at, e.pk))


def create(merchant, actor=OWNER, **kwargs) -> AuditExport:
    return exports.audit_export_create(
        merchant=merchant, occurred_from=T0, occurred_to=T0 + dt.timedelta(minutes=60), actor=actor, **kwargs
    )


def stored_bytes(export: AuditExport) -> bytes:
    with file_storage().open(export.file_key, "rb") as handle:
        return handle.read()


def run(export: AuditExport) -> AuditExport:
    exports.audit_export_run(export_id=export.pk)
    export.refresh_from_db()
    return export


def test_ndjson_holds_the_merchants_rows_of_the_range_line_by_line(
    merchants, log, eager, django_capture_on_commit_callbacks
):
    a, _ = merchants
    with django_capture_on_commit_callbacks(execute=True):
        export = create(a)
    export.refresh_from_db()
    assert export.state == ExportState.SUCCEEDED
    data = stored_bytes(export)
    text = gzip.decompress(data).decode()
    assert text.count("\n") == len(text.splitlines())  # no line break inside an event, whatever reads it
    lines = text.splitlines()
    expected = in_range(log, merchant=a)
    assert [json.loads(line) for line in lines] == [expected_record(e) for e in expected]
    assert len(expected) == 4
    assert (export.row_count, export.byte_size, export.sha256) == (4, len(data), hashlib.sha256(data).hexdigest())
    assert export.file_name == f"audit-store_a-20260301-20260301-{export.pk}.ndjson.gz"
    assert export.started_at <= export.finished_at


def test_the_filters_narrow_the_rows_exactly(merchants, log):
    a, _ = merchants
    export = run(
        create(
            a,
            actions=["credential.refreshed", "template.saved"],
            actor_ids=["user_owner"],
            target_type="connectors.credential",
        )
    )
    lines = gzip.decompress(stored_bytes(export)).decode().splitlines()
    expected = in_range(log, merchant=a, keep=lambda e: e.target_type == "connectors.credential")
    assert [json.loads(line) for line in lines] == [expected_record(e) for e in expected]
    assert len(expected) == 1

    by_target_id = run(create(a, target_type="connectors.credential", target_id="8"))
    assert (by_target_id.state, by_target_id.row_count) == (ExportState.SUCCEEDED, 0)
    assert gzip.decompress(stored_bytes(by_target_id)) == b""


def test_a_global_export_holds_every_merchants_rows_and_those_of_none(log):
    export = run(create(None, actor=STAFF))
    lines = gzip.decompress(stored_bytes(export)).decode().splitlines()
    assert [json.loads(line) for line in lines] == [expected_record(e) for e in in_range(log)]
    assert export.file_name.startswith("audit-global-")


def csv_expected_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def test_csv_holds_the_same_rows_with_formula_cells_neutralised(merchants, log):
    a, _ = merchants
    hostile = [
        event(a, 5, '=HYPERLINK("http://evil")', actor_label="+1", target_type="-2+3+cmd|' /C calc'!A0"),
        event(a, 6, "@SUM(A1)", actor_id="\tuser", actor_label="\rcarriage", user_agent="=1+1"),
        event(a, 7, "safe.action", actor_label="a=b", metadata={"formula": "=1"}),
    ]
    export = run(create(a, format=ExportFormat.CSV))
    assert export.file_name.endswith(".csv.gz")
    text = gzip.decompress(stored_bytes(export)).decode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == exports.CSV_HEADER
    expected = in_range(log + hostile, merchant=a)
    assert len(rows) - 1 == len(expected) == export.row_count == 7
    for row, e in zip(rows[1:], expected, strict=True):
        record = expected_record(e)
        assert row[0] == str(e.pk)  # numbers stay numbers
        assert row[1:8] == [
            csv_expected_cell(v)
            for v in (
                record["occurred_at"],
                e.action,
                e.actor_type,
                e.actor_id,
                e.actor_label,
                e.target_type,
                e.target_id,
            )
        ]
        assert row[8] == str(e.merchant_id)
        assert row[9:11] == [csv_expected_cell(e.ip), csv_expected_cell(e.user_agent)]
        assert json.loads(row[11]) == e.metadata
    by_action = {row[2]: row for row in rows[1:]}
    assert by_action['\'=HYPERLINK("http://evil")'][4:7] == ["user_owner", "'+1", "'-2+3+cmd|' /C calc'!A0"]
    assert by_action["'@SUM(A1)"][3:5] == ["clerk_user", "'\tuser"]
    assert by_action["'@SUM(A1)"][5] == "'\rcarriage"
    assert by_action["'@SUM(A1)"][10] == "'=1+1"
    assert by_action["safe.action"][5] == "a=b"  # only a leading sign is a formula


def test_the_request_and_the_outcome_are_audited(merchants, log):
    a, _ = merchants
    export = run(create(a, actions=["template.saved"], request_ctx={"ip": "198.51.100.4", "user_agent": "UA"}))
    requested = AuditEvent.objects.get(action="audit_export.requested")
    assert (requested.actor_type, requested.actor_id, requested.merchant_id, requested.target_id, requested.ip) == (
        "clerk_user",
        "user_owner",
        a.pk,
        str(export.pk),
        "198.51.100.4",
    )
    assert requested.metadata == {
        "scope": "merchant",
        "occurred_from": "2026-03-01T00:00:00+00:00",
        "occurred_to": "2026-03-01T01:00:00+00:00",
        "actions": ["template.saved"],
        "actor_ids": [],
        "target_type": "",
        "target_id": "",
        "format": "ndjson",
    }
    succeeded = AuditEvent.objects.get(action="audit_export.succeeded")
    assert (succeeded.actor_type, succeeded.target_type, succeeded.merchant_id) == (
        "system",
        "compliance.auditexport",
        a.pk,
    )
    assert succeeded.metadata == {"rows": 1, "bytes": export.byte_size, "sha256": export.sha256, "format": "ndjson"}


def test_the_run_is_enqueued_only_after_commit(merchants, django_capture_on_commit_callbacks):
    a, _ = merchants
    with django_capture_on_commit_callbacks() as callbacks:
        export = create(a)
    assert len(callbacks) == 1
    export.refresh_from_db()
    assert export.state == ExportState.PENDING  # nothing ran inside the transaction


def failing_storage(settings, tmp_path, **options) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "compliance_files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "failing", **options},
        },
    }


def test_a_storage_that_refuses_the_file_fails_the_export_with_the_reason(merchants, log, settings, tmp_path):
    (tmp_path / "not-a-folder").write_text("")
    failing_storage(settings, tmp_path)
    settings.STORAGES["compliance_files"]["OPTIONS"]["location"] = tmp_path / "not-a-folder" / "files"
    export = run(create(merchants[0]))
    assert export.state == ExportState.FAILED
    assert export.failure_reason == exports.STORE_FAILED.format(error="NotADirectoryError")
    assert (export.file_key, export.sha256, export.row_count) == ("", "", None)
    failed = AuditEvent.objects.get(action="audit_export.failed")
    assert failed.metadata == {"reason": export.failure_reason}
    assert not AuditEvent.objects.filter(action="audit_export.succeeded").exists()


def test_a_storage_failing_after_writing_part_of_the_file_leaves_no_file(merchants, log, settings, tmp_path):
    # FileSystemStorage writes the file, then chmods it: a mode it cannot apply fails the save after the write.
    failing_storage(settings, tmp_path, file_permissions_mode="not-a-mode")
    export = run(create(merchants[0]))
    assert export.state == ExportState.FAILED
    assert export.failure_reason == exports.STORE_FAILED.format(error="TypeError")
    assert [p for p in (tmp_path / "failing").rglob("*") if p.is_file()] == []


def test_states_only_move_forward(merchants, log):
    export = run(create(merchants[0]))
    assert export.state == ExportState.SUCCEEDED
    assert exports.audit_export_run(export_id=export.pk) is None  # a duplicate delivery does nothing
    assert AuditEvent.objects.filter(action="audit_export.succeeded").count() == 1
    for state in (ExportState.PENDING, ExportState.RUNNING, ExportState.FAILED):
        with pytest.raises(exports.ExportStateError):
            exports._transition(export.pk, to=state)
    assert exports.audit_export_run(export_id=10**12) is None  # deleted meanwhile: nothing to do


def test_a_running_export_is_not_started_again(merchants):
    export = create(merchants[0])
    exports._transition(export.pk, to=ExportState.RUNNING)
    assert exports.audit_export_run(export_id=export.pk) is None
    export.refresh_from_db()
    assert export.state == ExportState.RUNNING


@pytest.mark.parametrize(
    "fields",
    [
        {"state": ExportState.SUCCEEDED},  # no checksum, no counts
        {"state": ExportState.FAILED},  # no reason
        {"occurred_to": T0},  # empty range
        {"target_id": "7"},  # an id without its type
    ],
)
def test_the_database_refuses_contradictory_rows(merchants, fields):
    values = {
        "merchant": merchants[0],
        "occurred_from": T0,
        "occurred_to": T0 + dt.timedelta(hours=1),
        "requested_by_type": ActorType.SYSTEM,
        **fields,
    }
    with pytest.raises(IntegrityError), transaction.atomic():
        AuditExport.objects.create(**values)


@pytest.mark.parametrize(
    ("merchant", "actor", "kwargs", "errors"),
    [
        (None, OWNER, {}, {"merchant": [exports.GLOBAL_STAFF_ONLY]}),
        ("a", OWNER, {"occurred_to": T0}, {"occurred_to": [exports.RANGE_ORDER]}),
        ("a", OWNER, {"target_id": "7"}, {"target_type": [exports.TARGET_ID_NEEDS_TYPE]}),
        ("a", OWNER, {"actions": ["x"] * 51}, {"actions": [exports.TOO_MANY_VALUES]}),
        ("a", OWNER, {"actor_ids": [" "]}, {"actor_ids": [exports.BLANK_VALUE]}),
        ("a", OWNER, {"actions": ["x" * 101]}, {"actions": [exports.VALUE_TOO_LONG.format(limit=100)]}),
        ("a", OWNER, {"format": "xlsx"}, {"format": ["Choose one of ndjson, csv."]}),
    ],
)
def test_bad_requests_are_refused_by_field_and_record_nothing(merchants, merchant, actor, kwargs, errors):
    merchant = merchants[0] if merchant == "a" else merchant
    values = {"occurred_from": T0, "occurred_to": T0 + dt.timedelta(hours=1), **kwargs}
    with pytest.raises(ValidationError) as refused:
        exports.audit_export_create(merchant=merchant, actor=actor, **values)
    assert refused.value.message_dict == errors
    assert not AuditExport.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="audit_export.").exists()


def test_the_sweeper_reruns_lost_pending_exports_and_fails_lost_running_ones(merchants, log, eager, settings):
    lost_enqueue = create(merchants[0])
    lost_worker = create(merchants[0])
    exports._transition(lost_worker.pk, to=ExportState.RUNNING, started_at=T0)
    fresh = create(merchants[0])
    AuditExport.objects.filter(pk__in=[lost_enqueue.pk, lost_worker.pk]).update(created_at=T0)
    assert exports.audit_export_sweep() == {"requeued": 1, "failed": 1}
    states = dict(AuditExport.objects.values_list("pk", "state"))
    assert states == {lost_enqueue.pk: "succeeded", lost_worker.pk: "failed", fresh.pk: "pending"}
    assert AuditExport.objects.get(pk=lost_worker.pk).failure_reason == exports.WORKER_LOST
    assert exports.audit_export_sweep() == {"requeued": 0, "failed": 0}


def test_deleting_the_file_keeps_the_row_and_its_checksum(merchants, log, django_capture_on_commit_callbacks):
    export = run(create(merchants[0]))
    key = export.file_key
    with django_capture_on_commit_callbacks(execute=True):
        exports.audit_export_file_delete(export=export)
    export.refresh_from_db()
    assert (export.file_key, export.state, len(export.sha256)) == ("", ExportState.SUCCEEDED, 64)
    assert not file_storage().exists(key)
    assert export.stored_file() is None
