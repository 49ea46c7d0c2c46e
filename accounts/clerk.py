"""Clerk session-token verification.

Tokens are verified offline with the official SDK (`authenticate_request` with the instance's PEM
public key): no network call per request, and the `azp` claim must name one of our origins.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from clerk_backend_api.security import authenticate_request
from clerk_backend_api.security.types import AuthenticateRequestOptions, AuthStatus
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClerkIdentity:
    """The signed-in Clerk user behind a request."""

    user_id: str
    session_id: str
    claims: dict[str, Any] = field(repr=False)

    # Lets DRF and templates treat the identity like a user object.
    is_authenticated = True
    is_anonymous = False


@dataclass(frozen=True)
class ClerkRejection:
    reason: str


def _options() -> AuthenticateRequestOptions:
    if not settings.CLERK_JWT_KEY:
        raise ImproperlyConfigured(
            "CLERK_JWT_KEY (or CLERK_JWT_KEY_FILE) is not set: session tokens cannot be verified"
        )
    return AuthenticateRequestOptions(
        jwt_key=settings.CLERK_JWT_KEY,
        authorized_parties=list(settings.CLERK_AUTHORIZED_PARTIES),
        # Never fall back to fetching JWKS over the network with the secret key.
        secret_key=None,
    )


def clerk_identity_from_request(request) -> ClerkIdentity | ClerkRejection | None:
    """Verify the request's Clerk session token.

    Returns None when the request carries no token at all, a rejection (with the SDK's reason) when it
    carries one that fails verification, and the identity when it verifies.
    """
    has_cookie = settings.CLERK_SESSION_COOKIE in request.COOKIES
    authorization = request.headers.get("Authorization", "")
    if not has_cookie and not authorization.startswith("Bearer "):
        return None
    if authorization and not authorization.startswith("Bearer "):
        # The SDK would take any Authorization header as a token; other schemes are not ours to judge.
        return None
    state = authenticate_request(_HeadersOnly(request), _options())
    if state.status != AuthStatus.SIGNED_IN or not state.payload:
        reason = getattr(state.reason, "name", None) or str(state.reason)
        return ClerkRejection(reason=reason)
    payload = state.payload
    if not payload.get("sub"):
        return ClerkRejection(reason="TOKEN_WITHOUT_SUBJECT")
    return ClerkIdentity(user_id=payload["sub"], session_id=payload.get("sid", ""), claims=payload)


class _HeadersOnly:
    """What the SDK reads from a request: headers, with the cookie header included."""

    def __init__(self, request) -> None:
        self.headers = request.headers
