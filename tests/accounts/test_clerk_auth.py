"""Clerk session tokens, minted by the sandbox and verified offline by the SDK."""

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.urls import reverse

from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db

API = "/api/merchants/"


@pytest.fixture
def member(clerk):
    membership = MembershipFactory(clerk_user_id=clerk.user("user_alice"))
    return membership


def test_valid_bearer_token_is_accepted(client, clerk, member):
    response = client.get(API, **clerk.auth_header("user_alice"))
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    assert body["results"][0] == {
        "id": member.merchant.pk,
        "name": member.merchant.name,
        "shop_domain": member.merchant.shop_domain,
        "timezone": member.merchant.timezone,
        "currency": member.merchant.currency,
        "role": "owner",
    }


def test_valid_session_cookie_is_accepted(client, clerk, member):
    client.cookies["__session"] = clerk.token("user_alice")
    response = client.get(reverse("accounts:merchant_home", args=[member.merchant.pk]))
    assert response.status_code == 200
    assert member.merchant.name in response.content.decode()


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        (
            {"exp": int(time.time()) - 120, "iat": int(time.time()) - 600, "nbf": int(time.time()) - 600},
            "TOKEN_EXPIRED",
        ),
        ({"nbf": int(time.time()) + 600, "iat": int(time.time())}, "TOKEN_NOT_ACTIVE_YET"),
    ],
    ids=["expired", "not-yet-valid"],
)
def test_token_outside_its_validity_window_is_rejected(client, clerk, member, claims, reason):
    response = client.get(API, **clerk.auth_header("user_alice", **claims))
    assert response.status_code == 401
    assert reason in response.json()["detail"]


def test_token_for_another_origin_is_rejected(client, clerk, member):
    token = clerk.token("user_alice", azp="https://evil.example")
    response = client.get(API, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert "TOKEN_INVALID_AUTHORIZED_PARTIES" in response.json()["detail"]


def test_token_signed_with_another_key_is_rejected(client, clerk, member):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    now = int(time.time())
    forged = jwt.encode(
        {
            "sub": "user_alice",
            "sid": "sess_forged",
            "azp": "http://testserver",
            "iat": now,
            "nbf": now,
            "exp": now + 60,
        },
        pem,
        algorithm="RS256",
    )
    response = client.get(API, HTTP_AUTHORIZATION=f"Bearer {forged}")
    assert response.status_code == 401
    assert "TOKEN_INVALID_SIGNATURE" in response.json()["detail"]


def test_missing_token_is_rejected_by_the_api_and_redirected_by_pages(client, clerk, member):
    response = client.get(API)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")

    page = client.get(reverse("accounts:merchant_home", args=[member.merchant.pk]))
    assert page.status_code == 302
    assert page.url.startswith(reverse("accounts:sign_in"))


def test_garbage_token_is_rejected(client, clerk, member):
    response = client.get(API, HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert response.status_code == 401


def test_rejected_cookie_sends_pages_to_sign_in(client, clerk, member):
    client.cookies["__session"] = clerk.token("user_alice", azp="https://evil.example")
    page = client.get(reverse("accounts:merchant_home", args=[member.merchant.pk]))
    assert page.status_code == 302
    assert page.url.startswith(reverse("accounts:sign_in"))


def test_a_remembered_token_is_rejected_once_it_expires(client, clerk, member, settings):
    # The process remembers a verified token, but only until its exp: then the SDK judges it again.
    settings.CLERK_CLOCK_SKEW_MS = 0
    expires = int(time.time()) + 2
    headers = clerk.auth_header("user_alice", exp=expires, iat=expires - 60, nbf=expires - 60)
    assert client.get(API, **headers).status_code == 200
    assert client.get(API, **headers).status_code == 200
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    response = client.get(API, **headers)
    assert response.status_code == 401
    assert "TOKEN_EXPIRED" in response.json()["detail"]


def test_a_remembered_token_is_judged_again_under_another_key(client, clerk, member, settings):
    headers = clerk.auth_header("user_alice")
    assert client.get(API, **headers).status_code == 200
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    settings.CLERK_JWT_KEY = (
        other_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    response = client.get(API, **headers)
    assert response.status_code == 401
    assert "TOKEN_INVALID_SIGNATURE" in response.json()["detail"]


def test_a_remembered_token_is_judged_again_when_its_origin_is_no_longer_allowed(client, clerk, member, settings):
    client.cookies["__session"] = clerk.token("user_alice")
    page = reverse("accounts:merchant_home", args=[member.merchant.pk])
    assert client.get(page).status_code == 200
    settings.CLERK_AUTHORIZED_PARTIES = ["https://app.example"]
    response = client.get(page)
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:sign_in"))


def test_a_bearer_token_wins_over_the_cookie(client, clerk, member):
    # The SDK's precedence: with both, the Authorization header is the token judged.
    client.cookies["__session"] = clerk.token("user_alice")
    response = client.get(API, HTTP_AUTHORIZATION="Bearer not-a-jwt")
    assert response.status_code == 401
