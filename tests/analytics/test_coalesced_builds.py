"""Sync -> models -> pages: a successful sync marks its store's raw data changed, and one coalesced dbt build at
a time takes in every change not built yet (analytics.services.dbt_build_coalesced).

The builds are real (dbtRunner on a scratch warehouse of their own, as in test_run_dbt). Where a test is about
the coalescing, the build is a real but small one (`--select dim_merchants`); one test runs the full `build`.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest
from celery.signals import after_task_publish
from django.core.exceptions import ValidationError
from django.db import connection, connections
from django.db.models import F
from django.utils import timezone

from analytics.choices import DbtRunStatus, DbtTrigger
from analytics.models import DbtRun, RawDataChange
from analytics.selectors import data_as_of, raw_data_change_unbuilt_list
from analytics.services import (
    DBT_LOCK_KEY,
    RAW_DATA_CHANGE_NAIVE_AT,
    RAW_DATA_CHANGE_NO_SOURCE,
    dbt_build_coalesced,
    dbt_build_coalesced_when_due,
    dbt_run_execute,
    raw_data_changed_mark,
)
from compliance.models import AuditEvent
from dashboards.cache import cached, marts_version
from tests.accounts.factories import MerchantFactory

SMALL_BUILD = ["build", "--select", "dim_merchants", "--indirect-selection", "cautious"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def own_warehouse(scratch_db_factory, monkeypatch) -> dict:
    """dbt builds in a database of its own here, so these builds never replace the marts other tests read."""
    db = scratch_db_factory()
    monkeypatch.setattr("analytics.services.warehouse_connection_params", lambda: dict(db))
    return db


@pytest.fixture
def eager():
    """Build requests run inline, as a worker would run them (the coalescing countdown aside)."""
    from celery._state import _set_task_join_will_block, task_join_will_block

    from config.celery import app

    join_will_block = task_join_will_block()
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False
    # Celery's eager `apply` sets a process-wide flag around each task and puts back what it found; eager tasks
    # in several threads at once (these races) interleave and can leave it set, and every later test's
    # `result.get()` would then refuse to run ("Never call result.get() within a task").
    _set_task_join_will_block(join_will_block)


NOW = timezone.now().replace(microsecond=0)


def _at(minutes_ago: int) -> dt.datetime:
    return NOW - dt.timedelta(minutes=minutes_ago)


def _in_thread(target, *args, **kwargs) -> tuple[threading.Thread, dict]:
    """Run target in a thread with its own database session (closed at its end); its result or error in out."""
    out: dict = {}

    def run():
        try:
            out["result"] = target(*args, **kwargs)
        except BaseException as exc:  # reported to the test, which asserts on it
            out["error"] = exc
        finally:
            connection.close()
            connections["warehouse"].close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _wait_for(predicate, timeout: float = 120.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


# --- recording a change ---------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_change_is_recorded_and_its_build_asked_for_only_after_commit(django_capture_on_commit_callbacks):
    merchant = MerchantFactory()
    with django_capture_on_commit_callbacks() as callbacks:
        change = raw_data_changed_mark(merchant_id=merchant.pk, source="shopify", at=_at(1))
        assert callbacks == []  # nothing asked for while the sync's transaction may still roll back
    assert len(callbacks) == 1
    assert list(raw_data_change_unbuilt_list()) == [change]
    assert change.consumed_by_run is None


@pytest.mark.django_db
def test_a_change_without_source_or_time_zone_is_refused_and_nothing_recorded():
    merchant = MerchantFactory()
    with pytest.raises(ValidationError) as no_source:
        raw_data_changed_mark(merchant_id=merchant.pk, source=" ", at=_at(1))
    assert no_source.value.message_dict == {"source": [RAW_DATA_CHANGE_NO_SOURCE]}
    with pytest.raises(ValidationError) as naive:
        raw_data_changed_mark(merchant_id=merchant.pk, source="shopify", at=dt.datetime(2026, 1, 1, 12))
    assert naive.value.message_dict == {"at": [RAW_DATA_CHANGE_NAIVE_AT]}
    assert not RawDataChange.objects.exists()


# --- one build for a change, the caches refreshed, "data as of" ------------------------------------------------


@pytest.mark.django_db(databases=["default", "warehouse"])
def test_a_change_with_nothing_running_gets_one_full_build_and_fresh_dashboards(
    eager, django_capture_on_commit_callbacks
):
    merchant, other = MerchantFactory(), MerchantFactory()
    cache_key = ("test-page", merchant.pk)
    computed = []

    def page() -> int:
        computed.append(1)
        return len(computed)

    before = marts_version()
    assert cached((*cache_key, before), page) == 1
    assert cached((*cache_key, marts_version()), page) == 1  # reused while the marts stay as they are

    synced_at = _at(2)
    with django_capture_on_commit_callbacks(execute=True):
        raw_data_changed_mark(merchant_id=merchant.pk, source="shopify", at=synced_at)

    run = DbtRun.objects.get()
    assert (run.command, run.triggered_by, run.status) == ("build", DbtTrigger.DATA_CHANGED, DbtRunStatus.SUCCESS)
    assert run.merchant_ids == [merchant.pk, other.pk]
    assert run.node_counts.get("success", 0) > 10 and not run.failures
    assert list(RawDataChange.objects.values_list("consumed_by_run", flat=True)) == [run.pk]
    assert not raw_data_change_unbuilt_list().exists()

    # The dashboards' cache is keyed on the latest run: the build's end makes every earlier entry unreachable.
    assert marts_version() not in (before, "none")
    assert cached((*cache_key, marts_version()), page) == 2

    assert data_as_of(merchant=merchant) == {"shopify": synced_at}
    assert data_as_of(merchant=other) == {}
    # Nothing to build any more: a further request builds nothing.
    assert dbt_build_coalesced(args=SMALL_BUILD) == []
    assert DbtRun.objects.count() == 1


def _relation_oid(db: dict, relation: str) -> int | None:
    with psycopg.connect(**db) as conn:
        return conn.execute("select to_regclass(%s)::oid", [relation]).fetchone()[0]


@pytest.mark.django_db(databases=["default", "warehouse"])
def test_once_all_is_built_a_change_builds_only_what_reads_its_source(
    eager, own_warehouse, django_capture_on_commit_callbacks
):
    merchant = MerchantFactory()
    with django_capture_on_commit_callbacks(execute=True):
        raw_data_changed_mark(merchant_id=merchant.pk, source="shopify", at=_at(5))
    first = DbtRun.objects.get()
    assert (first.args, first.status) == (["build"], DbtRunStatus.SUCCESS)  # nothing was built: every model
    merchants_table = _relation_oid(own_warehouse, "analytics.dim_merchants")

    with django_capture_on_commit_callbacks(execute=True):
        raw_data_changed_mark(merchant_id=merchant.pk, source="klaviyo", at=_at(4))
    second = DbtRun.objects.latest("pk")
    assert second.args == ["build", "--select", "source:raw.klaviyo_*+"] and second.status == DbtRunStatus.SUCCESS
    assert 0 < second.node_counts["success"] < first.node_counts["success"]
    assert _relation_oid(own_warehouse, "analytics.dim_merchants") == merchants_table  # reads no Klaviyo table
    assert not raw_data_change_unbuilt_list().exists()

    # A new store changes the `merchants` var, which what reads no source depends on: everything again.
    newcomer = MerchantFactory()
    with django_capture_on_commit_callbacks(execute=True):
        raw_data_changed_mark(merchant_id=newcomer.pk, source="klaviyo", at=_at(3))
    third = DbtRun.objects.latest("pk")
    assert (third.args, third.status) == (["build"], DbtRunStatus.SUCCESS)
    assert _relation_oid(own_warehouse, "analytics.dim_merchants") != merchants_table


def _ran_test_sql(db: dict, name: str) -> str:
    return (
        REPO / "analytics_dbt" / "target" / db["dbname"] / "run" / "analytics" / "tests" / f"{name}.sql"
    ).read_text()


@pytest.mark.django_db(databases=["default", "warehouse"])
def test_reconciliation_tests_in_a_build_check_the_stores_it_wrote(
    eager, own_warehouse, django_capture_on_commit_callbacks
):
    merchant = MerchantFactory()
    with django_capture_on_commit_callbacks(execute=True):
        raw_data_changed_mark(merchant_id=merchant.pk, source="shopify", at=_at(5))
    assert DbtRun.objects.get().status == DbtRunStatus.SUCCESS
    # a build of every model: the stores whose orders, attribution or ad spend this build wrote
    assert "merchant_id in (" in _ran_test_sql(own_warehouse, "attribution_reconciles_with_net_revenue")
    assert "merchant_id in (" in _ran_test_sql(own_warehouse, "ad_spend_reconciles_with_marts")


@pytest.mark.django_db
def test_the_coalesced_build_is_everything_unless_a_full_build_for_the_same_stores_and_only_successes_since():
    from analytics.services import coalesced_build_args

    assert coalesced_build_args(sources={"shopify"}, merchants_digest="d1") == ["build"]  # never built
    # An operator's narrowed build is no full one: what it did not select may never have been built.
    DbtRun.objects.create(
        command="build --select dim_merchants", args=["build", "--select", "dim_merchants"], started_at=_at(12),
        status=DbtRunStatus.SUCCESS, merchants_digest="d1",
    )  # fmt: skip
    assert coalesced_build_args(sources={"shopify"}, merchants_digest="d1") == ["build"]
    DbtRun.objects.create(
        command="build", args=["build"], started_at=_at(10), status=DbtRunStatus.SUCCESS, merchants_digest="d1"
    )
    narrowed = coalesced_build_args(sources={"shopify", "meta"}, merchants_digest="d1")
    assert narrowed == ["build", "--select", "source:raw.facebook_marketing_*+", "source:raw.shopify_*+"]
    assert coalesced_build_args(sources={"shopify"}, merchants_digest="d2") == ["build"]  # other stores
    assert coalesced_build_args(sources={"a_source_we_do_not_know"}, merchants_digest="d1") == ["build"]
    DbtRun.objects.create(command="run --select fct_orders", started_at=_at(8), status=DbtRunStatus.SUCCESS)
    shopify_only = ["build", "--select", "source:raw.shopify_*+"]
    assert coalesced_build_args(sources={"shopify"}, merchants_digest="d1") == shopify_only
    # A run that failed (or was killed) since may have built a model and not what reads it.
    DbtRun.objects.create(command="run --select fct_orders+", started_at=_at(5), status=DbtRunStatus.FAILED)
    assert coalesced_build_args(sources={"shopify"}, merchants_digest="d1") == ["build"]


@pytest.mark.django_db
def test_data_as_of_is_the_latest_built_sync_per_source():
    merchant, other = MerchantFactory(), MerchantFactory()
    for source, minutes in (("shopify", 30), ("shopify", 10), ("klaviyo", 20)):
        raw_data_changed_mark(merchant_id=merchant.pk, source=source, at=_at(minutes))
    raw_data_changed_mark(merchant_id=other.pk, source="shopify", at=_at(1))
    assert data_as_of(merchant=merchant) == {}  # synced, but no build has taken it in yet
    assert data_as_of(merchant=merchant, built_only=False) == {"shopify": _at(10), "klaviyo": _at(20)}

    [run] = dbt_build_coalesced(args=SMALL_BUILD)
    assert run.status == DbtRunStatus.SUCCESS
    raw_data_changed_mark(merchant_id=merchant.pk, source="shopify", at=_at(0))  # after the build: not built
    assert data_as_of(merchant=merchant) == {"shopify": _at(10), "klaviyo": _at(20)}
    assert data_as_of(merchant=merchant, built_only=False) == {"shopify": _at(0), "klaviyo": _at(20)}
    assert data_as_of(merchant=other) == {"shopify": _at(1)}


@pytest.mark.django_db(databases=["default", "warehouse"])
def test_changes_that_wait_on_another_run_are_built_after_it_and_a_plain_build_takes_them_in(
    eager, django_capture_on_commit_callbacks
):
    merchant = MerchantFactory()
    # Recorded while an operator's `run_dbt build --select ...` held the lock: its request found the lock taken.
    waiting = RawDataChange.objects.create(merchant=merchant, source="google_ads", at=_at(4))
    with django_capture_on_commit_callbacks(execute=True):
        operator = dbt_run_execute(args=SMALL_BUILD)
    runs = list(DbtRun.objects.order_by("pk"))
    assert [(r.command, r.triggered_by) for r in runs] == [
        (operator.command, DbtTrigger.COMMAND),
        ("build", DbtTrigger.DATA_CHANGED),  # asked for as the operator's run released the lock
    ]
    assert operator.status == runs[1].status == DbtRunStatus.SUCCESS
    assert RawDataChange.objects.get(pk=waiting.pk).consumed_by_run_id == runs[1].pk

    # The nightly `build` builds everything: it takes in what is unbuilt, and asks for no build after it.
    later = RawDataChange.objects.create(merchant=merchant, source="shopify", at=_at(2))
    with django_capture_on_commit_callbacks(execute=True):
        nightly = dbt_run_execute(args=["build"], triggered_by=DbtTrigger.SCHEDULE)
    assert nightly.status == DbtRunStatus.SUCCESS
    assert RawDataChange.objects.get(pk=later.pk).consumed_by_run_id == nightly.pk
    assert DbtRun.objects.count() == 3
    assert data_as_of(merchant=merchant) == {"google_ads": _at(4), "shopify": _at(2)}


# --- coalescing ---------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
@pytest.mark.parametrize("stores", [2, 20])
def test_changes_during_a_running_build_get_exactly_one_more_build(eager, stores):
    merchants = [MerchantFactory() for _ in range(stores)]
    # A change whose build is asked for by hand (below, in a thread): the others arrive while it runs.
    first = RawDataChange.objects.create(merchant=merchants[0], source="shopify", at=_at(5))

    builder, out = _in_thread(dbt_build_coalesced, args=SMALL_BUILD)
    _wait_for(lambda: DbtRun.objects.filter(status=DbtRunStatus.RUNNING).exists(), what="the first build to start")
    running = DbtRun.objects.get()

    # Every store's sync succeeds at once, each in its own session; each request meets the running build's lock.
    barrier = threading.Barrier(stores)

    def sync_succeeds(merchant_id: int) -> int:
        barrier.wait()
        return raw_data_changed_mark(merchant_id=merchant_id, source="shopify", at=_at(1)).pk

    syncs = [_in_thread(sync_succeeds, m.pk) for m in merchants]
    for thread, _ in syncs:
        thread.join(60)
    assert all("error" not in result for _, result in syncs), [r.get("error") for _, r in syncs]
    running.refresh_from_db()
    assert running.status == DbtRunStatus.RUNNING  # they all arrived during the build

    builder.join(300)
    assert "error" not in out, out.get("error")
    runs = out["result"]
    assert [r.pk for r in runs] == list(DbtRun.objects.order_by("pk").values_list("pk", flat=True))
    assert len(runs) == 2, "exactly one more build after the running one"
    assert all(r.status == DbtRunStatus.SUCCESS for r in runs)
    assert set(RawDataChange.objects.filter(consumed_by_run=runs[0]).values_list("pk", flat=True)) == {first.pk}
    during = {result["result"] for _, result in syncs}
    assert set(RawDataChange.objects.filter(consumed_by_run=runs[1]).values_list("pk", flat=True)) == during
    assert runs[1].started_at >= runs[0].finished_at
    assert not raw_data_change_unbuilt_list().exists()


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_concurrent_build_requests_for_changes_build_once():
    merchants = [MerchantFactory() for _ in range(5)]
    # Recorded in one transaction with no broker call made (the requests are made by hand below).
    changes = [
        RawDataChange.objects.create(merchant=m, source=source, at=_at(1))
        for m in merchants
        for source in ("shopify", "klaviyo")
    ]
    barrier = threading.Barrier(8)

    def request_build() -> list[int]:
        barrier.wait()
        return [run.pk for run in dbt_build_coalesced(args=SMALL_BUILD)]

    requests = [_in_thread(request_build) for _ in range(8)]
    for thread, _ in requests:
        thread.join(300)
    assert all("error" not in out for _, out in requests), [out.get("error") for _, out in requests]
    built = [pk for _, out in requests for pk in out["result"]]
    run = DbtRun.objects.get()
    assert built == [run.pk]
    assert run.status == DbtRunStatus.SUCCESS
    assert set(RawDataChange.objects.filter(consumed_by_run=run).values_list("pk", flat=True)) == {
        c.pk for c in changes
    }


# --- debounce with a ceiling --------------------------------------------------------------------------------
# A request builds once the stores' data has been quiet for DBT_BUILD_COALESCE_SECONDS (here 60 s), or the oldest
# unbuilt change has waited DBT_BUILD_COALESCE_MAX_SECONDS (here 300 s); one that comes early asks again. The
# requests go to the real (test) broker, where no worker takes them: each test reads what was published and
# delivers it itself, by calling what the task calls. Time passing is the changes' `recorded_at` moving back.

QUIET, CEILING = 60, 300


@pytest.fixture
def debounce(settings):
    settings.DBT_BUILD_COALESCE_SECONDS = QUIET
    settings.DBT_BUILD_COALESCE_MAX_SECONDS = CEILING


@pytest.fixture
def published() -> list[dict]:
    """The build requests published to the broker: [{change_id, eta}] in order (Celery's own signal)."""
    sent: list[dict] = []

    def record(sender=None, headers=None, body=None, **kwargs):
        if sender == "analytics.dbt_build_coalesced":
            _args, task_kwargs, _embed = body
            eta = dt.datetime.fromisoformat(headers["eta"]) if headers.get("eta") else None
            sent.append({"change_id": task_kwargs.get("change_id"), "eta": eta})

    after_task_publish.connect(record, weak=False)
    yield sent
    after_task_publish.disconnect(record)


def _recorded(merchant, seconds_ago: float, source: str = "shopify") -> RawDataChange:
    return RawDataChange.objects.create(
        merchant=merchant, source=source, at=_at(1), recorded_at=timezone.now() - dt.timedelta(seconds=seconds_ago)
    )


def _assert_eta(request: dict, expected: dt.datetime) -> None:
    # Whole seconds, rounded up, from when it was sent: within 2 s of the due time.
    assert request["eta"] is not None
    assert abs((request["eta"] - expected).total_seconds()) <= 2, (request["eta"], expected)


def _time_passes(seconds: int) -> None:
    RawDataChange.objects.update(recorded_at=F("recorded_at") - dt.timedelta(seconds=seconds))


@pytest.mark.django_db
def test_a_request_in_the_quiet_period_builds_nothing_and_asks_again_for_its_end(
    debounce, published, django_capture_on_commit_callbacks
):
    change = _recorded(MerchantFactory(), seconds_ago=20)
    with django_capture_on_commit_callbacks(execute=True):
        assert dbt_build_coalesced_when_due(change_id=change.pk, args=SMALL_BUILD) == []
    assert not DbtRun.objects.exists()
    [again] = published
    assert again["change_id"] == change.pk
    _assert_eta(again, change.recorded_at + dt.timedelta(seconds=QUIET))

    # The sweep's request (no change named) does the same: one request for the end of the quiet period.
    with django_capture_on_commit_callbacks(execute=True):
        assert dbt_build_coalesced_when_due(args=SMALL_BUILD) == []
    assert published[1]["change_id"] == change.pk
    _assert_eta(published[1], change.recorded_at + dt.timedelta(seconds=QUIET))

    _time_passes(QUIET - 20)
    with django_capture_on_commit_callbacks(execute=True):
        [run] = dbt_build_coalesced_when_due(change_id=again["change_id"], args=SMALL_BUILD)
    assert (run.status, run.triggered_by) == (DbtRunStatus.SUCCESS, DbtTrigger.DATA_CHANGED)
    assert RawDataChange.objects.get(pk=change.pk).consumed_by_run_id == run.pk
    assert len(published) == 2  # built: nothing more asked for


@pytest.mark.django_db
def test_syncs_that_never_pause_are_built_at_the_ceiling(debounce, published, django_capture_on_commit_callbacks):
    merchant = MerchantFactory()
    oldest = _recorded(merchant, seconds_ago=CEILING - 100)
    _recorded(merchant, seconds_ago=30)
    with django_capture_on_commit_callbacks(execute=True):
        newest = raw_data_changed_mark(merchant_id=merchant.pk, source="klaviyo", at=_at(0))
    # The newest change asks for the quiet period's end (60 s), sooner than the ceiling (100 s away).
    [request] = published
    assert request["change_id"] == newest.pk
    _assert_eta(request, newest.recorded_at + dt.timedelta(seconds=QUIET))

    # A sync every 30 s: the quiet period never ends, but now the ceiling comes before it.
    _time_passes(80)
    with django_capture_on_commit_callbacks(execute=True):
        latest = raw_data_changed_mark(merchant_id=merchant.pk, source="shopify", at=_at(0))
    assert published[1]["change_id"] == latest.pk
    _assert_eta(published[1], RawDataChange.objects.get(pk=oldest.pk).recorded_at + dt.timedelta(seconds=CEILING))
    with django_capture_on_commit_callbacks(execute=True):
        assert dbt_build_coalesced_when_due(change_id=latest.pk, args=SMALL_BUILD) == []  # 20 s early
    _assert_eta(published[2], RawDataChange.objects.get(pk=oldest.pk).recorded_at + dt.timedelta(seconds=CEILING))

    _time_passes(21)  # the oldest has waited the ceiling, the newest is 21 s old: built
    with django_capture_on_commit_callbacks(execute=True):
        [run] = dbt_build_coalesced_when_due(change_id=latest.pk, args=SMALL_BUILD)
    assert run.status == DbtRunStatus.SUCCESS
    assert set(RawDataChange.objects.values_list("consumed_by_run", flat=True)) == {run.pk}
    assert len(published) == 3


@pytest.mark.django_db
def test_a_change_arriving_while_a_request_waits_postpones_the_build_and_the_older_request_steps_aside(
    debounce, published, django_capture_on_commit_callbacks
):
    merchant, other = MerchantFactory(), MerchantFactory()
    first = _recorded(merchant, seconds_ago=50)  # its request is due in 10 s
    with django_capture_on_commit_callbacks(execute=True):
        second = raw_data_changed_mark(merchant_id=other.pk, source="shopify", at=_at(0))
    [request] = published
    assert request["change_id"] == second.pk
    _assert_eta(request, second.recorded_at + dt.timedelta(seconds=QUIET))

    _time_passes(10)  # the first change's request comes: the second change is newer, whose request comes later
    with django_capture_on_commit_callbacks(execute=True):
        assert dbt_build_coalesced_when_due(change_id=first.pk, args=SMALL_BUILD) == []
    assert len(published) == 1 and not DbtRun.objects.exists()

    _time_passes(QUIET - 10)  # the second's request: quiet for 60 s, one build takes both in
    with django_capture_on_commit_callbacks(execute=True):
        [run] = dbt_build_coalesced_when_due(change_id=second.pk, args=SMALL_BUILD)
    assert run.status == DbtRunStatus.SUCCESS
    assert set(RawDataChange.objects.filter(consumed_by_run=run).values_list("pk", flat=True)) == {first.pk, second.pk}
    with django_capture_on_commit_callbacks(execute=True):
        assert dbt_build_coalesced_when_due(change_id=first.pk, args=SMALL_BUILD) == []  # a late one: nothing
    assert len(published) == 1 and DbtRun.objects.count() == 1


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_changes_during_a_debounced_build_get_exactly_one_more_build_once_quiet(debounce, published):
    merchants = [MerchantFactory() for _ in range(3)]
    first = _recorded(merchants[0], seconds_ago=CEILING + 100)  # long due
    builder, out = _in_thread(dbt_build_coalesced_when_due, change_id=first.pk, args=SMALL_BUILD)
    _wait_for(lambda: DbtRun.objects.filter(status=DbtRunStatus.RUNNING).exists(), what="the first build to start")

    # Syncs land during the build; each asks for its build (committed first, on_commit then publishes).
    during = [raw_data_changed_mark(merchant_id=m.pk, source="shopify", at=_at(0)).pk for m in merchants[1:]]
    assert [r["change_id"] for r in published] == during
    # A request that comes during the build finds the running build's change past the ceiling, so due, and meets
    # the lock: it leaves the rest to the holder.
    assert dbt_build_coalesced_when_due(args=SMALL_BUILD) == []
    assert DbtRun.objects.count() == 1

    builder.join(300)
    assert "error" not in out, out.get("error")
    [built] = out["result"]
    assert built.status == DbtRunStatus.SUCCESS
    assert set(RawDataChange.objects.filter(consumed_by_run=built).values_list("pk", flat=True)) == {first.pk}
    # The holder found the changes that arrived, not quiet yet: one request for when they will be.
    holder_request = published[-1]
    assert len(published) == len(during) + 1 and holder_request["change_id"] == during[-1]
    newest = RawDataChange.objects.get(pk=during[-1])
    _assert_eta(holder_request, newest.recorded_at + dt.timedelta(seconds=QUIET))

    _time_passes(QUIET)
    # Every request is delivered now, in the order sent: the first builds, the others find nothing to do.
    results = [dbt_build_coalesced_when_due(change_id=r["change_id"], args=SMALL_BUILD) for r in published]
    after = [run for result in results for run in result]
    assert len(after) == 1, "exactly one more build"
    assert after[0].status == DbtRunStatus.SUCCESS and after[0].started_at >= built.finished_at
    assert set(RawDataChange.objects.filter(consumed_by_run=after[0]).values_list("pk", flat=True)) == set(during)
    assert DbtRun.objects.count() == 2
    assert not raw_data_change_unbuilt_list().exists()


@pytest.mark.django_db
def test_a_request_the_broker_refuses_loses_no_change_and_the_sweep_builds_it(
    debounce, published, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    from config.celery import app
    from config.schedules import SCHEDULES

    merchant = MerchantFactory()
    with monkeypatch.context() as outage:  # the broker is down as the sync commits
        outage.setattr(app.conf, "broker_write_url", None)
        outage.setattr(app.conf, "broker_url", "redis://127.0.0.1:1/0")
        outage.setattr(app, "_pool", None)  # the connection and producer pools made from the broker's address
        outage.setattr(app.amqp, "_producer_pool", None)
        with django_capture_on_commit_callbacks(execute=True):
            change = raw_data_changed_mark(merchant_id=merchant.pk, source="shopify", at=_at(0))
    assert published == []
    assert any("on_commit" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    assert list(raw_data_change_unbuilt_list()) == [change]  # the sync's change is kept

    [sweep] = [s for s in SCHEDULES if s.task == "analytics.dbt_build_coalesced"]
    assert (sweep.every_seconds, sweep.kwargs) == (5 * 60, {})  # the sweep's request names no change
    _time_passes(QUIET)
    with django_capture_on_commit_callbacks(execute=True):
        [run] = dbt_build_coalesced_when_due(args=SMALL_BUILD)
    assert run.status == DbtRunStatus.SUCCESS
    assert RawDataChange.objects.get(pk=change.pk).consumed_by_run_id == run.pk


# --- a build killed mid-way -----------------------------------------------------------------------------------


def _database_url(settings_dict: dict) -> str:
    from urllib.parse import quote, urlencode

    user = quote(settings_dict["USER"], safe="")
    if settings_dict.get("PASSWORD"):
        user += ":" + quote(settings_dict["PASSWORD"], safe="")
    host = settings_dict.get("HOST")
    if host:
        return f"postgres://{user}@{host}:{settings_dict.get('PORT') or 5432}/{quote(settings_dict['NAME'])}"
    return f"postgres://{user}@/{quote(settings_dict['NAME'])}?{urlencode({'host': settings_dict['OPTIONS']['host']})}"


BUILD_IN_A_WORKER = """
import django
django.setup()
from analytics.services import dbt_build_coalesced
dbt_build_coalesced()
"""


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_a_build_killed_mid_way_leaves_its_changes_to_the_next_build(own_warehouse):
    merchant = MerchantFactory()
    change = RawDataChange.objects.create(merchant=merchant, source="shopify", at=_at(3))
    warehouse = own_warehouse
    env = {
        **{k: v for k, v in os.environ.items() if k != "DATABASE_OWNER_URL"},  # a worker runs as the app alone
        "DJANGO_DEV": "1",
        "DATABASE_URL": _database_url(connection.settings_dict),
        "WAREHOUSE_DATABASE_URL": _database_url(
            {
                "USER": warehouse["user"],
                "PASSWORD": warehouse["password"],
                "NAME": warehouse["dbname"],
                # a Unix-socket directory (the embedded PostgreSQL of make test) goes in ?host=
                "HOST": "" if str(warehouse["host"]).startswith("/") else warehouse["host"],
                "PORT": warehouse["port"],
                "OPTIONS": {"host": warehouse["host"]},
            }
        ),
    }
    worker = subprocess.Popen(
        [sys.executable, "-c", BUILD_IN_A_WORKER],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(
            lambda: (
                RawDataChange.objects.filter(pk=change.pk, consumed_by_run__status=DbtRunStatus.RUNNING).exists()
                or worker.poll() is not None
            ),
            what="the worker's build to take the change in",
        )
        assert worker.poll() is None, worker.stderr.read().decode()
        killed = DbtRun.objects.get()
        worker.send_signal(signal.SIGKILL)  # the worker dies mid-build: no end is recorded
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.stderr.close()

    # The lock went with the dead worker's session; until then a request leaves the build to it.
    with psycopg.connect(**_app_params(), autocommit=True) as probe:
        _wait_for(
            lambda: (
                not probe.execute(
                    "select 1 from pg_locks where locktype = 'advisory' and objid = %s"
                    " and database = (select oid from pg_database where datname = current_database())",
                    [DBT_LOCK_KEY],
                ).fetchone()
            ),
            what="the dead worker's lock to go",
        )
    assert RawDataChange.objects.get(pk=change.pk).consumed_by_run_id == killed.pk
    assert list(raw_data_change_unbuilt_list()) == [change]  # a `running` build nobody runs: unbuilt

    [rerun] = dbt_build_coalesced(args=SMALL_BUILD)
    assert rerun.status == DbtRunStatus.SUCCESS
    killed.refresh_from_db()
    assert killed.status == DbtRunStatus.INTERRUPTED
    assert AuditEvent.objects.filter(action="dbt_run.interrupted", target_id=str(killed.pk)).count() == 1
    assert RawDataChange.objects.get(pk=change.pk).consumed_by_run_id == rerun.pk
    assert not raw_data_change_unbuilt_list().exists()
    assert data_as_of(merchant=merchant) == {"shopify": _at(3)}


def _app_params() -> dict:
    db = connection.settings_dict
    return {
        "host": db.get("HOST") or db.get("OPTIONS", {}).get("host"),
        "port": int(db.get("PORT") or 5432),
        "user": db["USER"],
        "password": db.get("PASSWORD") or "",
        "dbname": db["NAME"],
    }


# --- admin ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_lists_changes_read_only_with_what_is_not_built_yet(admin_client):
    merchant = MerchantFactory(name="Acme Outdoor")
    built = RawDataChange.objects.create(merchant=merchant, source="klaviyo", at=_at(30))
    [run] = dbt_build_coalesced(args=SMALL_BUILD)
    waiting = RawDataChange.objects.create(merchant=merchant, source="shopify", at=_at(1))
    url = "/admin/analytics/rawdatachange/"

    page = admin_client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert "waiting for a build" in body and f"run #{run.pk}: Succeeded" in body
    assert list(admin_client.get(url + "?build=unbuilt").context["cl"].result_list) == [waiting]
    assert list(admin_client.get(url + "?build=built").context["cl"].result_list) == [built]
    detail = admin_client.get(f"{url}{waiting.pk}/change/")
    assert detail.status_code == 200 and "Acme Outdoor" in detail.content.decode()
    assert admin_client.get(url + "add/").status_code == 403
    assert admin_client.post(f"{url}{waiting.pk}/delete/", {"post": "yes"}).status_code == 403
    assert RawDataChange.objects.count() == 2


def test_a_coalescing_countdown_the_broker_cannot_hold_stops_the_boot():
    from tests.config.test_settings_boot import _production_env, _run

    result = _run(_production_env(DJANGO_DEV="1", DBT_BUILD_COALESCE_SECONDS="601"), "check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: DBT_BUILD_COALESCE_SECONDS must be between 0 and 600 (the longest a task may wait "
        "in the broker)"
    ]
    assert _run(_production_env(DJANGO_DEV="1", DBT_BUILD_COALESCE_SECONDS="0"), "check").returncode == 0


@pytest.mark.parametrize("ceiling", ["9", "601"])
def test_a_ceiling_below_the_quiet_period_or_beyond_the_broker_stops_the_boot(ceiling):
    from tests.config.test_settings_boot import _production_env, _run

    env = _production_env(DJANGO_DEV="1", DBT_BUILD_COALESCE_SECONDS="10", DBT_BUILD_COALESCE_MAX_SECONDS=ceiling)
    result = _run(env, "check")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "configuration error: DBT_BUILD_COALESCE_MAX_SECONDS must be between DBT_BUILD_COALESCE_SECONDS and 600 "
        "(the longest a task may wait in the broker)"
    ]
    # Unset, it is 120 s, or the quiet period when that is longer: a long quiet period alone still boots.
    assert _run(_production_env(DJANGO_DEV="1", DBT_BUILD_COALESCE_SECONDS="300"), "check").returncode == 0
