"""Organization invitations through the official SDK."""

from __future__ import annotations

import pytest
import requests
from clerk_backend_api import Clerk, models

from sandbox import SandboxControl, SandboxServer


@pytest.fixture(autouse=True)
def organizations(control: SandboxControl) -> None:
    """Invitations belong to organizations that exist (an unknown one is a 404: test_clerk_orgs.py)."""
    for organization_id in ("org_acme", "org_a", "org_b", "org_other"):
        control.clerk_organization_put(organization_id, name=organization_id.removeprefix("org_").title())


def test_create_returns_a_full_pending_invitation(clerk_sdk: Clerk, control: SandboxControl) -> None:
    invitation = clerk_sdk.organization_invitations.create(
        organization_id="org_acme",
        email_address="new.hire@example.com",
        role="org:member",
        inviter_user_id="user_startup",
        redirect_url="http://127.0.0.1:8000/invitations/accept",
        public_metadata={"merchant": "m_1"},
    )

    assert invitation.id.startswith("orginv_")
    assert (invitation.email_address, invitation.role, invitation.role_name) == (
        "new.hire@example.com",
        "org:member",
        "Member",
    )
    assert (invitation.organization_id, invitation.status) == ("org_acme", "pending")
    assert invitation.inviter_id == "user_startup"
    assert invitation.public_inviter_data.identifier == "stella@startup.example"
    assert invitation.public_metadata == {"merchant": "m_1"}
    assert invitation.url.startswith("http://127.0.0.1:8000/invitations/accept?__clerk_ticket=")
    assert invitation.expires_at - invitation.created_at == 30 * 86_400_000


def test_second_pending_invitation_for_same_email_is_a_duplicate(clerk_sdk: Clerk, control: SandboxControl) -> None:
    clerk_sdk.organization_invitations.create(
        organization_id="org_acme", email_address="dup@example.com", role="org:admin"
    )

    with pytest.raises(models.ClerkErrors) as caught:
        clerk_sdk.organization_invitations.create(
            organization_id="org_acme", email_address="DUP@example.com", role="org:member"
        )

    assert caught.value.status_code == 422
    assert caught.value.data.errors[0].code == "duplicate_record"


def test_same_email_may_be_invited_to_another_organization(clerk_sdk: Clerk, control: SandboxControl) -> None:
    clerk_sdk.organization_invitations.create(
        organization_id="org_a", email_address="both@example.com", role="org:admin"
    )
    other = clerk_sdk.organization_invitations.create(
        organization_id="org_b", email_address="both@example.com", role="org:admin"
    )

    assert other.organization_id == "org_b"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"role": "org:admin"}, "email_address"), ({"email_address": "x@example.com"}, "role")],
)
def test_missing_required_parameter_is_422_form_param_missing(
    server: SandboxServer, control: SandboxControl, secret_key: str, body: dict, param: str
) -> None:
    response = requests.post(
        f"{server.url}/clerk/v1/organizations/org_acme/invitations",
        json=body,
        headers={"Authorization": f"Bearer {secret_key}"},
        timeout=5,
    )

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert (error["code"], error["meta"]) == ("form_param_missing", {"param_name": param})


def test_list_returns_newest_first_with_total_count(clerk_sdk: Clerk, control: SandboxControl) -> None:
    for email in ("one@example.com", "two@example.com", "three@example.com"):
        clerk_sdk.organization_invitations.create(organization_id="org_acme", email_address=email, role="org:member")

    page = clerk_sdk.organization_invitations.list(organization_id="org_acme", limit=2)

    assert page.total_count == 3
    assert [i.email_address for i in page.data] == ["three@example.com", "two@example.com"]
    assert clerk_sdk.organization_invitations.list(organization_id="org_other").total_count == 0
