"""Session tokens minted by the sandbox, checked with the official SDK's verifiers."""

from __future__ import annotations

import time
from types import SimpleNamespace

import jwt
import pytest
import requests
from clerk_backend_api.security import (
    AuthenticateRequestOptions,
    AuthStatus,
    RequestState,
    TokenVerificationErrorReason,
    VerifyTokenOptions,
    authenticate_request,
    verify_token,
)
from cryptography.hazmat.primitives import serialization

from sandbox import SandboxControl, SandboxServer


def _authenticate(token: str, public_pem: str, azp: str) -> RequestState:
    """Verify offline, with the PEM, as the web app does."""
    request = SimpleNamespace(headers={"Authorization": f"Bearer {token}"})
    return authenticate_request(request, AuthenticateRequestOptions(jwt_key=public_pem, authorized_parties=[azp]))


def test_minted_token_signs_the_user_in(server: SandboxServer, control: SandboxControl, azp: str) -> None:
    token = control.mint_session_token("user_startup", azp)

    state = _authenticate(token, control.jwt_public_key(), azp)

    assert state.status == AuthStatus.SIGNED_IN, state.reason
    payload = state.payload
    assert (payload["sub"], payload["azp"], payload["v"]) == ("user_startup", azp, 2)
    assert payload["sid"].startswith("sess_")
    assert payload["iss"] == f"{server.url}/clerk"
    assert payload["nbf"] <= payload["iat"] < payload["exp"] == payload["iat"] + 3600
    assert jwt.get_unverified_header(token)["kid"] == server.state.clerk.key_pair.kid


def test_exp_in_the_past_is_rejected_as_expired(control: SandboxControl, azp: str) -> None:
    token = control.mint_session_token("user_startup", azp, exp=int(time.time()) - 600)

    state = _authenticate(token, control.jwt_public_key(), azp)

    assert state.status == AuthStatus.SIGNED_OUT
    assert state.reason == TokenVerificationErrorReason.TOKEN_EXPIRED


def test_negative_ttl_mints_an_expired_token(control: SandboxControl, azp: str) -> None:
    token = control.mint_session_token("user_startup", azp, ttl_seconds=-600)

    state = _authenticate(token, control.jwt_public_key(), azp)

    assert state.reason == TokenVerificationErrorReason.TOKEN_EXPIRED


def test_nbf_in_the_future_is_rejected_as_not_active(control: SandboxControl, azp: str) -> None:
    token = control.mint_session_token("user_startup", azp, nbf=int(time.time()) + 600)

    state = _authenticate(token, control.jwt_public_key(), azp)

    assert state.reason == TokenVerificationErrorReason.TOKEN_NOT_ACTIVE_YET


def test_other_authorized_party_is_rejected(control: SandboxControl, azp: str) -> None:
    token = control.mint_session_token("user_startup", "http://evil.example")

    state = _authenticate(token, control.jwt_public_key(), azp)

    assert state.reason == TokenVerificationErrorReason.TOKEN_INVALID_AUTHORIZED_PARTIES


def test_extra_claims_are_added_and_null_removes_one(control: SandboxControl, azp: str) -> None:
    token = control.mint_session_token("user_startup", azp, o={"id": "org_1", "slg": "acme", "rol": "admin"}, sts=None)

    payload = _authenticate(token, control.jwt_public_key(), azp).payload

    assert (payload["org_id"], payload["org_slug"], payload["org_role"]) == ("org_1", "acme", "admin")
    assert "sts" not in payload


def test_token_for_unknown_user_is_refused(server: SandboxServer, control: SandboxControl, azp: str) -> None:
    response = requests.post(
        f"{server.url}/clerk/_dev/session_token", json={"user_id": "user_ghost", "azp": azp}, timeout=5
    )

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "resource_not_found"


@pytest.mark.parametrize(
    ("body", "param"),
    [({"azp": "http://127.0.0.1:8000"}, "user_id"), ({"user_id": "user_startup"}, "azp")],
)
def test_session_token_requires_user_and_azp(
    server: SandboxServer, control: SandboxControl, body: dict, param: str
) -> None:
    response = requests.post(f"{server.url}/clerk/_dev/session_token", json=body, timeout=5)

    assert response.status_code == 422
    assert response.json()["errors"][0]["meta"] == {"param_name": param}


def test_jwks_key_is_the_published_pem(server: SandboxServer, control: SandboxControl, secret_key: str) -> None:
    response = requests.get(f"{server.url}/clerk/v1/jwks", headers={"Authorization": f"Bearer {secret_key}"}, timeout=5)

    [key] = response.json()["keys"]
    assert {k: key[k] for k in ("kty", "alg", "use")} == {"kty": "RSA", "alg": "RS256", "use": "sig"}
    assert key["kid"] == server.state.clerk.key_pair.kid
    from_jwk = jwt.algorithms.RSAAlgorithm.from_jwk(key)
    from_pem = serialization.load_pem_public_key(control.jwt_public_key().encode())
    assert from_jwk.public_numbers() == from_pem.public_numbers()


def test_jwks_needs_the_secret_key(server: SandboxServer, control: SandboxControl) -> None:
    assert requests.get(f"{server.url}/clerk/v1/jwks", timeout=5).status_code == 401


def test_sdk_verifies_over_the_network_through_jwks(
    server: SandboxServer, control: SandboxControl, azp: str, secret_key: str
) -> None:
    token = control.mint_session_token("user_startup", azp)
    # authenticate_request always fetches from api.clerk.com; verify_token lets us name the base URL.
    options = VerifyTokenOptions(secret_key=secret_key, api_url=f"{server.url}/clerk", authorized_parties=[azp])

    payload = verify_token(token, options)

    assert payload["sub"] == "user_startup"
    assert [c["status"] for c in control.calls("clerk.jwks.get")] == [200]
