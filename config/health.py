"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from config import boot

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
    except ImproperlyConfigured as exc:
        # The database answered, and this process refuses it (compliance/roles.py: a role that could rewrite the
        # audit log). Its message is one line naming the role's problems, no credentials.
        return f"database refused: {exc}"
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_migrations() -> str | None:
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except ImproperlyConfigured:
        return "migration state unknown: the database is refused (see database)"
    except Exception as exc:
        return f"migration state unknown: {type(exc).__name__}"
    if plan:
        return f"{len(plan)} migration(s) not applied"
    return None


def _check_sign_in() -> str | None:
    """Session tokens can be verified: the settings the boot checks, as this process holds them now."""
    problem = boot.clerk_jwt_key_problem(settings.CLERK_JWT_KEY)
    if problem is None and not settings.CLERK_AUTHORIZED_PARTIES:
        problem = "CLERK_AUTHORIZED_PARTIES is empty"
    return f"sign-in unavailable: {problem}" if problem else None


def _check_encryption() -> str | None:
    """Connector secrets can be encrypted and decrypted (FIELD_ENCRYPTION_KEYS)."""
    from connectors.crypto import EncryptionConfigError, keyring

    try:
        keyring()
    except EncryptionConfigError as exc:
        return f"encryption unavailable: {exc}"
    return None


def _limitations() -> dict[str, str]:
    """What the app cannot do with its settings, without being unready: each feature answers its own error."""
    limits = {}
    if not settings.CLERK_SECRET_KEY:
        limits["clerk_api"] = "CLERK_SECRET_KEY is not set: members' email addresses cannot be looked up, so no email"
    if not settings.CLERK_WEBHOOK_SECRET:
        limits["clerk_webhooks"] = "CLERK_WEBHOOK_SECRET is not set: /webhooks/clerk/ answers 503"
    if not (settings.META_APP_ID and settings.META_APP_SECRET):
        limits["meta_connect"] = "META_APP_ID or META_APP_SECRET is not set: Meta cannot be connected or refreshed"
    if not (settings.GOOGLE_OAUTH_CLIENT_ID and settings.GOOGLE_OAUTH_CLIENT_SECRET):
        limits["google_connect"] = (
            "GOOGLE_OAUTH_CLIENT_ID or GOOGLE_OAUTH_CLIENT_SECRET is not set: Google cannot be connected or refreshed"
        )
    return limits


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
    """Ready to take traffic: database reachable (and not refused), migrations applied, broker reachable,
    session tokens verifiable and secrets decryptable. `limited` lists what the app cannot do but that leaves
    it ready (a provider without app credentials)."""
    checks = {
        "database": _check_database(),
        "migrations": _check_migrations(),
        "broker": _check_broker(),
        "sign_in": _check_sign_in(),
        "encryption": _check_encryption(),
    }
    failing = {name: problem for name, problem in checks.items() if problem}
    if failing:
        logger.warning("readiness check failed", extra={"failing": failing})
    body = {
        "status": "unavailable" if failing else "ok",
        "checks": {name: (problem or "ok") for name, problem in checks.items()},
        "limited": _limitations(),
    }
    if settings.DEBUG:
        body["broker"] = settings.CELERY_BROKER_URL.split("://", 1)[0]
    return JsonResponse(body, status=503 if failing else 200)
