"""What every bench script needs: a database of its own on DATABASE_URL's server, percentiles, a free port.

Imported as `_common` (a bench script runs as `python bench/<name>.py`, so this folder is on sys.path).
"""

from __future__ import annotations

import os
import socket
import sys

import psycopg
from psycopg.conninfo import conninfo_to_dict


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
