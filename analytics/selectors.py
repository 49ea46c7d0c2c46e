"""Reads the analytics pipeline needs from the app's own tables."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable

from django.db import DatabaseError, connections, transaction
from django.db.models import QuerySet

from accounts.models import Merchant
from analytics.models import DbtRun
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
