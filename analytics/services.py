"""Running dbt for the app: one run at a time across all processes, every run recorded."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Iterator

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Merchant
from analytics import dbt_runner
from analytics.choices import DbtRunStatus, DbtTrigger
from analytics.models import DbtRun
from analytics.selectors import dbt_merchant_list, warehouse_connection_params
from config.logging import redact

logger = logging.getLogger(__name__)

# Session-level PostgreSQL advisory lock: held by the process running dbt, released when it ends —
# also when it dies, because the lock goes with its database session.
DBT_LOCK_KEY = 0x64627472  # "dbtr"

# A selector that matches nothing is almost always a typo in a cron line: make dbt fail instead of
# reporting "nothing to do" as a success.
STRICT_SELECTION = ["--warn-error-options", '{"error": ["NoNodesForSelectionCriteria"]}']

FAILED_NODE_STATUSES = {"error", "fail", "runtime error"}
FRESHNESS_ERROR_STATUSES = {"error", "runtime error"}


class DbtRunLocked(Exception):
    """Another dbt run holds the lock; this one did not start."""

    def __init__(self, running: DbtRun | None) -> None:
        self.running = running
        detail = f" (run #{running.pk}, `{running.command}`, since {running.started_at:%H:%M:%S})" if running else ""
        super().__init__(f"another dbt run is in progress{detail}; not starting a second one")


@contextlib.contextmanager
def _dbt_lock() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [DBT_LOCK_KEY])
        acquired = cursor.fetchone()[0]
    if not acquired:
        raise DbtRunLocked(DbtRun.objects.filter(status=DbtRunStatus.RUNNING).first())
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [DBT_LOCK_KEY])


def _summarise(run: DbtRun, result: dbt_runner.DbtResult) -> None:
    run.node_counts = dict(Counter(r.status for r in result.results))
    run.failures = [
        {"unique_id": r.unique_id, "status": r.status, "message": (r.message or "")[:2000]}
        for r in result.results
        if r.status in FAILED_NODE_STATUSES and not r.unique_id.startswith("source.")
    ]
    run.freshness = [
        {
            "source": r.unique_id,
            "merchant_key": r.merchant_key,
            "max_loaded_at": r.max_loaded_at.isoformat() if r.max_loaded_at else None,
            "age_seconds": r.age_seconds,
            "status": r.status,
        }
        for r in result.freshness
    ]


def merchant_demo_data_generate(conn, *, merchant: Merchant, **options) -> dict[str, int]:
    """Write synthetic raw data for `merchant` (its key, shop domain, timezone and currency); `options` go
    to `analytics.demo_data.generate_demo_data` (days, orders_per_day, seed, end_date, progress)."""
    from analytics.demo_data import generate_demo_data

    return generate_demo_data(
        conn,
        merchant_key=merchant.key,
        shop_domain=merchant.shop_domain,
        timezone=merchant.timezone,
        currency=merchant.currency,
        **options,
    )


def dbt_run_execute(*, args: list[str], triggered_by: str = DbtTrigger.COMMAND) -> DbtRun:
    """Run `dbt <args>` for the active merchants and record it. Raises DbtRunLocked if one is running.

    The DbtRun row is committed before dbt starts (so admin shows the run while it runs) and updated
    when it ends; an exception inside dbt is recorded as status `error`, never lost.
    """
    if not args:
        raise ValueError("dbt needs a command, e.g. `build` or `source freshness`")
    with _dbt_lock():
        merchants = dbt_merchant_list()
        run = DbtRun.objects.create(
            command=" ".join(args),
            args=list(args),
            triggered_by=triggered_by,
            started_at=timezone.now(),
            merchant_ids=[m["id"] for m in merchants],
        )
        dbt_runs_interrupted_reap(by=run)
        started = time.monotonic()
        try:
            dbt_args = list(args) if "--warn-error-options" in args else [*args, *STRICT_SELECTION]
            result = dbt_runner.dbt_invoke(dbt_args, merchants=merchants, db=warehouse_connection_params())
        except Exception as exc:  # dbt crashed: record it, then let the caller see it too
            run.status = DbtRunStatus.ERROR
            run.error = f"{type(exc).__name__}: {exc}"[:5000]
            _finish(run, started)
            raise
        _summarise(run, result)
        if result.success and not any(f["status"] in FRESHNESS_ERROR_STATUSES for f in run.freshness):
            run.status = DbtRunStatus.SUCCESS
        elif result.results:
            run.status = DbtRunStatus.FAILED
        else:
            # dbt stopped before running a node: bad selector, unparsable project, unreachable database.
            run.status = DbtRunStatus.ERROR
        run.error = (result.error or "")[:5000]
        _finish(run, started)
    if run.status != DbtRunStatus.SUCCESS:
        _alert(run)
    return run


INTERRUPTED_REASON = (
    "interrupted: the process running it ended before it recorded how the run ended (killed, out of memory, "
    "a deploy); found by run #{by} at {at}. Its changes may be partly applied: the next build picks them up."
)


def dbt_runs_interrupted_reap(*, by: DbtRun) -> list[DbtRun]:
    """Mark every other run still `running` as `interrupted`, record it, and tell staff once per run.

    Called by a run that holds the dbt lock: the lock is a session-level advisory lock that goes with the
    session of the process holding it, so while `by` holds it no other run can be alive. A row still
    `running` is one whose process died before `_finish` (SIGKILL, OOM, a host lost); without this it stays
    `running` forever and that night's build is skipped without anyone hearing of it.
    """
    from compliance.services import Actor, audit_event_record
    from notifications.choices import NotificationKind
    from notifications.services import staff_notify

    now = timezone.now()
    reaped = []
    with transaction.atomic():
        stale = list(DbtRun.objects.select_for_update().filter(status=DbtRunStatus.RUNNING).exclude(pk=by.pk))
        for run in stale:
            run.status = DbtRunStatus.INTERRUPTED
            run.finished_at = now
            run.error = INTERRUPTED_REASON.format(by=by.pk, at=now.isoformat(timespec="seconds"))
            run.save(update_fields=["status", "finished_at", "error"])
            audit_event_record(
                action="dbt_run.interrupted",
                actor=Actor.system("run_dbt"),
                target_type="analytics.dbtrun",
                target_id=run.pk,
                metadata={"command": run.command, "started_at": run.started_at.isoformat(), "found_by_run": by.pk},
            )
            staff_notify(
                kind=NotificationKind.DBT_RUN_FAILED,
                context={
                    "dbt_run_id": run.pk,
                    "command": run.command,
                    "status": run.status,
                    "failed_nodes": [],
                    "stale_sources": [],
                    "error": run.error,
                },
                dedupe_key=f"dbt_run_interrupted:{run.pk}",
            )
            logger.error(
                "dbt run interrupted",
                extra={"dbt_run": run.pk, "command": run.command, "found_by_run": by.pk},
            )
            reaped.append(run)
    return reaped


def _finish(run: DbtRun, started: float) -> None:
    run.finished_at = timezone.now()
    run.duration_seconds = round(time.monotonic() - started, 3)
    run.save()
    log = logger.info if run.status == DbtRunStatus.SUCCESS else logger.error
    log(
        "dbt run finished",
        extra={"dbt_run": run.pk, "command": run.command, "status": run.status, "seconds": run.duration_seconds},
    )


# A merchant's raw schema named in a failure's message (relation and permission errors, and raw_union's
# "raw table raw_<key>.<table> lacks the columns ..."): the failure concerns that store.
_RAW_SCHEMA_RE = re.compile(r"\braw_([a-z][a-z0-9_]{0,50})\b")


def _affected_merchants(run: DbtRun) -> list[Merchant]:
    """The stores a failed run concerns, whose owners and admins are told.

    Freshness errors concern the stores whose sources are stale. A failure whose message names stores' raw
    schemas concerns those stores: the other stores' data was fine, and the staff alert covers the rest. Any
    failure that names no store (a broken model, a run that could not start) concerns every merchant of the
    run: their dashboards were not refreshed and nothing says why one store more than another.
    """
    stale_keys = {f["merchant_key"] for f in run.freshness if f["status"] in FRESHNESS_ERROR_STATUSES}
    if stale_keys and not run.failures:
        return list(Merchant.objects.filter(key__in=stale_keys, is_active=True))
    merchants = Merchant.objects.filter(pk__in=run.merchant_ids, is_active=True)
    keys = set(merchants.values_list("key", flat=True))
    named = [keys.intersection(_RAW_SCHEMA_RE.findall(f["message"] or "")) for f in run.failures]
    if named and all(named):
        return list(merchants.filter(key__in=set().union(*named, stale_keys)).order_by("pk"))
    return list(merchants.order_by("pk"))


def _alert(run: DbtRun) -> None:
    from notifications.choices import NotificationKind
    from notifications.services import merchant_admins_notify, staff_notify

    stale = [f for f in run.freshness if f["status"] in FRESHNESS_ERROR_STATUSES]
    kind = NotificationKind.DATA_STALE if stale and not run.failures else NotificationKind.DBT_RUN_FAILED
    day = timezone.now().date().isoformat()
    context = {
        "dbt_run_id": run.pk,
        "command": run.command,
        "status": run.status,
        "failed_nodes": [f["unique_id"] for f in run.failures][:20],
        "stale_sources": sorted({f["source"] for f in stale})[:20],
        # dbt's error text can quote a connection string; alerts carry only the redacted form.
        "error": redact(run.error[:500]),
    }
    staff_notify(kind=kind, context=context, dedupe_key=f"{kind}:{run.command}:{day}")
    for merchant in _affected_merchants(run):
        merchant_context = {
            **context,
            "stale_sources": sorted({f["source"] for f in stale if f["merchant_key"] == merchant.key}),
        }
        merchant_admins_notify(
            merchant=merchant, kind=kind, context=merchant_context, dedupe_key=f"{kind}:{run.command}:{day}"
        )
