import contextlib

import psycopg
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.utils import DatabaseError
from django.urls import reverse

from compliance.models import AuditEvent
from compliance.services import Actor, AuditMetadataError, audit_event_record
from tests.accounts.factories import MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def event():
    return audit_event_record(action="test.happened", actor=Actor.system("test"), metadata={"n": 1})


@contextlib.contextmanager
def refused():
    """The block fails with PostgreSQL's insufficient_privilege (42501): no privilege, not the owner, or the
    append-only trigger (which raises the same code). Each attempt runs in its own savepoint."""
    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        yield
    assert caught.value.__cause__.sqlstate == "42501", caught.value


def test_orm_update_is_refused(event):
    with refused():
        AuditEvent.objects.filter(pk=event.pk).update(action="test.rewritten")
    event.refresh_from_db()
    assert event.action == "test.happened"


def test_orm_delete_is_refused(event):
    with refused():
        event.delete()
    assert AuditEvent.objects.filter(pk=event.pk).exists()


# Through the app's own connection (django.db.connection): every way to change or empty the log, the three
# that get around the trigger (TRUNCATE, disabling it, replica mode) included, is refused by PostgreSQL.
@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE compliance_auditevent SET action = 'x' WHERE id = %s",
        "DELETE FROM compliance_auditevent WHERE id = %s",
        "TRUNCATE compliance_auditevent",
        "TRUNCATE compliance_auditevent CASCADE",
        "ALTER TABLE compliance_auditevent DISABLE TRIGGER compliance_auditevent_append_only",
        "ALTER TABLE compliance_auditevent DISABLE TRIGGER ALL",
        "DROP TRIGGER compliance_auditevent_append_only ON compliance_auditevent",
        "DROP TABLE compliance_auditevent",
        "ALTER TABLE compliance_auditevent RENAME TO compliance_auditevent_old",
        "SELECT setval(pg_get_serial_sequence('compliance_auditevent', 'id'), 1)",
    ],
)
def test_the_app_cannot_change_the_log(event, sql):
    with refused(), connection.cursor() as cursor:
        cursor.execute(sql, [event.pk] if "%s" in sql else None)
    assert AuditEvent.objects.get(pk=event.pk).action == "test.happened"


def test_replica_mode_is_refused_so_the_trigger_stays_on(event):
    with refused(), connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone() == ("origin",)
    with refused(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM compliance_auditevent WHERE id = %s", [event.pk])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_app_cannot_become_the_owner(event, owner_db):
    owner = owner_db.execute("SELECT current_user").fetchone()[0]
    with refused(), connection.cursor() as cursor:
        cursor.execute(f'SET ROLE "{owner}"')
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, session_user")
        assert cursor.fetchone() == (settings.DATABASE_APP_ROLE, settings.DATABASE_APP_ROLE)


def test_the_trigger_still_stops_the_owner(owner_db):
    """Defence in depth: migrations and psql sessions as the owner do not rewrite history by accident."""
    owner_db.execute("BEGIN")  # rolled back at the end: the test database keeps no row of this test
    try:
        owner_db.execute(
            "INSERT INTO compliance_auditevent (occurred_at, actor_type, actor_id, actor_label, action, target_type,"
            " target_id, user_agent, metadata) VALUES (now(), 'system', '', 'test', 'test.owner', '', '', '', '{}')"
        )
        for sql in ("UPDATE compliance_auditevent SET action = 'x'", "DELETE FROM compliance_auditevent"):
            owner_db.execute("SAVEPOINT attempt")
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
                owner_db.execute(sql)
            owner_db.execute("ROLLBACK TO SAVEPOINT attempt")
        assert owner_db.execute(
            "SELECT count(*) FROM compliance_auditevent WHERE action = 'test.owner'"
        ).fetchone() == (1,)
    finally:
        owner_db.execute("ROLLBACK")


@pytest.mark.parametrize(
    "metadata",
    [
        {"api_key": "anything"},
        {"nested": {"refresh_token": "x"}},
        {"Authorization": "x"},
        {"note": "Bearer abc.def"},
        {"list": ["fine", "sk_live_abcdefgh12345678"]},
        {"key": "pk_" + "a" * 34},
        {"jwt": "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"},
        {"meta": "EAA" + "b" * 30},
    ],
)
def test_metadata_that_looks_like_a_secret_is_refused(metadata):
    with pytest.raises(AuditMetadataError):
        audit_event_record(action="test.secret", actor=Actor.system("t"), metadata=metadata)
    assert not AuditEvent.objects.filter(action="test.secret").exists()


def test_plain_metadata_is_kept():
    event = audit_event_record(
        action="test.ok", actor=Actor.system("t"), metadata={"provider": "klaviyo", "key_last4": "ab12", "n": [1, 2]}
    )
    assert AuditEvent.objects.get(pk=event.pk).metadata == {"provider": "klaviyo", "key_last4": "ab12", "n": [1, 2]}


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client.force_login(user)
    return client


def test_admin_changes_are_recorded(staff_client):
    merchant = MerchantFactory()
    response = staff_client.post(
        reverse("admin:accounts_merchant_change", args=[merchant.pk]),
        {
            "name": "Renamed",
            "shop_domain": merchant.shop_domain,
            "timezone": merchant.timezone,
            "currency": merchant.currency,
            "is_active": "on",
            "memberships-TOTAL_FORMS": "0",
            "memberships-INITIAL_FORMS": "0",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    event = AuditEvent.objects.get(action="admin.object_changed")
    assert event.actor_label == "ops"
    assert event.target_type == "accounts.merchant"
    assert event.target_id == str(merchant.pk)
    assert event.merchant_id == merchant.pk


def test_staff_sign_in_and_out_are_recorded(client):
    get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client.post(reverse("admin:login"), {"username": "ops", "password": "wrong"})
    client.post(reverse("admin:login"), {"username": "ops", "password": "a-long-password-1"})
    client.post(reverse("admin:logout"))
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["staff.sign_in_failed", "staff.signed_in", "staff.signed_out"]
    failed = AuditEvent.objects.get(action="staff.sign_in_failed")
    assert "wrong" not in str(failed.metadata)


def test_audit_admin_is_read_only(staff_client, event):
    listing = staff_client.get(reverse("admin:compliance_auditevent_changelist"))
    assert listing.status_code == 200
    assert "test.happened" in listing.content.decode()
    assert staff_client.get(reverse("admin:compliance_auditevent_add")).status_code == 403
    detail = staff_client.post(reverse("admin:compliance_auditevent_change", args=[event.pk]), {"action": "x"})
    assert detail.status_code == 403
    assert staff_client.post(reverse("admin:compliance_auditevent_delete", args=[event.pk])).status_code == 403
    event.refresh_from_db()
    assert event.action == "test.happened"
