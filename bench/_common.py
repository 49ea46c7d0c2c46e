"""What every bench script needs: a database of its own on DATABASE_URL's server, percentiles, a free port.

Imported as `_common` (a bench script runs as `python bench/<name>.py`, so this folder is on sys.path).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import sys
from collections.abc import Iterator

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

# What every bench's Django process runs with: local settings, quiet logs, no HTTPS redirect, debug off.
DJANGO_ENV = {
    "DJANGO_DEV": "1", "DEBUG": "0", "SECURE_SSL_REDIRECT": "0", "LOG_LEVEL": "WARNING",
    "DJANGO_SETTINGS_MODULE": "config.settings", "DO_NOT_TRACK": "1",
}  # fmt: skip


def database_url(name: str) -> tuple[str, dict]:
    """The URL of database `name` on DATABASE_URL's server, and the connection parameters to create it with."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set")
    params = conninfo_to_dict(url)
    admin = {**params, "dbname": params.get("dbname") or "postgres"}
    user, host = params.get("user") or "postgres", params.get("host") or "127.0.0.1"
    password = f":{params['password']}" if params.get("password") else ""
    if host.startswith("/"):  # the embedded PostgreSQL of `make run`: a Unix socket directory
        return f"postgres://{user}{password}@/{name}?host={host}", admin
    return f"postgres://{user}{password}@{host}:{params.get('port') or 5432}/{name}", admin


@contextlib.contextmanager
def bench_database(prefix: str, *, reuse: str | None = None, keep: bool = False, **env: str) -> Iterator[str]:
    """A database of the bench's own, `<prefix>_<random>` (or `reuse`, one an earlier --keep run left), made this
    process's DATABASE_URL with DJANGO_ENV and `env`; dropped afterwards unless kept or reused. Yields its name."""
    name = reuse or f"{prefix}_{secrets.token_hex(4)}"
    url, admin = database_url(name)
    if not reuse:
        with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(DATABASE_URL=url, **DJANGO_ENV, **env)
    try:
        yield name
    finally:
        if "django.db" in sys.modules:  # its connections would keep the database from being dropped
            from django.db import connections

            connections.close_all()
        if not keep and not reuse:
            with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        elif keep:
            print(f"kept_database: {name}")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server() -> dict:
    """DATABASE_URL's server as connection parameters (its database too: `postgres` when it names none)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("DATABASE_URL is not set")
    p = conninfo_to_dict(url)
    return {
        "host": p.get("host") or "127.0.0.1",
        "port": int(p.get("port") or 5432),
        "user": p.get("user") or "postgres",
        "password": p.get("password") or "",
        "dbname": p.get("dbname") or "postgres",
    }


def connect(db: dict, **kw) -> psycopg.Connection:
    return psycopg.connect(
        host=db["host"], port=db["port"], user=db["user"], password=db["password"], dbname=db["dbname"], **kw
    )
