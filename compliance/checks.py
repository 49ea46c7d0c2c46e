"""`manage.py check --deploy --database default`: the app's database role cannot rewrite the audit log.

A deploy check that needs the database, like Django's own database checks: it runs only when asked for
a database. Production enforces the same rule on every process's first connection (compliance/roles.py);
this check says so before a deploy.
"""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from compliance.roles import audit_role_problems

HINT = (
    "Set DATABASE_URL to a role that owns nothing and may only INSERT and SELECT compliance_auditevent, and "
    "DATABASE_OWNER_URL to the owner where migrate runs (README, Database roles)."
)


@checks.register(checks.Tags.database, deploy=True)
def audit_log_role_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases or DEFAULT_DB_ALIAS not in databases:
        return []
    try:
        problems = audit_role_problems(connections[DEFAULT_DB_ALIAS])
    except ImproperlyConfigured as exc:  # refused on connect, for the same reason this check exists
        problems = [str(exc)]
    except DatabaseError as exc:
        return [checks.Error(f"cannot check the database role: {exc}", id="compliance.E002")]
    return [checks.Error(problem, hint=HINT, id="compliance.E001") for problem in problems]


HOLD_DDL_GUARD_MISSING = (
    "the event triggers that stop the owner of a raw or landed table from switching the legal-hold guard off "
    "are not installed (migrate did not run as a superuser)"
)
HOLD_DDL_GUARD_HINT = (
    "Have the database administrator run the two CREATE EVENT TRIGGER statements of migration "
    "compliance/0004_hold_ddl_guard (docs/retention.md, 'Who can switch the guard off')."
)


@checks.register(checks.Tags.database, deploy=True)
def hold_ddl_guard_check(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    if not databases or DEFAULT_DB_ALIAS not in databases:
        return []
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_event_trigger WHERE evtenabled <> 'D'"
                " AND evtname IN ('compliance_hold_ddl_end', 'compliance_hold_ddl_drop')"
            )
            installed = cursor.fetchone()[0]
    except (DatabaseError, ImproperlyConfigured):
        return []  # audit_log_role_check reports why the database cannot be asked
    if installed == 2:
        return []
    return [checks.Warning(HOLD_DDL_GUARD_MISSING, hint=HOLD_DDL_GUARD_HINT, id="compliance.W003")]
