"""Clerk session tokens, minted by the sandbox and verified offline by the SDK."""

import time

import httpx
import jwt
import pytest
from clerk_backend_api.security import authenticate_request
from clerk_backend_api.security.types import AuthenticateRequestOptions
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import RequestFactory
from django.urls import reverse

from accounts.clerk import clerk_identity_from_request
from tests.accounts.factories import MembershipFactory
from tests.conftest import TEST_ORIGIN

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
        "agency": None,
        "level": "owner",
        "can_see_pii": True,
        "can_see_costs": True,
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


def test_sign_in_redirect_keeps_the_pages_whole_query(client, clerk, member):
    from urllib.parse import parse_qs, urlsplit

    path = reverse("dashboards:attribution", args=[member.merchant.pk]) + "?start=2026-10-01&end=2026-10-31"
    page = client.get(path)
    assert page.status_code == 302
    assert parse_qs(urlsplit(page.url).query) == {"next": [path]}


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


# --- claims the SDK leaves unchecked -----------------------------------------------------------------------


def _forge(sandbox_server, **claims) -> str:
    """A token signed with the sandbox's Clerk key, as Clerk would sign it; `claims` override (None removes)."""
    return sandbox_server.state.clerk.mint_session_token(
        user_id="user_alice", azp=TEST_ORIGIN, issuer=f"{sandbox_server.url}/clerk", ttl_seconds=3600, claims=claims
    )


def _now() -> int:
    return int(time.time())


BAD_CLAIMS = {
    "no exp": ({"exp": None}, "TOKEN_WITHOUT_EXPIRY"),
    "exp as a string": ({"exp": str(2**32)}, "TOKEN_WITHOUT_EXPIRY"),
    "exp as true": ({"exp": True}, "TOKEN_EXPIRED"),
    "no iat": ({"iat": None}, "TOKEN_WITHOUT_ISSUED_AT"),
    "iat as a string": ({"iat": "0"}, "TOKEN_WITHOUT_ISSUED_AT"),
    "iat in the future": ({"iat": 10**10, "nbf": None}, "TOKEN_NOT_ACTIVE_YET"),
    "nbf in the future": ({"nbf": 10**10}, "TOKEN_NOT_ACTIVE_YET"),
    "nbf as a string": ({"nbf": "0"}, "TOKEN_NOT_ACTIVE_YET"),
    "pending session": ({"sts": "pending"}, "SESSION_NOT_ACTIVE"),
    "ended session": ({"sts": "ended"}, "SESSION_NOT_ACTIVE"),
    "sts not a string": ({"sts": 1}, "SESSION_NOT_ACTIVE"),
    "no azp": ({"azp": None}, "TOKEN_INVALID_AUTHORIZED_PARTIES"),
    "azp of another origin": ({"azp": "https://evil.example"}, "TOKEN_INVALID_AUTHORIZED_PARTIES"),
    "azp not a string": ({"azp": [TEST_ORIGIN]}, "TOKEN_INVALID_AUTHORIZED_PARTIES"),
    "no sub": ({"sub": None}, "TOKEN_WITHOUT_SUBJECT"),
    "empty sub": ({"sub": ""}, "TOKEN_WITHOUT_SUBJECT"),
}


@pytest.mark.parametrize(("claims", "reason"), BAD_CLAIMS.values(), ids=BAD_CLAIMS.keys())
def test_a_validly_signed_token_with_a_bad_claim_signs_nobody_in(client, clerk, member, sandbox_server, claims, reason):
    token = _forge(sandbox_server, **claims)

    api = client.get(API, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.status_code == 401
    assert api.json() == {"detail": f"Session token rejected: {reason}."}

    client.cookies["__session"] = token
    page = client.get(reverse("accounts:merchant_home", args=[member.merchant.pk]))
    assert page.status_code == 302
    assert page.url.startswith(reverse("accounts:sign_in"))


def test_a_token_issued_within_the_clock_skew_is_accepted(client, clerk, member, sandbox_server):
    # Clerk's clock may run a little ahead of ours: iat and nbf up to the leeway in the future are fine.
    soon = _now() + 2
    token = _forge(sandbox_server, iat=soon, nbf=soon)
    assert client.get(API, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_an_active_session_and_a_token_without_sts_are_accepted(client, clerk, member, sandbox_server):
    # v1 session tokens carry no sts; where it is present it must say active.
    for claims in ({"sts": "active"}, {"sts": None}):
        token = _forge(sandbox_server, **claims)
        assert client.get(API, HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200, claims


def test_empty_authorized_parties_refuses_to_verify(client, clerk, member, settings):
    settings.CLERK_AUTHORIZED_PARTIES = []
    request = RequestFactory().get(API, HTTP_AUTHORIZATION=f"Bearer {clerk.token('user_alice')}")
    with pytest.raises(ImproperlyConfigured, match="CLERK_AUTHORIZED_PARTIES"):
        clerk_identity_from_request(request)


# --- machine tokens never leave the process ----------------------------------------------------------------


@pytest.fixture
def clerk_api_via_sandbox(monkeypatch, sandbox_server, sandbox):
    """Whatever the Clerk SDK sends to Clerk's API (api.clerk.com, its default) reaches the sandbox's Clerk
    instead, whose call log then counts it. Rerouted at httpx's transport, the last step before the network."""
    original = httpx.HTTPTransport.handle_request
    target = httpx.URL(sandbox_server.url)

    def handle_request(self, request):
        if request.url.host == "api.clerk.com":
            request.url = request.url.copy_with(
                scheme=target.scheme, host=target.host, port=target.port, path="/clerk" + request.url.path
            )
        return original(self, request)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_request)

    def clerk_calls() -> list[dict]:
        return [c for c in sandbox.calls() if c["path"].startswith("/clerk/") and "/_dev/" not in c["path"]]

    return clerk_calls


class _Bearer:
    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}


def test_the_sandbox_counts_what_the_sdk_would_send_to_clerk(clerk, clerk_api_via_sandbox):
    # The harness below is only worth something if it sees a call: the SDK left to its default accepts any
    # token type and posts a machine token to Clerk to verify it.
    authenticate_request(_Bearer("mt_" + "a" * 32), AuthenticateRequestOptions(jwt_key=settings.CLERK_JWT_KEY))
    assert [c["path"] for c in clerk_api_via_sandbox()] == ["/clerk/m2m_tokens/verify"]


MACHINE_TOKENS = ["mt_" + "a" * 32, "m2m_" + "b" * 32, "oat_" + "c" * 32, "ak_" + "d" * 32]


@pytest.mark.parametrize("token", MACHINE_TOKENS, ids=lambda t: t.split("_")[0])
def test_a_machine_token_is_refused_without_asking_clerk(client, clerk, member, clerk_api_via_sandbox, token):
    api = client.get(API, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api.status_code == 401
    assert "TOKEN_TYPE_NOT_SUPPORTED" in api.json()["detail"]

    client.cookies["__session"] = token
    page = client.get(reverse("accounts:merchant_home", args=[member.merchant.pk]))
    assert page.status_code == 302

    assert clerk_api_via_sandbox() == []


def test_a_session_token_is_verified_without_asking_clerk(client, clerk, member, clerk_api_via_sandbox):
    assert client.get(API, **clerk.auth_header("user_alice")).status_code == 200
    assert clerk_api_via_sandbox() == []
