"""Organizations, memberships, invitations (with acceptance), org-scoped session tokens and the organization
webhooks of the sandbox's Clerk, through the official SDK where there is an SDK call."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
import requests
from clerk_backend_api import Clerk, models
from clerk_backend_api.security import authenticate_request
from clerk_backend_api.security.types import AuthenticateRequestOptions, AuthStatus
from svix.webhooks import Webhook

from sandbox import SandboxControl, SandboxServer

SECRET = "whsec_" + base64.b64encode(b"sandbox-suite-org-webhook-secret").decode()


@pytest.fixture
def ada(control: SandboxControl) -> str:
    control.seed_clerk_user("user_ada", first_name="Ada", last_name="Lovelace", email_addresses=["ada@example.com"])
    return "user_ada"


@pytest.fixture
def org(clerk_sdk: Clerk, ada: str) -> models.Organization:
    return clerk_sdk.organizations.create(
        request={
            "name": "Northwind Growth",
            "created_by": ada,
            "public_metadata": {"kind": "agency"},
            "private_metadata": {"agency_id": 7},
            "max_allowed_memberships": 3,
        }
    )


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    received: list = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), type("Receiver", (_Receiver,), {"received": received}))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/hook", received
    httpd.shutdown()
    httpd.server_close()


# --- organizations ---------------------------------------------------------------------------------


def test_create_makes_the_creator_an_admin_and_keeps_both_metadata(clerk_sdk: Clerk, org, ada) -> None:
    assert org.id.startswith("org_")
    assert (org.name, org.slug, org.max_allowed_memberships) == ("Northwind Growth", "northwind-growth", 3)
    assert (org.public_metadata, org.private_metadata, org.created_by) == ({"kind": "agency"}, {"agency_id": 7}, ada)

    members = clerk_sdk.organization_memberships.list(organization_id=org.id)
    assert members.total_count == 1
    [member] = members.data
    assert (member.role, member.role_name, member.public_user_data.user_id) == ("org:admin", "Admin", ada)
    assert member.public_user_data.identifier == "ada@example.com"
    assert member.organization.id == org.id
    assert "org:sys_memberships:manage" in member.permissions


def test_get_by_id_or_slug_and_members_count(clerk_sdk: Clerk, org) -> None:
    by_slug = clerk_sdk.organizations.get(organization_id="northwind-growth", include_members_count=True)

    assert by_slug.id == org.id
    assert by_slug.members_count == 1
    assert clerk_sdk.organizations.get(organization_id=org.id).name == "Northwind Growth"


def test_second_organization_with_the_same_name_gets_another_slug_and_a_taken_slug_is_refused(
    clerk_sdk: Clerk, org
) -> None:
    other = clerk_sdk.organizations.create(request={"name": "Northwind Growth"})
    assert other.slug.startswith("northwind-growth-") and other.slug != org.slug

    with pytest.raises(models.ClerkErrors) as caught:
        clerk_sdk.organizations.create(request={"name": "Copycat", "slug": "northwind-growth"})
    assert caught.value.status_code == 422
    assert caught.value.data.errors[0].meta == {"param_name": "slug"}


@pytest.mark.parametrize("name", ["", "Visit https://spam.example", "<b>bold</b>"])
def test_name_is_required_and_holds_no_url_or_html(server: SandboxServer, control, secret_key, name) -> None:
    response = requests.post(
        f"{server.url}/clerk/v1/organizations",
        json={"name": name},
        headers={"Authorization": f"Bearer {secret_key}"},
        timeout=5,
    )

    assert response.status_code == 422
    assert response.json()["errors"][0]["meta"] == {"param_name": "name"}


def test_list_pages_with_limit_and_offset_newest_first(clerk_sdk: Clerk, control) -> None:
    for name in ("One", "Two", "Three"):
        clerk_sdk.organizations.create(request={"name": name})

    first = clerk_sdk.organizations.list(limit=2)
    second = clerk_sdk.organizations.list(limit=2, offset=2)

    assert first.total_count == second.total_count == 3
    assert [o.name for o in first.data] == ["Three", "Two"]
    assert [o.name for o in second.data] == ["One"]
    assert [o.name for o in clerk_sdk.organizations.list(query="tw").data] == ["Two"]


def test_update_changes_the_name_but_refuses_metadata(clerk_sdk: Clerk, org, server, secret_key) -> None:
    updated = clerk_sdk.organizations.update(organization_id=org.id, name="Northwind Partners")

    assert updated.name == "Northwind Partners"
    assert updated.updated_at > org.updated_at
    response = requests.patch(
        f"{server.url}/clerk/v1/organizations/{org.id}",
        json={"public_metadata": {"kind": "x"}},
        headers={"Authorization": f"Bearer {secret_key}"},
        timeout=5,
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["code"] == "form_param_unknown"


def test_delete_removes_memberships_and_invitations_too(clerk_sdk: Clerk, org) -> None:
    clerk_sdk.organization_invitations.create(organization_id=org.id, email_address="bo@example.com", role="org:member")

    deleted = clerk_sdk.organizations.delete(organization_id=org.id)

    assert (deleted.object, deleted.id, deleted.deleted) == ("organization", org.id, True)
    for call in (
        lambda: clerk_sdk.organizations.get(organization_id=org.id),
        lambda: clerk_sdk.organization_memberships.list(organization_id=org.id),
        lambda: clerk_sdk.organization_invitations.list(organization_id=org.id),
    ):
        with pytest.raises(models.ClerkBaseError) as caught:  # ClerkErrors or SDKError, as each call declares
            call()
        assert caught.value.status_code == 404
        assert json.loads(caught.value.body)["errors"][0]["code"] == "resource_not_found"


# --- memberships -----------------------------------------------------------------------------------


def test_membership_create_update_delete(clerk_sdk: Clerk, control: SandboxControl, org) -> None:
    control.seed_clerk_user("user_bo", first_name="Bo", email_addresses=["bo@example.com"])

    created = clerk_sdk.organization_memberships.create(organization_id=org.id, user_id="user_bo", role="org:member")
    updated = clerk_sdk.organization_memberships.update(organization_id=org.id, user_id="user_bo", role="org:admin")
    deleted = clerk_sdk.organization_memberships.delete(organization_id=org.id, user_id="user_bo")

    assert created.id.startswith("orgmem_") and created.role == "org:member"
    assert created.permissions == ["org:sys_memberships:read"]
    assert (updated.id, updated.role) == (created.id, "org:admin")
    assert updated.updated_at > created.updated_at
    assert deleted.id == created.id
    users = [m.public_user_data.user_id for m in clerk_sdk.organization_memberships.list(organization_id=org.id).data]
    assert users == ["user_ada"]


def test_membership_list_pages_and_filters(clerk_sdk: Clerk, control: SandboxControl, ada) -> None:
    agency = clerk_sdk.organizations.create(request={"name": "Big", "created_by": ada, "max_allowed_memberships": 20})
    for n in range(4):
        control.seed_clerk_user(f"user_{n}", email_addresses=[f"u{n}@example.com"])
        clerk_sdk.organization_memberships.create(organization_id=agency.id, user_id=f"user_{n}", role="org:member")

    first = clerk_sdk.organization_memberships.list(organization_id=agency.id, limit=2)
    rest = clerk_sdk.organization_memberships.list(organization_id=agency.id, limit=2, offset=4)
    admins = clerk_sdk.organization_memberships.list(organization_id=agency.id, role=["org:admin"])

    assert first.total_count == 5
    assert [m.public_user_data.user_id for m in first.data] == ["user_ada", "user_0"]
    assert [m.public_user_data.user_id for m in rest.data] == ["user_3"]
    assert [m.public_user_data.user_id for m in admins.data] == ["user_ada"]


def test_membership_refusals(clerk_sdk: Clerk, control: SandboxControl, org, ada) -> None:
    with pytest.raises(models.ClerkErrors) as already:
        clerk_sdk.organization_memberships.create(organization_id=org.id, user_id=ada, role="org:member")
    with pytest.raises(models.ClerkErrors) as no_user:
        clerk_sdk.organization_memberships.create(organization_id=org.id, user_id="user_nobody", role="org:member")
    with pytest.raises(models.ClerkErrors) as not_member:
        clerk_sdk.organization_memberships.update(organization_id=org.id, user_id="user_nobody", role="org:admin")
    for n in range(2):  # fills the quota of 3
        control.seed_clerk_user(f"user_{n}", email_addresses=[f"u{n}@example.com"])
        clerk_sdk.organization_memberships.create(organization_id=org.id, user_id=f"user_{n}", role="org:member")
    control.seed_clerk_user("user_extra", email_addresses=["extra@example.com"])
    with pytest.raises(models.ClerkErrors) as quota:
        clerk_sdk.organization_memberships.create(organization_id=org.id, user_id="user_extra", role="org:member")

    assert (already.value.status_code, already.value.data.errors[0].code) == (400, "already_a_member_in_organization")
    assert (no_user.value.status_code, not_member.value.status_code) == (404, 404)
    assert quota.value.status_code == 403
    assert json.loads(quota.value.body)["errors"][0]["code"] == "organization_membership_quota_exceeded"


# --- invitations -----------------------------------------------------------------------------------


def test_invitation_to_an_unknown_organization_is_404(clerk_sdk: Clerk, control) -> None:
    with pytest.raises(models.ClerkErrors) as caught:
        clerk_sdk.organization_invitations.create(
            organization_id="org_missing", email_address="x@example.com", role="org:member"
        )

    assert caught.value.status_code == 404


def test_invitation_get_and_revoke_once(clerk_sdk: Clerk, org) -> None:
    invitation = clerk_sdk.organization_invitations.create(
        organization_id=org.id, email_address="bo@example.com", role="org:member", expires_in_days=7
    )

    fetched = clerk_sdk.organization_invitations.get(organization_id=org.id, invitation_id=invitation.id)
    revoked = clerk_sdk.organization_invitations.revoke(organization_id=org.id, invitation_id=invitation.id)
    with pytest.raises(models.ClerkErrors) as again:
        clerk_sdk.organization_invitations.revoke(organization_id=org.id, invitation_id=invitation.id)
    # A revoked invitation frees the address for a new one.
    redo = clerk_sdk.organization_invitations.create(
        organization_id=org.id, email_address="bo@example.com", role="org:member"
    )

    assert (fetched.id, fetched.status, fetched.expires_at - fetched.created_at) == (
        invitation.id,
        "pending",
        7 * 86_400_000,
    )
    assert revoked.status == "revoked"
    assert (again.value.status_code, again.value.data.errors[0].code) == (400, "organization_invitation_not_pending")
    assert redo.status == "pending"


def test_inviting_a_member_again_is_refused(clerk_sdk: Clerk, org) -> None:
    with pytest.raises(models.ClerkErrors) as caught:
        clerk_sdk.organization_invitations.create(
            organization_id=org.id, email_address="ADA@example.com", role="org:member"
        )

    assert caught.value.data.errors[0].code == "already_a_member_in_organization"


def test_expired_invitation_is_listed_as_expired_and_cannot_be_revoked(clerk_sdk: Clerk, control, org) -> None:
    invitation = clerk_sdk.organization_invitations.create(
        organization_id=org.id, email_address="bo@example.com", role="org:member"
    )

    control.clerk_invitation_expire(org.id, invitation.id)

    listed = clerk_sdk.organization_invitations.list(organization_id=org.id, status="expired")
    assert [i.id for i in listed.data] == [invitation.id]
    assert clerk_sdk.organization_invitations.list(organization_id=org.id, status="pending").total_count == 0
    with pytest.raises(models.ClerkErrors):
        clerk_sdk.organization_invitations.revoke(organization_id=org.id, invitation_id=invitation.id)


def test_accepting_creates_the_membership_with_the_invited_role_and_metadata(clerk_sdk: Clerk, control, org) -> None:
    invitation = clerk_sdk.organization_invitations.create(
        organization_id=org.id,
        email_address="bo@example.com",
        role="org:member",
        public_metadata={"invited_from": "app"},
    )

    accepted = control.clerk_invitation_accept(org.id, invitation.id, "user_bo", first_name="Bo")

    assert accepted["invitation"]["status"] == "accepted"
    members = clerk_sdk.organization_memberships.list(organization_id=org.id, user_id=["user_bo"]).data
    assert [(m.role, m.public_metadata, m.public_user_data.identifier) for m in members] == [
        ("org:member", {"invited_from": "app"}, "bo@example.com")
    ]
    assert clerk_sdk.users.get(user_id="user_bo").first_name == "Bo"  # signed up through the invitation
    with pytest.raises(Exception, match="400"):
        control.clerk_invitation_accept(org.id, invitation.id, "user_bo")


def test_invitations_are_rate_limited_per_instance_with_retry_after(server, control, secret_key, org) -> None:
    control.clerk_limits_set(invitations_per_hour=2)
    url = f"{server.url}/clerk/v1/organizations/{org.id}/invitations"
    headers = {"Authorization": f"Bearer {secret_key}"}

    bodies = [{"email_address": f"p{n}@example.com", "role": "org:member"} for n in range(3)]

    answers = [requests.post(url, json=body, headers=headers, timeout=5) for body in bodies]

    assert [a.status_code for a in answers] == [200, 200, 429]
    assert 3500 <= int(answers[2].headers["Retry-After"]) <= 3600
    assert answers[2].json()["errors"][0]["code"] == "too_many_requests"


# --- org-scoped session tokens ---------------------------------------------------------------------


def test_session_token_for_an_active_organization_carries_the_v2_o_claim(server, control, azp, org, ada) -> None:
    token = control.mint_session_token(ada, azp=azp, organization_id=org.id)

    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["v"] == 2
    assert claims["o"] == {"id": org.id, "rol": "admin", "slg": "northwind-growth", "per": "", "fpm": ""}
    assert "fea" not in claims
    options = AuthenticateRequestOptions(
        jwt_key=control.jwt_public_key(), authorized_parties=[azp], accepts_token=["session_token"]
    )
    state = authenticate_request(type("R", (), {"headers": {"Authorization": f"Bearer {token}"}})(), options)
    assert state.status == AuthStatus.SIGNED_IN
    assert (state.payload["org_id"], state.payload["org_role"], state.payload["org_slug"]) == (
        org.id,
        "admin",
        "northwind-growth",
    )


def test_custom_permissions_are_encoded_as_per_and_fpm_over_fea(clerk_sdk: Clerk, control, azp, org) -> None:
    control.clerk_role_permissions_set("org:analyst", ["org:reports:read", "org:reports:manage", "org:tokens:read"])
    control.seed_clerk_user("user_bo", email_addresses=["bo@example.com"])
    clerk_sdk.organization_memberships.create(organization_id=org.id, user_id="user_bo", role="org:analyst")

    claims = jwt.decode(
        control.mint_session_token("user_bo", azp=azp, organization_id=org.id), options={"verify_signature": False}
    )

    assert claims["fea"] == "o:reports,o:tokens"
    assert claims["o"]["rol"] == "analyst"
    assert claims["o"]["per"] == "read,manage"
    assert claims["o"]["fpm"] == "3,1"  # reports: read|manage; tokens: read


def test_no_org_token_for_someone_outside_it(server: SandboxServer, control, azp, org) -> None:
    control.seed_clerk_user("user_outsider", email_addresses=["out@example.com"])

    response = requests.post(
        f"{server.url}/clerk/_dev/session_token",
        json={"user_id": "user_outsider", "azp": azp, "organization_id": org.id},
        timeout=5,
    )

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "resource_not_found"


# --- webhooks --------------------------------------------------------------------------------------


def test_every_change_records_an_event_in_order(clerk_sdk: Clerk, control, org) -> None:
    invitation = clerk_sdk.organization_invitations.create(
        organization_id=org.id, email_address="bo@example.com", role="org:member"
    )
    control.clerk_invitation_accept(org.id, invitation.id, "user_bo")
    clerk_sdk.organization_memberships.update(organization_id=org.id, user_id="user_bo", role="org:admin")
    clerk_sdk.organization_memberships.delete(organization_id=org.id, user_id="user_bo")
    other = clerk_sdk.organization_invitations.create(
        organization_id=org.id, email_address="cy@example.com", role="org:member"
    )
    clerk_sdk.organization_invitations.revoke(organization_id=org.id, invitation_id=other.id)
    clerk_sdk.organizations.update(organization_id=org.id, name="Renamed")
    clerk_sdk.organizations.delete(organization_id=org.id)

    assert [e["type"] for e in control.clerk_events()] == [
        "organization.created",
        "organizationMembership.created",
        "organizationInvitation.created",
        "organizationInvitation.accepted",
        "organizationMembership.created",
        "organizationMembership.updated",
        "organizationMembership.deleted",
        "organizationInvitation.created",
        "organizationInvitation.revoked",
        "organization.updated",
        "organization.deleted",
    ]


def test_events_are_delivered_svix_signed_once_and_a_replay_keeps_the_svix_id(control, receiver, org) -> None:
    target, received = receiver

    first = control.clerk_events_deliver(target, secret=SECRET)
    nothing_new = control.clerk_events_deliver(target, secret=SECRET)
    replay = control.clerk_events_deliver(target, secret=SECRET, event_ids=[first[1]["event_id"]])

    assert [d["type"] for d in first] == ["organization.created", "organizationMembership.created"]
    assert [d["status"] for d in first] == [200, 200]
    assert nothing_new == []
    assert replay[0]["svix_id"] == first[1]["svix_id"]
    assert len(received) == 3
    for headers, body in received:
        Webhook(SECRET).verify(body, headers)  # raises if the signature is wrong
    envelope = json.loads(received[1][1])
    assert (envelope["object"], envelope["type"], envelope["instance_id"]) == (
        "event",
        "organizationMembership.created",
        "ins_sandbox",
    )
    membership = envelope["data"]
    assert membership["object"] == "organization_membership"
    assert membership["organization"]["id"] == org.id
    assert membership["organization"]["private_metadata"] == {"agency_id": 7}
    assert membership["public_user_data"]["user_id"] == "user_ada"
    # What the SDK requires of a membership is all there.
    assert models.OrganizationMembership.model_validate(membership).role == "org:admin"


def test_accepted_invitation_event_names_the_user_and_deleted_org_is_a_deleted_object(
    clerk_sdk: Clerk, control, receiver, org
) -> None:
    target, received = receiver
    invitation = clerk_sdk.organization_invitations.create(
        organization_id=org.id, email_address="bo@example.com", role="org:member"
    )
    control.clerk_invitation_accept(org.id, invitation.id, "user_bo")
    clerk_sdk.organizations.delete(organization_id=org.id)

    control.clerk_events_deliver(target, secret=SECRET)

    events = {json.loads(body)["type"]: json.loads(body)["data"] for _, body in received}
    assert events["organizationInvitation.accepted"]["user_id"] == "user_bo"
    assert events["organizationInvitation.accepted"]["status"] == "accepted"
    assert events["organization.deleted"] == {"object": "organization", "id": org.id, "slug": org.slug, "deleted": True}


def test_forged_delivery_does_not_verify(control, receiver, org) -> None:
    target, received = receiver

    control.clerk_events_deliver(target, secret=SECRET, forge=True)

    assert received
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(received[0][1], received[0][0])


def test_demo_organization_put_is_idempotent_and_silent(control: SandboxControl, ada) -> None:
    first = control.clerk_organization_put("org_demo", name="Demo Org", members=[(ada, "org:admin")])
    again = control.clerk_organization_put("org_demo", name="Demo Org", members=[(ada, "org:admin")])

    assert first == again
    assert first["id"] == "org_demo"
    assert control.clerk_events() == []
