"""The nightly retention purge: per data category, delete what is older than its period (settings.RETENTION_DAYS,
docs/retention.md), in batches, skipping what a legal hold covers, and say what it did (a PurgeRun, a log line).

- Batches: one DELETE of at most RETENTION_PURGE_BATCH rows per statement and per commit, so no statement holds
  locks or WAL for the whole backlog.
- Holds: the selection asks `compliance_hold_blocks` — the function the hold trigger asks — so the purge never
  picks a row the trigger would refuse; what it leaves for a hold is counted and recorded as one HoldExemption per
  hold, category and run (not per row).
- Idempotent and resumable: each batch deletes "the oldest rows past the cut-off that no hold covers", so running
  again deletes only what is left. A run that dies (a killed worker) stays `running`; the next run takes it up with
  the same cut-offs, skipping the categories it had finished. One run at a time (an advisory lock).
- The audit log is append-only: its rows go through `compliance_audit_purge` (migration 0005), which deletes only
  rows older than the retention the owner wrote into the database, whatever the app asks.

Export files (category `exports`) are deleted through `audit_export_file_delete`: the row, its checksum and its
audit events stay; only the file goes (its links answer 410).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from psycopg import sql

from accounts.models import Merchant
from analytics.landing import LANDED_SCHEMA
from analytics.raw_schema import RAW_TABLES
from compliance.choices import DataCategory, PurgeStatus
from compliance.exports import audit_export_file_delete
from compliance.guards import EVENTS, RAW, TABLE_GUARDS, Guard
from compliance.holds import holds_covering
from compliance.models import AuditExport, HoldExemption, LegalHold, PurgeRun
from notifications.choices import FINAL_STATUSES

logger = logging.getLogger(__name__)

# In this order: the categories whose rows the others describe go last (the audit log tells what happened).
PURGED = (
    DataCategory.RAW,
    DataCategory.EVENTS,
    DataCategory.MESSAGES,
    DataCategory.EXPORTS,
    DataCategory.AUDIT_LOG,
)
LOCK_KEY = 0x72657465  # pg_try_advisory_lock key of the purge ("rete")
WORK = "retention purge"


class PurgeLocked(Exception):
    """Another purge is running."""


def _warehouse_alias() -> str:
    """Where the raw and landed tables are: `default` when both aliases are one database as one role (the usual
    deployment, and the tests), so one connection serves the run's bookkeeping and its deletes."""
    default, warehouse = connections["default"].settings_dict, connections["warehouse"].settings_dict
    same = all(default.get(k) == warehouse.get(k) for k in ("NAME", "HOST", "PORT", "USER"))
    return "default" if same and default.get("OPTIONS") == warehouse.get("OPTIONS") else "warehouse"


def _path(column_path: str, cast: str) -> sql.Composable:
    """A guard's JSON path ('{customer,id}') as a column expression of `t`; NULL for no path."""
    if not column_path:
        return sql.SQL("NULL::{}").format(sql.SQL(cast))
    names = column_path.strip("{}").split(",")
    if len(names) == 1:
        return sql.SQL("t.{}::{}").format(sql.Identifier(names[0]), sql.SQL(cast))
    return sql.SQL("(t.{} #>> {})::{}").format(
        sql.Identifier(names[0]), sql.Literal("{" + ",".join(names[1:]) + "}"), sql.SQL(cast)
    )


def _table_sql(schema: str, table: str, merchant_id: int | None, guard: Guard) -> tuple[sql.Composed, sql.Composed]:
    """(the batch DELETE, the count of held rows per hold) of one raw or landed table, with %(cutoff)s, %(n)s."""
    merchant = sql.SQL("t.merchant_id") if merchant_id is None else sql.Literal(merchant_id)
    date = _path(guard.date_path, "timestamptz")
    # The hold test uses the row's own date (NULL: covered by any date range), exactly as the trigger does; the age
    # falls back on the extraction time for a row without a date.
    blocks = sql.SQL("compliance_hold_blocks({m}, {c}, {cust}, {email}, {d})").format(
        m=merchant,
        c=sql.Literal(guard.category),
        cust=_path(guard.customer_path, "text"),
        email=_path(guard.email_path, "text"),
        d=date,
    )
    old = sql.SQL("coalesce({d}, t._airbyte_extracted_at) < %(cutoff)s").format(d=date)
    rel = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))
    delete = sql.SQL(
        "with doomed as (select t.ctid from {rel} t where {old} and {blocks} is null limit %(n)s)"
        " delete from {rel} where ctid in (select ctid from doomed)"
    ).format(rel=rel, old=old, blocks=blocks)
    held = sql.SQL(
        "select h, count(*) from (select {blocks} as h from {rel} t where {old}) x where h is not null group by h"
    ).format(rel=rel, old=old, blocks=blocks)
    return delete, held


def _tables(alias: str, category: str) -> list[tuple[str, str, int | None]]:
    """(schema, table, the store's id or None for a landed table) of every table holding `category`'s rows that
    has a date to age it by. A raw schema of no known store is left alone (its store's erasure is shop/redact's)."""
    names = [t for t, g in TABLE_GUARDS.items() if g.category == category and g.date_path and t in RAW_TABLES]
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "select n.nspname, c.relname from pg_catalog.pg_class c"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind in ('r', 'p') and c.relname = any(%s) and (n.nspname = %s or n.nspname like 'raw\\_%%')"
            " order by 1, 2",
            [names, LANDED_SCHEMA],
        )
        found = cursor.fetchall()
    stores = dict(Merchant.objects.values_list("key", "id"))
    tables = []
    for schema, table in found:
        if schema == LANDED_SCHEMA:
            tables.append((schema, table, None))
        elif schema[len("raw_") :] in stores:
            tables.append((schema, table, stores[schema[len("raw_") :]]))
    return tables


def _cutoffs(now: dt.datetime) -> dict[str, str]:
    days = settings.RETENTION_DAYS
    cutoffs = {c: (now - dt.timedelta(days=days[c])).isoformat() for c in PURGED if c != DataCategory.AUDIT_LOG}
    with connections["default"].cursor() as cursor:
        cursor.execute("select compliance_audit_cutoff()")  # the database's own period, not the app's
        cutoffs[DataCategory.AUDIT_LOG] = cursor.fetchone()[0].isoformat()
    return cutoffs


class _Purge:
    def __init__(self, run: PurgeRun, batch_size: int, on_batch: Callable[[PurgeRun], None] | None) -> None:
        self.run, self.n, self.on_batch = run, batch_size, on_batch

    def _count(self, category: str, deleted: int) -> None:
        self.run.deleted[category] = self.run.deleted.get(category, 0) + deleted
        self.run.batches += 1
        self.run.save(update_fields=["deleted", "batches"])

    def _batches(self, alias: str, category: str, statement, params: dict) -> None:
        while True:
            with transaction.atomic(using=alias), transaction.atomic(), connections[alias].cursor() as cursor:
                cursor.execute(statement, params)
                # A DELETE's row count, or what the audit log's purge function returns.
                deleted = cursor.fetchone()[0] if cursor.description else max(cursor.rowcount, 0)
                if deleted:
                    self._count(category, deleted)  # committed with the batch where both are one database
            if deleted and self.on_batch is not None:
                self.on_batch(self.run)
            if deleted < self.n:
                return

    def tables(self, category: str) -> dict[int, dict[str, int]]:
        alias = _warehouse_alias()
        cutoff = dt.datetime.fromisoformat(self.run.cutoffs[category])
        held: dict[int, dict[str, int]] = {}
        for schema, table, merchant_id in _tables(alias, category):
            delete, count_held = _table_sql(schema, table, merchant_id, TABLE_GUARDS[table])
            self._batches(alias, category, delete, {"cutoff": cutoff, "n": self.n})
            with connections[alias].cursor() as cursor:
                cursor.execute(count_held, {"cutoff": cutoff})
                for hold_id, rows in cursor.fetchall():
                    held.setdefault(hold_id, {})[f"{schema}.{table}"] = rows
        return held

    def messages(self) -> dict[int, dict[str, int]]:
        cutoff = dt.datetime.fromisoformat(self.run.cutoffs[DataCategory.MESSAGES])
        # Only rows the outbox is done with: a pending one a year old is a bug to look at, not data to drop.
        params = {"cutoff": cutoff, "final": sorted(FINAL_STATUSES), "n": self.n}
        self._batches(
            "default",
            DataCategory.MESSAGES,
            "WITH doomed AS (SELECT t.id FROM notifications_notification t"
            " WHERE t.created_at < %(cutoff)s AND t.status = ANY(%(final)s)"
            " AND compliance_hold_blocks(t.merchant_id, 'messages', NULL, t.to_email, t.created_at) IS NULL"
            " ORDER BY t.id LIMIT %(n)s) DELETE FROM notifications_notification WHERE id IN (SELECT id FROM doomed)",
            params,
        )
        return self._held_django(
            "SELECT h, count(*) FROM (SELECT compliance_hold_blocks(t.merchant_id, 'messages', NULL, t.to_email,"
            " t.created_at) AS h FROM notifications_notification t WHERE t.created_at < %(cutoff)s"
            " AND t.status = ANY(%(final)s)) x WHERE h IS NOT NULL GROUP BY h",
            params,
            "notifications_notification",
        )

    def exports(self) -> dict[int, dict[str, int]]:
        cutoff = dt.datetime.fromisoformat(self.run.cutoffs[DataCategory.EXPORTS])
        held: dict[int, dict[str, int]] = {}
        last = 0
        while True:
            batch = list(
                AuditExport.objects.filter(created_at__lt=cutoff, pk__gt=last)
                .exclude(file_key="")
                .order_by("pk")[: self.n]
            )
            deleted = 0
            for export in batch:
                covering = (
                    holds_covering(merchant_id=export.merchant_id, category=DataCategory.EXPORTS, at=export.created_at)
                    if export.merchant_id
                    else []
                )
                if covering:
                    tables = held.setdefault(covering[0].pk, {})
                    tables["compliance_auditexport"] = tables.get("compliance_auditexport", 0) + 1
                    continue
                audit_export_file_delete(export=export)
                deleted += 1
            if deleted:
                self._count(DataCategory.EXPORTS, deleted)
                if self.on_batch is not None:
                    self.on_batch(self.run)
            if len(batch) < self.n:
                return held
            last = batch[-1].pk

    def audit_log(self) -> dict[int, dict[str, int]]:
        self._batches("default", DataCategory.AUDIT_LOG, "SELECT compliance_audit_purge(%(n)s)", {"n": self.n})
        return self._held_django(
            "SELECT h, count(*) FROM (SELECT compliance_hold_blocks(t.merchant_id, 'audit_log', NULL, NULL,"
            " t.occurred_at) AS h FROM compliance_auditevent t WHERE t.occurred_at < compliance_audit_cutoff()"
            " AND t.merchant_id IS NOT NULL) x WHERE h IS NOT NULL GROUP BY h",
            {},
            "compliance_auditevent",
        )

    def _held_django(self, query: str, params: dict, table: str) -> dict[int, dict[str, int]]:
        with connections["default"].cursor() as cursor:
            cursor.execute(query, params)
            return {hold_id: {table: rows} for hold_id, rows in cursor.fetchall()}

    def finish_category(self, category: str, held: dict[int, dict[str, int]]) -> None:
        """Record the holds that kept rows (once per hold, category and run) and the category done, together."""
        holds = LegalHold.objects.in_bulk(list(held))
        with transaction.atomic():
            for hold_id, tables in held.items():
                rows = sum(tables.values())
                HoldExemption.objects.get_or_create(
                    purge_run=self.run,
                    hold_id=hold_id,
                    category=category,
                    defaults={
                        "merchant_id": holds[hold_id].merchant_id,
                        "work": WORK,
                        "target": f"{category} data before {self.run.cutoffs[category][:10]}",
                        "detail": {"rows": rows, "tables": tables},
                    },
                )
            self.run.held[category] = sum(sum(t.values()) for t in held.values())
            self.run.done = [*self.run.done, category]
            self.run.save(update_fields=["held", "done"])


def _run_take() -> PurgeRun:
    """The interrupted run, resumed with its cut-offs, or a new one."""
    with transaction.atomic():
        run = PurgeRun.objects.select_for_update().filter(status=PurgeStatus.RUNNING).first()
        if run is not None:
            run.resumed += 1
            # A run begun by an older version may lack a category's cut-off: today's, then.
            run.cutoffs = {**_cutoffs(run.started_at), **run.cutoffs}
            run.save(update_fields=["resumed", "cutoffs"])
            return run
        return PurgeRun.objects.create(cutoffs=_cutoffs(timezone.now()))


def retention_purge(*, batch_size: int | None = None, on_batch: Callable[[PurgeRun], None] | None = None) -> PurgeRun:
    """Run (or resume) the purge to its end; returns its record. Raises PurgeLocked while another runs.

    `on_batch` is called after each committed batch (progress output of the command)."""
    batch_size = batch_size or settings.RETENTION_PURGE_BATCH
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY])
        if not cursor.fetchone()[0]:
            raise PurgeLocked("another retention purge is running")
    try:
        run = _run_take()
        purge = _Purge(run, batch_size, on_batch)
        try:
            for category in PURGED:
                if category in run.done:
                    continue
                if category in (RAW, EVENTS):
                    held = purge.tables(category)
                elif category == DataCategory.MESSAGES:
                    held = purge.messages()
                elif category == DataCategory.EXPORTS:
                    held = purge.exports()
                else:
                    held = purge.audit_log()
                purge.finish_category(category, held)
        except SoftTimeLimitExceeded:
            logger.warning("retention purge %s stopped at its time limit; the next run resumes it", run.pk)
            raise  # left `running`: an interruption, not a failure
        except Exception as exc:
            run.status, run.error, run.finished_at = PurgeStatus.FAILED, str(exc)[:2000], timezone.now()
            run.save(update_fields=["status", "error", "finished_at"])
            logger.exception("retention purge failed", extra={"purge_run": run.pk})
            raise
        run.status, run.finished_at = PurgeStatus.SUCCEEDED, timezone.now()
        run.save(update_fields=["status", "finished_at"])
        logger.info(
            "retention purge %s done: deleted %s, kept for holds %s, %s batches%s",
            run.pk,
            run.deleted,
            run.held,
            run.batches,
            f", resumed {run.resumed}x" if run.resumed else "",
            extra={"purge_run": run.pk, "deleted": run.deleted, "held": run.held},
        )
        return run
    finally:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])


def audit_retention_apply(*, using: str = "default", **kwargs) -> None:
    """post_migrate receiver, run as the owner: write the audit log's retention into the purge function itself,
    where the app's role cannot change it. Skipped where the function is not the connected role's own."""
    connection = connections[using]
    days = int(settings.RETENTION_DAYS["audit_log"])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname IN"
            " ('compliance_audit_purge', 'compliance_audit_cutoff') AND pg_has_role(current_user, p.proowner, 'USAGE')"
        )
        for (signature,) in cursor.fetchall():
            cursor.execute(f"ALTER FUNCTION {signature} SET compliance.audit_retention_days = '{days:d}'")
