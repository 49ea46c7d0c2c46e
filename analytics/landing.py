"""The landed layer: every store's raw rows copied into one shared table per raw table, keyed by merchant_id.

Airbyte (and our webhook intakes) write one schema per store (``raw_<key>``). Reading them from dbt means a
union over every store's schema in every staging model: its SQL, its planning time and the locks a build
holds grow with the number of stores (issue 15 measured 3,016 locks and 6.9 s to plan one staging query at
1,000 stores). So before dbt runs, ``raw_load`` copies what is new in the stores that changed into
``landed.<table>`` — the raw columns, with ``merchant_id`` and ``_load_id`` in front — and dbt reads only those
shared tables (docs/scaling.md).

- ``_load_id`` comes from one sequence. Loads and builds are serialised (``analytics.dbt_runner.dbt_invoke``
  loads, then builds, under one lock), so a higher ``_load_id`` is always committed after a lower one and an
  incremental model can pick exactly the rows it has not read by ``_load_id > <what it read through>``.
- What a model has read through is ``landed._model_watermarks`` (``watermarks_record``, after each run, from
  dbt's results): a staging model reads its landed table through the run's high-water mark; a model reading a
  staging model has read it through what that staging model had read. Recorded after the model committed, so a
  crash in between only makes the next run read some rows again (every model merges on its unique key).
- ``landed._loads`` lists every load (merchant, table, its ``_load_id`` range): which stores changed since a
  watermark, without scanning the landed table.
- A store's raw rows are read from ``<its load watermark> - commit_lag``: a sync commits its rows minutes to
  an hour after extracting them and webhook writers commit in parallel, so rows can appear with older
  ``_airbyte_extracted_at`` than what was already copied. Re-read rows are skipped by the unique key
  ``(merchant_id, _airbyte_raw_id)``; only the store's recent raw rows are read again, never the models.
- A store whose tables hold nothing new costs one statement (``exists`` probes), not one load per table.
- A store's load is one transaction; a table it cannot load (a column the models need is missing: another
  connector version) is a failure naming the store's raw schema, and the store's other tables and every other
  store still load.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from analytics.raw_schema import RAW_TABLES, raw_schema_name, table_columns
from compliance.guards import TRIGGER_NAME, guard_install

logger = logging.getLogger(__name__)

LANDED_SCHEMA = "landed"
DEFAULT_COMMIT_LAG = dt.timedelta(hours=3)

# The raw tables of a change's source (analytics.services.raw_data_changed_mark: a credential's provider, a
# store's own pipeline kind, an intake).
SOURCE_TABLE_PREFIXES = {
    "shopify": "shopify_",
    "meta": "facebook_marketing_",
    "google_ads": "google_ads_",
    "klaviyo": "klaviyo_",
    "attentive": "attentive_",
    "exchange_rates": "exchange_rates_",
    "web": "web_",
}


def source_tables(source: str) -> tuple[str, ...]:
    """The raw tables a source's data lands in; every table for a source not named above."""
    prefix = SOURCE_TABLE_PREFIXES.get(source)
    return tuple(t for t in RAW_TABLES if prefix is None or t.startswith(prefix))


@dataclass
class LoadResult:
    rows: dict[str, int] = field(default_factory=dict)  # raw table -> rows landed
    failures: list[dict] = field(default_factory=list)  # {"merchant_key", "table", "message"}
    landed_through: int = 0  # the highest _load_id landed so far (what this build may read through)


def _ident(*names: str) -> sql.Composable:
    return sql.SQL(".").join(sql.Identifier(n) for n in names)


def landed_schema_statements() -> list[sql.Composable]:
    """The landed schema's DDL, every statement idempotent (new raw columns are added to existing tables)."""
    s = LANDED_SCHEMA
    statements: list[sql.Composable] = [
        sql.SQL("create schema if not exists {}").format(sql.Identifier(s)),
        sql.SQL("create sequence if not exists {} as bigint").format(_ident(s, "load_id_seq")),
        sql.SQL(
            "create table if not exists {} (id bigserial primary key, merchant_id integer not null,"
            " table_name text not null, first_load_id bigint not null, last_load_id bigint not null,"
            " row_count integer not null, loaded_at timestamptz not null default now())"
        ).format(_ident(s, "_loads")),
        sql.SQL("create index if not exists loads_table_last on {} (table_name, last_load_id)").format(
            _ident(s, "_loads")
        ),
        sql.SQL(
            "create table if not exists {} (merchant_id integer not null, table_name text not null,"
            " extracted_through timestamptz not null, primary key (merchant_id, table_name))"
        ).format(_ident(s, "_load_watermarks")),
        sql.SQL(
            "create table if not exists {} (model text not null, input text not null, load_id bigint not null,"
            " recorded_at timestamptz not null default now(), primary key (model, input))"
        ).format(_ident(s, "_model_watermarks")),
    ]
    for table in RAW_TABLES:
        cols = [
            sql.SQL("merchant_id integer not null"),
            sql.SQL("_load_id bigint not null"),
            *(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in table_columns(table)),
        ]
        statements.append(
            sql.SQL("create table if not exists {} ({})").format(_ident(s, table), sql.SQL(", ").join(cols))
        )
        statements += [
            sql.SQL("alter table {} add column if not exists {} {}").format(
                _ident(s, table), sql.Identifier(n), sql.SQL(t)
            )
            for n, t in table_columns(table)
        ]
        statements += [
            sql.SQL("create unique index if not exists {} on {} (merchant_id, _airbyte_raw_id)").format(
                sql.Identifier(f"{table}_raw_id"), _ident(s, table)
            ),
            sql.SQL("create index if not exists {} on {} (merchant_id, _load_id)").format(
                sql.Identifier(f"{table}_load_id"), _ident(s, table)
            ),
            # Legal holds: no delete or rewrite of a held row (compliance/guards.py), whoever issues it.
            guard_install(s, table, merchant_key=None),
        ]
    return statements


def landed_schema_exists(conn: psycopg.Connection) -> bool:
    row = conn.execute("select exists (select from pg_catalog.pg_namespace where nspname = %s)", [LANDED_SCHEMA])
    return bool(row.fetchone()[0])


def _landed_schema_complete(conn: psycopg.Connection) -> bool:
    """Whether every landed relation (tables, their indexes, the sequence) and raw column exists: one catalog
    query, so that a build does not run a thousand `if not exists` statements (each takes its table's lock)."""
    rows = conn.execute(
        "select c.relname, a.attname from pg_catalog.pg_class c"
        " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
        " left join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
        " where n.nspname = %s",
        [LANDED_SCHEMA],
    ).fetchall()
    relations = {rel for rel, _ in rows}
    columns = {(rel, col) for rel, col in rows if col}
    wanted = {"load_id_seq", "_loads", "loads_table_last", "_load_watermarks", "_model_watermarks"}
    for table in RAW_TABLES:
        wanted |= {table, f"{table}_raw_id", f"{table}_load_id"}
        if not {(table, "merchant_id"), (table, "_load_id"), *((table, n) for n, _ in table_columns(table))} <= columns:
            return False
    return wanted <= relations and _landed_tables_guarded(conn)


def _landed_tables_guarded(conn: psycopg.Connection) -> bool:
    """Whether every landed table carries the legal-hold trigger (trivially, where the compliance migration has
    not run: a scratch database)."""
    guarded, available = conn.execute(
        "select count(*) filter (where t.tgname = %s), to_regproc('compliance_hold_guard_install') is not null"
        " from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
        " left join pg_catalog.pg_trigger t on t.tgrelid = c.oid and t.tgname = %s"
        " where n.nspname = %s and c.relname = any(%s)",
        [TRIGGER_NAME, TRIGGER_NAME, LANDED_SCHEMA, list(RAW_TABLES)],
    ).fetchone()
    return not available or guarded == len(RAW_TABLES)


def landed_schema_ensure(conn: psycopg.Connection) -> None:
    """Create (or complete) the landed schema; one catalog query when it is complete already."""
    if _landed_schema_complete(conn):
        return
    with conn.transaction(), conn.cursor() as cur:
        # Two processes creating it at once would collide on the catalog: one at a time.
        cur.execute("select pg_advisory_xact_lock(hashtext('landed_schema_ensure'))")
        for statement in landed_schema_statements():
            cur.execute(statement)


def landed_through(conn: psycopg.Connection) -> int:
    """The highest _load_id landed (0 when nothing has been): the newest ledger row's, since loads run one at a
    time (an index probe, however long the ledger grows)."""
    row = conn.execute(
        sql.SQL("select last_load_id from {} order by id desc limit 1").format(_ident(LANDED_SCHEMA, "_loads"))
    ).fetchone()
    return int(row[0]) if row else 0


def landed_tables_with_rows(conn: psycopg.Connection) -> set[str]:
    """The raw tables some store has landed rows in (from the ledger)."""
    rows = conn.execute(sql.SQL("select distinct table_name from {}").format(_ident(LANDED_SCHEMA, "_loads")))
    return {table for (table,) in rows.fetchall()}


def _raw_columns_present(
    conn: psycopg.Connection, keys: list[str]
) -> dict[tuple[str, str], tuple[set[str], bool, bool]]:
    """{(merchant key, raw table): (its columns, whether an index leads with _airbyte_extracted_at, whether it
    carries the legal-hold trigger)}, from the catalog, for the stores' raw schemas: one statement whatever the
    number of stores."""
    schemas = {raw_schema_name(k): k for k in keys}
    rows = conn.execute(
        "select n.nspname, c.relname, array_agg(a.attname::text),"
        " exists (select from pg_catalog.pg_index x join pg_catalog.pg_attribute ia"
        "   on ia.attrelid = x.indrelid and ia.attnum = x.indkey[0]"
        "   where x.indrelid = c.oid and ia.attname = '_airbyte_extracted_at'),"
        " exists (select from pg_catalog.pg_trigger t where t.tgrelid = c.oid and t.tgname = %s)"
        " from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
        " join pg_catalog.pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped"
        " where n.nspname = any(%s) and c.relname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'f')"
        " group by 1, 2, c.oid",
        [TRIGGER_NAME, list(schemas), list(RAW_TABLES)],
    ).fetchall()
    return {(schemas[schema], table): (set(cols), indexed, guarded) for schema, table, cols, indexed, guarded in rows}


def _extraction_index_ensure(conn: psycopg.Connection, key: str, table: str) -> None:
    """Index a raw table on _airbyte_extracted_at, once: the load's probes and re-reads of a store's recent rows
    then cost an index lookup, not a scan of the store's whole history. (A reset that recreates the table drops
    the index; the next load creates it again.)"""
    with conn.transaction():
        conn.execute(
            sql.SQL("create index if not exists {} on {} (_airbyte_extracted_at)").format(
                sql.Identifier(f"{table}_airbyte_extracted_at"), _ident(raw_schema_name(key), table)
            )
        )


def _load_statement(key: str, table: str) -> sql.Composable:
    """Copy one store's raw rows extracted after %(since)s into the landed table; record the load."""
    names = [n for n, _ in table_columns(table)]
    cols = sql.SQL(", ").join(sql.Identifier(n) for n in names)
    picked = sql.SQL(", ").join(
        sql.SQL("coalesce(s._airbyte_raw_id, md5(s::text)::uuid)") if n == "_airbyte_raw_id" else _ident("s", n)
        for n in names
    )
    return sql.SQL(
        """
        with s as (
            select {cols} from {raw}
            where %(since)s::timestamptz is null or _airbyte_extracted_at > %(since)s::timestamptz
        ),
        ins as (
            insert into {landed} (merchant_id, _load_id, {cols})
            select %(merchant_id)s, nextval({seq}), {picked} from s
            on conflict (merchant_id, _airbyte_raw_id) do nothing
            returning _load_id, _airbyte_extracted_at
        ),
        stats as (
            select count(*)::integer as n, min(_load_id) as lo, max(_load_id) as hi, max(_airbyte_extracted_at) as ext
            from ins
        ),
        ledger as (
            insert into {loads} (merchant_id, table_name, first_load_id, last_load_id, row_count)
            select %(merchant_id)s, %(table)s, lo, hi, n from stats where n > 0
        ),
        mark as (
            insert into {marks} as w (merchant_id, table_name, extracted_through)
            select %(merchant_id)s, %(table)s, ext from stats where ext is not null
            on conflict (merchant_id, table_name)
                do update set extracted_through = greatest(w.extracted_through, excluded.extracted_through)
        )
        select n from stats
        """
    ).format(
        cols=cols,
        picked=picked,
        raw=_ident(raw_schema_name(key), table),
        landed=_ident(LANDED_SCHEMA, table),
        seq=sql.Literal(f"{LANDED_SCHEMA}.load_id_seq"),
        loads=_ident(LANDED_SCHEMA, "_loads"),
        marks=_ident(LANDED_SCHEMA, "_load_watermarks"),
    )


def raw_load(
    conn: psycopg.Connection,
    *,
    merchants: list[dict],
    scope: Mapping[int, Iterable[str] | None] | None = None,
    commit_lag: dt.timedelta = DEFAULT_COMMIT_LAG,
) -> LoadResult:
    """Copy the new raw rows of `merchants` into the landed tables; return what landed and what failed.

    `merchants`: the active stores (``[{"id", "key", ...}]``, as the dbt var). `scope`: {merchant id: the raw
    tables to load (None: all)} for the stores that changed; None loads every store's every table. A store's
    table that does not exist yet (not connected, first sync not done) has nothing to load.
    """
    landed_schema_ensure(conn)
    wanted = {
        m["id"]: (None if scope is None else scope[m["id"]]) for m in merchants if scope is None or m["id"] in scope
    }
    by_id = {m["id"]: m for m in merchants if m["id"] in wanted}
    result = LoadResult()
    if by_id:
        present = _raw_columns_present(conn, [m["key"] for m in by_id.values()])
        guards = conn.execute("select to_regproc('compliance_hold_guard_install') is not null").fetchone()[0]
        marks = {
            (mid, table): at
            for mid, table, at in conn.execute(
                sql.SQL("select merchant_id, table_name, extracted_through from {} where merchant_id = any(%s)").format(
                    _ident(LANDED_SCHEMA, "_load_watermarks")
                ),
                [list(by_id)],
            ).fetchall()
        }
        # Customers erased at a store's request (compliance.redaction): their rows that land now are rewritten the
        # same way before any model reads them, so no build brings them back.
        from compliance.redaction import registry_get

        redactions = registry_get(conn, list(by_id))
        conn.commit()
        for mid, merchant in by_id.items():
            tables = RAW_TABLES if wanted[mid] is None else [t for t in RAW_TABLES if t in set(wanted[mid])]
            _load_merchant(
                conn,
                merchant,
                tables,
                present,
                marks,
                commit_lag,
                result,
                guards=guards,
                redactions=redactions.get(mid),
            )
        # After the loads: a first load copies every row before the landed lookup indexes are built, in one pass.
        _lookup_indexes_ensure(conn, LANDED_SCHEMA, list(RAW_TABLES), landed=True)
    result.landed_through = landed_through(conn)
    conn.commit()
    return result


def _tables_with_new_rows(conn, key: str, candidates: list[tuple[str, dt.datetime | None]]) -> set[str]:
    """Which of the store's raw tables hold rows extracted after `since` (any row, when None): one statement of
    `exists` probes, so that a store with nothing new costs one round trip instead of one load per table."""
    if not candidates:
        return set()
    probes = sql.SQL(", ").join(
        sql.SQL("exists (select from {} where {})").format(
            _ident(raw_schema_name(key), table),
            sql.SQL("true") if since is None else sql.SQL("_airbyte_extracted_at > {}").format(sql.Literal(since)),
        )
        for table, since in candidates
    )
    flags = conn.execute(sql.SQL("select {}").format(probes)).fetchone()
    return {table for (table, _), new in zip(candidates, flags, strict=True) if new}


# Raw tables the load could not index, or guard (logged once per process).
_UNINDEXABLE: set[tuple[str, str]] = set()
_UNGUARDED: set[tuple[str, str]] = set()


def _hold_guard_ensure(conn: psycopg.Connection, key: str, table: str) -> None:
    """Install the legal-hold trigger on a raw table the first time the load sees it without one: Airbyte creates
    (and a reset recreates) its tables, so this is the one place every raw table passes through. A table the app
    does not own (Airbyte's role does) cannot take it from the app: the warning says so (docs/retention.md)."""
    try:
        with conn.transaction():
            conn.execute(guard_install(raw_schema_name(key), table, merchant_key=key))
    except psycopg.Error as exc:
        if (key, table) not in _UNGUARDED:
            _UNGUARDED.add((key, table))
            logger.warning(
                "raw table not guarded by legal holds", extra={"merchant_key": key, "table": table, "reason": str(exc)}
            )


def _lookup_indexes_ensure(conn, schema: str, tables: list[str], *, landed: bool) -> None:
    """The indexes a customer's redaction finds their rows by (compliance.redaction), created once per table."""
    from compliance.redaction import lookup_indexes_ensure

    if not tables:
        return
    for table in lookup_indexes_ensure(conn, schema=schema, tables=tables, landed=landed):
        if (schema, table) not in _UNINDEXABLE:  # said once per process
            _UNINDEXABLE.add((schema, table))
            logger.warning("raw table not indexed for redaction", extra={"schema": schema, "table": table})
    conn.commit()  # the catalog read began a transaction: a store's load stays a transaction of its own


def _load_merchant(
    conn, merchant, tables, present, marks, commit_lag, result: LoadResult, guards: bool, redactions=None
) -> None:
    key, mid = merchant["key"], merchant["id"]
    readable = []
    for table in tables:
        found = present.get((key, table))
        if found is None:
            continue
        columns, indexed, guarded = found
        missing = [n for n, _ in table_columns(table) if n not in columns]
        if missing:
            result.failures.append(_failure(key, table, f"lacks the columns {', '.join(missing)}"))
            continue
        if not indexed and "_airbyte_extracted_at" in columns:
            try:
                _extraction_index_ensure(conn, key, table)
            except psycopg.Error as exc:  # a view, or a table we may read but not index: the probe scans instead
                if (key, table) not in _UNINDEXABLE:  # said once per process, not at every build
                    _UNINDEXABLE.add((key, table))
                    logger.warning(
                        "raw table not indexed", extra={"merchant_key": key, "table": table, "reason": str(exc)}
                    )
        if guards and not guarded:
            _hold_guard_ensure(conn, key, table)
        since = marks.get((mid, table))
        readable.append((table, since - commit_lag if since else None))
    _lookup_indexes_ensure(conn, raw_schema_name(key), [t for t, _ in readable], landed=False)
    with conn.transaction():
        before = landed_through(conn) if redactions else 0
        try:
            with conn.transaction():
                new = _tables_with_new_rows(conn, key, readable)
        except psycopg.Error:
            new = {table for table, _ in readable}  # the loads below say which table fails, and why
        landed_now: dict[str, dt.datetime | None] = {}
        for table, since in readable:
            if table not in new:
                continue
            try:
                with conn.transaction():
                    (landed,) = conn.execute(
                        _load_statement(key, table), {"merchant_id": mid, "table": table, "since": since}
                    ).fetchone()
            except psycopg.Error as exc:
                result.failures.append(_failure(key, table, str(exc).strip().splitlines()[0][:500]))
                continue
            if landed:
                result.rows[table] = result.rows.get(table, 0) + landed
                landed_now[table] = since
        if redactions and landed_now:
            from compliance.redaction import landed_rows_redact

            landed_rows_redact(
                conn, merchant_id=mid, key=key, digests=redactions, tables=landed_now, since_load_id=before
            )


def _failure(key: str, table: str, reason: str) -> dict:
    message = (
        f"raw table {raw_schema_name(key)}.{table} could not be loaded (merchant {key}): {reason};"
        " its connector is not the version the models expect, or its schema is not readable"
    )
    logger.error("raw load failed", extra={"merchant_key": key, "table": table, "reason": reason})
    return {"merchant_key": key, "table": table, "message": message}


def watermarks_record(conn: psycopg.Connection, *, models: list[tuple[str, list[str]]], landed_through: int) -> None:
    """After a run: record what each model that succeeded has read through.

    `models`: (model name, the names of its inputs: raw tables it reads from the landed schema, or models) for
    every incremental model that succeeded, in run order. A landed table was read through `landed_through`; an
    incremental model input through what that model had read (its smallest recorded watermark); a view or table
    model input (no watermark: it shows every landed row) through `landed_through`.
    """
    raw = set(RAW_TABLES)
    table = _ident(LANDED_SCHEMA, "_model_watermarks")
    with conn.transaction(), conn.cursor() as cur:
        for model, inputs in models:
            for name in inputs:
                if name in raw:
                    value = sql.Literal(landed_through)
                else:
                    # A view (or table) model has no watermark: it shows every landed row, so its reader has read
                    # it through this build's high-water mark.
                    value = sql.SQL("coalesce((select min(load_id) from {} where model = {}), {})").format(
                        table, sql.Literal(name), sql.Literal(landed_through)
                    )
                cur.execute(
                    sql.SQL(
                        "insert into {t} as w (model, input, load_id) select {m}, {i}, v from (select {v} as v) as x"
                        " where v is not null"
                        " on conflict (model, input) do update set load_id = excluded.load_id, recorded_at = now()"
                    ).format(t=table, m=sql.Literal(model), i=sql.Literal(name), v=value)
                )
