"""The agency's tokens page: admins list, create (shown once) and revoke; everyone else gets a 404."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agencies.models import AgencyToken
from agencies.tokens import EXPIRY_TOO_LONG, REVOKED_BY_ADMIN
from compliance.models import AuditEvent
from tests.agencies.tokens_support import agency_make, grant_make, member_make, token_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def agency():
    return agency_make()


@pytest.fixture
def store(agency):
    return grant_make(agency).merchant


def sign_in(client, clerk, user_id: str) -> None:
    client.cookies["__session"] = clerk.token(clerk.user(user_id))


def url(agency) -> str:
    return f"/agencies/{agency.pk}/tokens/"


def test_an_admin_creates_a_token_that_is_shown_once(client, clerk, agency, store):
    sign_in(client, clerk, "user_ada")
    form = client.get(url(agency))
    assert form.status_code == 200
    assert store.name in form.content.decode()
    created = client.post(
        url(agency),
        {"name": "Looker", "scopes": ["reports:read"], "merchants": [store.pk], "expires_in_days": 30},
    )
    assert created.status_code == 200
    assert created["Cache-Control"] == "no-store"
    token = AgencyToken.objects.get()
    body = created.content.decode()
    shown = body.split('data-testid="token-value"')[0].rsplit('value="', 1)[1].split('"')[0]
    assert shown.startswith("mkt_at_") and shown.endswith(token.display_hint)
    assert (token.name, token.scopes, list(token.merchants.all())) == ("Looker", ["reports:read"], [store])
    # Never again: the list shows the hint only.
    again = client.get(url(agency)).content.decode()
    assert shown not in again and f"…{token.display_hint}" in again
    # And it works.
    starters = f"/api/merchants/{store.pk}/dashboard-templates/starters/"
    assert client.get(starters, HTTP_AUTHORIZATION=f"Bearer {shown}").status_code == 200


def test_bad_input_is_a_400_with_the_field_error_and_nothing_created(client, clerk, agency, store):
    sign_in(client, clerk, "user_ada")
    response = client.post(
        url(agency), {"name": "Too long", "scopes": ["metrics:read"], "merchants": [store.pk], "expires_in_days": 400}
    )
    assert response.status_code == 400
    assert EXPIRY_TOO_LONG.format(days=365) in response.content.decode()
    stranger = grant_make(agency_make("Other", admin="user_oz")).merchant
    response = client.post(
        url(agency), {"name": "x", "scopes": ["nope"], "merchants": [stranger.pk], "expires_in_days": 10}
    )
    assert response.status_code == 400
    assert AgencyToken.objects.count() == 0


def test_an_admin_revokes_a_token(client, clerk, agency, store):
    issued = token_make(agency, [store])
    sign_in(client, clerk, "user_ada")
    response = client.post(f"{url(agency)}{issued.token.pk}/revoke/")
    assert response.status_code == 302
    issued.token.refresh_from_db()
    assert issued.token.revoke_reason == REVOKED_BY_ADMIN
    assert AuditEvent.objects.filter(action="agency_token.revoked", target_id=str(issued.token.pk)).count() == 1
    assert "Revoked" in client.get(url(agency)).content.decode()


@pytest.mark.parametrize("who", ["member", "removed admin", "other agency's admin"])
def test_anyone_but_an_active_admin_gets_404(client, clerk, agency, store, who):
    issued = token_make(agency, [store])
    if who == "member":
        member_make(agency, "user_x")
    elif who == "removed admin":
        member_make(agency, "user_x", role="admin")
        agency.members.filter(clerk_user_id="user_x").update(removed_at="2026-01-01T00:00:00Z")
    else:
        agency_make("Other", admin="user_x")
    sign_in(client, clerk, "user_x")
    assert client.get(url(agency)).status_code == 404
    assert client.post(f"{url(agency)}{issued.token.pk}/revoke/").status_code == 404
    assert client.get("/agencies/999999/tokens/").status_code == 404
    issued.token.refresh_from_db()
    assert issued.token.revoked_at is None


def test_another_agencys_token_cannot_be_revoked_from_this_agencys_page(client, clerk, agency, store):
    other = agency_make("Other", admin="user_oz")
    theirs = token_make(other, [grant_make(other).merchant], created_by="user_oz")
    sign_in(client, clerk, "user_ada")
    assert client.post(f"{url(agency)}{theirs.token.pk}/revoke/").status_code == 404
    theirs.token.refresh_from_db()
    assert theirs.token.revoked_at is None


def test_signed_out_is_sent_to_sign_in(client, agency):
    response = client.get(url(agency))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:sign_in"))
