"""Agencies in Django admin: read-only lists with filters, the token digest never shown, and the two audited
actions (end a grant, revoke a token)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from agencies.choices import GrantStatus
from agencies.models import Agency, AgencyMember, AgencyToken
from compliance.models import AuditEvent
from tests.agencies.factories import AccessGrantFactory

pytestmark = pytest.mark.django_db

DIGEST = "d1g35t" * 10 + "abcd"


@pytest.fixture
def agency() -> Agency:
    agency = Agency.objects.create(clerk_org_id="org_adm", name="Admin Agency", slug="admin-agency", created_by="u")
    AgencyMember.objects.create(agency=agency, clerk_user_id="user_a", clerk_role="org:admin", role="admin")
    AgencyMember.objects.create(
        agency=agency, clerk_user_id="user_b", clerk_role="org:member", removed_at=timezone.now()
    )
    return agency


@pytest.fixture
def token(agency) -> AgencyToken:
    return AgencyToken.objects.create(
        agency=agency,
        created_by="user_a",
        name="Looker",
        display_hint="x9Qz",
        digest=DIGEST,
        scopes=["metrics:read"],
        expires_at=timezone.now() + dt.timedelta(days=90),
    )


@pytest.mark.parametrize(
    "model", ["agency", "agencymember", "agencyinvitation", "accessgrant", "agencytoken", "clerkwebhookdelivery"]
)
def test_every_list_opens(admin_client, agency, token, model) -> None:
    assert admin_client.get(reverse(f"admin:agencies_{model}_changelist")).status_code == 200


def test_members_filter_by_removed(admin_client, agency) -> None:
    url = reverse("admin:agencies_agencymember_changelist")

    active = admin_client.get(url, {"removed_at__isnull": "True"}).context["cl"].result_list

    assert [m.clerk_user_id for m in active] == ["user_a"]


def test_the_token_digest_is_never_shown(admin_client, token) -> None:
    pages = [
        admin_client.get(reverse("admin:agencies_agencytoken_changelist")),
        admin_client.get(reverse("admin:agencies_agencytoken_change", args=[token.pk])),
    ]

    for page in pages:
        assert page.status_code == 200
        assert DIGEST not in page.content.decode()
        assert "x9Qz" in page.content.decode()


def test_revoke_token_action_is_audited(admin_client, admin_user, token) -> None:
    response = admin_client.post(
        reverse("admin:agencies_agencytoken_changelist"),
        {"action": "revoke_token", "_selected_action": [token.pk]},
    )

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None and token.revoked_by == f"staff:{admin_user.pk}"
    event = AuditEvent.objects.get(action="agency.token_revoked")
    assert (event.actor_type, event.actor_id, event.target_id) == ("staff", str(admin_user.pk), str(token.pk))


def test_end_grant_action_is_audited_and_leaves_ended_grants_alone(admin_client, admin_user, agency) -> None:
    active = AccessGrantFactory(agency=agency)
    already = AccessGrantFactory(agency=agency, status=GrantStatus.ENDED)

    admin_client.post(
        reverse("admin:agencies_accessgrant_changelist"),
        {"action": "end_grant", "_selected_action": [active.pk, already.pk]},
    )

    active.refresh_from_db()
    assert (active.status, active.ended_by) == (GrantStatus.ENDED, f"staff:{admin_user.pk}")
    [event] = AuditEvent.objects.filter(action="agency.grant_ended")
    assert (event.target_id, event.merchant_id) == (str(active.pk), active.merchant_id)
