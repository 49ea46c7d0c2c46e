"""Scratch databases for the analytics (dbt) tests.

These tests never use Django's ``db`` fixture: each session-scoped fixture creates its own database
``analytics_test_<random>`` on the server named by ``DATABASE_URL`` (as ``DATABASE_OWNER_URL``'s role when
it is set) and drops it afterwards.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from analytics.dbt_runner import PROJECT_DIR


def server_params() -> dict:
    # Creating databases is the owner's business; the app's role (DATABASE_URL under `make test`) may not.
    url = os.environ.get("DATABASE_OWNER_URL") or os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set: `make test` sets it (embedded PostgreSQL) or use your own server")
    params = conninfo_to_dict(url)  # libpq understands both postgres://u@h:p/db and postgres://u@/db?host=/dir
    return {
        "host": params.get("host") or "127.0.0.1",
        "port": int(params.get("port") or 5432),
        "user": params.get("user") or "postgres",
        "password": params.get("password") or "",
        "dbname": params.get("dbname") or "postgres",
    }


def connect(db: dict, **kwargs) -> psycopg.Connection:
    return psycopg.connect(
        host=db["host"],
        port=db["port"],
        user=db["user"],
        password=db["password"],
        dbname=db["dbname"],
        **kwargs,
    )


@pytest.fixture(scope="session")
def scratch_db_factory() -> Iterator:
    """Call it to get a fresh database (as a dbt_invoke ``db`` dict); all are dropped at session end."""
    server = server_params()
    created: list[str] = []

    def make() -> dict:
        name = f"analytics_test_{secrets.token_hex(4)}"
        with connect(server, autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        created.append(name)
        return {**server, "dbname": name}

    yield make
    with connect(server, autocommit=True) as conn:
        for name in created:
            conn.execute(f'drop database if exists "{name}" with (force)')
            shutil.rmtree(PROJECT_DIR / "target" / name, ignore_errors=True)  # dbt_invoke's per-database target
