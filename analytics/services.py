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

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Merchant
from analytics import dbt_runner
from analytics.choices import DbtRunStatus, DbtTrigger
from analytics.models import DbtRun, RawDataChange
from analytics.selectors import (
    CoalescedBuildDue,
    coalesced_build_due_get,
    dbt_merchant_list,
    raw_data_change_unbuilt_list,
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
    when it ends; an exception inside dbt is recorded as status `error`, never lost. A plain `build` takes in
    every raw-data change still unbuilt at its start (it builds everything). Changes recorded while it ran,
    whose own build request bounced off the lock, get their coalesced build once the lock is released.
    """
    if not args:
        raise ValueError("dbt needs a command, e.g. `build` or `source freshness`")
    try:
        run = _dbt_run_locked(args=list(args), triggered_by=triggered_by, only_if_changed=False)
    except DbtRunLocked:
        raise
    except Exception:
        _coalesced_build_enqueue_if_unbuilt()
        raise
    _coalesced_build_enqueue_if_unbuilt()
    assert isinstance(run, DbtRun)  # only_if_changed=False always runs
    return run


def _dbt_run_locked(
    *, args: list[str], triggered_by: str, only_if_changed: bool, debounce: bool = False
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
            taken = list(raw_data_change_unbuilt_list().values_list("pk", "source")) if takes_changes else []
            if only_if_changed and args == FULL_BUILD_ARGS:
                args = coalesced_build_args(sources={source for _, source in taken}, merchants_digest=digest)
            run = DbtRun.objects.create(
                command=" ".join(args)[:500],
                args=list(args),
                triggered_by=triggered_by,
                started_at=timezone.now(),
                merchant_ids=[m["id"] for m in merchants],
                merchants_digest=digest,
            )
            if taken:
                RawDataChange.objects.filter(pk__in=[pk for pk, _ in taken]).update(consumed_by_run=run)
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


# The coalesced build is one incremental `build` of the models downstream of the sources that changed: the
# incremental models pick their rows by what landed since their own watermarks (analytics_dbt/README.md), so
# one build covers every store that changed since the last one, and a model none of whose sources changed has
# nothing new to read (no model reads the clock). Selecting by store is not possible (dim_merchants and the
# small marts are rebuilt from the `merchants` var, which must list every active store).
FULL_BUILD_ARGS = ["build"]

# A change's source (ingestion: the credential's provider, or the store's own pipeline kind; the Attentive
# intake) -> the raw tables its data lands in (analytics/raw_schema.py), as a dbt source selector.
SOURCE_RAW_TABLES = {
    "shopify": "source:raw.shopify_*+",
    "meta": "source:raw.facebook_marketing_*+",
    "google_ads": "source:raw.google_ads_*+",
    "klaviyo": "source:raw.klaviyo_*+",
    "attentive": "source:raw.attentive_*+",
    "exchange_rates": "source:raw.exchange_rates_*+",
    "web": "source:raw.web_*+",  # the pixel's events (collector/)
}


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
    if DbtRun.objects.filter(started_at__gte=full.started_at).exclude(status=DbtRunStatus.SUCCESS).exists():
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
