"""The sandbox's Meta, Google, Klaviyo and Attentive stand-ins, driven over HTTP without Django."""

from __future__ import annotations

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from tests.connectors.providers import ProviderSandbox


@pytest.fixture
def providers(control) -> ProviderSandbox:
    return ProviderSandbox(control)


def test_google_token_endpoint_refresh_and_invalid_grant(server, providers):
    tokens = providers.google_tokens()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": "c",
        "client_secret": "s",
    }
    answer = requests.post(f"{server.url}/google/token", data=form, timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    assert body["access_token"].startswith("ya29.") and body["expires_in"] == 3599 and "refresh_token" not in body

    providers.google_revoke(tokens["refresh_token"])
    answer = requests.post(f"{server.url}/google/token", data=form, timeout=5)
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}


def test_google_ads_answers_401_oauth_token_expired_for_an_expired_token(server, providers):
    tokens = providers.google_tokens(ttl=-1)
    answer = requests.post(
        f"{server.url}/google/ads/v24/customers/1234567890/googleAds:search",
        json={"query": "SELECT campaign.id FROM campaign"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=5,
    )
    assert answer.status_code == 401
    error = answer.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert error["details"][0]["errors"][0]["errorCode"] == {"authenticationError": "OAUTH_TOKEN_EXPIRED"}


def test_google_authorization_code_with_pkce(server, providers):
    verifier = "v" * 50
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    consent = requests.get(
        f"{server.url}/google/o/oauth2/v2/auth",
        params={"client_id": "c", "redirect_uri": "http://app/cb", "state": "s1", "access_type": "offline",
                "code_challenge": challenge, "code_challenge_method": "S256"},
        allow_redirects=False, timeout=5,
    )  # fmt: skip
    query = parse_qs(urlsplit(consent.headers["Location"]).query)
    assert query["state"] == ["s1"]
    form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": "http://app/cb",
            "client_id": "c", "client_secret": "s", "code_verifier": "wrong"}  # fmt: skip
    assert requests.post(f"{server.url}/google/token", data=form, timeout=5).status_code == 400
    assert providers.calls("google.oauth.token") == 1


def test_meta_exchange_and_190_subcodes(server, providers):
    token = providers.meta_token(ttl=100)
    params = {"grant_type": "fb_exchange_token", "client_id": "1", "client_secret": "s", "fb_exchange_token": token}
    answer = requests.get(f"{server.url}/meta/graph/v25.0/oauth/access_token", params=params, timeout=5)
    assert (
        answer.status_code == 200 and answer.json()["expires_in"] == 5183944 and answer.json()["token_type"] == "bearer"
    )

    providers.meta_invalidate(token, subcode=463)
    answer = requests.get(f"{server.url}/meta/graph/v99.0/me/adaccounts", params={"access_token": token}, timeout=5)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["error_subcode"]) == ("OAuthException", 190, 463)
    assert error["message"].startswith("Error validating access token: Session has expired on")


def test_meta_debug_token_reports_system_users_as_never_expiring(server, providers):
    token = providers.meta_token(kind="system")
    answer = requests.get(
        f"{server.url}/meta/graph/v25.0/debug_token", params={"input_token": token, "access_token": "1|s"}, timeout=5
    )
    data = answer.json()["data"]
    assert data["expires_at"] == 0 and data["is_valid"] is True and data["type"] == "SYSTEM_USER"


def test_klaviyo_variants(server, providers):
    url = f"{server.url}/klaviyo/api/accounts"
    good, scopeless = providers.klaviyo_key(), providers.klaviyo_key(scopes=[])
    headers = {"revision": "2025-10-15"}

    def get(key, scheme="Klaviyo-API-Key", **extra):
        return requests.get(url, headers={**headers, "Authorization": f"{scheme} {key}", **extra}, timeout=5)

    assert get(good).status_code == 200 and get(good).json()["data"][0]["type"] == "account"
    assert get("pk_" + "a" * 34).json()["errors"][0]["code"] == "authentication_failed"
    assert get(good, scheme="Bearer").json()["errors"][0]["code"] == "not_authenticated"
    assert get(scopeless).status_code == 403 and get(scopeless).json()["errors"][0]["code"] == "permission_denied"
    assert requests.get(url, headers={"Authorization": f"Klaviyo-API-Key {good}"}, timeout=5).status_code == 400


def test_attentive_me(server, providers):
    key = providers.attentive_key(company="Acme")
    url = f"{server.url}/attentive/v1/me"
    assert requests.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=5).json()["companyName"] == "Acme"
    assert requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5).status_code == 401


def test_faults_and_call_counts_apply_to_provider_routes(server, providers, control):
    control.fault("klaviyo.accounts.list", 429, headers={"Retry-After": 3})
    answer = requests.get(f"{server.url}/klaviyo/api/accounts", timeout=5)
    assert answer.status_code == 429 and answer.headers["Retry-After"] == "3"
    assert answer.json()["errors"][0]["code"] == "throttled"
    assert providers.calls("klaviyo.accounts.list") == 1
