"""Reads the analytics pipeline needs from the app's own tables."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from django.db import DatabaseError, connections, router, transaction
from django.db.models import Q, QuerySet

from accounts.models import Merchant
from analytics.choices import DbtRunStatus, DbtTrigger, FreshnessStatus
from analytics.models import DbtRun, RawDataChange
from analytics.raw_schema import RAW_TABLES, raw_schema_name

logger = logging.getLogger(__name__)


def dbt_merchant_list() -> list[dict]:
    """The active merchants, as the dbt var `merchants` expects them (the app is the source of truth)."""
    return [
        {"id": m.pk, "key": m.key, "timezone": m.timezone, "currency": m.currency}
        for m in Merchant.objects.filter(is_active=True).order_by("pk")
    ]


def warehouse_connection_params() -> dict:
    """libpq parameters of the `warehouse` database alias, where dbt builds (the test database under tests)."""
    db = connections["warehouse"].settings_dict
    # A Unix-socket directory arrives as ?host=/dir in DATABASE_URL, which django-environ keeps in OPTIONS.
    host = db.get("HOST") or db.get("OPTIONS", {}).get("host") or "127.0.0.1"
    return {
        "host": host,
        "port": int(db.get("PORT") or 5432),
        "user": db.get("USER") or "postgres",
        "password": db.get("PASSWORD") or "",
        "dbname": db["NAME"],
    }


def dbt_run_list(*, status: str | None = None) -> QuerySet[DbtRun]:
    runs = DbtRun.objects.all()
    return runs.filter(status=status) if status else runs


def raw_data_change_unbuilt_list() -> QuerySet[RawDataChange]:
    """Raw-data changes no build has taken in: never consumed, or consumed by a run that died.

    Read under the dbt lock, a run still `running` is dead (its process held the lock; see
    services.dbt_runs_interrupted_reap), so its changes are built again. Read without the lock, this also lists
    the changes of a build that is running now.
    """
    return RawDataChange.objects.filter(
        Q(consumed_by_run__isnull=True)
        | Q(consumed_by_run__status__in=[DbtRunStatus.RUNNING, DbtRunStatus.INTERRUPTED])
    )


class CoalescedBuildDue(NamedTuple):
    at: dt.datetime
    newest_change_id: int


def coalesced_build_due_get(*, quiet_seconds: int, max_wait_seconds: int) -> CoalescedBuildDue | None:
    """When the unbuilt changes are to be built, or None when there are none.

    Due once the newest has been recorded `quiet_seconds` ago (the stores' data has gone quiet), or once the
    oldest has waited `max_wait_seconds` (the ceiling: syncs that never pause cannot postpone it for ever),
    whichever comes first. Times are `recorded_at`, this app's clock when it learned of the sync, not the
    provider's `at`. Read without the dbt lock the changes of a running build count too, so the answer is
    then "due" early and the request meets the lock; its holder looks again after it (services).
    """
    with connections[router.db_for_read(RawDataChange)].cursor() as cursor:
        cursor.execute(_UNBUILT_SPAN_SQL, {"dead_or_running": [DbtRunStatus.RUNNING, DbtRunStatus.INTERRUPTED]})
        oldest, newest, newest_id = cursor.fetchone()
    if newest_id is None:
        return None
    at = min(newest + dt.timedelta(seconds=quiet_seconds), oldest + dt.timedelta(seconds=max_wait_seconds))
    return CoalescedBuildDue(at=at, newest_change_id=newest_id)


# The rows of raw_data_change_unbuilt_list, as two branches each on an index (the partial index of unconsumed
# changes; the few running or interrupted runs, then the changes' foreign-key index): asked on every sync's
# success, where the OR across the join would read the whole table, one row per sync a store has ever had.
_UNBUILT_SPAN_SQL = f"""
    select min(recorded_at), max(recorded_at), max(id) from (
        select recorded_at, id from {RawDataChange._meta.db_table} where consumed_by_run_id is null
        union all
        select c.recorded_at, c.id from {RawDataChange._meta.db_table} c
        join {DbtRun._meta.db_table} r on r.id = c.consumed_by_run_id
        where r.status = any(%(dead_or_running)s)
    ) unbuilt
"""  # noqa: S608 — the table names come from the models


@dataclass(frozen=True)
class DataAsOf:
    built_at: dt.datetime | None  # when the latest successful build that takes syncs in finished
    sources: dict[str, dt.datetime]  # {source: when its latest successful sync ended}


# Builds that take changes in: the coalesced ones and every plain `build`. Runs are created under the dbt lock,
# so ids follow their order: a successful build covers every change consumed by it or an earlier run. The
# sources are found by a loose index scan of (merchant, source, at), and each one's latest sync by one backward
# step of the same index: a handful of index probes however many syncs a store has had (one a source an hour).
_DATA_AS_OF_SQL = f"""
    with recursive last_build as (
        select id, finished_at from {DbtRun._meta.db_table}
        where status = %(success)s and (triggered_by = %(data_changed)s or command = 'build')
        order by id desc limit 1
    ), sources as (
        (select source from {RawDataChange._meta.db_table} where merchant_id = %(merchant)s order by source limit 1)
        union all
        select (
            select c.source from {RawDataChange._meta.db_table} c
            where c.merchant_id = %(merchant)s and c.source > s.source order by c.source limit 1
        ) from sources s where s.source is not null
    )
    select b.finished_at, s.source, latest.at
    from (select 1) one
    left join last_build b on true
    left join sources s on s.source is not null and (b.id is not null or not %(built_only)s)
    left join lateral (
        select c.at from {RawDataChange._meta.db_table} c
        where c.merchant_id = %(merchant)s and c.source = s.source
          and (not %(built_only)s or c.consumed_by_run_id <= b.id)
        order by c.at desc limit 1
    ) latest on true
"""  # noqa: S608 — the table names come from the models


def data_as_of_get(*, merchant: Merchant, built_only: bool = True) -> DataAsOf:
    """Per source, when its latest successful sync ended, and when the latest build taking syncs in finished.

    One statement. `built_only` (the default, what a dashboard should say): only the syncs a successful build
    has taken in, so the times name data the marts hold; False: the latest successful sync whether built yet
    or not. A source never synced (or, built only, never built) is absent. The caller has checked the
    membership.
    """
    params = {
        "success": DbtRunStatus.SUCCESS,
        "data_changed": DbtTrigger.DATA_CHANGED,
        "merchant": merchant.pk,
        "built_only": built_only,
    }
    with connections[router.db_for_read(RawDataChange)].cursor() as cursor:
        cursor.execute(_DATA_AS_OF_SQL, params)
        rows = cursor.fetchall()
    return DataAsOf(built_at=rows[0][0], sources={source: at for _, source, at in rows if at is not None})


# --- freshness of every store's connected sources -------------------------------------------------------------

# The sources the freshness check holds to a threshold: those whose event streams dbt's `source freshness` had one
# for (analytics_dbt/models/staging/_sources.yml: orders and customers, Meta insights, Google Ads campaign stats,
# Klaviyo events, Attentive SMS sends). Exchange rates had none (the rates of a quiet day are not late data).
FRESHNESS_SOURCES = ("shopify", "meta", "google_ads", "klaviyo", "attentive")


@dataclass(frozen=True)
class SourceFreshness:
    merchant_id: int
    merchant_key: str
    source: str
    connected_at: dt.datetime  # when the stalest connection of the source was made (its pipeline, its webhook)
    landed_at: dt.datetime | None  # when that connection's data last landed; None: not yet

    def status(self, *, now: dt.datetime, warn_after: dt.timedelta, error_after: dt.timedelta) -> str:
        """FreshnessStatus: by the age of the last landing, or, before the first one, of the connection (a store
        whose first sync is under way is not stale until that sync is overdue by the error threshold)."""
        age = now - (self.landed_at or self.connected_at)
        if age >= error_after:
            return FreshnessStatus.STALE
        if self.landed_at is None:
            return FreshnessStatus.AWAITING_FIRST_SYNC
        return FreshnessStatus.WARN if age >= warn_after else FreshnessStatus.FRESH


# One statement for every store. A "connection" is what lands a source's data: an active Airbyte pipeline of an
# active store (its credential still usable: one needing reconnecting was told so, and is not connected now), whose
# end of last successful sync ingestion records on the row (Pipeline.last_synced_at, set with the RawDataChange);
# or a usable Attentive credential with a live webhook, whose last landing is its latest RawDataChange (one index
# probe of (merchant, source, at)). A source with several connections (two Meta ad accounts) is as fresh as its
# stalest: one account that stopped syncing is missing data. Nothing reads a raw schema, and nothing is read per
# store: the pipelines' and webhooks' rows are a few per store, and the statement plans once.
_SOURCE_FRESHNESS_SQL = """
    with connections as (
        select p.merchant_id, coalesce(c.provider, p.kind) as source, p.created_at as connected_at,
               p.last_synced_at as landed_at
        from {pipeline} p
        left join {credential} c on c.id = p.credential_id
        where p.status = %(active)s and p.merchant_id is not null
          and (p.credential_id is null or c.status = any(%(usable)s))
        union all
        select c.merchant_id, c.provider, min(w.created_at),
               (select r.at from {change} r where r.merchant_id = c.merchant_id and r.source = c.provider
                order by r.at desc limit 1)
        from {credential} c
        join {webhook} w on w.credential_id = c.id and w.disabled_at is null
        where c.provider = %(attentive)s and c.status = any(%(usable)s)
        group by c.id, c.merchant_id, c.provider
    )
    select distinct on (k.merchant_id, k.source) k.merchant_id, m.key, k.source, k.connected_at, k.landed_at
    from connections k
    join {merchant} m on m.id = k.merchant_id and m.is_active
    where k.source = any(%(sources)s)
    order by k.merchant_id, k.source, coalesce(k.landed_at, k.connected_at), k.landed_at nulls first
"""


def source_freshness_list(*, sources: Iterable[str] = FRESHNESS_SOURCES) -> list[SourceFreshness]:
    """For every active store and every source it has connected, when that source's data last landed.

    One SQL statement whatever the number of stores (no per-store loop, no raw schema read). A source a store has
    not connected (no active pipeline, no live Attentive webhook) is absent: it can never be stale. Reads no lock:
    it runs while a dbt build holds the dbt lock.
    """
    from connectors.choices import USABLE_STATUSES, Provider
    from connectors.models import AttentiveWebhook, ConnectorCredential
    from ingestion.choices import PipelineStatus
    from ingestion.models import Pipeline

    sql = _SOURCE_FRESHNESS_SQL.format(
        pipeline=Pipeline._meta.db_table,
        credential=ConnectorCredential._meta.db_table,
        webhook=AttentiveWebhook._meta.db_table,
        change=RawDataChange._meta.db_table,
        merchant=Merchant._meta.db_table,
    )
    params = {
        "active": PipelineStatus.ACTIVE,
        "usable": list(USABLE_STATUSES),
        "attentive": Provider.ATTENTIVE,
        "sources": list(sources),
    }
    with connections[router.db_for_read(RawDataChange)].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        SourceFreshness(merchant_id=mid, merchant_key=key, source=source, connected_at=connected, landed_at=landed)
        for mid, key, source, connected, landed in rows
    ]


def data_as_of(*, merchant: Merchant, built_only: bool = True) -> dict[str, dt.datetime]:
    """{source: when its latest successful sync ended} for a store, from the raw-data changes (data_as_of_get)."""
    return data_as_of_get(merchant=merchant, built_only=built_only).sources


# Airbyte source names as they prefix the raw tables (RAW_TABLES), longest first so that prefixes nest safely.
RAW_SOURCES = ("facebook_marketing", "exchange_rates", "google_ads", "klaviyo", "attentive", "shopify", "web")


def raw_source_of_table(table: str) -> str:
    """The source a raw table belongs to, by prefix: `facebook_marketing_campaigns` -> `facebook_marketing`."""
    return next((src for src in RAW_SOURCES if table.startswith(src + "_")), table.split("_", 1)[0])


def raw_last_extracted_list(*, merchant: Merchant, sources: Iterable[str] | None = None) -> dict[str, dt.datetime]:
    """When data last landed per source: the latest `_airbyte_extracted_at` over the source's raw tables.

    Keyed by source name (`facebook_marketing`, `google_ads`, ...); a source whose tables are missing or
    empty is absent. A store whose raw schema was never created answers {} — never an error: this feeds a
    page that must render for a brand-new store. Only tables that exist and carry the column are read (a
    half-created schema, or a table Airbyte has not reached yet). `sources` limits the read to those sources'
    tables (the max is a scan: a year of web sessions costs more than every ad table together).
    """
    try:
        schema = raw_schema_name(merchant.key)
    except ValueError:
        return {}
    wanted = set(sources) if sources is not None else None
    candidates = [t for t in RAW_TABLES if wanted is None or raw_source_of_table(t) in wanted]
    if not candidates:
        return {}
    conn = connections["warehouse"]
    try:
        # A savepoint: a failed read (privileges) must not poison the request's transaction.
        with transaction.atomic(using="warehouse"), conn.cursor() as cursor:
            cursor.execute(
                "select table_name from information_schema.columns"
                " where table_schema = %s and column_name = '_airbyte_extracted_at' and table_name = any(%s)",
                [schema, candidates],
            )
            tables = sorted(row[0] for row in cursor.fetchall())
            if not tables:
                return {}
            qn = conn.ops.quote_name
            # Names from RAW_TABLES and a validated key, quoted: nothing from input reaches the SQL text.
            union = " union all ".join(
                f"select %s, max(_airbyte_extracted_at) from {qn(schema)}.{qn(table)}"  # noqa: S608
                for table in tables
            )
            cursor.execute(union, [raw_source_of_table(t) for t in tables])
            rows = cursor.fetchall()
    except DatabaseError:
        logger.warning("raw data freshness unreadable", extra={"merchant_id": merchant.pk}, exc_info=True)
        return {}
    latest: dict[str, dt.datetime] = {}
    for source, extracted_at in rows:
        if extracted_at is not None and (source not in latest or extracted_at > latest[source]):
            latest[source] = extracted_at
    return latest
