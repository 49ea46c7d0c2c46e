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


def _split_vars(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """An operator's own `--vars '{...}'` (e.g. `run_dbt source freshness --vars '{"freshness_merchant_key": "x"}'`),
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


def dbt_invoke(args: list[str], *, merchants: list[dict], db: dict, vars: dict | None = None) -> DbtResult:
    """Run ``dbt <args>`` against ``db`` for the given active merchants.

    ``merchants``: ``[{"id": int, "key": str, "timezone": IANA name, "currency": ISO 4217}]``.
    ``db``: ``{"host", "port", "user", "password", "dbname"}``.
    Every command is one dbt invocation. ``source freshness`` checks the sources as analytics_dbt declares them
    (an operator's look, by hand: the hourly 48-hour alerts come from analytics.services.data_freshness_check,
    which reads what ingestion records instead of every store's raw tables).
    """
    env = _env(db)
    args, given = _split_vars(list(args))
    base_vars = {**given, **(vars or {}), "merchants": merchants}
    with _LOCK:
        ok, res, error = _invoke(args, env, base_vars)
        return DbtResult(success=ok, args=list(args), results=_node_results(res), error=error)
