"""Holds in the admin: placed, changed and released through the services (so audited), bad input shown field by
field, never deleted; exemptions and purge runs are read-only."""

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from compliance.models import AuditEvent, LegalHold, PurgeRun
from tests.accounts.factories import MerchantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client):
    user = get_user_model().objects.create_superuser("counsel", "counsel@example.com", "a-long-password-1")
    client.force_login(user)
    return client


def form(**fields):
    return {
        "matter": "Doe v. Store",
        "reason": "litigation",
        "customer_ids": "",
        "emails": "",
        "categories": "",
        "date_from_0": "",
        "date_from_1": "",
        "date_to_0": "",
        "date_to_1": "",
        "release_reason_new": "",
        **fields,
    }


def test_staff_place_change_and_release_a_hold_audited_as_themselves(staff_client):
    merchant = MerchantFactory()
    response = staff_client.post(
        reverse("admin:compliance_legalhold_add"),
        form(merchant=merchant.pk, emails="Jane@Example.com", categories="raw,events"),
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    hold = LegalHold.objects.get()
    assert (hold.emails, hold.categories, hold.placed_by_label) == (["jane@example.com"], ["raw", "events"], "counsel")

    change = reverse("admin:compliance_legalhold_change", args=[hold.pk])
    response = staff_client.post(
        change, form(emails="jane@example.com", categories="raw", release_reason_new="settled")
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    hold.refresh_from_db()
    assert hold.categories == ["raw"] and not hold.is_active and hold.release_reason == "settled"
    actions = list(
        AuditEvent.objects.filter(action__startswith="legal_hold.").order_by("id").values_list("action", "actor_label")
    )
    assert actions == [
        ("legal_hold.placed", "counsel"),
        ("legal_hold.changed", "counsel"),
        ("legal_hold.released", "counsel"),
    ]

    assert staff_client.post(reverse("admin:compliance_legalhold_delete", args=[hold.pk])).status_code == 403
    assert staff_client.get(reverse("admin:compliance_purgerun_changelist")).status_code == 200
    assert staff_client.get(reverse("admin:compliance_holdexemption_changelist")).status_code == 200
    assert not PurgeRun.objects.exists()


def test_bad_input_is_shown_per_field_and_nothing_is_placed(staff_client):
    merchant = MerchantFactory()
    response = staff_client.post(
        reverse("admin:compliance_legalhold_add"), form(merchant=merchant.pk, matter=" ", emails="nope")
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"matter", "emails"}
    assert not LegalHold.objects.exists() and not AuditEvent.objects.filter(action="legal_hold.placed").exists()
