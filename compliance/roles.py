"""The two database roles that keep the audit log append-only against the application itself.

The trigger on `compliance_auditevent` (migration 0002) refuses UPDATE and DELETE, but the table's
owner can still TRUNCATE it, `ALTER TABLE … DISABLE TRIGGER` or drop it, and a superuser can also
`SET session_replication_role = replica`, which turns triggers off. So the app never connects as either:

- `DATABASE_URL` is the app's role: web, worker, beat, dbt and every management command use it. It owns
  nothing in Django's schema and may only INSERT and SELECT the audit log.
- `DATABASE_OWNER_URL` is the role that owns the schema. Only `migrate`, `createcachetable` and `flush`
  connect as it (`connected_as_owner`, used by this app's overrides of those commands); after every
  `migrate` it grants the app role what it needs (`app_role_privileges_grant`).

Signals are the hook here on purpose (the house rule "no logic in signals" bends): `post_migrate` is the
one moment every migration run passes through, and `connection_created` the one every process does.
"""

from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Iterator

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, router
from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger(__name__)

AUDIT_TABLE = "compliance_auditevent"
# What a DATABASE_URL contributes to a connection besides the database name.
CREDENTIAL_KEYS = ("HOST", "PORT", "USER", "PASSWORD", "OPTIONS")

OWNER_REQUIRED = (
    "migrate connects as the role that owns the schema: set DATABASE_OWNER_URL (the same database as "
    "DATABASE_URL, as its owner). DATABASE_URL is the app's role, which must not own the tables."
)
APP_ROLE_MISSING = (
    "the app's database role {role!r} (the user of DATABASE_URL) does not exist: create it "
    "(CREATE ROLE {role} LOGIN PASSWORD '…') and run migrate again"
)
SUPERUSER = "the database role {role!r} is a superuser, which can turn the audit log's trigger off"
OWNS_TABLE = (
    "the database role {role!r} owns {table} (or may act as its owner {owner!r}), "
    "so it can truncate it or disable its trigger"
)
OWNS_SCHEMA = (
    "the database role {role!r} owns the schema {schema!r} of {table} (or may act as its owner), so it can drop it"
)
EXTRA_PRIVILEGES = "the database role {role!r} may {privileges} {table}; the app's role needs INSERT and SELECT only"
REPLICATION_ROLE = (
    "the database role {role!r} may set session_replication_role, which turns the audit log's trigger off"
)
REFUSED = "refusing to use the database: {problems}. Connect as the app's own role (README, Database roles)."

# Privileges on the audit table that let a role rewrite or destroy it; INSERT, SELECT and REFERENCES do not.
_DANGEROUS_PRIVILEGES = ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER")

_owner_sessions: weakref.WeakSet[BaseDatabaseWrapper] = weakref.WeakSet()
_checked: set[tuple] = set()


def _owner_settings() -> dict | None:
    return getattr(settings, "DATABASE_OWNER", None) or None


def connection_credentials(db: dict) -> dict:
    """The parts of a DATABASES entry that say who connects and where, not to which database."""
    return {key: db.get(key) or ({} if key == "OPTIONS" else "") for key in CREDENTIAL_KEYS}


@contextlib.contextmanager
def connected_as_owner(using: str = DEFAULT_DB_ALIAS) -> Iterator[BaseDatabaseWrapper]:
    """Run the block with `using` connected as DATABASE_OWNER (same database, the owner's credentials).

    Without DATABASE_OWNER_URL (one role for everything, local development only) the connection is left as
    it is. Only this thread's connection changes: other threads keep connecting as the app.
    """
    connection = connections[using]
    owner = _owner_settings()
    if using != DEFAULT_DB_ALIAS or owner is None:
        yield connection
        return
    if connection.in_atomic_block:
        raise RuntimeError("cannot switch to the owner's database role inside a transaction")
    original = connection.settings_dict
    connection.close()
    connection.settings_dict = {**original, **connection_credentials(owner)}
    _owner_sessions.add(connection)
    try:
        yield connection
    finally:
        connection.close()
        connection.settings_dict = original
        _owner_sessions.discard(connection)


# --- privileges, granted by the owner after every migrate ------------------------------------------------


def app_role_privileges_grant(*, using: str = DEFAULT_DB_ALIAS, **kwargs) -> None:
    """Grant the app role (settings.DATABASE_APP_ROLE) what it needs on everything `migrate` made, and no
    more than INSERT and SELECT on the audit log. Idempotent; a post_migrate receiver, so it runs as the
    owner after every `migrate` (and `flush`), whatever the order in which apps' migrations ran.

    Default privileges cover tables the owner creates later (a later migration, `createcachetable`) from
    the moment they exist, not only after the next migrate.
    """
    from compliance.models import AuditEvent

    if not router.allow_migrate_model(using, AuditEvent):
        return
    app_role = getattr(settings, "DATABASE_APP_ROLE", "")
    connection = connections[using]
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, current_schema(), to_regclass(%s) IS NOT NULL, pg_get_serial_sequence(%s, 'id'),"
            " EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)",
            [AUDIT_TABLE, AUDIT_TABLE, app_role],
        )
        current, schema, has_audit_table, audit_sequence, app_role_exists = cursor.fetchone()
        if not app_role or app_role == current or not has_audit_table:
            return  # one role for everything (a throwaway local database), or nothing migrated yet
        if not app_role_exists:
            raise ImproperlyConfigured(APP_ROLE_MISSING.format(role=app_role))
        role, schema = quote(app_role), quote(schema)
        statements = [
            f"GRANT USAGE ON SCHEMA {schema} TO {role}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}",
            f"GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO {role}",
            # Append-only: read and add, nothing else — above all not TRUNCATE, which skips the trigger.
            f"REVOKE ALL ON {quote(AUDIT_TABLE)} FROM PUBLIC, {role}",
            f"GRANT SELECT, INSERT ON {quote(AUDIT_TABLE)} TO {role}",
        ]
        if audit_sequence:  # the id's identity sequence: nextval for inserts, never setval
            statements += [
                f"REVOKE ALL ON SEQUENCE {audit_sequence} FROM PUBLIC, {role}",
                f"GRANT USAGE, SELECT ON SEQUENCE {audit_sequence} TO {role}",
            ]
        for statement in statements:
            cursor.execute(statement)


# --- what the app's role must not be able to do ------------------------------------------------------------


def audit_role_problems(connection: BaseDatabaseWrapper) -> list[str]:
    """Why the role `connection` is logged in as could rewrite or destroy the audit log (empty: it cannot).

    A superuser can do everything; otherwise each way is named: owning the table or its schema (or being
    able to act as their owner), a privilege beyond INSERT and SELECT, the right to set
    session_replication_role. A database without the audit table (not migrated yet, a separate warehouse)
    is judged on the superuser question alone.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT r.rolname, r.rolsuper, t.oid IS NOT NULL,
                   t.oid IS NOT NULL AND pg_has_role(r.oid, t.relowner, 'MEMBER'), pg_get_userbyid(t.relowner),
                   t.oid IS NOT NULL AND pg_has_role(r.oid, n.nspowner, 'MEMBER'), n.nspname
            FROM pg_roles r
            LEFT JOIN pg_class t ON t.oid = to_regclass(%s)
            LEFT JOIN pg_namespace n ON n.oid = t.relnamespace
            WHERE r.rolname = current_user
            """,
            [AUDIT_TABLE],
        )
        role, superuser, has_table, owns_table, owner, owns_schema, schema = cursor.fetchone()
        if superuser:
            return [SUPERUSER.format(role=role)]
        problems = []
        if has_table:
            if owns_table:
                problems.append(OWNS_TABLE.format(role=role, table=AUDIT_TABLE, owner=owner))
            if owns_schema:
                problems.append(OWNS_SCHEMA.format(role=role, schema=schema, table=AUDIT_TABLE))
            cursor.execute(
                "SELECT p FROM unnest(%s::text[]) AS p WHERE has_table_privilege(current_user, %s::regclass, p)",
                [list(_DANGEROUS_PRIVILEGES), AUDIT_TABLE],
            )
            granted = [row[0] for row in cursor.fetchall()]
            if granted and not owns_table:
                problems.append(EXTRA_PRIVILEGES.format(role=role, privileges=", ".join(granted), table=AUDIT_TABLE))
        # Before PostgreSQL 15 only superusers may set it; since then it can be granted (GRANT SET ON PARAMETER).
        if connection.pg_version >= 150000:
            cursor.execute("SELECT has_parameter_privilege(current_user, 'session_replication_role', 'SET')")
            if cursor.fetchone()[0]:
                problems.append(REPLICATION_ROLE.format(role=role))
        return problems


def refuse_privileged_role(sender, connection: BaseDatabaseWrapper, **kwargs) -> None:
    """connection_created receiver: in production (settings.DATABASE_REFUSE_PRIVILEGED_ROLE) a process whose
    role could rewrite the audit log gets no database at all — every query raises ImproperlyConfigured with
    one clear line (logged as well), so /readyz fails and nothing is served. Checked once per process and
    database; the owner's own sessions (migrate, flush) are exempt."""
    if not getattr(settings, "DATABASE_REFUSE_PRIVILEGED_ROLE", False) or connection in _owner_sessions:
        return
    params = connection.settings_dict
    key = (connection.alias, params.get("NAME"), params.get("USER"), params.get("HOST"), params.get("PORT"))
    if key in _checked:
        return
    problems = audit_role_problems(connection)
    if not problems:
        _checked.add(key)
        return
    message = REFUSED.format(problems="; ".join(problems))
    logger.critical(message)
    # Closed before raising: otherwise Django would reuse this connection on the next query, unchecked.
    connection.close()
    raise ImproperlyConfigured(message)
