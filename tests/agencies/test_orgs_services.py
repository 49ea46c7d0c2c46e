"""Creating agencies, inviting staff through Clerk (queued, throttled, retried), revoking and expiring
invitations, assigning clients, and the nightly reconcile — against the sandbox's Clerk over HTTP."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from agencies import services, signals
from agencies.choices import AgencyRole, AgencyStatus, InvitationStatus
from agencies.models import Agency, AgencyInvitation, AgencyMember, ClientAssignment
from compliance.models import AuditEvent
from tests.accounts.factories import MerchantFactory
from tests.agencies.conftest import BOSS
from tests.agencies.factories import AccessGrantFactory

pytestmark = pytest.mark.django_db


def _invite(agency, email="ann@example.com", role=AgencyRole.MEMBER, *, capture) -> AgencyInvitation:
    with capture() as callbacks:
        invitation = services.agency_invitation_create(agency=agency, email=email, role=role, invited_by=BOSS)
    assert len(callbacks) == 1  # the send is enqueued after commit, once
    return invitation


# --- agency_create ---------------------------------------------------------------------------------


def test_create_makes_a_clerk_organization_with_our_metadata_and_the_creator_as_admin(agency, clerk_api) -> None:
    org = clerk_api.organizations.get(organization_id=agency.clerk_org_id)

    assert (org.name, org.public_metadata, org.private_metadata) == (
        "Northwind Growth",
        {"kind": "agency"},
        {"agency_id": agency.pk},
    )
    assert org.max_allowed_memberships == 20
    assert (agency.slug, agency.reporting_currency, agency.status) == (org.slug, "EUR", AgencyStatus.ACTIVE)
    [member] = AgencyMember.objects.filter(agency=agency)
    assert (member.clerk_user_id, member.role, member.clerk_role) == (BOSS, AgencyRole.ADMIN, "org:admin")
    [clerk_member] = clerk_api.organization_memberships.list(organization_id=org.id).data
    assert (clerk_member.public_user_data.user_id, clerk_member.role) == (BOSS, "org:admin")
    event = AuditEvent.objects.get(action="agency.created")
    assert (event.actor_id, event.target_id, event.metadata["clerk_org_id"]) == (BOSS, str(agency.pk), org.id)


@pytest.mark.parametrize(
    ("name", "currency", "fields"),
    [
        ("", "EUR", {"name"}),
        ("  ", "eur", {"name", "reporting_currency"}),
        ("A" * 201, "XXQ", {"name", "reporting_currency"}),
    ],
)
def test_bad_input_is_a_field_error_and_nothing_reaches_clerk(clerk, sandbox, name, currency, fields) -> None:
    with pytest.raises(ValidationError) as caught:
        services.agency_create(name=name, reporting_currency=currency, created_by=BOSS)

    assert set(caught.value.message_dict) == fields
    assert Agency.objects.count() == 0
    assert sandbox.calls("clerk.organizations.create") == []


def test_clerk_outage_keeps_nothing(clerk, sandbox) -> None:
    clerk.user(BOSS)
    sandbox.fault("clerk.organizations.create", 503)

    with pytest.raises(services.AgencyError, match="nothing was saved"):
        services.agency_create(name="Northwind", reporting_currency="USD", created_by=BOSS)

    assert Agency.objects.count() == 0
    assert AgencyMember.objects.count() == 0
    assert not AuditEvent.objects.filter(action="agency.created").exists()


# --- invitations -----------------------------------------------------------------------------------


def test_invitation_is_queued_then_sent_to_clerk_once(agency, clerk_api, sandbox, django_capture_on_commit_callbacks):
    invitation = _invite(agency, capture=django_capture_on_commit_callbacks)
    assert invitation.status == InvitationStatus.QUEUED

    sent = services.agency_invitation_send(invitation_id=invitation.pk)
    again = services.agency_invitation_send(invitation_id=invitation.pk)

    assert sent.status == again.status == InvitationStatus.PENDING
    assert sent.attempts == 1 and sent.sent_at is not None and sent.last_error == ""
    assert len(sandbox.calls("clerk.organization_invitations.create")) == 1
    [in_clerk] = clerk_api.organization_invitations.list(organization_id=agency.clerk_org_id).data
    assert (in_clerk.id, in_clerk.email_address, in_clerk.role, in_clerk.status) == (
        sent.clerk_invitation_id,
        "ann@example.com",
        "org:member",
        "pending",
    )
    assert in_clerk.inviter_id == BOSS
    assert in_clerk.public_metadata == {"agency_id": agency.pk}
    assert abs((sent.expires_at - timezone.now()) - dt.timedelta(days=7)) < dt.timedelta(minutes=1)
    assert AuditEvent.objects.filter(action="agency.invitation_sent", target_id=str(invitation.pk)).count() == 1


def test_duplicate_open_invitation_is_a_clear_error(agency, django_capture_on_commit_callbacks) -> None:
    _invite(agency, "ann@example.com", capture=django_capture_on_commit_callbacks)

    with pytest.raises(ValidationError) as caught:
        services.agency_invitation_create(agency=agency, email="ANN@example.com", role="member", invited_by=BOSS)

    assert caught.value.message_dict == {"email": [services.DUPLICATE_INVITATION.format(email="ANN@example.com")]}
    assert AgencyInvitation.objects.count() == 1


def test_inviting_a_member_bad_input_or_by_a_non_admin_is_refused(agency) -> None:
    AgencyMember.objects.filter(agency=agency).update(email="boss@northwind.example")
    AgencyMember.objects.create(agency=agency, clerk_user_id="user_m", clerk_role="org:member", role="member")

    with pytest.raises(ValidationError) as member:
        services.agency_invitation_create(agency=agency, email="boss@northwind.example", role="member", invited_by=BOSS)
    with pytest.raises(ValidationError) as bad:
        services.agency_invitation_create(agency=agency, email="not-an-email", role="owner", invited_by=BOSS)
    with pytest.raises(PermissionError):
        services.agency_invitation_create(agency=agency, email="x@example.com", role="member", invited_by="user_m")

    assert member.value.message_dict == {"email": [services.ALREADY_A_MEMBER.format(email="boss@northwind.example")]}
    assert bad.value.message_dict == {"email": [services.EMAIL_INVALID], "role": [services.ROLE_INVALID]}
    assert AgencyInvitation.objects.count() == 0


def test_sends_beyond_the_hourly_budget_wait_for_it(agency, sandbox, settings, django_capture_on_commit_callbacks):
    settings.AGENCY_INVITATIONS_PER_HOUR = 1
    first = _invite(agency, "one@example.com", capture=django_capture_on_commit_callbacks)
    second = _invite(agency, "two@example.com", capture=django_capture_on_commit_callbacks)
    services.agency_invitation_send(invitation_id=first.pk)

    with pytest.raises(services.InvitationRetryLater) as waiting:
        services.agency_invitation_send(invitation_id=second.pk)

    assert 3590 <= waiting.value.countdown <= 3600
    second.refresh_from_db()
    assert (second.status, second.attempts) == (InvitationStatus.QUEUED, 0)
    assert second.next_attempt_at > timezone.now() + dt.timedelta(minutes=59)
    assert len(sandbox.calls("clerk.organization_invitations.create")) == 1
    # An hour later the budget has room again.
    AgencyInvitation.objects.filter(pk=first.pk).update(sent_at=timezone.now() - dt.timedelta(hours=1, seconds=1))
    AgencyInvitation.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
    assert services.agency_invitation_send(invitation_id=second.pk).status == InvitationStatus.PENDING


def test_clerk_429_waits_for_retry_after_and_records_it(agency, sandbox, django_capture_on_commit_callbacks):
    invitation = _invite(agency, capture=django_capture_on_commit_callbacks)
    sandbox.fault("clerk.organization_invitations.create", 429, headers={"Retry-After": "120"})

    with pytest.raises(services.InvitationRetryLater) as waiting:
        services.agency_invitation_send(invitation_id=invitation.pk)

    invitation.refresh_from_db()
    assert waiting.value.countdown == 120
    assert (invitation.status, invitation.attempts) == (InvitationStatus.QUEUED, 1)
    assert "rate limit" in invitation.last_error


def test_transient_failures_back_off_then_fail_the_row(agency, sandbox, django_capture_on_commit_callbacks):
    invitation = _invite(agency, capture=django_capture_on_commit_callbacks)
    sandbox.fault("clerk.organization_invitations.create", 503, times=services.INVITATION_MAX_ATTEMPTS)

    countdowns = []
    for _ in range(services.INVITATION_MAX_ATTEMPTS - 1):
        with pytest.raises(services.InvitationRetryLater) as waiting:
            services.agency_invitation_send(invitation_id=invitation.pk)
        countdowns.append(waiting.value.countdown)
        AgencyInvitation.objects.filter(pk=invitation.pk).update(next_attempt_at=timezone.now())
    last = services.agency_invitation_send(invitation_id=invitation.pk)

    assert 30 <= countdowns[0] <= 60 and countdowns[-1] >= 1800
    assert (last.status, last.attempts) == (InvitationStatus.FAILED, services.INVITATION_MAX_ATTEMPTS)
    assert last.last_error.startswith("gave up after 8 attempts")
    assert AuditEvent.objects.filter(action="agency.invitation_failed").count() == 1


def test_clerk_refusal_fails_the_row_with_clerks_code(agency, clerk_api, django_capture_on_commit_callbacks):
    clerk_api.organization_invitations.create(
        organization_id=agency.clerk_org_id, email_address="ann@example.com", role="org:member"
    )
    invitation = _invite(agency, capture=django_capture_on_commit_callbacks)

    failed = services.agency_invitation_send(invitation_id=invitation.pk)

    assert failed.status == InvitationStatus.FAILED
    assert failed.last_error == "Clerk refused the invitation (duplicate_record)"


def test_revoking_a_pending_invitation_revokes_it_in_clerk(agency, clerk_api, django_capture_on_commit_callbacks):
    invitation = _invite(agency, capture=django_capture_on_commit_callbacks)
    services.agency_invitation_send(invitation_id=invitation.pk)
    invitation.refresh_from_db()

    revoked = services.agency_invitation_revoke(invitation=invitation, revoked_by=BOSS)

    assert revoked.status == InvitationStatus.REVOKED
    in_clerk = clerk_api.organization_invitations.get(
        organization_id=agency.clerk_org_id, invitation_id=invitation.clerk_invitation_id
    )
    assert in_clerk.status == "revoked"
    assert AuditEvent.objects.get(action="agency.invitation_revoked").actor_id == BOSS
    with pytest.raises(ValidationError, match="revoked"):
        services.agency_invitation_revoke(invitation=revoked, revoked_by=BOSS)


def test_revoking_a_queued_invitation_never_calls_clerk(agency, sandbox, django_capture_on_commit_callbacks):
    invitation = _invite(agency, capture=django_capture_on_commit_callbacks)

    services.agency_invitation_revoke(invitation=invitation, revoked_by=BOSS)

    assert sandbox.calls("clerk.organization_invitations.revoke") == []
    # ...and a revoked row is never sent.
    assert services.agency_invitation_send(invitation_id=invitation.pk).status == InvitationStatus.REVOKED
    assert sandbox.calls("clerk.organization_invitations.create") == []


def test_revoking_what_clerk_already_accepted_takes_clerks_status(
    agency, sandbox, django_capture_on_commit_callbacks
) -> None:
    invitation = _invite(agency, capture=django_capture_on_commit_callbacks)
    services.agency_invitation_send(invitation_id=invitation.pk)
    invitation.refresh_from_db()
    sandbox.clerk_invitation_accept(agency.clerk_org_id, invitation.clerk_invitation_id, "user_ann")

    with pytest.raises(ValidationError, match="accepted"):
        services.agency_invitation_revoke(invitation=invitation, revoked_by=BOSS)

    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.ACCEPTED


def test_pending_invitations_past_expiry_are_expired(agency, django_capture_on_commit_callbacks) -> None:
    invitation = _invite(agency, capture=django_capture_on_commit_callbacks)
    services.agency_invitation_send(invitation_id=invitation.pk)
    fresh = _invite(agency, "fresh@example.com", capture=django_capture_on_commit_callbacks)
    services.agency_invitation_send(invitation_id=fresh.pk)
    AgencyInvitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))

    assert services.agency_invitations_expire() == 1

    statuses = dict(AgencyInvitation.objects.values_list("email", "status"))
    assert statuses == {"ann@example.com": InvitationStatus.EXPIRED, "fresh@example.com": InvitationStatus.PENDING}
    # An expired invitation frees the address for a new one.
    _invite(agency, "ann@example.com", capture=django_capture_on_commit_callbacks)


# --- client assignments ----------------------------------------------------------------------------


def test_members_can_be_assigned_only_granted_clients(agency) -> None:
    member = AgencyMember.objects.create(agency=agency, clerk_user_id="user_m", clerk_role="org:member")
    granted = AccessGrantFactory(agency=agency).merchant
    other = MerchantFactory()

    services.client_assignments_set(agency=agency, member=member, merchant_ids={granted.pk}, assigned_by=BOSS)
    with pytest.raises(ValidationError) as caught:
        services.client_assignments_set(
            agency=agency, member=member, merchant_ids={granted.pk, other.pk}, assigned_by=BOSS
        )

    assert caught.value.message_dict == {"merchants": [services.MERCHANT_NOT_GRANTED]}
    assert list(ClientAssignment.objects.values_list("merchant_id", flat=True)) == [granted.pk]
    services.client_assignments_set(agency=agency, member=member, merchant_ids=set(), assigned_by=BOSS)
    assert ClientAssignment.objects.count() == 0
    assert AuditEvent.objects.filter(action="agency.client_assignments_set").count() == 2


# --- reconcile -------------------------------------------------------------------------------------


def test_reconcile_fixes_the_mirror_from_clerks_pages(agency, clerk, clerk_api, monkeypatch) -> None:
    monkeypatch.setattr("notifications.clients.clerk.MEMBERSHIP_PAGE_SIZE", 2)  # several pages
    for n in range(3):
        clerk.user(f"user_{n}", email=f"u{n}@example.com")
        clerk_api.organization_memberships.create(
            organization_id=agency.clerk_org_id, user_id=f"user_{n}", role="org:member"
        )
    clerk_api.organization_memberships.update(organization_id=agency.clerk_org_id, user_id="user_0", role="org:admin")
    AgencyMember.objects.create(agency=agency, clerk_user_id="user_gone", clerk_role="org:member")
    removed = []
    signals.member_removed.connect(lambda **kw: removed.append(kw["clerk_user_id"]), weak=False, dispatch_uid="t1")
    try:
        result = services.agency_members_reconcile(agency_id=agency.pk)
    finally:
        signals.member_removed.disconnect(dispatch_uid="t1")

    assert (result.seen, result.removed) == (4, 1)
    active = dict(
        AgencyMember.objects.filter(agency=agency, removed_at__isnull=True).values_list("clerk_user_id", "role")
    )
    assert active == {BOSS: "admin", "user_0": "admin", "user_1": "member", "user_2": "member"}
    assert AgencyMember.objects.get(clerk_user_id="user_1").email == "u1@example.com"
    assert removed == ["user_gone"]


def test_reconcile_suspends_an_agency_whose_organization_is_gone(agency, clerk_api) -> None:
    clerk_api.organizations.delete(organization_id=agency.clerk_org_id)
    suspended = []
    signals.agency_suspended.connect(lambda **kw: suspended.append(kw["agency"].pk), weak=False, dispatch_uid="t2")
    try:
        result = services.agency_members_reconcile(agency_id=agency.pk)
    finally:
        signals.agency_suspended.disconnect(dispatch_uid="t2")

    assert result.suspended
    agency.refresh_from_db()
    assert agency.status == AgencyStatus.SUSPENDED
    assert suspended == [agency.pk]
    assert services.agency_ids_to_reconcile() == []


def test_the_sweeper_finds_only_queued_invitations_that_are_due(agency) -> None:
    now = timezone.now()
    due = AgencyInvitation.objects.create(agency=agency, email="due@example.com", invited_by=BOSS, next_attempt_at=now)
    AgencyInvitation.objects.create(
        agency=agency, email="later@example.com", invited_by=BOSS, next_attempt_at=now + dt.timedelta(hours=1)
    )
    AgencyInvitation.objects.create(
        agency=agency, email="sent@example.com", invited_by=BOSS, status=InvitationStatus.PENDING, next_attempt_at=now
    )

    assert services.agency_invitations_due() == [due.pk]


def test_old_webhook_message_ids_are_forgotten(db) -> None:
    from agencies.models import ClerkWebhookDelivery

    old = ClerkWebhookDelivery.objects.create(svix_id="msg_old", event_type="organization.updated")
    ClerkWebhookDelivery.objects.filter(pk=old.pk).update(received_at=timezone.now() - dt.timedelta(days=31))
    ClerkWebhookDelivery.objects.create(svix_id="msg_new", event_type="organization.updated")

    assert services.clerk_webhook_deliveries_purge() == 1
    assert list(ClerkWebhookDelivery.objects.values_list("svix_id", flat=True)) == ["msg_new"]
