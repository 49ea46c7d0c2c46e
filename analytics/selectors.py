"""Reads the analytics pipeline needs from the app's own tables."""

from __future__ import annotations

from django.db import connections
from django.db.models import QuerySet

from accounts.models import Merchant
from analytics.models import DbtRun


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
