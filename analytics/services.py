"""Running dbt for the app: one run at a time across all processes, every run recorded."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import math
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Merchant
from analytics import dbt_runner, landing
from analytics.choices import NOT_STARTED_STATUSES, DbtRunStatus, DbtTrigger, FreshnessStatus
from analytics.models import DataFreshnessCheck, DbtRun, RawDataChange
from analytics.selectors import (
    CoalescedBuildDue,
    SourceFreshness,
    coalesced_build_due_get,
    dbt_merchant_list,
    raw_data_change_unbuilt_list,
    source_freshness_list,
    warehouse_connection_params,
)
from config.logging import redact

logger = logging.getLogger(__name__)

# Session-level PostgreSQL advisory lock: held by the process running dbt, released when it ends —
# also when it dies, because the lock goes with its database session.
DBT_LOCK_KEY = 0x64627472  # "dbtr"

# A selector that matches nothing is almost always a typo in a cron line: make dbt fail instead of
# reporting "nothing to do" as a success.
STRICT_SELECTION = ["--warn-error-options", '{"error": ["NoNodesForSelectionCriteria"]}']

FAILED_NODE_STATUSES = {"error", "fail", "runtime error"}
FRESHNESS_ERROR_STATUSES = {"error", "runtime error"}  # of `dbt source freshness` run by hand: a failed run
FRESHNESS_ARGS = ["source", "freshness"]


class DbtRunLocked(Exception):
    """Another dbt run holds the lock; this one did not start."""

    def __init__(self, running: DbtRun | None) -> None:
        self.running = running
        detail = f" (run #{running.pk}, `{running.command}`, since {running.started_at:%H:%M:%S})" if running else ""
        super().__init__(f"another dbt run is in progress{detail}; not starting a second one")


def _lock_holder() -> DbtRun | None:
    # While the lock is held, the one row still `running` is its holder's: the holder reaped every other when it
    # took the lock (dbt_runs_interrupted_reap), and rows are only created under the lock.
    return DbtRun.objects.filter(status=DbtRunStatus.RUNNING).order_by("-id").first()


@contextlib.contextmanager
def _dbt_lock() -> Iterator[None]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [DBT_LOCK_KEY])
        acquired = cursor.fetchone()[0]
    if not acquired:
        raise DbtRunLocked(_lock_holder())
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


def dbt_run_execute(
    *,
    args: list[str],
    triggered_by: str = DbtTrigger.COMMAND,
    requested_at: dt.datetime | None = None,
    blocked_by_id: int | None = None,
    waiting_run_id: int | None = None,
) -> DbtRun:
    """Run `dbt <args>` for the active merchants and record it. Raises DbtRunLocked if one is running.

    `requested_at` and `blocked_by_id`: a scheduled run that had to wait for the lock (dbt_run_scheduled) says
    since when, and which run made it wait; recorded on its row, which replaces its `waiting` row
    (`waiting_run_id`) in the transaction that creates it.

    The DbtRun row is committed before dbt starts (so admin shows the run while it runs) and updated
    when it ends; an exception inside dbt is recorded as status `error`, never lost. A plain `build` takes in
    every raw-data change still unbuilt at its start (it builds everything). Changes recorded while it ran,
    whose own build request bounced off the lock, get their coalesced build once the lock is released.
    """
    if not args:
        raise ValueError("dbt needs a command, e.g. `build` or `source freshness`")
    try:
        run = _dbt_run_locked(
            args=list(args),
            triggered_by=triggered_by,
            only_if_changed=False,
            requested_at=requested_at,
            blocked_by_id=blocked_by_id,
            waiting_run_id=waiting_run_id,
        )
    except DbtRunLocked:
        raise
    except Exception:
        _coalesced_build_enqueue_if_unbuilt()
        raise
    _coalesced_build_enqueue_if_unbuilt()
    assert isinstance(run, DbtRun)  # only_if_changed=False always runs
    return run


def _existing_run_id(run_id: int | None) -> int | None:
    # The run that made a scheduled one wait may be gone (deleted in admin): the wait is still told by requested_at.
    return run_id if run_id is not None and DbtRun.objects.filter(pk=run_id).exists() else None


def _dbt_run_locked(
    *,
    args: list[str],
    triggered_by: str,
    only_if_changed: bool,
    debounce: bool = False,
    requested_at: dt.datetime | None = None,
    blocked_by_id: int | None = None,
    waiting_run_id: int | None = None,
) -> DbtRun | CoalescedBuildDue | None:
    """Run dbt under the lock. With `only_if_changed`: None when nothing is unbuilt, and when the unbuilt
    changes are not due yet (`debounce`: the quiet period and ceiling), when they will be — built neither."""
    with _dbt_lock():
        merchants = dbt_merchant_list()
        takes_changes = only_if_changed or args == FULL_BUILD_ARGS
        # Under the lock only its holder consumes changes, so "anything unbuilt?" then "take them" cannot race
        # another consumer; a change committed in between is simply taken too. Created and consumed in one
        # transaction: a crash before the commit leaves the changes unbuilt, one after leaves a `running` row
        # the next holder knows to be dead (the reaper below), and its changes unbuilt again.
        if only_if_changed:
            due = _coalesced_build_due(debounce=debounce)
            if due is None:
                return None
            if due.at > timezone.now():
                return due
        digest = merchants_digest(merchants)
        with transaction.atomic():
            # Exactly the changes listed here are taken (and select what is built): one committed a moment
            # later stays unbuilt, for the next build, rather than taken without its source built.
            taken = (
                list(raw_data_change_unbuilt_list().values_list("pk", "source", "merchant_id")) if takes_changes else []
            )
            load_scope = None  # every store's every raw table
            if only_if_changed and args == FULL_BUILD_ARGS:
                args = coalesced_build_args(sources={source for _, source, _ in taken}, merchants_digest=digest)
                load_scope = landing_scope(taken, merchant_ids=[m["id"] for m in merchants])
            run = DbtRun.objects.create(
                command=" ".join(args)[:500],
                args=list(args),
                triggered_by=triggered_by,
                started_at=timezone.now(),
                merchant_ids=[m["id"] for m in merchants],
                merchants_digest=digest,
                requested_at=requested_at,
                blocked_by_id=_existing_run_id(blocked_by_id),
            )
            if taken:
                RawDataChange.objects.filter(pk__in=[pk for pk, _, _ in taken]).update(consumed_by_run=run)
            if waiting_run_id is not None:
                # Its own row (created now, under the lock: ids keep following the runs' order) says it waited.
                DbtRun.objects.filter(pk=waiting_run_id, status=DbtRunStatus.WAITING).delete()
        dbt_runs_interrupted_reap(by=run)
        started = time.monotonic()
        try:
            dbt_args = list(args) if "--warn-error-options" in args else [*args, *STRICT_SELECTION]
            result = dbt_runner.dbt_invoke(
                dbt_args, merchants=merchants, db=warehouse_connection_params(), load_scope=load_scope
            )
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
    # `source freshness` by hand is an operator's look (its result is in the row and the command's output): the
    # 48-hour alerts are the freshness check's (data_freshness_check), which reads no raw table.
    if run.status != DbtRunStatus.SUCCESS and list(args[:2]) != FRESHNESS_ARGS:
        _alert(run)
    return run


# The coalesced build is one incremental `build` of the models downstream of the sources that changed: the
# incremental models pick their rows by what landed since their own watermarks (analytics_dbt/README.md), so
# one build covers every store that changed since the last one, and a model none of whose sources changed has
# nothing new to read (no model reads the clock). Selecting by store is not possible (dim_merchants and the
# small marts are rebuilt from the `merchants` var, which must list every active store).
FULL_BUILD_ARGS = ["build"]

# A change's source (ingestion: the credential's provider, or the store's own pipeline kind; the Attentive
# intake) -> the raw tables its data lands in (analytics/raw_schema.py), as a dbt source selector.
SOURCE_RAW_TABLES = {source: f"source:raw.{prefix}*+" for source, prefix in landing.SOURCE_TABLE_PREFIXES.items()}


def landing_scope(changes: list[tuple[int, str, int]], *, merchant_ids: list[int]) -> dict[int, list[str] | None]:
    """{merchant id: the raw tables to load (None: all)} for a coalesced build taking `changes` ((pk, source,
    merchant id) each): the stores that changed, the tables of the sources that changed (the build selects the
    models downstream of those sources, which read what is loaded); and every table of a store the last run did
    not build (just activated, or back: its raw data may predate any change recorded). The nightly build
    loads every store's every table, so a raw write that recorded no change still lands within a day."""
    scope: dict[int, list[str] | None] = {}
    for _, source, merchant_id in changes:
        tables = scope.get(merchant_id, [])
        if tables is not None:
            scope[merchant_id] = sorted({*tables, *landing.source_tables(source)})
    last = (
        DbtRun.objects.exclude(status__in=[DbtRunStatus.RUNNING, *NOT_STARTED_STATUSES])
        .order_by("-started_at", "-id")
        .first()
    )
    built = set(last.merchant_ids) if last is not None else set()
    for merchant_id in merchant_ids:
        if merchant_id not in built:
            scope[merchant_id] = None
    return scope


def merchants_digest(merchants: list[dict]) -> str:
    """What the `merchants` var says, as a digest: a build with another one must rebuild what reads the var."""
    return hashlib.sha256(json.dumps(merchants, sort_keys=True).encode()).hexdigest()


def coalesced_build_args(*, sources: set[str], merchants_digest: str) -> list[str]:
    """The coalesced build's arguments: only the models downstream of the changed sources (and their tests),
    when that is known to be enough — else every model (FULL_BUILD_ARGS).

    Enough when every model is up to date but for the unbuilt changes: a full build succeeded for the same
    stores (the `merchants` var, which dim_merchants and what reads it depend on, downstream of no source), and
    no run since ended any other way than success (a failed or killed one may have built a model and not what
    reads it). Every model, too, for a source we do not know the tables of.
    """
    if not sources or not sources <= set(SOURCE_RAW_TABLES):
        return list(FULL_BUILD_ARGS)
    full = (
        DbtRun.objects.filter(args=FULL_BUILD_ARGS, status=DbtRunStatus.SUCCESS)
        .order_by("-started_at", "-id")
        .only("started_at", "merchants_digest")
        .first()
    )
    if full is None or full.merchants_digest != merchants_digest:
        return list(FULL_BUILD_ARGS)
    # A run dbt never started (skipped: the lock was held) built nothing: it breaks no model's chain.
    ended_otherwise = DbtRun.objects.filter(started_at__gte=full.started_at).exclude(
        status__in=[DbtRunStatus.SUCCESS, *NOT_STARTED_STATUSES]
    )
    if ended_otherwise.exists():
        return list(FULL_BUILD_ARGS)
    return ["build", "--select", *sorted(SOURCE_RAW_TABLES[source] for source in sources)]


RAW_DATA_CHANGE_NO_SOURCE = "Name the source whose sync changed the data."
RAW_DATA_CHANGE_NAIVE_AT = "The time of the sync must carry a time zone."


def raw_data_changed_mark(*, merchant_id: int, source: str, at: dt.datetime) -> RawDataChange:
    """Record that a sync of `source` for a store succeeded at `at`, and ask for the coalesced build.

    Called by ingestion when a sync succeeds, inside its transaction if it has one: the change is durable
    with it, and the build is asked for only once it commits (a rolled-back sync asks for nothing; a broker
    outage only logs — the sweeper asks again). Recording twice is harmless: one build takes both in.

    The request is for the time the build is due as of this change (coalesced_build_due_get: quiet for
    DBT_BUILD_COALESCE_SECONDS, or the oldest unbuilt change DBT_BUILD_COALESCE_MAX_SECONDS old) and names
    the change, so that it steps aside for any newer change's request (dbt_build_coalesced_when_due).
    """
    if not source or not source.strip():
        raise ValidationError({"source": [RAW_DATA_CHANGE_NO_SOURCE]})
    if timezone.is_naive(at):
        raise ValidationError({"at": [RAW_DATA_CHANGE_NAIVE_AT]})
    with transaction.atomic():
        change = RawDataChange.objects.create(merchant_id=merchant_id, source=source.strip(), at=at)
        due = _coalesced_build_due(debounce=True)  # never None: this change itself is unbuilt
        _coalesced_build_enqueue_on_commit(countdown=_seconds_until(due.at) if due else 0, change_id=change.pk)
    return change


def _coalesced_build_due(*, debounce: bool) -> CoalescedBuildDue | None:
    # Without debounce (an operator's or a test's direct call) every unbuilt change is due at once.
    return coalesced_build_due_get(
        quiet_seconds=settings.DBT_BUILD_COALESCE_SECONDS if debounce else 0,
        max_wait_seconds=settings.DBT_BUILD_COALESCE_MAX_SECONDS if debounce else 0,
    )


def _seconds_until(at: dt.datetime) -> int:
    # Whole seconds, rounded up: a request that arrives a fraction early would only ask again for 0 s.
    return max(0, math.ceil((at - timezone.now()).total_seconds()))


def _coalesced_build_enqueue(*, countdown: int | None = None, change_id: int | None = None) -> None:
    from analytics.tasks import dbt_build_coalesced_task

    dbt_build_coalesced_task.apply_async(kwargs={"change_id": change_id}, countdown=countdown)


def _coalesced_build_enqueue_on_commit(*, countdown: int, change_id: int | None) -> None:
    # A named function, not a functools.partial: Django names the callback in the error it logs when the
    # broker refuses (robust=True), and a partial has no name, so the logging itself would raise.
    def enqueue() -> None:
        _coalesced_build_enqueue(countdown=countdown, change_id=change_id)

    transaction.on_commit(enqueue, robust=True)


def _coalesced_build_enqueue_if_unbuilt() -> None:
    # After the lock is released: a change committed while it was held had its request refused by the lock,
    # and committed before that refusal, so it is visible here (see dbt_build_coalesced_when_due). The request
    # names no change: it waits for the changes' due time itself.
    if raw_data_change_unbuilt_list().exists():
        transaction.on_commit(_coalesced_build_enqueue, robust=True)


def dbt_build_coalesced_when_due(*, change_id: int | None = None, args: list[str] | None = None) -> list[DbtRun]:
    """A request for the coalesced build: build if the unbuilt changes are due, else leave a request for then.

    Due (coalesced_build_due_get) once the stores' data has been quiet for DBT_BUILD_COALESCE_SECONDS, or the
    oldest unbuilt change has waited DBT_BUILD_COALESCE_MAX_SECONDS. `change_id` is the change whose sync
    made the request (None: the sweep, a run releasing the lock, an operator). `args` as dbt_build_coalesced.

    Why no change is left behind. A change is committed before its request is sent, and every request ends
    in one of four ways, each leaving every change it could see to something that will build it:
    1. A newer change (a larger id) is unbuilt: this request steps aside. That change's own request was sent
       after it committed, for the due time as of it — no later than now's, give or take a sync transaction
       still open then (the newest sets the quiet period; the oldest unbuilt can only have become younger) —
       and sees everything this one saw. Or that change is in a running build, whose holder looks again after
       it (4.; the sweep if that worker died). So of the requests made while syncs keep landing, all but the
       newest's exit after one indexed query: no pile of waiting requests.
    2. Not due yet: it sends one request for the due time, naming the newest change (so that it too steps
       aside for a newer one). A broker that refuses it only logs: the 5-minute sweep asks again.
    3. Due: dbt_build_coalesced takes the lock and builds every unbuilt change, then loops under the next
       lock: changes that arrived during the build are built once more if due, or get a request for when
       they will be (2.) — either way exactly one more build, however many arrived.
    4. Due, but the lock is held: it returns at once. The holder, after releasing the lock, looks for unbuilt
       changes again — dbt_build_coalesced's loop, under the next lock; dbt_run_execute for the other runs —
       and a change committed before this refusal, so before that release, is seen there.
    Never two builds at once: only the lock's holder builds.
    """
    if change_id is not None and raw_data_change_unbuilt_list().filter(pk__gt=change_id).exists():
        return []
    due = _coalesced_build_due(debounce=True)
    if due is None:
        return []
    if due.at > timezone.now():
        _coalesced_build_enqueue_on_commit(countdown=_seconds_until(due.at), change_id=due.newest_change_id)
        return []
    return dbt_build_coalesced(args=args, debounce=True)


def dbt_build_coalesced(*, args: list[str] | None = None, debounce: bool = False) -> list[DbtRun]:
    """Build once for every raw-data change not built yet; again while changes arrived during a build.

    Never two at once (the dbt lock); [] when another run holds the lock or nothing changed. Why no change is
    left behind: see dbt_build_coalesced_when_due, which calls this with `debounce` once the changes are due.
    Then changes that arrive during a build are built after it when due too, or else get one request for
    when they will be; without `debounce` (an operator's, a test's direct call) they are built at once.

    `args` is the build (FULL_BUILD_ARGS unless an operator narrows it, e.g. a `--select`).
    """
    args = list(args or FULL_BUILD_ARGS)
    runs: list[DbtRun] = []
    while True:
        try:
            outcome = _dbt_run_locked(
                args=args, triggered_by=DbtTrigger.DATA_CHANGED, only_if_changed=True, debounce=debounce
            )
        except DbtRunLocked as exc:
            logger.info("coalesced dbt build left to the running one", extra={"reason": str(exc)})
            return runs
        # Any other error propagates and asks for nothing more: a database that is down would otherwise turn
        # every failed request into the next one at once. The 5-minute sweep asks again.
        if outcome is None:
            return runs
        if isinstance(outcome, CoalescedBuildDue):
            # After the lock is released (this call returned): the request for when they will be due.
            _coalesced_build_enqueue_on_commit(countdown=_seconds_until(outcome.at), change_id=outcome.newest_change_id)
            return runs
        runs.append(outcome)


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


# A merchant's raw schema named in a failure's message (relation and permission errors, and the load step's
# "raw table raw_<key>.<table> could not be loaded ..."): the failure concerns that store.
_RAW_SCHEMA_RE = re.compile(r"\braw_([a-z][a-z0-9_]{0,50})\b")


def _affected_merchants(run: DbtRun) -> list[Merchant]:
    """The stores a failed run concerns, whose owners and admins are told.

    A failure whose message names stores' raw schemas concerns those stores: the other stores' data was fine, and
    the staff alert covers the rest. Any failure that names no store (a broken model, a run that could not start)
    concerns every merchant of the run: their dashboards were not refreshed and nothing says why one store more
    than another.
    """
    merchants = Merchant.objects.filter(pk__in=run.merchant_ids, is_active=True)
    keys = set(merchants.values_list("key", flat=True))
    named = [keys.intersection(_RAW_SCHEMA_RE.findall(f["message"] or "")) for f in run.failures]
    if named and all(named):
        return list(merchants.filter(key__in=set().union(*named)).order_by("pk"))
    return list(merchants.order_by("pk"))


def _alert(run: DbtRun) -> None:
    from notifications.choices import NotificationKind
    from notifications.services import merchant_admins_notify, staff_notify

    kind = NotificationKind.DBT_RUN_FAILED
    day = timezone.now().date().isoformat()
    context = {
        "dbt_run_id": run.pk,
        "command": run.command,
        "status": run.status,
        "failed_nodes": [f["unique_id"] for f in run.failures][:20],
        "stale_sources": [],
        # dbt's error text can quote a connection string; alerts carry only the redacted form.
        "error": redact(run.error[:500]),
    }
    staff_notify(kind=kind, context=context, dedupe_key=f"{kind}:{run.command}:{day}")
    for merchant in _affected_merchants(run):
        merchant_admins_notify(merchant=merchant, kind=kind, context=context, dedupe_key=f"{kind}:{run.command}:{day}")


# --- scheduled runs that find the lock held; runs that hold it too long -----------------------------------------

SKIPPED_REASON = (
    "skipped: the dbt lock was held from {requested_at} until this run's schedule expired at {deadline} ({holder}); "
    "it asked again every {retry_seconds} s. Nothing was built: the next scheduled run, or `run_dbt`, builds it."
)
OVERDUE_REASON = (
    "dbt run #{run_id} (`dbt {command}`) has held the dbt lock for {minutes} minutes, since {started_at} "
    "(expected under {limit} minutes): every other dbt run waits behind it, the nightly build included."
)


def _holder_text(holder: DbtRun | None) -> str:
    if holder is None:
        return "held by a session with no run recorded as running"
    return (
        f"held by run #{holder.pk}, `dbt {holder.command}`, started {holder.started_at.isoformat(timespec='seconds')}"
    )


WAITING_REASON = (
    "waiting for the dbt lock ({holder}) since {requested_at}; asks again every {retry_seconds} s until its "
    "schedule expires at {deadline}, then is recorded skipped."
)


@dataclass(frozen=True)
class DbtRunWaiting:
    """A scheduled run that found the lock held before its deadline: ask again in `countdown` seconds."""

    countdown: int
    requested_at: dt.datetime  # the first attempt's time, carried by every later one
    holder_id: int | None  # the run that made it wait first
    waiting_run_id: int  # its `waiting` row
    reason: str


def dbt_run_scheduled(
    *,
    args: list[str],
    deadline: dt.datetime,
    requested_at: dt.datetime | None = None,
    blocked_by_id: int | None = None,
    waiting_run_id: int | None = None,
) -> DbtRun | DbtRunWaiting:
    """A scheduled dbt run (the nightly build, the weekly test): run it, or wait for the lock until `deadline`.

    The lock held and `deadline` (its schedule's expiry) not passed: its `waiting` DbtRun is recorded (or, on a
    later attempt, brought up to date: which run holds the lock now) and a DbtRunWaiting returned for the task to
    ask again after DBT_LOCK_RETRY_SECONDS (or at the deadline, if sooner) — so a long coalesced build delays the
    nightly build instead of losing it. Once it gets the lock its own row replaces the waiting one, with since
    when it waited (`requested_at`) and the run that made it wait first (`blocked_by`). Held at the deadline: the
    waiting row becomes `skipped` (the reason, the run that held the lock) and staff are told once a day per
    command (dbt_run_skipped_record).
    """
    try:
        return dbt_run_execute(
            args=args,
            triggered_by=DbtTrigger.SCHEDULE,
            requested_at=requested_at,
            blocked_by_id=blocked_by_id,
            waiting_run_id=waiting_run_id,
        )
    except DbtRunLocked as exc:
        now = timezone.now()
        holder = exc.running
        first = requested_at or now
        if now >= deadline:
            return dbt_run_skipped_record(
                args=args, requested_at=first, deadline=deadline, holder=holder, waiting_run_id=waiting_run_id
            )
        countdown = max(1, min(settings.DBT_LOCK_RETRY_SECONDS, math.ceil((deadline - now).total_seconds())))
        waiting = _waiting_record(
            args=args, requested_at=first, deadline=deadline, holder=holder, waiting_run_id=waiting_run_id
        )
        logger.info(
            "scheduled dbt run waits for the lock",
            extra={"dbt_run": waiting.pk, "holder": holder.pk if holder else None, "countdown": countdown},
        )
        return DbtRunWaiting(
            countdown=countdown,
            requested_at=first,
            holder_id=blocked_by_id or (holder.pk if holder else None),
            waiting_run_id=waiting.pk,
            reason=str(exc),
        )


def _waiting_record(
    *,
    args: list[str],
    requested_at: dt.datetime,
    deadline: dt.datetime,
    holder: DbtRun | None,
    waiting_run_id: int | None,
) -> DbtRun:
    reason = WAITING_REASON.format(
        holder=_holder_text(holder),
        requested_at=requested_at.isoformat(timespec="seconds"),
        retry_seconds=settings.DBT_LOCK_RETRY_SECONDS,
        deadline=deadline.isoformat(timespec="seconds"),
    )
    fields = {"blocked_by_id": _existing_run_id(holder.pk if holder else None), "error": reason}
    if waiting_run_id is not None and DbtRun.objects.filter(pk=waiting_run_id, status=DbtRunStatus.WAITING).update(
        **fields
    ):
        return DbtRun.objects.get(pk=waiting_run_id)
    # Not taken under the lock (it is held): a waiting row consumes nothing and is never `running`, so neither
    # the reaper, the coalesced build nor the dashboards' cache version (which skips it) takes it for a build.
    return DbtRun.objects.create(
        command=" ".join(args)[:500],
        args=list(args),
        triggered_by=DbtTrigger.SCHEDULE,
        status=DbtRunStatus.WAITING,
        started_at=requested_at,
        requested_at=requested_at,
        wait_until=deadline,
        **fields,
    )


def dbt_run_skipped_record(
    *,
    args: list[str],
    requested_at: dt.datetime,
    deadline: dt.datetime,
    holder: DbtRun | None,
    waiting_run_id: int | None = None,
    reason: str | None = None,
) -> DbtRun:
    """Record a scheduled run that never got the lock as `skipped` (its waiting row, or a new row) and tell
    staff, once a day per command. Like a waiting row it consumed nothing and built nothing."""
    from notifications.choices import NotificationKind
    from notifications.services import staff_notify

    now = timezone.now()
    command = " ".join(args)[:500]
    reason = reason or SKIPPED_REASON.format(
        requested_at=requested_at.isoformat(timespec="seconds"),
        deadline=deadline.isoformat(timespec="seconds"),
        holder=_holder_text(holder),
        retry_seconds=settings.DBT_LOCK_RETRY_SECONDS,
    )
    fields = {
        "status": DbtRunStatus.SKIPPED,
        "finished_at": now,
        "duration_seconds": 0.0,
        "error": reason,
        **({"blocked_by_id": _existing_run_id(holder.pk)} if holder is not None else {}),
    }
    with transaction.atomic():
        waiting = (
            DbtRun.objects.select_for_update().filter(pk=waiting_run_id, status=DbtRunStatus.WAITING).first()
            if waiting_run_id is not None
            else None
        )
        if waiting is not None:
            for name, value in fields.items():
                setattr(waiting, name, value)
            waiting.save(update_fields=list(fields))
            run = waiting
        else:
            run = DbtRun.objects.create(
                command=command,
                args=list(args),
                triggered_by=DbtTrigger.SCHEDULE,
                started_at=requested_at,
                requested_at=requested_at,
                wait_until=deadline,
                **fields,
            )
        staff_notify(
            kind=NotificationKind.DBT_RUN_FAILED,
            context={
                "dbt_run_id": run.pk,
                "command": command,
                "status": run.status,
                "failed_nodes": [],
                "stale_sources": [],
                "error": redact(reason),
            },
            dedupe_key=f"dbt_run_skipped:{command}:{now.date().isoformat()}",
        )
    logger.error("scheduled dbt run skipped", extra={"dbt_run": run.pk, "command": command, "reason": reason})
    return run


WAIT_LOST_REASON = (
    "skipped: it was waiting for the dbt lock until {deadline}, and its next attempt never came (the message was "
    "lost: a broker outage, a worker killed); found by the sweep. Nothing was built: the next scheduled run builds it."
)


def dbt_runs_waiting_lost_record(*, now: dt.datetime | None = None) -> list[DbtRun]:
    """`waiting` rows whose deadline passed long ago (their last attempt was due then): their retry was lost, so
    they are recorded skipped and staff told, rather than left `waiting` for ever. Asked by the 5-minute sweep."""
    now = now or timezone.now()
    late = now - dt.timedelta(seconds=settings.DBT_LOCK_RETRY_SECONDS + 5 * 60)
    lost = []
    for run in DbtRun.objects.filter(status=DbtRunStatus.WAITING, wait_until__lt=late).order_by("pk"):
        lost.append(
            dbt_run_skipped_record(
                args=run.args,
                requested_at=run.requested_at or run.started_at,
                deadline=run.wait_until,
                holder=None,
                waiting_run_id=run.pk,
                reason=WAIT_LOST_REASON.format(deadline=run.wait_until.isoformat(timespec="seconds")),
            )
        )
    return lost


def dbt_lock_sweep(*, now: dt.datetime | None = None) -> None:
    """What the 5-minute sweep checks of the dbt lock: a run holding it too long (told once), and scheduled runs
    whose wait for it lost its retry (recorded skipped)."""
    dbt_runs_overdue_report(now=now)
    dbt_runs_waiting_lost_record(now=now)


_LOCK_HELD_SQL = """
    select exists (
        select 1 from pg_catalog.pg_locks
        where locktype = 'advisory' and granted and objsubid = 1
          and database = (select oid from pg_catalog.pg_database where datname = current_database())
          and classid::bigint = %(high)s and objid::bigint = %(low)s
    )
"""


def dbt_lock_held() -> bool:
    """Whether some session holds the dbt lock now (pg_locks; a bigint advisory key is two 32-bit halves)."""
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_HELD_SQL, {"high": DBT_LOCK_KEY >> 32, "low": DBT_LOCK_KEY & 0xFFFFFFFF})
        return bool(cursor.fetchone()[0])


def dbt_runs_overdue_report(*, now: dt.datetime | None = None) -> DbtRun | None:
    """Tell staff, once per run, of the run holding the dbt lock for longer than DBT_RUN_OVERDUE_MINUTES.

    Asked by the 5-minute sweep. Once: the run's `lock_overdue_alerted_at` is set by a conditional UPDATE, so of
    two sweeps at once one tells. A row `running` whose lock is not held belongs to a dead process: not this
    alert's — the next run to take the lock marks it interrupted and tells staff (dbt_runs_interrupted_reap).
    """
    from notifications.choices import NotificationKind
    from notifications.services import staff_notify

    now = now or timezone.now()
    limit = dt.timedelta(minutes=settings.DBT_RUN_OVERDUE_MINUTES)
    holder = _lock_holder()
    if holder is None or holder.lock_overdue_alerted_at is not None or now - holder.started_at < limit:
        return None
    if not dbt_lock_held():
        return None
    with transaction.atomic():
        claimed = DbtRun.objects.filter(
            pk=holder.pk, status=DbtRunStatus.RUNNING, lock_overdue_alerted_at__isnull=True
        ).update(lock_overdue_alerted_at=now)
        if not claimed:
            return None
        reason = OVERDUE_REASON.format(
            run_id=holder.pk,
            command=holder.command,
            minutes=int((now - holder.started_at).total_seconds() // 60),
            started_at=holder.started_at.isoformat(timespec="seconds"),
            limit=settings.DBT_RUN_OVERDUE_MINUTES,
        )
        staff_notify(
            kind=NotificationKind.DBT_RUN_FAILED,
            context={
                "dbt_run_id": holder.pk,
                "command": holder.command,
                "status": "holding the lock too long",
                "headline": reason,
                "failed_nodes": [],
                "stale_sources": [],
                "error": "",
            },
            dedupe_key=f"dbt_run_overdue:{holder.pk}",
            dedupe_window=dt.timedelta(days=30),
        )
    logger.error("dbt run holds the lock too long", extra={"dbt_run": holder.pk, "command": holder.command})
    holder.lock_overdue_alerted_at = now
    return holder


# --- the hourly freshness check -------------------------------------------------------------------------------


def _source_label(source: str) -> str:
    from connectors.choices import Provider

    return Provider(source).label if source in Provider.values else source.replace("_", " ").title()


def _freshness_entry(row: SourceFreshness, *, now: dt.datetime) -> dict:
    return {
        "merchant_id": row.merchant_id,
        "merchant_key": row.merchant_key,
        "source": row.source,
        "landed_at": row.landed_at.isoformat() if row.landed_at else None,
        "connected_at": row.connected_at.isoformat(),
        "age_hours": round((now - (row.landed_at or row.connected_at)).total_seconds() / 3600, 1),
    }


def _age_text(entry: dict) -> str:
    label = _source_label(entry["source"])
    if entry["landed_at"] is None:
        return f"{label}: no data yet, connected {entry['age_hours']:.0f} hours ago"
    return f"{label}: last data {entry['age_hours']:.0f} hours ago"


def data_freshness_check(*, now: dt.datetime | None = None) -> DataFreshnessCheck:
    """Check when every active store's every connected source last landed data; record it; tell who must know.

    One SQL statement for all stores (selectors.source_freshness_list), no raw schema read, no dbt and no dbt
    lock: it runs in milliseconds, beside a build. Past DATA_FRESHNESS_ERROR_HOURS a source is stale: staff get
    one message listing every stale (store, source) when one is stale anew today, and each store's owners and
    admins one per source per day (the dedupe key names the store, the source and the day). A source not
    connected is never stale; a store's first sync is not stale until it is overdue by the error threshold;
    each (store, source) is judged on its own rows only.
    """
    started = time.monotonic()
    now = now or timezone.now()
    warn_after = dt.timedelta(hours=settings.DATA_FRESHNESS_WARN_HOURS)
    error_after = dt.timedelta(hours=settings.DATA_FRESHNESS_ERROR_HOURS)
    rows = source_freshness_list()
    stale, late = [], []
    for row in rows:
        status = row.status(now=now, warn_after=warn_after, error_after=error_after)
        if status == FreshnessStatus.STALE:
            stale.append(_freshness_entry(row, now=now))
        elif status == FreshnessStatus.WARN:
            late.append(_freshness_entry(row, now=now))
    check = DataFreshnessCheck.objects.create(
        checked_at=now,
        duration_seconds=round(time.monotonic() - started, 4),
        stores_checked=len({row.merchant_id for row in rows}),
        sources_checked=len(rows),
        warn_hours=settings.DATA_FRESHNESS_WARN_HOURS,
        error_hours=settings.DATA_FRESHNESS_ERROR_HOURS,
        stale=stale,
        late=late,
    )
    if stale:
        _data_stale_notify(check)
    log = logger.warning if stale else logger.info
    log(
        "data freshness checked",
        extra={
            "check": check.pk,
            "sources": check.sources_checked,
            "stale": len(stale),
            "seconds": check.duration_seconds,
        },
    )
    return check


def _data_stale_notify(check: DataFreshnessCheck) -> None:
    from notifications.choices import NotificationKind
    from notifications.services import merchant_admins_notify, staff_notify

    kind = NotificationKind.DATA_STALE
    day = check.checked_at.date()
    pairs = {(e["merchant_id"], e["source"]) for e in check.stale}
    told_today = {
        (e["merchant_id"], e["source"])
        for earlier in DataFreshnessCheck.objects.filter(
            checked_at__date=day, staff_notified=True, checked_at__lte=check.checked_at
        ).exclude(pk=check.pk)
        for e in earlier.stale
    }
    base = settings.APP_BASE_URL.rstrip("/")
    if pairs - told_today:
        digest = hashlib.sha256(json.dumps(sorted(pairs)).encode()).hexdigest()[:16]
        staff_notify(
            kind=kind,
            context={
                "check_id": check.pk,
                "error_hours": check.error_hours,
                "stale_count": len(check.stale),
                "stale_sources": [f"{e['merchant_key']}: {_age_text(e)}" for e in check.stale][:50],
                "check_admin_url": f"{base}/admin/analytics/datafreshnesscheck/{check.pk}/change/",
            },
            dedupe_key=f"data_stale:staff:{day.isoformat()}:{digest}",
        )
        check.staff_notified = True
    merchants = Merchant.objects.in_bulk({e["merchant_id"] for e in check.stale})
    for entry in check.stale:
        merchant = merchants.get(entry["merchant_id"])
        if merchant is None or not merchant.is_active:
            continue
        merchant_admins_notify(
            merchant=merchant,
            kind=kind,
            context={
                "source": _source_label(entry["source"]),
                "last_synced_at": entry["landed_at"][:10] if entry["landed_at"] else None,
                "stale_sources": [_age_text(entry)],
                "details_url": base + reverse("connectors:list", kwargs={"merchant_id": merchant.pk}),
            },
            dedupe_key=f"data_stale:{merchant.pk}:{entry['source']}:{day.isoformat()}",
        )
        if merchant.pk not in check.merchants_notified:
            check.merchants_notified.append(merchant.pk)
    check.save(update_fields=["staff_notified", "merchants_notified"])
