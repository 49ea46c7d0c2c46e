"""Role normalisation, and the active organization a session token names (read, never trusted for access)."""

from __future__ import annotations

import pytest

from accounts.clerk import active_organization, clerk_identity_from_request
from agencies.choices import AgencyRole, role_normalise


@pytest.mark.parametrize(
    ("clerk_role", "ours"),
    [
        ("org:admin", AgencyRole.ADMIN),
        ("admin", AgencyRole.ADMIN),  # v2 `o.rol` and the Python SDK drop the prefix
        (" ORG:Admin ", AgencyRole.ADMIN),
        ("org:member", AgencyRole.MEMBER),
        ("basic_member", AgencyRole.MEMBER),  # Clerk's legacy default role
        ("member", AgencyRole.MEMBER),
        ("org:analyst", AgencyRole.MEMBER),  # a custom role never grants admin
        ("org:administrator", AgencyRole.MEMBER),
        ("org:org:admin", AgencyRole.MEMBER),
        ("", AgencyRole.MEMBER),
        (None, AgencyRole.MEMBER),
    ],
)
def test_role_normalise(clerk_role, ours) -> None:
    assert role_normalise(clerk_role) is ours


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"v": 2, "o": {"id": "org_1", "rol": "admin", "slg": "x"}}, ("org_1", "admin")),
        ({"v": 2, "o": {"id": "org_1", "rol": "analyst"}}, ("org_1", "member")),
        ({"v": 2}, (None, None)),
        # The SDK copies o.* to org_* for v2; without `o` there is no active org whatever else is there.
        ({"v": 2, "org_id": "org_forged", "org_role": "org:admin"}, (None, None)),
        ({"v": 2, "o": {"rol": "admin"}}, (None, None)),
        ({"v": 2, "o": "org_1"}, (None, None)),
        ({"org_id": "org_v1", "org_role": "org:admin", "org_slug": "v1"}, ("org_v1", "admin")),
        ({"org_id": "org_v1", "org_role": "basic_member"}, ("org_v1", "member")),
        ({"org_id": "org_v1"}, ("org_v1", "member")),
        ({"org_id": 5, "org_role": "org:admin"}, (None, None)),
        ({}, (None, None)),
    ],
)
def test_active_organization_from_v2_and_v1_claims(payload, expected) -> None:
    assert active_organization(payload) == expected


@pytest.mark.django_db
def test_identity_of_an_org_scoped_session_token(clerk, sandbox, rf) -> None:
    clerk.user("user_boss")
    clerk.user("user_ann")
    sandbox.clerk_organization_put(
        "org_agency", name="Agency", members=[("user_boss", "org:admin"), ("user_ann", "org:member")]
    )

    boss = clerk_identity_from_request(rf.get("/", **clerk.auth_header("user_boss", organization_id="org_agency")))
    ann = clerk_identity_from_request(rf.get("/", **clerk.auth_header("user_ann", organization_id="org_agency")))
    plain = clerk_identity_from_request(rf.get("/", **clerk.auth_header("user_ann")))

    assert (boss.user_id, boss.org_id, boss.org_role) == ("user_boss", "org_agency", "admin")
    assert (ann.org_id, ann.org_role) == ("org_agency", "member")
    assert (plain.org_id, plain.org_role) == (None, None)
