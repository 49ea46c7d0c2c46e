"""Audit log exports (docs/audit-export.md): create one, run it, read them, and the rows of the file.

A run reads the audit log through one server-side cursor inside one read-only transaction and writes each
batch of lines through gzip into a temporary file, counting bytes and sha256 on the way: memory stays flat
whatever the range holds. The file is then handed to the compliance storage (compliance/storage.py).

Each row is formatted with as little Python as possible, because a million rows must take seconds: the
database renders the timestamp, the ip and the metadata as text (jsonb's own JSON), and a line is one
`json.dumps` of the fixed fields with the metadata text spliced in.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import json
import logging
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files import File
from django.db import DatabaseError, transaction
from django.db.models import CharField, F, Func, QuerySet, TextField
from django.db.models.functions import Cast
from django.http import Http404
from django.utils import timezone

from accounts.models import Merchant
from compliance.choices import ActorType, ExportFormat, ExportState
from compliance.models import RANGE_ORDER, TARGET_ID_NEEDS_TYPE, AuditEvent, AuditExport
from compliance.services import Actor, audit_event_record
from compliance.storage import file_delete, file_save
from dashboards.exports import csv_cell

logger = logging.getLogger(__name__)

STORAGE_KIND = "audit-exports"
# Rows per round trip of the server-side cursor: large enough that round trips cost little, small enough
# that a batch of lines is a few hundred kilobytes.
CHUNK_SIZE = 2000
# zlib's level 1 compresses NDJSON about 8:1 at several times level 6's speed; files are kept days, not years.
GZIP_LEVEL = 1
MAX_FILTER_VALUES = 50

EXPORT_NOT_FOUND = "No such export."
GLOBAL_STAFF_ONLY = "Only staff can export every merchant's events; choose a merchant."
TOO_MANY_VALUES = f"At most {MAX_FILTER_VALUES} values."
BLANK_VALUE = "Values may not be blank."
VALUE_TOO_LONG = "Each value may have at most {limit} characters."
WORKER_LOST = "The worker stopped before the export finished (killed or restarted); ask for the export again."
READ_FAILED = "The audit log could not be read ({error}); ask for the export again."
STORE_FAILED = "The file could not be written or stored ({error}); ask for the export again."

CSV_HEADER = [
    "id",
    "occurred_at",
    "action",
    "actor_type",
    "actor_id",
    "actor_label",
    "target_type",
    "target_id",
    "merchant_id",
    "ip",
    "user_agent",
    "metadata",
]

# Which state may follow which (docs/audit-export.md §3): anything else is refused, so a duplicate task
# delivery or a sweeper racing a worker cannot run an export twice or reopen a finished one.
TRANSITIONS: dict[str, set[str]] = {
    ExportState.PENDING: {ExportState.RUNNING},
    ExportState.RUNNING: {ExportState.SUCCEEDED, ExportState.FAILED},
    ExportState.SUCCEEDED: set(),
    ExportState.FAILED: set(),
}


class ExportStateError(Exception):
    """An export asked to move to a state that may not follow its current one."""


# --- reads -------------------------------------------------------------------------------------------------


def audit_export_list(*, merchant: Merchant | None) -> QuerySet[AuditExport]:
    """A merchant's exports, newest first (None: every export, for staff)."""
    exports = AuditExport.objects.select_related("merchant")
    return exports.filter(merchant=merchant) if merchant is not None else exports


def audit_export_get(*, merchant: Merchant, export_id: int) -> AuditExport:
    """One of the merchant's exports, or 404 — the same answer whether another merchant's exists or not."""
    try:
        return AuditExport.objects.select_related("merchant").get(pk=int(export_id), merchant=merchant)
    except (AuditExport.DoesNotExist, ValueError, TypeError, OverflowError):
        raise Http404(EXPORT_NOT_FOUND) from None


def audit_event_export_list(export: AuditExport) -> QuerySet[AuditEvent]:
    """The audit events an export covers, in the file's order: (occurred_at, id) ascending."""
    events = AuditEvent.objects.filter(occurred_at__gte=export.occurred_from, occurred_at__lt=export.occurred_to)
    if export.merchant_id is not None:
        events = events.filter(merchant_id=export.merchant_id)
    if export.actions:
        events = events.filter(action__in=export.actions)
    if export.actor_ids:
        events = events.filter(actor_id__in=export.actor_ids)
    if export.target_type:
        events = events.filter(target_type=export.target_type)
    if export.target_id:
        events = events.filter(target_id=export.target_id)
    return events.order_by("occurred_at", "id")


# The columns a run reads, rendered by the database where that saves Python work per row.
_UTC_ISO = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
EXPORT_COLUMNS = (
    "id",
    "occurred_at_text",
    "action",
    "actor_type",
    "actor_id",
    "actor_label",
    "target_type",
    "target_id",
    "merchant_id",
    "ip_text",
    "user_agent",
    "metadata_text",
)


def _export_rows(export: AuditExport) -> Iterator[tuple]:
    rows = audit_event_export_list(export).annotate(
        occurred_at_text=Func(F("occurred_at"), template=_UTC_ISO, output_field=CharField()),
        ip_text=Func(F("ip"), function="host", output_field=CharField()),
        metadata_text=Cast("metadata", TextField()),
    )
    return rows.values_list(*EXPORT_COLUMNS).iterator(chunk_size=CHUNK_SIZE)


# --- the file's lines ----------------------------------------------------------------------------------------


def ndjson_lines(rows: Iterable[tuple]) -> Iterator[str]:
    """One JSON object per event (docs/audit-export.md §5), keys in a fixed order, metadata as jsonb wrote it.

    Written by hand rather than by json.dumps of a dict: this is the loop a million rows go through, and
    quoting each string with json's own C quoting (the same escapes json.dumps applies) costs a third as much.
    The timestamp and the ip come from the database in a form that needs no quoting."""
    quote = _json_quote
    for pk, occurred_at, action, a_type, a_id, a_label, t_type, t_id, merchant_id, ip, user_agent, metadata in rows:
        line = (
            f'{{"id": {pk}, "occurred_at": "{occurred_at}", "action": {quote(action)}, '
            f'"actor": {{"type": {quote(a_type)}, "id": {quote(a_id)}, "label": {quote(a_label)}}}, '
            f'"target": {{"type": {quote(t_type)}, "id": {quote(t_id)}}}, '
            f'"merchant_id": {"null" if merchant_id is None else merchant_id}, '
            f'"ip": {"null" if ip is None else quote(ip)}, "user_agent": {quote(user_agent)}, '
            f'"metadata": {metadata}}}\n'
        )
        # JSON allows U+2028, U+2029 and U+0085 raw, but line readers (JavaScript's, Python's splitlines) split
        # on them: escaped, one event stays one line. isascii() is the cheap test almost every line passes.
        yield line if line.isascii() else line.translate(_LINE_BREAKS)


# json.dumps(str, ensure_ascii=False) without its per-call set-up: '"' + escaped + '"', in C.
_json_quote = json.encoder.encode_basestring
_LINE_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


class _Lines:
    """A file that keeps what csv.writer writes, so a batch of rows becomes one string."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, value: str) -> None:
        self.parts.append(value)


def csv_batches(rows: Iterable[tuple], batch: int = CHUNK_SIZE) -> Iterator[str]:
    """The header, then the rows in batches of CSV text; every text cell through dashboards' csv_cell, so a
    cell a spreadsheet would run as a formula starts with a quote instead."""
    sink = _Lines()
    writer = csv.writer(sink, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for count, row in enumerate(rows, start=1):
        writer.writerow([csv_cell(value) for value in row])
        if count % batch == 0:
            yield "".join(sink.parts)
            sink.parts.clear()
    yield "".join(sink.parts)


def _ndjson_batches(rows: Iterable[tuple], batch: int = CHUNK_SIZE) -> Iterator[str]:
    lines: list[str] = []
    for line in ndjson_lines(rows):
        lines.append(line)
        if len(lines) == batch:
            yield "".join(lines)
            lines.clear()
    yield "".join(lines)


class _Counted:
    """Where gzip writes: passes bytes on to the temporary file, counting them and their sha256."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.raw.write(data)

    def flush(self) -> None:
        self.raw.flush()


class _RowCounter:
    def __init__(self, rows: Iterable[tuple]) -> None:
        self.rows = rows
        self.count = 0

    def __iter__(self) -> Iterator[tuple]:
        for row in self.rows:
            self.count += 1
            yield row


# --- writes --------------------------------------------------------------------------------------------------


def _values_check(values: Sequence[str], *, limit: int) -> list[str]:
    errors = []
    if len(values) > MAX_FILTER_VALUES:
        errors.append(TOO_MANY_VALUES)
    if any(not value.strip() for value in values):
        errors.append(BLANK_VALUE)
    if any(len(value) > limit for value in values):
        errors.append(VALUE_TOO_LONG.format(limit=limit))
    return errors


def audit_export_errors(
    *,
    merchant: Merchant | None,
    occurred_from: dt.datetime,
    occurred_to: dt.datetime,
    actor_type: str,
    actions: Sequence[str] = (),
    actor_ids: Sequence[str] = (),
    target_type: str = "",
    target_id: str = "",
    format: str = ExportFormat.NDJSON,
) -> dict[str, list[str]]:
    """What is wrong with a request for an export, by field (empty: nothing). Forms call it to show the
    errors beside their fields; audit_export_create refuses with them."""
    errors: dict[str, list[str]] = {}
    if merchant is None and actor_type != ActorType.STAFF:
        errors["merchant"] = [GLOBAL_STAFF_ONLY]
    if occurred_from >= occurred_to:
        errors["occurred_to"] = [RANGE_ORDER]
    if target_id and not target_type:
        errors["target_type"] = [TARGET_ID_NEEDS_TYPE]
    for field, values, limit in (("actions", actions, 100), ("actor_ids", actor_ids, 128)):
        if problems := _values_check(values, limit=limit):
            errors[field] = problems
    if format not in ExportFormat.values:
        errors["format"] = [f"Choose one of {', '.join(ExportFormat.values)}."]
    return errors


def audit_export_create(
    *,
    merchant: Merchant | None,
    occurred_from: dt.datetime,
    occurred_to: dt.datetime,
    actor: Actor,
    actions: Sequence[str] = (),
    actor_ids: Sequence[str] = (),
    target_type: str = "",
    target_id: str = "",
    format: str = ExportFormat.NDJSON,
    request_ctx: dict[str, Any] | None = None,
) -> AuditExport:
    """Record a pending export and run it after commit. Raises ValidationError (by field) on bad input.

    The caller has decided who may ask (an owner for their merchant, staff for any); this refuses what
    nobody may ask: a global export by anyone but staff, an empty range, a target id without its type."""
    errors = audit_export_errors(
        merchant=merchant,
        occurred_from=occurred_from,
        occurred_to=occurred_to,
        actor_type=actor.type,
        actions=actions,
        actor_ids=actor_ids,
        target_type=target_type,
        target_id=target_id,
        format=format,
    )
    if errors:
        raise ValidationError(errors)

    from compliance.tasks import audit_export_run_task  # the task module imports this one

    with transaction.atomic():
        export = AuditExport.objects.create(
            merchant=merchant,
            occurred_from=occurred_from,
            occurred_to=occurred_to,
            actions=list(dict.fromkeys(actions)),
            actor_ids=list(dict.fromkeys(actor_ids)),
            target_type=target_type,
            target_id=target_id,
            format=format,
            requested_by_type=actor.type,
            requested_by_id=str(actor.id)[:128],
            requested_by_label=actor.label[:255],
        )
        audit_event_record(
            action="audit_export.requested",
            actor=actor,
            target_type="compliance.auditexport",
            target_id=export.pk,
            merchant=merchant,
            metadata={
                "scope": "merchant" if merchant is not None else "global",
                "occurred_from": occurred_from.isoformat(),
                "occurred_to": occurred_to.isoformat(),
                "actions": export.actions,
                "actor_ids": export.actor_ids,
                "target_type": target_type,
                "target_id": target_id,
                "format": format,
            },
            **(request_ctx or {}),
        )
        audit_export_run_task.delay_on_commit(export.pk)
    return export


def _transition(export_id: int, *, to: str, **fields: Any) -> AuditExport:
    """Move the export to `to` under a row lock, with `fields`; ExportStateError if `to` may not follow."""
    with transaction.atomic():
        export = AuditExport.objects.select_for_update().get(pk=export_id)
        if to not in TRANSITIONS[export.state]:
            raise ExportStateError(f"audit export {export_id}: {export.state} may not become {to}")
        export.state = to
        for name, value in fields.items():
            setattr(export, name, value)
        export.save(update_fields=["state", *fields])
    return export


def _file_name(export: AuditExport) -> str:
    scope = export.merchant.key if export.merchant_id else "global"
    extension = "ndjson" if export.format == ExportFormat.NDJSON else "csv"
    return f"audit-{scope}-{export.occurred_from:%Y%m%d}-{export.occurred_to:%Y%m%d}-{export.pk}.{extension}.gz"


def _write(export: AuditExport, raw) -> tuple[int, int, str]:
    """Write the export's gzip file into `raw`; (rows, bytes, sha256 hex)."""
    counted = _Counted(raw)
    # One transaction, so the cursor is a plain server-side one (no WITH HOLD copy of the result) and the
    # whole file is one snapshot of the log.
    with transaction.atomic(), gzip.GzipFile(fileobj=counted, mode="wb", compresslevel=GZIP_LEVEL, mtime=0) as gz:
        rows = _RowCounter(_export_rows(export))
        batches = _ndjson_batches(rows) if export.format == ExportFormat.NDJSON else csv_batches(rows)
        for text in batches:
            gz.write(text.encode())
    return rows.count, counted.size, counted.sha256.hexdigest()


def audit_export_run(*, export_id: int) -> AuditExport | None:
    """Produce a pending export's file: running, then succeeded or failed with the reason (audited).

    Idempotent by state: an export that is not pending (a duplicate delivery, the sweeper's re-enqueue
    racing the first) is left alone and None answered. A failure removes any file it stored."""
    try:
        export = _transition(export_id, to=ExportState.RUNNING, started_at=timezone.now())
    except (AuditExport.DoesNotExist, ExportStateError):
        return None
    name = _file_name(export)
    key = ""
    try:
        with tempfile.NamedTemporaryFile(prefix="audit-export-", suffix=".gz") as tmp:
            try:
                row_count, byte_size, sha256 = _write(export, tmp)
            except DatabaseError as exc:
                raise _Failed(READ_FAILED.format(error=type(exc).__name__)) from exc
            except OSError as exc:  # the temporary file's disk
                raise _Failed(STORE_FAILED.format(error=type(exc).__name__)) from exc
            tmp.seek(0)
            try:
                key = file_save(kind=STORAGE_KIND, name=name, content=File(tmp, name=name))
            except Exception as exc:  # any backend's error: S3's ClientError is not an OSError
                raise _Failed(STORE_FAILED.format(error=type(exc).__name__)) from exc
        export = _transition(
            export.pk,
            to=ExportState.SUCCEEDED,
            finished_at=timezone.now(),
            row_count=row_count,
            byte_size=byte_size,
            sha256=sha256,
            file_key=key,
            file_name=name,
        )
    except _Failed as failure:
        logger.exception("audit export %s failed: %s", export.pk, failure.reason)
        return _fail(export, reason=failure.reason, key=key)
    except BaseException:
        # Unexpected (a bug, a worker shutdown): the row must not stay running with a file nobody owns.
        logger.exception("audit export %s failed unexpectedly", export.pk)
        _fail(export, reason=STORE_FAILED.format(error="unexpected error"), key=key)
        raise
    audit_event_record(
        action="audit_export.succeeded",
        actor=Actor.system("audit export"),
        target_type="compliance.auditexport",
        target_id=export.pk,
        merchant_id=export.merchant_id,
        metadata={"rows": row_count, "bytes": byte_size, "sha256": sha256, "format": export.format},
    )
    return export


class _Failed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _fail(export: AuditExport, *, reason: str, key: str = "") -> AuditExport:
    if key:
        file_delete(key)
    export = _transition(export.pk, to=ExportState.FAILED, finished_at=timezone.now(), failure_reason=reason)
    audit_event_record(
        action="audit_export.failed",
        actor=Actor.system("audit export"),
        target_type="compliance.auditexport",
        target_id=export.pk,
        merchant_id=export.merchant_id,
        metadata={"reason": reason},
    )
    return export


def audit_export_file_delete(*, export: AuditExport) -> AuditExport:
    """Delete an export's file (retention): the row, its checksum and its audit events stay; links die (410)."""
    with transaction.atomic():
        locked = AuditExport.objects.select_for_update().get(pk=export.pk)
        key, locked.file_key = locked.file_key, ""
        locked.save(update_fields=["file_key"])
        transaction.on_commit(lambda: file_delete(key))
    return locked


def audit_export_sweep(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Rescue what a lost task left: re-enqueue pending exports older than a minute (an enqueue lost at
    commit), fail running ones older than COMPLIANCE_EXPORT_RUNNING_TIMEOUT_SECONDS (a worker lost)."""
    from compliance.tasks import audit_export_run_task

    now = now or timezone.now()
    unfinished = AuditExport.objects.filter(state__in=[ExportState.PENDING, ExportState.RUNNING])
    pending = list(
        unfinished.filter(state=ExportState.PENDING, created_at__lt=now - dt.timedelta(minutes=1)).values_list(
            "pk", flat=True
        )
    )
    for export_id in pending:
        audit_export_run_task.delay(export_id)
    timeout = dt.timedelta(seconds=settings.COMPLIANCE_EXPORT_RUNNING_TIMEOUT_SECONDS)
    failed = 0
    for export in unfinished.filter(state=ExportState.RUNNING, started_at__lt=now - timeout):
        try:
            _fail(export, reason=WORKER_LOST)
            failed += 1
        except ExportStateError:
            pass  # finished meanwhile
    return {"requeued": len(pending), "failed": failed}
