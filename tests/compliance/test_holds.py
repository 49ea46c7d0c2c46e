"""Legal holds through the Python API (compliance/holds.py): placing, changing and releasing them is validated
and audited, `holds_covering` answers what the database's trigger answers, and the records are kept."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.utils import DatabaseError

from compliance import holds
from compliance.choices import ActorType, DataCategory
from compliance.holds import exemption_record, hold_place, hold_release, hold_update, holds_covering
from compliance.models import AuditEvent, HoldExemption, LegalHold
from compliance.services import Actor
from tests.accounts.factories import MerchantFactory

pytestmark = pytest.mark.django_db

STAFF = Actor(type=ActorType.STAFF, id="7", label="counsel@example.com")
T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


@pytest.fixture
def merchant():
    return MerchantFactory()


def place(merchant, **scope):
    return hold_place(merchant_id=merchant.pk, matter="Doe v. Store", reason="litigation", actor=STAFF, **scope)


def test_placing_normalises_the_scope_and_is_audited(merchant):
    hold = place(
        merchant,
        customer_ids=[123, " 123 ", "456"],
        emails=[" Jane@Example.COM", "jane@example.com"],
        categories=[DataCategory.RAW, DataCategory.RAW],
        date_from=T0,
    )
    hold.refresh_from_db()
    assert (hold.customer_ids, hold.emails, hold.categories) == (["123", "456"], ["jane@example.com"], ["raw"])
    assert (hold.placed_by_type, hold.placed_by_id, hold.placed_by_label) == ("staff", "7", "counsel@example.com")
    assert hold.is_active
    event = AuditEvent.objects.get(action="legal_hold.placed")
    assert (event.target_type, event.target_id, event.merchant_id, event.actor_label) == (
        "legal_hold",
        str(hold.pk),
        merchant.pk,
        "counsel@example.com",
    )
    # the scope's shape, not the customers' addresses: the log outlives them
    assert event.metadata == {
        "matter": "Doe v. Store",
        "customers": 2,
        "emails": 1,
        "categories": ["raw"],
        "date_from": T0.isoformat(),
        "date_to": None,
    }


def test_bad_input_is_refused_field_by_field_and_nothing_is_written(merchant):
    with pytest.raises(ValidationError) as caught:
        hold_place(
            merchant_id=merchant.pk,
            matter=" ",
            reason="",
            actor=STAFF,
            emails=["not-an-email"],
            categories=["everything"],
            customer_ids=[""],
            date_from=T0,
            date_to=T0,
        )
    assert caught.value.message_dict == {
        "matter": [holds.MATTER_REQUIRED],
        "reason": [holds.REASON_REQUIRED],
        "emails": [holds.BAD_EMAIL.format(value="not-an-email")],
        "customer_ids": [holds.BAD_CUSTOMER_ID.format(value="")],
        "categories": [
            holds.UNKNOWN_CATEGORY.format(value="everything", choices="raw, events, messages, exports, audit_log")
        ],
        "date_to": [holds.BAD_DATE_RANGE],
    }
    assert not LegalHold.objects.exists() and not AuditEvent.objects.exists()


def test_changing_a_hold_records_before_and_after(merchant):
    hold = place(merchant)
    hold = hold_update(hold=hold, actor=STAFF, emails=["A@b.example"], categories=["events"])
    assert (hold.emails, hold.categories) == (["a@b.example"], ["events"])
    event = AuditEvent.objects.get(action="legal_hold.changed")
    assert event.metadata["fields"] == ["emails", "categories"]
    assert (event.metadata["before"]["emails"], event.metadata["after"]["emails"]) == (0, 1)
    assert event.metadata["after"]["categories"] == ["events"]

    # no change, no event
    hold_update(hold=hold, actor=STAFF, emails=["a@b.example"])
    assert AuditEvent.objects.filter(action="legal_hold.changed").count() == 1

    with pytest.raises(ValidationError) as caught:
        hold_update(hold=hold, actor=STAFF, merchant_id=99)
    assert caught.value.message_dict == {"merchant_id": ["This field cannot be changed."]}


def test_release_needs_a_reason_is_audited_and_happens_once(merchant):
    hold = place(merchant)
    with pytest.raises(ValidationError) as caught:
        hold_release(hold=hold, actor=STAFF, reason="  ")
    assert caught.value.message_dict == {"release_reason": [holds.RELEASE_REASON_REQUIRED]}

    hold = hold_release(hold=hold, actor=STAFF, reason="settled")
    assert not hold.is_active and hold.release_reason == "settled" and hold.released_by_label == STAFF.label
    event = AuditEvent.objects.get(action="legal_hold.released")
    assert event.metadata["reason"] == "settled" and event.target_id == str(hold.pk)

    with pytest.raises(ValidationError):
        hold_release(hold=hold, actor=STAFF, reason="again")
    with pytest.raises(ValidationError):
        hold_update(hold=hold, actor=STAFF, reason="reopened")
    assert LegalHold.objects.filter(pk=hold.pk).exists()  # release deletes nothing, not even the hold


def test_holds_covering_follows_the_scope(merchant):
    other = MerchantFactory()
    store_wide = place(merchant, categories=["raw"])
    jane = place(merchant, emails=["jane@example.com"])
    by_id = place(merchant, customer_ids=["123"], date_from=T0, date_to=T0 + dt.timedelta(days=365))
    released = hold_release(hold=place(merchant), actor=STAFF, reason="done")
    place(other)

    def covering(**kwargs):
        return [h.pk for h in holds_covering(merchant_id=merchant.pk, **kwargs)]

    # the whole store's raw data: every active hold touches part of it; the released one none
    assert covering(category="raw") == [store_wide.pk, jane.pk, by_id.pk]
    assert released.pk not in covering(category="events")
    assert covering(category="events") == [jane.pk, by_id.pk]
    # one customer: by id or e-mail (any case), plus the store-wide holds of that category
    assert covering(category="events", emails=["JANE@example.com"]) == [jane.pk]
    assert covering(category="events", customer_ids=[123]) == [by_id.pk]
    assert covering(category="events", customer_ids=["999"], emails=["joe@example.com"]) == []
    assert covering(category="raw", customer_ids=["999"]) == [store_wide.pk]
    # the data's date against the hold's range (end exclusive); no date: covered by any range
    assert covering(category="messages", customer_ids=["123"], at=T0 - dt.timedelta(seconds=1)) == []
    assert covering(category="messages", customer_ids=["123"], at=T0) == [by_id.pk]
    assert covering(category="messages", customer_ids=["123"], at=T0 + dt.timedelta(days=365)) == []
    with pytest.raises(ValueError):
        covering(category="everything")


def test_exemptions_are_recorded_and_neither_they_nor_holds_can_be_deleted(merchant):
    hold = place(merchant)
    exemption = exemption_record(hold=hold, work="customers/redact", target="customer 123", detail={"request": 9})
    assert (exemption.merchant_id, exemption.hold_id, exemption.detail) == (merchant.pk, hold.pk, {"request": 9})
    with pytest.raises(ValidationError):
        exemption_record(hold=hold, work="", target="customer 123")

    def raw_delete_hold():
        with connection.cursor() as cursor:  # the ORM would stop first, at the exemption's PROTECT
            cursor.execute("DELETE FROM compliance_legalhold WHERE id = %s", [hold.pk])

    for attempt in (
        raw_delete_hold,
        lambda: LegalHold.objects.filter(pk=place(merchant).pk).delete(),
        lambda: HoldExemption.objects.filter(pk=exemption.pk).delete(),
        lambda: HoldExemption.objects.filter(pk=exemption.pk).update(target="someone else"),
    ):
        with pytest.raises(DatabaseError) as caught, transaction.atomic():
            attempt()
        assert caught.value.__cause__.sqlstate == "42501"
    assert LegalHold.objects.filter(pk=hold.pk).exists()
    assert HoldExemption.objects.get(pk=exemption.pk).target == "customer 123"
