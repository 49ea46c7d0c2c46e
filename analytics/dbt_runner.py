"""Run the analytics dbt project in-process (``dbt.cli.main.dbtRunner``).

dbtRunner is not re-entrant and dbt reads its settings from process-wide environment variables, so runs
are serialised with a module lock: one dbt run at a time per process. ``target/`` and ``logs/`` stay in
``analytics_dbt/`` (git-ignored).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from analytics.raw_schema import RAW_TABLES, raw_schema_name

PROJECT_DIR = Path(__file__).resolve().parent.parent / "analytics_dbt"
_LOCK = threading.Lock()


@dataclass
class DbtNodeResult:
    unique_id: str
    status: str
    message: str | None
    execution_time: float
    merchant_key: str | None = None  # set for `source freshness` results (one run per merchant)
    max_loaded_at: dt.datetime | None = None
    snapshotted_at: dt.datetime | None = None
    age_seconds: float | None = None


@dataclass
class DbtResult:
    success: bool
    args: list[str]
    results: list[DbtNodeResult] = field(default_factory=list)
    error: str | None = None

    @property
    def freshness(self) -> list[DbtNodeResult]:
        return [r for r in self.results if r.unique_id.startswith("source.")]


def _env(db: dict[str, Any]) -> dict[str, str]:
    # One target dir per database: concurrent runs against different databases (tests, the app) must not
    # overwrite each other's manifest and compiled SQL; it is still inside analytics_dbt/target.
    return {
        "DBT_PG_HOST": str(db["host"]),
        "DBT_PG_PORT": str(db.get("port") or 5432),
        "DBT_PG_USER": str(db["user"]),
        "DBT_PG_PASSWORD": str(db.get("password") or ""),
        "DBT_PG_DBNAME": str(db["dbname"]),
        "DO_NOT_TRACK": "1",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_TARGET_PATH": str(PROJECT_DIR / "target" / re.sub(r"[^A-Za-z0-9_.-]", "_", str(db["dbname"]))),
        "DBT_LOG_PATH": str(PROJECT_DIR / "logs"),
    }


def _node_results(res: Any, merchant_key: str | None = None) -> list[DbtNodeResult]:
    out = []
    for r in getattr(getattr(res, "result", None), "results", None) or []:
        node = getattr(r, "node", None)
        age = getattr(r, "age", None)
        out.append(
            DbtNodeResult(
                unique_id=getattr(node, "unique_id", "") or getattr(r, "unique_id", ""),
                status=str(getattr(r.status, "value", r.status)),
                message=getattr(r, "message", None),
                execution_time=float(getattr(r, "execution_time", 0.0) or 0.0),
                merchant_key=merchant_key,
                max_loaded_at=getattr(r, "max_loaded_at", None),
                snapshotted_at=getattr(r, "snapshotted_at", None),
                age_seconds=float(age) if age is not None else None,
            )
        )
    return out


def _invoke(args: list[str], env: dict[str, str], variables: dict[str, Any]) -> tuple[bool, list, str | None]:
    from dbt.cli.main import dbtRunner  # imported lazily: dbt is heavy and only needed here

    full = [
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
        "--vars",
        json.dumps(variables),
    ]
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        res = dbtRunner().invoke(full)
    finally:
        # dbt keeps its adapter's connections open in the process; a long-lived worker (and a test
        # database that must be dropped afterwards) should not hold sessions between runs.
        from dbt.adapters.factory import reset_adapters

        reset_adapters()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    error = str(res.exception) if res.exception is not None else None
    return bool(res.success), res, error


def _raw_tables_present(db: dict, merchant_keys: list[str]) -> dict[str, set[str]]:
    """{merchant key: raw tables its schema holds}, from the catalog (no privilege on the schemas needed)."""
    if not merchant_keys:
        return {}
    import psycopg

    schemas = {raw_schema_name(k): k for k in merchant_keys}
    with psycopg.connect(
        host=db["host"], port=db.get("port") or 5432, user=db["user"], password=db.get("password") or "",
        dbname=db["dbname"], autocommit=True,
    ) as conn:  # fmt: skip
        rows = conn.execute(
            "select n.nspname, c.relname from pg_catalog.pg_class c"
            " join pg_catalog.pg_namespace n on n.oid = c.relnamespace"
            " where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm', 'f')",
            [list(schemas)],
        ).fetchall()
    present: dict[str, set[str]] = {}
    for schema, table in rows:
        present.setdefault(schemas[schema], set()).add(table)
    return present


def dbt_invoke(args: list[str], *, merchants: list[dict], db: dict, vars: dict | None = None) -> DbtResult:
    """Run ``dbt <args>`` against ``db`` for the given active merchants.

    ``merchants``: ``[{"id": int, "key": str, "timezone": IANA name, "currency": ISO 4217}]``.
    ``db``: ``{"host", "port", "user", "password", "dbname"}``.
    ``source freshness`` is run once per merchant (each has its own raw schema), over the raw tables that
    merchant's schema holds; the results carry ``merchant_key``, ``max_loaded_at`` and the status (pass / warn
    / error / runtime error).
    """
    env = _env(db)
    base_vars = {**(vars or {}), "merchants": merchants}
    with _LOCK:
        if args[:2] == ["source", "freshness"]:
            result = DbtResult(success=True, args=list(args))
            present = _raw_tables_present(db, [m["key"] for m in merchants])
            for m in merchants:
                # A table the store has not landed yet (just installed, or that connector not connected) has
                # no freshness to check: it is left out, as staging reads it as empty (macros/raw_union.sql).
                missing = sorted(set(RAW_TABLES) - present.get(m["key"], set()))
                if len(missing) == len(RAW_TABLES):
                    continue
                exclude = ["--exclude", *(f"source:raw.{t}" for t in missing)] if missing else []
                ok, res, error = _invoke([*args, *exclude], env, {**base_vars, "freshness_merchant_key": m["key"]})
                result.results.extend(_node_results(res, merchant_key=m["key"]))
                result.success = result.success and ok
                result.error = result.error or error
            return result
        ok, res, error = _invoke(args, env, base_vars)
        return DbtResult(success=ok, args=list(args), results=_node_results(res), error=error)
