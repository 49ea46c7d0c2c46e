"""Reads the analytics pipeline needs from the app's own tables."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db import DatabaseError, connections, transaction
from django.db.models import Max, Q, QuerySet

from accounts.models import Merchant
from analytics.choices import DbtRunStatus, DbtTrigger
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


def _last_change_build_id() -> int | None:
    # Builds that take changes in: the coalesced ones and every plain `build`. Runs are created under the dbt
    # lock, so ids follow their order: a successful build covers every change consumed by it or an earlier run.
    return (
        DbtRun.objects.filter(status=DbtRunStatus.SUCCESS)
        .filter(Q(triggered_by=DbtTrigger.DATA_CHANGED) | Q(command="build"))
        .aggregate(last=Max("pk"))["last"]
    )


def data_as_of(*, merchant: Merchant, built_only: bool = True) -> dict[str, dt.datetime]:
    """{source: when its latest successful sync ended} for a store, from the raw-data changes.

    `built_only` (the default, what a dashboard should say): only the syncs a successful build has taken in,
    so the time names data the marts hold; False: the latest successful sync whether built yet or not. A
    source never synced is absent. The caller has checked the membership.
    """
    changes = RawDataChange.objects.filter(merchant=merchant)
    if built_only:
        last_build = _last_change_build_id()
        if last_build is None:
            return {}
        changes = changes.filter(consumed_by_run_id__lte=last_build)
    rows = changes.order_by().values("source").annotate(latest=Max("at")).values_list("source", "latest")
    return dict(rows)


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
