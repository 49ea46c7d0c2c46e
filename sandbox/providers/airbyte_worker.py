"""The Airbyte stand-in's worker: a sync reads the simulated world and writes it into the Postgres destination.

It writes what destination-postgres 3.x ("Direct Load", typed tables, shared/INGESTION.md §1.3) leaves in
the connection's namespace: one table ``<prefix><stream>`` per stream with the stream's typed columns
(``analytics/raw_schema.py``) and ``_airbyte_raw_id``, ``_airbyte_extracted_at`` (the sync's simulated
time), ``_airbyte_meta`` (``{"sync_id": <job id>, "changes": []}``) and ``_airbyte_generation_id``.

- Incremental streams read what became visible since the stream's last committed sync; full-refresh
  streams read every record (``overwrite`` replaces the table, ``append`` adds the snapshot).
- Deduped modes keep one row per primary key in the table: the highest cursor value, then the latest
  extraction, as Airbyte's typing-and-deduping does; append modes keep every row.
- Each stream is one transaction: a stream is written whole or not at all, and its cursor moves only when
  its transaction commits, so a failed job's committed streams do not repeat and the others retry.
- A reset (``reset``/``clear``) empties the streams' tables, forgets their cursors and bumps their
  generation; the next sync writes the whole history again under the new generation.

Errors are raised as ``SyncFailure`` whose message names the destination without its password.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from analytics.raw_schema import RAW_TABLES, table_columns
from sandbox.world.world import STREAM_TABLES, WorldSettings, world_records

DEDUPED = ("incremental_deduped_history", "full_refresh_overwrite_deduped")
CONNECT_TIMEOUT = 5
_NOT_SUMMED = {"id", "order_number", "timestamp"}


class SyncFailure(Exception):
    """A job's failure: ``error_type`` as Airbyte reports it, and a message safe to show."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type, self.message = error_type, message


@dataclasses.dataclass
class StreamPlan:
    name: str
    sync_mode: str
    primary_key: list[str]  # destination column names
    cursor: str | None
    lo: float | None  # the stream's cursor: records visible from here on (None: from the beginning)
    generation: int


@dataclasses.dataclass
class JobPlan:
    """Everything a job needs, copied when it is created (a later PATCH applies to the next job)."""

    job_id: int
    job_type: str
    source_type: str
    identity: str
    settings: WorldSettings
    start: dt.date
    now: float
    destination: dict[str, Any]
    namespace: str
    prefix: str
    streams: list[StreamPlan]


def column_name(path: list[str] | str) -> str:
    """An Airbyte field path as destination-postgres names its column (special characters become ``_``)."""
    name = ".".join(path) if isinstance(path, list) else path
    return re.sub(r"[^A-Za-z0-9_]", "_", name)[:63]


def table_name(prefix: str, stream: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}{stream}")[:63]


def namespace_of(connection: dict[str, Any], destination: dict[str, Any]) -> str:
    default = destination.get("schema") or "public"
    if connection["namespaceDefinition"] == "custom_format":
        name = (connection.get("namespaceFormat") or "").replace("${SOURCE_NAMESPACE}", "")
        return re.sub(r"[^A-Za-z0-9_]", "_", name)[:63] or default
    return default  # "destination", and "source" (these sources declare no namespace)


def _redacted(text: str, secret: str | None) -> str:
    return text.replace(secret, "**********") if secret else text


def destination_connect(configuration: dict[str, Any]) -> psycopg.Connection:
    mode = (configuration.get("ssl_mode") or {}).get("mode") or ("require" if configuration.get("ssl") else "prefer")
    if mode in ("verify-ca", "verify-full"):
        mode = "require"  # the stand-in keeps no certificate files; the transport is still encrypted
    where = (
        f"postgres://{configuration.get('username')}@{configuration.get('host')}:{configuration.get('port')}"
        f"/{configuration.get('database')}"
    )
    try:
        return psycopg.connect(
            host=configuration["host"],
            port=configuration["port"],
            dbname=configuration["database"],
            user=configuration["username"],
            password=configuration.get("password") or "",
            sslmode=mode,
            connect_timeout=CONNECT_TIMEOUT,
            application_name="airbyte-sandbox-worker",
        )
    except psycopg.Error as exc:
        reason = _redacted(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                           configuration.get("password"))  # fmt: skip
        raise SyncFailure("system_error", f"Could not connect to the destination {where}: {reason}") from None


def _copy_line(fields: str, extracted_at: str, job_id: int, generation: int) -> str:
    return f'{fields}\t{uuid.uuid4()}\t{extracted_at}\t{{"sync_id":{job_id},"changes":[]}}\t{generation}\n'


def _sums(table: str, rows: list[str]) -> dict[str, Any]:
    """Totals of the stream's numeric columns over the rows written (what an end-to-end test recomputes)."""
    columns = [
        (i, name, pg_type)
        for i, (name, pg_type) in enumerate(RAW_TABLES[table])
        if pg_type in ("numeric", "bigint") and name not in _NOT_SUMMED and not name.endswith("_id")
    ]
    totals: dict[str, Any] = {name: (Decimal(0) if pg_type == "numeric" else 0) for _, name, pg_type in columns}
    for fields in rows:
        values = fields.split("\t")
        for i, name, pg_type in columns:
            if values[i] != "\\N":
                totals[name] += Decimal(values[i]) if pg_type == "numeric" else int(values[i])
    return {name: str(v) if isinstance(v, Decimal) else v for name, v in totals.items()}


def _ensure_schema(conn: psycopg.Connection, schema: str, password: str | None) -> None:
    """Create the namespace in a transaction of its own, one job at a time: jobs of one store start together
    (their world is simulated once, then they all write), and two concurrent ``create schema if not exists``
    of one name collide in ``pg_namespace`` (a duplicate key error, not a no-op)."""
    try:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("select pg_advisory_xact_lock(hashtext(%s))", [f"airbyte-sandbox-schema:{schema}"])
            cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    except psycopg.Error as exc:
        reason = _redacted(str(exc).strip().splitlines()[0], password)
        raise SyncFailure("system_error", f"Creating schema {schema} failed: {reason}") from None


def _ensure_table(cur: psycopg.Cursor, schema: str, table: str, world_table: str) -> sql.Composed:
    target = sql.Identifier(schema, table)
    cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    cols = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg_type)) for name, pg_type in table_columns(world_table)
    )
    cur.execute(sql.SQL("create table if not exists {} ({})").format(target, cols))
    return target


def _dedupe(cur: psycopg.Cursor, target: sql.Composed, stream: StreamPlan, job_id: int, known: set[str]) -> None:
    missing = [c for c in [*stream.primary_key, *([stream.cursor] if stream.cursor else [])] if c not in known]
    if missing:
        raise SyncFailure("config_error", f"Stream {stream.name}: no column {missing[0]} to deduplicate on")
    pk = sql.SQL(", ").join(sql.Identifier(c) for c in stream.primary_key)
    order = [sql.SQL("{} desc nulls last").format(sql.Identifier(stream.cursor))] if stream.cursor else []
    order += [sql.SQL("_airbyte_extracted_at desc"), sql.SQL("_airbyte_raw_id desc")]
    cur.execute(
        sql.SQL(
            "delete from {t} using (select ctid as row_ctid, row_number() over (partition by {pk} order by {o}) as rn"
            " from {t} where ({pk}) in (select {pk} from {t} where (_airbyte_meta ->> 'sync_id')::bigint = %s)) r"
            " where {t}.ctid = r.row_ctid and r.rn > 1"
        ).format(t=target, pk=pk, o=sql.SQL(", ").join(order)),
        [job_id],
    )


def run_job(
    plan: JobPlan,
    *,
    committed: Callable[[StreamPlan, dict[str, Any]], None],
    cancelled: Callable[[], bool],
) -> dict[str, int]:
    """Run a sync or reset; ``committed(stream, report)`` is called after each stream's transaction commits.

    Returns the job's totals ``{"rows", "bytes"}``; raises SyncFailure (nothing of the failing stream kept).
    """
    tables = STREAM_TABLES[plan.source_type]
    streams = [s for s in plan.streams if s.name in tables]
    extracted_at = dt.datetime.fromtimestamp(int(plan.now), dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00")
    totals = {"rows": 0, "bytes": 0}
    with destination_connect(plan.destination) as conn:  # first: an unreachable destination fails fast
        _ensure_schema(conn, plan.namespace, plan.destination.get("password"))
        records: dict[str, list] = {}
        if plan.job_type == "sync" and streams:
            windows = {tables[s.name]: (None if s.sync_mode.startswith("full_refresh") else s.lo) for s in streams}
            records = world_records(plan.settings, plan.identity, start=plan.start, now=plan.now, windows=windows)
        for stream in streams:
            if cancelled():
                break
            world_table = tables[stream.name]
            table = table_name(plan.prefix, stream.name)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    target = _ensure_table(cur, plan.namespace, table, world_table)
                    if plan.job_type != "sync":
                        cur.execute(sql.SQL("delete from {}").format(target))
                        report = {"table": f"{plan.namespace}.{table}", "rows": 0, "bytes": 0, "sums": {}}
                    else:
                        rows = [r.fields for r in records.pop(world_table)]  # the stream's memory goes with it
                        if stream.sync_mode in ("full_refresh_overwrite", "full_refresh_overwrite_deduped"):
                            cur.execute(sql.SQL("delete from {}").format(target))
                        size = 0
                        cols = sql.SQL(", ").join(sql.Identifier(c) for c, _ in table_columns(world_table))
                        with cur.copy(sql.SQL("copy {} ({}) from stdin").format(target, cols)) as copy:
                            for start in range(0, len(rows), 5000):
                                chunk = "".join(
                                    _copy_line(f, extracted_at, plan.job_id, stream.generation)
                                    for f in rows[start : start + 5000]
                                ).encode()
                                size += len(chunk)
                                copy.write(chunk)
                        if stream.sync_mode in DEDUPED:
                            _dedupe(cur, target, stream, plan.job_id, {c for c, _ in RAW_TABLES[world_table]})
                        report = {
                            "table": f"{plan.namespace}.{table}",
                            "rows": len(rows),
                            "bytes": size,
                            "sums": _sums(world_table, rows),
                        }
            except SyncFailure:
                raise
            except psycopg.Error as exc:
                reason = _redacted(str(exc).strip().splitlines()[0], plan.destination.get("password"))
                raise SyncFailure("system_error", f"Writing stream {stream.name} to {table} failed: {reason}") from None
            report.update(
                {
                    "syncMode": stream.sync_mode,
                    "generation": stream.generation,
                    "window": [
                        None if stream.lo is None or stream.sync_mode.startswith("full_refresh") else stream.lo,
                        plan.now,
                    ],
                }
            )
            committed(stream, report)
            totals["rows"] += report["rows"]
            totals["bytes"] += report["bytes"]
    return totals


def _stamp(epoch: float) -> str:
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S+00")


def seed_tables(plan: JobPlan, tables: list[str]) -> dict[str, int]:
    """Write whole world tables no stream carries (``plan``'s world up to ``plan.now``) into the namespace,
    each in one transaction replacing what an earlier seed wrote (``sync_id`` 0); rows per table.

    Each row is stamped with the moment it became visible, as the app's own intake (the collector, the webhook
    receiver) stamps what it receives over time — not with one time for a year of rows."""
    records = world_records(plan.settings, plan.identity, start=plan.start, now=plan.now, windows=dict.fromkeys(tables))
    written = {}
    with destination_connect(plan.destination) as conn:
        _ensure_schema(conn, plan.namespace, plan.destination.get("password"))
        for table in tables:
            rows = records.pop(table)
            try:
                with conn.transaction(), conn.cursor() as cur:
                    target = _ensure_table(cur, plan.namespace, table, table)
                    # What an earlier seed wrote (sync id 0) goes; rows the app's own intake wrote stay.
                    cur.execute(sql.SQL("delete from {} where _airbyte_meta ->> 'sync_id' = '0'").format(target))
                    cols = sql.SQL(", ").join(sql.Identifier(c) for c, _ in table_columns(table))
                    with cur.copy(sql.SQL("copy {} ({}) from stdin").format(target, cols)) as copy:
                        for start in range(0, len(rows), 5000):
                            copy.write(
                                "".join(
                                    _copy_line(r.fields, _stamp(r.visible_at), 0, 0) for r in rows[start : start + 5000]
                                )
                            )
            except psycopg.Error as exc:
                reason = _redacted(str(exc).strip().splitlines()[0], plan.destination.get("password"))
                raise SyncFailure("system_error", f"Writing {table} failed: {reason}") from None
            written[table] = len(rows)
    return written


def _typed(value: str, pg_type: str) -> Any:
    if value == "\\N":
        return None
    if pg_type == "bigint":
        return int(value)
    if pg_type == "boolean":
        return value == "t"
    if pg_type == "jsonb":
        return json.loads(value)
    return value  # text, numeric (exact, as a string), dates and timestamps as written


def written_records(plan: JobPlan, stream: str, report: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows a job wrote for ``stream``, read again from the world with the job's own window."""
    if plan.job_type != "sync" or not report["rows"]:
        return []
    world_table = STREAM_TABLES[plan.source_type][stream]
    lo = report["window"][0]
    records = world_records(plan.settings, plan.identity, start=plan.start, now=plan.now, windows={world_table: lo})
    columns = RAW_TABLES[world_table]
    return [
        {name: _typed(value, pg_type) for (name, pg_type), value in zip(columns, r.fields.split("\t"), strict=True)}
        for r in records[world_table]
    ]
