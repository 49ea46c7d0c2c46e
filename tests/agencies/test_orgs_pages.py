"""The agency pages: create an agency, see members and invitations, invite, revoke, assign clients; 404 for
anyone outside the agency, 403 for its non-admin members."""

from __future__ import annotations

import pytest

from agencies.choices import GrantStatus, InvitationStatus
from agencies.models import Agency, AgencyInvitation, AgencyMember, ClientAssignment
from agencies.services import DUPLICATE_INVITATION
from tests.accounts.factories import MerchantFactory
from tests.agencies.conftest import BOSS
from tests.agencies.factories import AccessGrantFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def as_user(client, clerk):
    def headers(user_id: str, **claims) -> dict:
        clerk.user(user_id)
        return clerk.auth_header(user_id, **claims)

    return headers


def test_create_page_makes_the_agency_and_lands_on_its_team(client, as_user) -> None:
    auth = as_user("user_new")
    assert client.get("/agencies/new/", **auth).status_code == 200

    response = client.post("/agencies/new/", {"name": "Acme Growth", "reporting_currency": "gbp"}, **auth)

    agency = Agency.objects.get(name="Acme Growth")
    assert response.status_code == 302
    assert response["Location"] == f"/agencies/{agency.pk}/members/"
    assert (agency.reporting_currency, agency.created_by) == ("GBP", "user_new")
    page = client.get(response["Location"], **auth)
    assert page.status_code == 200
    assert b"Acme Growth" in page.content and b"Invite someone" in page.content


@pytest.mark.parametrize(
    "data", [{"name": "", "reporting_currency": "USD"}, {"name": "X", "reporting_currency": "ZZZ"}, {"name": "X"}]
)
def test_create_page_bad_input_is_400_with_field_errors(client, as_user, sandbox, data) -> None:
    response = client.post("/agencies/new/", data, **as_user("user_new"))

    assert response.status_code == 400
    assert b'class="errors error"' in response.content
    assert Agency.objects.count() == 0
    assert sandbox.calls("clerk.organizations.create") == []


def test_create_page_needs_a_signed_in_user(client) -> None:
    response = client.get("/agencies/new/")
    assert (response.status_code == 302 and "/sign-in" in response["Location"]) or "sign" in response["Location"]


def test_members_page_shows_invitation_statuses(client, clerk, agency) -> None:
    for email, status in [
        ("q@example.com", InvitationStatus.QUEUED),
        ("p@example.com", InvitationStatus.PENDING),
        ("a@example.com", InvitationStatus.ACCEPTED),
        ("r@example.com", InvitationStatus.REVOKED),
        ("e@example.com", InvitationStatus.EXPIRED),
    ]:
        AgencyInvitation.objects.create(agency=agency, email=email, status=status, invited_by=BOSS)

    page = client.get(f"/agencies/{agency.pk}/members/", **clerk.auth_header(BOSS)).content.decode()

    for label in ("Queued (not yet sent to Clerk)", "Pending", "Accepted", "Revoked", "Expired"):
        assert label in page
    assert page.count(">Revoke</button>") == 2  # only the open ones


def test_outsiders_get_404_and_members_cannot_change_anything(client, clerk, as_user, agency) -> None:
    other = Agency.objects.create(clerk_org_id="org_other", name="Other", slug="other", created_by="user_x")
    outsider = as_user("user_outsider")
    member = as_user("user_m")
    AgencyMember.objects.create(agency=agency, clerk_user_id="user_m", clerk_role="org:member")
    gone = as_user("user_gone")
    AgencyMember.objects.create(agency=agency, clerk_user_id="user_gone", clerk_role="org:admin", role="admin")
    AgencyMember.objects.filter(clerk_user_id="user_gone").update(removed_at="2026-01-01T00:00:00Z")
    invitation = AgencyInvitation.objects.create(agency=other, email="z@example.com", invited_by="user_x")
    boss = clerk.auth_header(BOSS)

    assert client.get(f"/agencies/{agency.pk}/members/", **outsider).status_code == 404
    assert client.get(f"/agencies/{agency.pk}/members/", **gone).status_code == 404
    assert client.get("/agencies/999999/members/", **boss).status_code == 404
    assert client.get(f"/agencies/{other.pk}/members/", **boss).status_code == 404
    assert client.post(f"/agencies/{agency.pk}/invitations/{invitation.pk}/revoke/", **boss).status_code == 404
    assert client.get(f"/agencies/{agency.pk}/members/", **member).status_code == 200
    assert client.post(f"/agencies/{agency.pk}/invitations/", {"email": "n@example.com"}, **member).status_code == 403
    assert client.post(f"/agencies/{agency.pk}/invitations/", {"email": "n@example.com"}, **outsider).status_code == 404
    assert AgencyInvitation.objects.filter(agency=agency).count() == 0


def test_invite_queues_then_duplicate_is_a_field_error(client, clerk, agency, django_capture_on_commit_callbacks):
    boss = clerk.auth_header(BOSS)
    with django_capture_on_commit_callbacks() as callbacks:
        response = client.post(
            f"/agencies/{agency.pk}/invitations/", {"email": "ann@example.com", "role": "member"}, **boss
        )
    assert response.status_code == 302 and len(callbacks) == 1

    again = client.post(f"/agencies/{agency.pk}/invitations/", {"email": "ann@example.com", "role": "member"}, **boss)
    bad = client.post(f"/agencies/{agency.pk}/invitations/", {"email": "nope", "role": "owner"}, **boss)

    assert again.status_code == 400
    assert DUPLICATE_INVITATION.format(email="ann@example.com") in again.content.decode()
    assert bad.status_code == 400
    assert AgencyInvitation.objects.filter(agency=agency).count() == 1


def test_revoke_from_the_page(client, clerk, agency) -> None:
    invitation = AgencyInvitation.objects.create(agency=agency, email="q@example.com", invited_by=BOSS)

    response = client.post(f"/agencies/{agency.pk}/invitations/{invitation.pk}/revoke/", **clerk.auth_header(BOSS))

    assert response.status_code == 302
    invitation.refresh_from_db()
    assert invitation.status == InvitationStatus.REVOKED


def test_assign_clients_offers_only_granted_stores(client, clerk, agency) -> None:
    member = AgencyMember.objects.create(agency=agency, clerk_user_id="user_m", clerk_role="org:member")
    granted = AccessGrantFactory(agency=agency).merchant
    ended = AccessGrantFactory(agency=agency, status=GrantStatus.ENDED).merchant
    stranger = MerchantFactory()
    boss = clerk.auth_header(BOSS)
    url = f"/agencies/{agency.pk}/members/{member.pk}/clients/"

    page = client.get(f"/agencies/{agency.pk}/members/", **boss).content.decode()
    ok = client.post(url, {"merchants": [granted.pk]}, **boss)
    refused = [client.post(url, {"merchants": [m.pk]}, **boss).status_code for m in (ended, stranger)]
    junk = client.post(url, {"merchants": ["x"]}, **boss)

    assert granted.name in page and ended.name not in page and stranger.name not in page
    assert ok.status_code == 302
    assert refused == [400, 400] and junk.status_code == 400
    assert list(ClientAssignment.objects.values_list("merchant_id", flat=True)) == [granted.pk]


def test_index_lands_on_the_sessions_active_agency_only_for_its_members(client, clerk, sandbox, agency) -> None:
    second = Agency.objects.create(clerk_org_id="org_second", name="Second", slug="second", created_by=BOSS)
    AgencyMember.objects.create(agency=second, clerk_user_id=BOSS, clerk_role="org:admin", role="admin")
    sandbox.clerk_organization_put("org_second", name="Second", members=[(BOSS, "org:admin")])

    by_org = client.get("/agencies/", **clerk.auth_header(BOSS, organization_id="org_second"))
    listed = client.get("/agencies/", **clerk.auth_header(BOSS))
    # A token naming an organization the mirror says the user is not in picks nothing.
    forged = client.get("/agencies/", **clerk.auth_header(BOSS, o={"id": "org_other", "rol": "admin", "slg": "x"}))

    assert by_org["Location"] == f"/agencies/{second.pk}/members/"
    assert listed.status_code == forged.status_code == 200
    assert b"Northwind Growth" in listed.content and b"Second" in listed.content
