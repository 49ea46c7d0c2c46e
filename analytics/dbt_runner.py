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
import time
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
    max_loaded_at: dt.datetime | None = None
    snapshotted_at: dt.datetime | None = None
    age_seconds: float | None = None


@dataclass
class DbtResult:
    success: bool
    args: list[str]
    results: list[DbtNodeResult] = field(default_factory=list)
    error: str | None = None
    load_seconds: float = 0.0  # the load step before it (analytics/landing.py)
    loaded_rows: int = 0

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


def _node_results(res: Any) -> list[DbtNodeResult]:
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


# dbt commands that build from the landed tables: the new raw rows are loaded first (analytics/landing.py).
_LOADING_COMMANDS = {"build", "run", "seed", "snapshot"}


def _connect(db: dict):
    import psycopg

    return psycopg.connect(
        host=db["host"], port=db.get("port") or 5432, user=db["user"], password=db.get("password") or "",
        dbname=db["dbname"],
    )  # fmt: skip


def _split_vars(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """An operator's own `--vars '{...}'` (e.g. `run_dbt build --vars '{"meta_restatement_days": 7}'`),
    merged into the ones the app passes rather than overridden by them: dbt reads only the last `--vars`."""
    if "--vars" not in args:
        return args, {}
    i = args.index("--vars")
    if i + 1 >= len(args):
        return args, {}  # dbt itself says what is missing
    try:
        given = json.loads(args[i + 1])
    except ValueError:
        return args, {}  # dbt reads YAML too; left to it, then ours (last) wins
    if not isinstance(given, dict):
        return args, {}
    return [*args[:i], *args[i + 2 :]], given


def _incremental_inputs(res: Any) -> list[tuple[str, list[str]]]:
    """(model, the names of its inputs) for every incremental model that succeeded, in run order."""
    out = []
    for r in getattr(getattr(res, "result", None), "results", None) or []:
        node = getattr(r, "node", None)
        status = str(getattr(r.status, "value", r.status))
        if node is None or getattr(node, "resource_type", None) != "model" or status != "success":
            continue
        if getattr(node.config, "materialized", None) != "incremental":
            continue
        inputs = [uid.rsplit(".", 1)[-1] for uid in node.depends_on.nodes if uid.split(".")[0] in ("model", "source")]
        out.append((node.name, inputs))
    return out


def dbt_invoke(
    args: list[str],
    *,
    merchants: list[dict],
    db: dict,
    vars: dict | None = None,
    load_scope: dict[int, list[str] | None] | None = None,
) -> DbtResult:
    """Run ``dbt <args>`` against ``db`` for the given active merchants.

    ``merchants``: ``[{"id": int, "key": str, "timezone": IANA name, "currency": ISO 4217}]``.
    ``db``: ``{"host", "port", "user", "password", "dbname"}``.
    A command that builds (``build``, ``run``) first loads the stores' new raw rows into the landed tables —
    ``load_scope`` {merchant id: raw tables, or None for all} names the stores that changed; None loads every
    store — and afterwards records what each incremental model read (``analytics.landing``). A store's table
    that could not be loaded is reported as a failed node ``load.<raw schema>.<table>`` and the build goes on.
    ``source freshness`` loads too, then checks each landed table once for all stores (per store, see the
    freshness check); its results carry ``max_loaded_at`` and the status. An operator's look, by hand: the
    hourly 48-hour alerts come from analytics.services.data_freshness_check, which reads what ingestion records.
    """
    from analytics import landing

    env = _env(db)
    args, given = _split_vars(list(args))
    base_vars = {**given, **(vars or {}), "merchants": merchants}
    with _LOCK:
        loads = bool(args) and (args[0] in _LOADING_COMMANDS or args[:2] == ["source", "freshness"])
        with _connect(db) as conn:
            if loads and not landing.landed_schema_exists(conn) and args[0] in _LOADING_COMMANDS:
                # The first build with a landed layer (a new database, or one upgraded from reading the raw
                # schemas directly): everything is loaded, and every incremental model rebuilt from it.
                load_scope = None
                args = [*args, "--full-refresh"] if "--full-refresh" not in args else args
            if loads:
                load_started = time.perf_counter()
                loaded = landing.raw_load(conn, merchants=merchants, scope=load_scope)
                load_seconds = time.perf_counter() - load_started
                # (Not a var: dbt parses the whole project again whenever its vars change. The models read the
                # high-water mark from the ledger, which no load changes while they run.)
                if args[:2] == ["source", "freshness"]:
                    # A table no store has landed anything in (no store connected that source) has no freshness.
                    empty = sorted(set(RAW_TABLES) - landing.landed_tables_with_rows(conn))
                    args = [*args, "--exclude", *(f"source:raw.{t}" for t in empty)] if empty else args
            else:
                landing.landed_schema_ensure(conn)
        ok, res, error = _invoke(args, env, base_vars)
        result = DbtResult(success=ok, args=list(args), results=_node_results(res), error=error)
        if loads:
            result.load_seconds, result.loaded_rows = round(load_seconds, 3), sum(loaded.rows.values())
            with _connect(db) as conn:
                landing.watermarks_record(conn, models=_incremental_inputs(res), landed_through=loaded.landed_through)
            result.results[:0] = [
                DbtNodeResult(
                    unique_id=f"load.{raw_schema_name(f['merchant_key'])}.{f['table']}",
                    status="error",
                    message=f["message"],
                    execution_time=0.0,
                )
                for f in loaded.failures
            ]
            result.success = result.success and not loaded.failures
        return result
