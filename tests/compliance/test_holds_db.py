"""Legal holds enforced by the database (compliance/guards.py, migration compliance/0003): a raw SQL delete or
rewrite of a held row — in the notifications outbox, a store's raw tables, the landed tables — is refused with
SQLSTATE HL001 naming the hold; unheld rows delete as before; after the release the held rows delete too."""

import contextlib
import datetime as dt
import hashlib
import uuid

import pytest
from django.db import connection, transaction
from django.db.utils import DatabaseError

from analytics.landing import landed_schema_statements
from analytics.raw_schema import raw_table_statements
from compliance.choices import ActorType
from compliance.guards import HOLD_SQLSTATE, TRIGGER_NAME
from compliance.holds import hold_place, hold_refusal, hold_release
from compliance.services import Actor
from notifications.models import Notification
from tests.accounts.factories import MerchantFactory
from tests.notifications.factories import NotificationFactory

pytestmark = pytest.mark.django_db

STAFF = Actor(type=ActorType.STAFF, id="7", label="counsel@example.com")
T0 = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)


def place(merchant, **scope):
    return hold_place(merchant_id=merchant.pk, matter="Doe v. Store", reason="litigation", actor=STAFF, **scope)


def execute(statement, params=None) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


@contextlib.contextmanager
def refused_by(hold):
    """The block fails with the hold trigger's error, which names `hold`; in a savepoint of its own."""
    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        yield
    assert caught.value.__cause__.sqlstate == HOLD_SQLSTATE, caught.value
    assert hold_refusal(caught.value) == hold.pk
    assert f"legal hold {hold.pk} covers" in str(caught.value)


def test_a_held_notification_cannot_be_deleted_or_rewritten_until_released():
    merchant = MerchantFactory()
    held = NotificationFactory(merchant=merchant, to_email="owner@example.com")
    other_store = NotificationFactory()
    hold = place(merchant, categories=["messages"])
    place(other_store.merchant, categories=["raw"])  # another category: does not cover its notifications

    with refused_by(hold):
        execute("DELETE FROM notifications_notification WHERE id = %s", [held.pk])
    with refused_by(hold):
        execute("UPDATE notifications_notification SET to_email = 'redacted' WHERE id = %s", [held.pk])
    with refused_by(hold):
        held.delete()  # the ORM is no way around it
    # the outbox still works the row: status and attempts are not what a hold preserves
    assert execute("UPDATE notifications_notification SET status = 'sent', attempts = 2 WHERE id = %s", [held.pk])
    assert execute("DELETE FROM notifications_notification WHERE id = %s", [other_store.pk]) == 1

    hold_release(hold=hold, actor=STAFF, reason="settled")
    assert execute("DELETE FROM notifications_notification WHERE id = %s", [held.pk]) == 1
    assert not Notification.objects.exists()


def raw_order(schema, order_id, *, email, customer_id, created_at=T0):
    execute(
        f"INSERT INTO {schema}.shopify_orders (id, email, customer, created_at, _airbyte_raw_id, _airbyte_extracted_at)"
        " VALUES (%s, %s, %s::jsonb, %s, %s, now())",
        [order_id, email, f'{{"id": {customer_id}, "email": "{email}"}}', created_at, uuid.uuid4()],
    )


def test_a_raw_delete_of_a_held_customers_orders_is_refused_and_other_customers_delete():
    merchant = MerchantFactory(key="held_store")
    for statement in raw_table_statements(merchant.key):
        execute(statement)
    schema = "raw_held_store"
    raw_order(schema, 1, email="Jane@Example.com", customer_id=123)  # e-mail matched in any case
    raw_order(schema, 2, email="jane2@example.com", customer_id=456)  # customer id matched
    raw_order(schema, 3, email="joe@example.com", customer_id=789)  # not held
    raw_order(schema, 4, email="jane2@example.com", customer_id=456, created_at=T0.replace(year=2023))  # out of range
    hold = place(merchant, emails=["jane@example.com"], customer_ids=[456], date_from=T0.replace(year=2024))

    with refused_by(hold):
        execute(f"DELETE FROM {schema}.shopify_orders")  # all or nothing: the statement fails whole
    with refused_by(hold):
        execute(f"UPDATE {schema}.shopify_orders SET email = NULL WHERE id = 1")  # a redaction is a rewrite
    with refused_by(hold):
        execute(f"DELETE FROM {schema}.shopify_orders WHERE id = 2")
    assert execute(f"DELETE FROM {schema}.shopify_orders WHERE id IN (3, 4)") == 2

    hold_release(hold=hold, actor=STAFF, reason="settled")
    assert execute(f"DELETE FROM {schema}.shopify_orders") == 2


def test_web_events_are_held_by_the_hash_of_the_e_mail_the_pixel_sends():
    merchant = MerchantFactory(key="pixel_store")
    for statement in raw_table_statements(merchant.key, ("web_events",)):
        execute(statement)
    digest = hashlib.sha256(b"jane@example.com").hexdigest()
    for event_id, email_sha256 in (("e1", digest), ("e2", hashlib.sha256(b"joe@example.com").hexdigest())):
        execute(
            "INSERT INTO raw_pixel_store.web_events (event_id, occurred_at, email_sha256, _airbyte_raw_id)"
            " VALUES (%s, %s, %s, gen_random_uuid())",
            [event_id, T0, email_sha256],
        )
    hold = place(merchant, emails=["JANE@example.com"], categories=["events"])
    with refused_by(hold):
        execute("DELETE FROM raw_pixel_store.web_events WHERE event_id = 'e1'")
    assert execute("DELETE FROM raw_pixel_store.web_events WHERE event_id = 'e2'") == 1


def test_the_landed_tables_are_guarded_by_the_rows_merchant_id():
    held_store, free_store = MerchantFactory(), MerchantFactory()
    for statement in landed_schema_statements():
        execute(statement)
    guarded = execute(
        "SELECT 1 FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'landed' AND t.tgname = %s",
        [TRIGGER_NAME],
    )
    assert guarded == 24  # every landed table
    for merchant, customer in ((held_store, 1), (held_store, 2), (free_store, 1)):
        execute(
            "INSERT INTO landed.shopify_customers (merchant_id, _load_id, id, email, created_at, _airbyte_raw_id)"
            " VALUES (%s, 1, %s, %s, %s, gen_random_uuid())",
            [merchant.pk, customer, f"c{customer}@example.com", T0],
        )
    hold = place(held_store, customer_ids=[1])
    with refused_by(hold):
        execute("DELETE FROM landed.shopify_customers WHERE merchant_id = %s", [held_store.pk])
    assert execute("DELETE FROM landed.shopify_customers WHERE merchant_id = %s AND id = 2", [held_store.pk]) == 1
    assert execute("DELETE FROM landed.shopify_customers WHERE merchant_id = %s", [free_store.pk]) == 1
    hold_release(hold=hold, actor=STAFF, reason="settled")
    # (earlier builds in the session left other stores' rows in the shared table)
    assert execute("DELETE FROM landed.shopify_customers WHERE merchant_id = %s", [held_store.pk]) == 1


@pytest.mark.django_db(transaction=True)
def test_the_load_step_guards_a_raw_table_it_finds_without_the_trigger():
    """Airbyte creates its tables (and a reset recreates them) without our trigger: the load installs it the first
    time it reads the table."""
    import psycopg
    from django.conf import settings

    from analytics.landing import raw_load

    merchant = MerchantFactory(key="airbyte_store")
    from tests.conftest import _conninfo

    db = settings.DATABASES["default"]
    with psycopg.connect(_conninfo(db, db["NAME"])) as conn:  # also on a Unix socket
        try:
            for statement in raw_table_statements(merchant.key, ("shopify_customers",)):
                conn.execute(statement)
            # as a destination would create it: the columns, not our trigger
            conn.execute(f"DROP TRIGGER {TRIGGER_NAME} ON raw_airbyte_store.shopify_customers")
            conn.execute(
                "INSERT INTO raw_airbyte_store.shopify_customers (id, email, _airbyte_raw_id, _airbyte_extracted_at)"
                " VALUES (1, 'jane@example.com', gen_random_uuid(), now())"
            )
            conn.commit()
            result = raw_load(conn, merchants=[{"id": merchant.pk, "key": merchant.key}])
            assert result.rows == {"shopify_customers": 1} and not result.failures
            hold = place(merchant)
            for table in ("raw_airbyte_store.shopify_customers", "landed.shopify_customers"):
                with pytest.raises(psycopg.Error) as caught:
                    conn.execute(f"DELETE FROM {table}")
                conn.rollback()
                assert caught.value.sqlstate == HOLD_SQLSTATE and hold_refusal(caught.value) == hold.pk
            hold_release(hold=hold, actor=STAFF, reason="settled")  # else the schemas cannot be dropped below
        finally:
            conn.rollback()
            conn.execute("DROP SCHEMA IF EXISTS raw_airbyte_store CASCADE")
            conn.execute("DROP SCHEMA IF EXISTS landed CASCADE")
            conn.commit()


@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE raw_owned_store.shopify_customers",
        "ALTER TABLE raw_owned_store.shopify_customers DISABLE TRIGGER compliance_hold_guard",
        "ALTER TABLE raw_owned_store.shopify_customers DISABLE TRIGGER ALL",
        "ALTER TABLE raw_owned_store.shopify_customers ENABLE REPLICA TRIGGER compliance_hold_guard",
        "ALTER TABLE raw_owned_store.shopify_customers DISABLE TRIGGER compliance_hold_guard_truncate",
        "DROP TRIGGER compliance_hold_guard ON raw_owned_store.shopify_customers",
        "ALTER TRIGGER compliance_hold_guard ON raw_owned_store.shopify_customers RENAME TO off",
        "DROP TABLE raw_owned_store.shopify_customers",
        "DROP SCHEMA raw_owned_store CASCADE",
        "DROP SCHEMA landed CASCADE",
        "TRUNCATE landed.shopify_customers",
    ],
)
def test_the_app_owns_its_raw_and_landed_tables_yet_cannot_switch_the_guard_off_while_a_hold_covers_them(
    statement,
):
    """The app's role owns what it creates (raw_<key> of our intakes, the landed layer): owning a table is the
    power to truncate it, disable, drop or rename its triggers, drop it. The TRUNCATE guard and the event
    triggers (migration 0004) refuse each while a hold covers the table's store; after the release they pass."""
    merchant = MerchantFactory(key="owned_store")
    for setup in [*raw_table_statements(merchant.key, ("shopify_customers",)), *landed_schema_statements()]:
        execute(setup)
    owner = execute(
        "SELECT 1 FROM pg_tables WHERE schemaname IN ('raw_owned_store', 'landed') AND tablename = 'shopify_customers'"
        " AND tableowner = current_user"
    )
    assert owner == 2  # the finding: the app's role owns both
    hold = place(merchant, customer_ids=["1"])
    with refused_by(hold):
        execute(statement)
    hold_release(hold=hold, actor=STAFF, reason="settled")
    with transaction.atomic():
        execute(statement)


def test_the_guard_cannot_be_re_created_to_name_another_store_or_category():
    merchant, other = MerchantFactory(key="args_store"), MerchantFactory()
    for setup in raw_table_statements(merchant.key, ("web_events",)):
        execute(setup)
    for args in (("events", str(other.pk)), ("raw", str(merchant.pk))):
        with pytest.raises(DatabaseError) as caught, transaction.atomic():
            execute(
                "CREATE OR REPLACE TRIGGER compliance_hold_guard BEFORE UPDATE OR DELETE ON raw_args_store.web_events"
                " FOR EACH ROW EXECUTE FUNCTION compliance_hold_guard(%s, %s, '', '', '', '')",
                list(args),
            )
        assert caught.value.__cause__.sqlstate == HOLD_SQLSTATE
        assert "must name its own store and data category" in str(caught.value)


def test_the_deploy_check_warns_when_the_event_triggers_are_missing(owner_db):
    from compliance.checks import hold_ddl_guard_check

    assert hold_ddl_guard_check(databases=["default"]) == []  # migrate ran as a superuser here
    owner_db.execute("ALTER EVENT TRIGGER compliance_hold_ddl_drop DISABLE")
    try:
        [warning] = hold_ddl_guard_check(databases=["default"])
        assert warning.id == "compliance.W003"
    finally:
        owner_db.execute("ALTER EVENT TRIGGER compliance_hold_ddl_drop ENABLE")
