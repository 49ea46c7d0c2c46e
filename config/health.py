"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request):
    """The process is up and serving requests; says nothing about its dependencies."""
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_migrations() -> str | None:
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return f"migration state unknown: {type(exc).__name__}"
    if plan:
        return f"{len(plan)} migration(s) not applied"
    return None


def _check_broker() -> str | None:
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:
        return f"broker unreachable: {type(exc).__name__}"
    return None


@never_cache
@require_GET
def readyz(request):
    """Ready to take traffic: database reachable, migrations applied, broker reachable."""
    checks = {"database": _check_database(), "migrations": _check_migrations(), "broker": _check_broker()}
    failing = {name: problem for name, problem in checks.items() if problem}
    if failing:
        logger.warning("readiness check failed", extra={"failing": failing})
    body = {
        "status": "unavailable" if failing else "ok",
        "checks": {name: (problem or "ok") for name, problem in checks.items()},
    }
    if settings.DEBUG:
        body["broker"] = settings.CELERY_BROKER_URL.split("://", 1)[0]
    return JsonResponse(body, status=503 if failing else 200)
