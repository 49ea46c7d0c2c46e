"""OAuth connect for Meta and Google: start page → sandbox consent → callback, over real HTTP."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.core import signing
from django.utils.html import escape

from accounts.choices import Role
from compliance.models import AuditEvent
from connectors import oauth
from connectors.choices import CredentialStatus
from connectors.crypto import decrypt_secret
from connectors.models import ConnectorCredential, OAuthState
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(clerk):
    return MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)


def start(client, clerk, membership, provider: str) -> str:
    response = client.post(
        f"/m/{membership.merchant_id}/connectors/{provider}/connect/", **clerk.auth_header(membership.clerk_user_id)
    )
    assert response.status_code == 302, response.content
    return response["Location"]


def consent(authorize_url: str) -> str:
    """What the browser does at the provider: follow the consent redirect back to us."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=5)
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"].split("#", 1)[0]
    parts = urlsplit(location)
    assert parts.netloc == "testserver"
    return f"{parts.path}?{parts.query}"


def test_google_connect_stores_encrypted_tokens_with_a_refresh_token(client, clerk, owner, providers):
    authorize = start(client, clerk, owner, "google_ads")
    query = parse_qs(urlsplit(authorize).query)
    assert query["access_type"] == ["offline"] and query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"] == ["http://testserver/connectors/oauth/google_ads/callback/"]

    response = client.get(consent(authorize), **clerk.auth_header("user_owner"))

    assert response.status_code == 302 and response["Location"] == f"/m/{owner.merchant_id}/connectors/"
    credential = ConnectorCredential.objects.get()
    assert (credential.provider, credential.external_account_id, credential.status) == (
        "google_ads",
        "1234567890",
        CredentialStatus.ACTIVE,
    )
    assert decrypt_secret(credential.access_token_enc).startswith("ya29.")
    assert decrypt_secret(credential.refresh_token_enc).startswith("1//")
    assert credential.connected_by == "user_owner"
    assert AuditEvent.objects.filter(action="credential.connected", target_id=str(credential.pk)).exists()


def test_meta_connect_exchanges_for_a_long_lived_token(client, clerk, owner, providers):
    authorize = start(client, clerk, owner, "meta")
    assert "/meta/www/v25.0/dialog/oauth" in authorize

    response = client.get(consent(authorize), **clerk.auth_header("user_owner"))

    assert response.status_code == 302
    credential = ConnectorCredential.objects.get()
    assert credential.provider == "meta" and credential.account_label == "Demo Ads"
    assert credential.metadata == {"ad_accounts": [{"id": "act_101", "name": "Demo Ads"}]}
    assert credential.expires_at is not None and credential.scopes == ["ads_read", "read_insights"]
    assert providers.calls("meta.oauth.access_token") == 2  # code, then fb_exchange_token
    assert providers.calls("meta.debug_token.get") == 1


@pytest.mark.parametrize("provider", ["meta", "google_ads"])
def test_denied_consent_shows_a_page_and_stores_nothing(client, clerk, owner, providers, provider):
    (providers.meta_configure if provider == "meta" else providers.google_configure)(deny_next_consent=True)
    response = client.get(consent(start(client, clerk, owner, provider)), **clerk.auth_header("user_owner"))
    assert response.status_code == 400
    assert "was not granted" in response.content.decode()
    assert not ConnectorCredential.objects.exists()


def test_a_replayed_state_is_refused(client, clerk, owner, providers):
    callback = consent(start(client, clerk, owner, "google_ads"))
    assert client.get(callback, **clerk.auth_header("user_owner")).status_code == 302
    ConnectorCredential.objects.all().delete()

    replay = client.get(callback, **clerk.auth_header("user_owner"))

    assert replay.status_code == 400 and oauth.STATE_REPLAYED in replay.content.decode()
    assert not ConnectorCredential.objects.exists()


def test_a_state_started_by_another_user_is_refused(client, clerk, owner, providers):
    other = MembershipFactory(merchant=owner.merchant, clerk_user_id=clerk.user("user_other"), role=Role.ADMIN)
    callback = consent(start(client, clerk, owner, "google_ads"))

    response = client.get(callback, **clerk.auth_header(other.clerk_user_id))

    assert response.status_code == 400 and oauth.STATE_FOREIGN in response.content.decode()
    assert not ConnectorCredential.objects.exists()


def test_a_user_removed_from_the_merchant_mid_flow_connects_nothing(client, clerk, owner, providers):
    callback = consent(start(client, clerk, owner, "meta"))
    owner.delete()
    response = client.get(callback, **clerk.auth_header("user_owner"))
    assert response.status_code == 400 and escape(oauth.NOT_MANAGER) in response.content.decode()
    assert providers.calls("meta.oauth.access_token") == 0
    assert not ConnectorCredential.objects.exists()


def test_a_forged_or_expired_state_is_refused(client, clerk, owner, providers, settings):
    forged = signing.dumps({"n": "x", "m": owner.merchant_id, "u": "user_owner", "p": "google_ads"}, salt="other")
    response = client.get(
        f"/connectors/oauth/google_ads/callback/?code=abc&state={forged}", **clerk.auth_header("user_owner")
    )
    assert response.status_code == 400 and oauth.STATE_INVALID in response.content.decode()
    assert not ConnectorCredential.objects.exists()


def test_a_state_older_than_ten_minutes_is_refused(client, clerk, owner, providers):
    import datetime as dt
    from unittest import mock

    callback = consent(start(client, clerk, owner, "meta"))
    # Expire the state without moving the clock (the Clerk session token must stay valid).
    with mock.patch.object(oauth, "STATE_MAX_AGE", dt.timedelta(seconds=-1)):
        response = client.get(callback, **clerk.auth_header("user_owner"))
    assert response.status_code == 400 and oauth.STATE_INVALID in response.content.decode()
    assert providers.calls("meta.oauth.access_token") == 0
    assert not ConnectorCredential.objects.exists()


def test_provider_error_during_exchange_stores_nothing(client, clerk, owner, providers):
    callback = consent(start(client, clerk, owner, "google_ads"))
    providers.control.fault("google.oauth.token", 500)
    response = client.get(callback, **clerk.auth_header("user_owner"))
    assert response.status_code == 400 and "did not complete the sign-in" in response.content.decode()
    assert not ConnectorCredential.objects.exists()


def test_google_without_a_refresh_token_stores_nothing(client, clerk, owner, providers):
    providers.google_configure(omit_refresh_token=True)
    response = client.get(consent(start(client, clerk, owner, "google_ads")), **clerk.auth_header("user_owner"))
    assert response.status_code == 400 and oauth.NO_REFRESH_TOKEN in response.content.decode()
    assert not ConnectorCredential.objects.exists()


def test_start_for_another_merchant_is_404(client, clerk, owner, providers):
    stranger = MembershipFactory(clerk_user_id=clerk.user("user_stranger"))
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/google_ads/connect/", **clerk.auth_header(stranger.clerk_user_id)
    )
    assert response.status_code == 404
    assert not OAuthState.objects.exists()


def test_viewer_cannot_start(client, clerk, providers):
    viewer = MembershipFactory(clerk_user_id=clerk.user("user_viewer"), role=Role.VIEWER)
    response = client.post(
        f"/m/{viewer.merchant_id}/connectors/meta/connect/", **clerk.auth_header(viewer.clerk_user_id)
    )
    assert response.status_code == 403
    assert not OAuthState.objects.exists()


def test_the_pkce_verifier_is_stored_encrypted(client, clerk, owner, providers):
    start(client, clerk, owner, "google_ads")
    attempt = OAuthState.objects.get()
    assert attempt.code_verifier_enc.startswith("v1:")
    assert len(decrypt_secret(attempt.code_verifier_enc)) >= 43


@pytest.mark.parametrize(
    ("provider", "route", "status", "body"),
    [
        ("google_ads", "google.oauth.token", 502, "<html><body>502 Bad Gateway</body></html>"),
        ("google_ads", "google.oauth.token", 200, "<html>not a token</html>"),
        ("google_ads", "google.oauth.token", 200, {"access_token": "ya29.x", "expires_in": "an hour"}),
        ("meta", "meta.oauth.access_token", 200, "not json"),
        ("meta", "meta.oauth.access_token", 200, {"token_type": "bearer"}),
    ],
)
def test_a_code_exchange_answer_that_is_not_a_token_is_a_failed_sign_in_not_a_500(
    client, clerk, owner, providers, provider, route, status, body
):
    callback = consent(start(client, clerk, owner, provider))
    providers.control.fault(route, status, body=body)

    response = client.get(callback, **clerk.auth_header("user_owner"))

    assert response.status_code == 400
    assert "Nothing was saved" in response.content.decode()
    assert not ConnectorCredential.objects.exists()
