"""The retention purge (compliance/retention.py): old data goes in bounded batches, held data stays with one
exemption per hold, category and run, a re-run deletes nothing more, a killed run is resumed, and the audit log is
purged only through the owner's function, which the app cannot point at recent rows."""

import datetime as dt
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.utils import timezone

from analytics.landing import landed_schema_statements
from analytics.raw_schema import raw_table_statements
from compliance.choices import ActorType, PurgeStatus
from compliance.exports import audit_export_file_delete
from compliance.holds import hold_place, hold_release
from compliance.models import AuditEvent, AuditExport, HoldExemption, PurgeRun
from compliance.retention import LOCK_KEY, PurgeLocked, retention_purge
from compliance.services import Actor
from notifications.models import Notification
from tests.accounts.factories import MerchantFactory
from tests.compliance.export_fixtures import compliance_storage, succeeded_export  # noqa: F401 (a fixture)
from tests.notifications.factories import NotificationFactory

pytestmark = pytest.mark.django_db

STAFF = Actor(type=ActorType.STAFF, id="7", label="counsel@example.com")
NOW = timezone.now()
OLD = NOW - dt.timedelta(days=800)  # past raw data's 761 days
YOUNG = NOW - dt.timedelta(days=30)


def execute(statement, params=None):
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.fetchall() if cursor.description else cursor.rowcount


def landed_tables_emptied() -> None:
    """The landed tables are shared by every store, and builds earlier in the session left rows in them: this
    test's purge is measured on its own rows (the TRUNCATE is rolled back with the test)."""
    tables = execute("SELECT tablename FROM pg_tables WHERE schemaname = 'landed' AND left(tablename, 1) <> '_'")
    if tables:
        execute("TRUNCATE " + ", ".join(f'landed."{name}"' for (name,) in tables))


@pytest.fixture
def store():
    merchant = MerchantFactory(key="purged_store")
    for statement in [
        *raw_table_statements(merchant.key, ("shopify_orders", "web_events")),
        *landed_schema_statements(),
    ]:
        execute(statement)
    landed_tables_emptied()
    return merchant


def order(store, order_id, created_at, customer_id=1, landed=False):
    table = "landed.shopify_orders" if landed else f"raw_{store.key}.shopify_orders"
    merchant = "merchant_id, _load_id, " if landed else ""
    values = f"{store.pk}, {order_id}, " if landed else ""
    execute(
        f"INSERT INTO {table} ({merchant}id, email, customer, created_at, _airbyte_raw_id, _airbyte_extracted_at)"
        f" VALUES ({values}%s, %s, %s::jsonb, %s, %s, %s)",
        [order_id, f"c{customer_id}@example.com", f'{{"id": {customer_id}}}', created_at, uuid.uuid4(), created_at],
    )


def ids(table):
    return sorted(row[0] for row in execute(f"SELECT id FROM {table}"))


def test_old_raw_data_is_purged_in_batches_held_data_stays_and_a_rerun_deletes_nothing(store):
    for i in range(1, 6):
        order(store, i, OLD)  # customer 1: purged
    order(store, 6, OLD, customer_id=2)  # held
    order(store, 7, YOUNG)  # within retention
    order(store, 8, OLD, landed=True)
    order(store, 9, OLD, customer_id=2, landed=True)
    for event_id, at in (("old", NOW - dt.timedelta(days=430)), ("young", NOW - dt.timedelta(days=400))):
        execute(  # events are kept 426 days
            "INSERT INTO raw_purged_store.web_events (event_id, occurred_at, _airbyte_raw_id) VALUES (%s, %s, %s)",
            [event_id, at, uuid.uuid4()],
        )
    hold = hold_place(merchant_id=store.pk, matter="M", reason="r", actor=STAFF, customer_ids=[2], categories=["raw"])

    run = retention_purge(batch_size=2)
    assert run.status == PurgeStatus.SUCCEEDED and run.finished_at
    assert ids("raw_purged_store.shopify_orders") == [6, 7]
    assert ids("landed.shopify_orders") == [9]
    assert [r[0] for r in execute("SELECT event_id FROM raw_purged_store.web_events")] == ["young"]
    assert run.deleted == {"raw": 6, "events": 1}
    assert run.held == {"raw": 2, "events": 0, "messages": 0, "exports": 0, "audit_log": 0}
    assert run.batches == 5  # raw: 2 + 2 + 1 (a short batch ends the table); landed: 1; events: 1
    assert run.done == ["raw", "events", "messages", "exports", "audit_log"]
    [exemption] = HoldExemption.objects.filter(purge_run=run)
    assert (exemption.hold_id, exemption.category, exemption.work, exemption.merchant_id) == (
        hold.pk,
        "raw",
        "retention purge",
        store.pk,
    )
    assert exemption.detail == {
        "rows": 2,
        "tables": {"landed.shopify_orders": 1, "raw_purged_store.shopify_orders": 1},
    }
    assert exemption.target == f"raw data before {run.cutoffs['raw'][:10]}"

    again = retention_purge(batch_size=2)
    assert again.pk != run.pk and again.deleted == {} and again.batches == 0
    assert ids("raw_purged_store.shopify_orders") == [6, 7]
    assert HoldExemption.objects.filter(purge_run=again).count() == 1  # once per hold, category and run

    hold_release(hold=hold, actor=STAFF, reason="settled")  # eligible again at the next purge, not before
    assert ids("raw_purged_store.shopify_orders") == [6, 7]
    assert retention_purge().deleted == {"raw": 2}
    assert ids("raw_purged_store.shopify_orders") == [7]


def test_a_run_killed_after_one_batch_is_resumed_with_its_cut_offs(store):
    for i in range(1, 6):
        order(store, i, OLD)

    def killed(run):
        raise KeyboardInterrupt  # the worker dies: nothing after the committed batch runs

    with pytest.raises(KeyboardInterrupt):
        retention_purge(batch_size=2, on_batch=killed)
    interrupted = PurgeRun.objects.get()
    assert (interrupted.status, interrupted.deleted, interrupted.done) == (PurgeStatus.RUNNING, {"raw": 2}, [])
    assert len(ids("raw_purged_store.shopify_orders")) == 3

    resumed = retention_purge(batch_size=2)
    assert resumed.pk == interrupted.pk and resumed.resumed == 1 and resumed.cutoffs == interrupted.cutoffs
    assert resumed.status == PurgeStatus.SUCCEEDED and resumed.deleted == {"raw": 5}
    assert ids("raw_purged_store.shopify_orders") == []


def test_notifications_the_outbox_is_done_with_are_purged_unless_held():
    held_store, other = MerchantFactory(), MerchantFactory()
    old_sent = NotificationFactory(merchant=other, status="sent")
    old_pending = NotificationFactory(merchant=other, status="pending")
    old_held = NotificationFactory(merchant=held_store, status="sent")
    young = NotificationFactory(merchant=other, status="sent")
    Notification.objects.exclude(pk=young.pk).update(created_at=NOW - dt.timedelta(days=400))
    hold = hold_place(merchant_id=held_store.pk, matter="M", reason="r", actor=STAFF, categories=["messages"])

    run = retention_purge()
    assert set(Notification.objects.values_list("pk", flat=True)) == {old_pending.pk, old_held.pk, young.pk}
    assert not Notification.objects.filter(pk=old_sent.pk).exists()
    assert run.deleted == {"messages": 1} and run.held["messages"] == 1
    assert HoldExemption.objects.get(purge_run=run).hold_id == hold.pk


def test_the_audit_log_is_purged_only_past_the_databases_own_retention():
    held_store = MerchantFactory()
    ancient = NOW - dt.timedelta(days=8 * 365)

    def event(at, merchant=None):
        return AuditEvent.objects.create(occurred_at=at, actor_type="system", action="test.old", merchant=merchant)

    gone, kept_held, recent = event(ancient), event(ancient, held_store), event(NOW - dt.timedelta(days=2000))
    hold = hold_place(merchant_id=held_store.pk, matter="M", reason="r", actor=STAFF, categories=["audit_log"])

    run = retention_purge()
    assert run.deleted == {"audit_log": 1} and run.held["audit_log"] == 1
    assert not AuditEvent.objects.filter(pk=gone.pk).exists()
    assert AuditEvent.objects.filter(pk__in=[kept_held.pk, recent.pk]).count() == 2
    assert HoldExemption.objects.get(purge_run=run, category="audit_log").hold_id == hold.pk

    # The app still cannot delete a recent row: not directly, not by asking the function for more, not by
    # rewriting the function's retention or the trigger's flag.
    attempts = [
        ("DELETE FROM compliance_auditevent WHERE id = %s", [recent.pk]),
        ("ALTER FUNCTION compliance_audit_purge(integer) SET compliance.audit_retention_days = '0'", None),
        ("SET LOCAL compliance.audit_purge = 'on'; DELETE FROM compliance_auditevent WHERE id = %s", [recent.pk]),
    ]
    for statement, params in attempts:
        with pytest.raises(DatabaseError) as caught, transaction.atomic():
            execute(statement, params)
        assert caught.value.__cause__.sqlstate == "42501", statement
    with transaction.atomic():
        execute("SET LOCAL compliance.audit_retention_days = '0'")
        assert execute("SELECT compliance_audit_purge(10000)") == [(0,)]  # the function's own setting wins
    assert AuditEvent.objects.filter(pk=recent.pk).exists()


def test_one_purge_at_a_time(owner_db):
    owner_db.execute("SELECT pg_advisory_lock(%s)", [LOCK_KEY])
    try:
        with pytest.raises(PurgeLocked):
            retention_purge()
        with pytest.raises(CommandError, match="another retention purge is running"):
            call_command("purge_retention")
    finally:
        owner_db.execute("SELECT pg_advisory_unlock(%s)", [LOCK_KEY])
    assert not PurgeRun.objects.exists()
    with pytest.raises(CommandError, match="at least 1"):
        call_command("purge_retention", "--batch-size", "0")


@pytest.mark.django_db(transaction=True)
def test_a_purge_process_killed_after_one_batch_is_resumed_by_the_next_run(owner_db):
    """A real kill: `manage.py purge_retention --batch-size 1` in a process of its own commits one batch, then
    waits on a row another session locks; it is SIGKILLed there. The next run resumes the same PurgeRun."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from django.conf import settings

    from tests.conftest import _url

    merchant = MerchantFactory(key="killed_store")
    for statement in raw_table_statements(merchant.key, ("shopify_orders",)):
        execute(statement)
    try:
        for i in (1, 2, 3):
            order(merchant, i, OLD)  # committed (transactional test), in this physical order
        db = settings.DATABASES["default"]
        url = _url(db, db["NAME"])  # also on a Unix socket (the embedded server of `make test`)
        owner_db.execute("BEGIN")
        owner_db.execute("SELECT 1 FROM raw_killed_store.shopify_orders WHERE id = 2 FOR UPDATE")
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "purge_retention", "--batch-size", "1"],
            env={
                **{k: v for k, v in os.environ.items() if k not in ("DATABASE_OWNER_URL", "WAREHOUSE_DATABASE_URL")},
                "DATABASE_URL": url,
                "DJANGO_DEV": "1",
                "DO_NOT_TRACK": "1",
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            line = worker.stdout.readline()
            assert "batch 1" in line, line + worker.stdout.read() if worker.poll() is not None else line
            time.sleep(0.5)  # it is now waiting on row 2
            assert worker.poll() is None
            worker.send_signal(signal.SIGKILL)
            worker.wait(10)
        finally:
            if worker.poll() is None:
                worker.kill()
        owner_db.execute("ROLLBACK")  # its backend now finds the client gone and ends, with its advisory lock
        interrupted = PurgeRun.objects.get()
        assert (interrupted.status, interrupted.deleted) == (PurgeStatus.RUNNING, {"raw": 1})
        assert ids("raw_killed_store.shopify_orders") == [2, 3]

        for _ in range(100):
            try:
                resumed = retention_purge()
                break
            except PurgeLocked:
                time.sleep(0.1)
        assert resumed.pk == interrupted.pk and resumed.resumed == 1 and resumed.status == PurgeStatus.SUCCEEDED
        assert resumed.deleted == {"raw": 3}
        assert ids("raw_killed_store.shopify_orders") == []
    finally:
        owner_db.execute("DROP SCHEMA IF EXISTS raw_killed_store CASCADE")


def test_export_files_past_their_period_are_deleted_unless_held_and_the_database_refuses_the_held_ones(
    compliance_storage,  # noqa: F811 (the fixture imported above)
    django_capture_on_commit_callbacks,
):
    held_store, other = MerchantFactory(), MerchantFactory()
    old, old_held, young = (succeeded_export(merchant=m) for m in (other, held_store, other))
    AuditExport.objects.filter(pk__in=[old.pk, old_held.pk]).update(created_at=NOW - dt.timedelta(days=31))
    hold = hold_place(merchant_id=held_store.pk, matter="M", reason="r", actor=STAFF, categories=["exports"])

    with django_capture_on_commit_callbacks(execute=True):  # the file goes once its row's change commits
        run = retention_purge()
    assert run.deleted == {"exports": 1} and run.held["exports"] == 1
    files = dict(AuditExport.objects.values_list("pk", "file_key"))
    assert files[old.pk] == "" and files[old_held.pk] and files[young.pk]
    assert AuditExport.objects.get(pk=old.pk).sha256  # the row and its checksum stay; only the file goes
    assert not (compliance_storage / old.file_key).exists() and (compliance_storage / old_held.file_key).exists()
    assert HoldExemption.objects.get(purge_run=run, category="exports").hold_id == hold.pk

    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        audit_export_file_delete(export=old_held)  # the code that forgets to ask is stopped by the trigger
    assert caught.value.__cause__.sqlstate == "HL001"
