"""Clerk's organization webhooks, Svix-signed by the sandbox and POSTed to the real endpoint, mirror memberships
and invitations; forged ones are refused, replays applied once, older events ignored."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from agencies import signals, webhooks
from agencies.choices import AgencyRole, AgencyStatus, InvitationStatus
from agencies.models import AgencyInvitation, AgencyMember, ClerkWebhookDelivery
from agencies.services import agency_invitation_create, agency_invitation_send
from tests.agencies.conftest import BOSS

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "whsec_" + base64.b64encode(b"agencies-test-webhook-secret").decode()


@pytest.fixture
def deliver(settings, live_server, sandbox):
    settings.CLERK_WEBHOOK_SECRET = SECRET
    target = f"{live_server.url}/webhooks/clerk/"

    def send(**kwargs) -> list[dict]:
        return sandbox.clerk_events_deliver(target, secret=SECRET, **kwargs)

    return send


@pytest.fixture
def received():
    """What the signals carried, by signal name."""
    seen: dict[str, list] = {"member_removed": [], "agency_suspended": []}

    def on_removed(agency, clerk_user_id, **kwargs):
        seen["member_removed"].append((agency.pk, clerk_user_id))

    def on_suspended(agency, **kwargs):
        seen["agency_suspended"].append(agency.pk)

    signals.member_removed.connect(on_removed, dispatch_uid="test-removed")
    signals.agency_suspended.connect(on_suspended, dispatch_uid="test-suspended")
    yield seen
    signals.member_removed.disconnect(dispatch_uid="test-removed")
    signals.agency_suspended.disconnect(dispatch_uid="test-suspended")


def _add(clerk_api, agency, user_id: str) -> None:
    clerk_api.organization_memberships.create(organization_id=agency.clerk_org_id, user_id=user_id, role="org:member")


def _sent_invitation(agency, email="ann@example.com") -> AgencyInvitation:
    invitation = agency_invitation_create(agency=agency, email=email, role=AgencyRole.MEMBER, invited_by=BOSS)
    return agency_invitation_send(invitation_id=invitation.pk)


def test_accepted_invitation_creates_the_member_and_closes_our_row(agency, sandbox, deliver) -> None:
    invitation = _sent_invitation(agency)
    sandbox.clerk_invitation_accept(agency.clerk_org_id, invitation.clerk_invitation_id, "user_ann")

    deliveries = deliver()

    assert [(d["type"], d["status"]) for d in deliveries] == [
        ("organization.created", 200),
        ("organizationMembership.created", 200),
        ("organizationInvitation.created", 200),
        ("organizationInvitation.accepted", 200),
        ("organizationMembership.created", 200),
    ]
    assert [json.loads(d["body"])["outcome"] for d in deliveries] == [
        "ignored",
        "applied",
        "ignored",
        "applied",
        "applied",
    ]
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.ACCEPTED
    ann = AgencyMember.objects.get(agency=agency, clerk_user_id="user_ann")
    assert (ann.role, ann.clerk_role, ann.email, ann.removed_at) == ("member", "org:member", "ann@example.com", None)
    assert ann.clerk_membership_id.startswith("orgmem_") and ann.clerk_updated_at is not None


def test_role_change_and_removal_are_mirrored_and_removal_signals(agency, clerk, clerk_api, deliver, received) -> None:
    clerk.user("user_ann", email="ann@example.com")
    _add(clerk_api, agency, "user_ann")
    clerk_api.organization_memberships.update(organization_id=agency.clerk_org_id, user_id="user_ann", role="org:admin")
    deliver()
    assert AgencyMember.objects.get(clerk_user_id="user_ann").role == AgencyRole.ADMIN

    clerk_api.organization_memberships.delete(organization_id=agency.clerk_org_id, user_id="user_ann")
    deliver()

    ann = AgencyMember.objects.get(clerk_user_id="user_ann")
    assert ann.removed_at is not None
    assert received["member_removed"] == [(agency.pk, "user_ann")]


def test_revoked_in_clerk_closes_our_row(agency, clerk_api, deliver) -> None:
    invitation = _sent_invitation(agency)
    clerk_api.organization_invitations.revoke(
        organization_id=agency.clerk_org_id, invitation_id=invitation.clerk_invitation_id
    )

    deliver()

    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.REVOKED


def test_organization_deleted_suspends_the_agency_and_signals(agency, clerk_api, deliver, received) -> None:
    clerk_api.organizations.delete(organization_id=agency.clerk_org_id)

    deliver()

    agency.refresh_from_db()
    assert agency.status == AgencyStatus.SUSPENDED
    assert received["agency_suspended"] == [agency.pk]


def test_forged_signature_is_400_and_changes_nothing(agency, clerk, clerk_api, deliver) -> None:
    clerk.user("user_ann")
    _add(clerk_api, agency, "user_ann")

    deliveries = deliver(forge=True)

    assert {d["status"] for d in deliveries} == {400}
    assert {json.loads(d["body"])["error"] for d in deliveries} == {"invalid signature"}
    assert not AgencyMember.objects.filter(clerk_user_id="user_ann").exists()
    assert ClerkWebhookDelivery.objects.count() == 0


def test_replay_is_applied_once(agency, clerk, clerk_api, deliver, received) -> None:
    clerk.user("user_ann")
    _add(clerk_api, agency, "user_ann")
    clerk_api.organization_memberships.delete(organization_id=agency.clerk_org_id, user_id="user_ann")
    first = deliver()
    deleted = [d for d in first if d["type"] == "organizationMembership.deleted"]
    # Someone adds Ann back; then Clerk's dashboard replays the old "deleted" message.
    _add(clerk_api, agency, "user_ann")
    deliver()

    replay = deliver(event_ids=[deleted[0]["event_id"]])

    assert replay[0]["svix_id"] == deleted[0]["svix_id"]
    assert (replay[0]["status"], json.loads(replay[0]["body"])["outcome"]) == (200, "duplicate")
    assert AgencyMember.objects.get(clerk_user_id="user_ann").removed_at is None
    assert received["member_removed"] == [(agency.pk, "user_ann")]
    assert ClerkWebhookDelivery.objects.filter(svix_id=deleted[0]["svix_id"]).count() == 1


def _membership_event(agency, *, role: str, updated_at: dt.datetime, event_type="organizationMembership.updated"):
    return {
        "type": event_type,
        "object": "event",
        "data": {
            "id": "orgmem_1",
            "object": "organization_membership",
            "role": role,
            "organization": {"id": agency.clerk_org_id},
            "public_user_data": {"user_id": "user_ann", "identifier": "ann@example.com"},
            "updated_at": int(updated_at.timestamp() * 1000),
        },
    }


def test_an_event_older_than_the_mirror_is_ignored(agency) -> None:
    now = dt.datetime.now(dt.UTC)
    webhooks.clerk_organization_event_apply(
        svix_id="msg_new", event=_membership_event(agency, role="org:admin", updated_at=now)
    )

    webhooks.clerk_organization_event_apply(
        svix_id="msg_old", event=_membership_event(agency, role="org:member", updated_at=now - dt.timedelta(seconds=5))
    )
    webhooks.clerk_organization_event_apply(
        svix_id="msg_old_delete",
        event=_membership_event(
            agency,
            role="org:member",
            updated_at=now - dt.timedelta(seconds=1),
            event_type="organizationMembership.deleted",
        ),
    )

    ann = AgencyMember.objects.get(clerk_user_id="user_ann")
    assert (ann.role, ann.removed_at) == (AgencyRole.ADMIN, None)


def test_events_of_organizations_that_are_not_agencies_are_ignored(agency) -> None:
    event = _membership_event(agency, role="org:admin", updated_at=dt.datetime.now(dt.UTC))
    event["data"]["organization"]["id"] = "org_some_merchant"

    assert webhooks.clerk_organization_event_apply(svix_id="msg_x", event=event) == webhooks.IGNORED
    assert not AgencyMember.objects.filter(clerk_user_id="user_ann").exists()


def test_a_signed_event_missing_keys_is_400_not_500(agency, client, settings) -> None:
    from svix.webhooks import Webhook

    settings.CLERK_WEBHOOK_SECRET = SECRET
    body = json.dumps({"type": "organizationMembership.created", "data": {"id": "orgmem_1"}})
    now = dt.datetime.now(dt.UTC)
    response = client.post(
        "/webhooks/clerk/",
        body,
        content_type="application/json",
        HTTP_SVIX_ID="msg_bad",
        HTTP_SVIX_TIMESTAMP=str(int(now.timestamp())),
        HTTP_SVIX_SIGNATURE=Webhook(SECRET).sign("msg_bad", now, body),
    )

    assert response.status_code == 400
    assert response.json() == {"error": "organizationMembership.created without 'organization'"}
    assert ClerkWebhookDelivery.objects.count() == 0
