"""Clerk session-token verification.

Tokens are verified offline with the official SDK (`authenticate_request` with the instance's PEM
public key): no network call per request, and the `azp` claim must name one of our origins. The SDK is
told to accept session tokens only: a bearer shaped like a machine token (`mt_`, `m2m_`, `oat_`, `ak_`)
would otherwise be posted to Clerk's API for verification, from every request that carries one.

What the SDK leaves unchecked is checked here, after it (`_claims_problem`): PyJWT accepts a token
without `exp` (it would never expire) or `iat`, and the SDK counts a `pending` session as signed in
where Clerk's own SDKs treat it as signed out.

A browser sends the same token with every request until Clerk's frontend renews it (about once a
minute), and the SDK parses the PEM key and checks the RSA signature each time. A token that verified
is therefore remembered by this process until its `exp`, under the key and origins it was verified
with; past `exp` the SDK judges it again (and rejects it once its clock-skew leeway is over too).
Nothing else about a token changes while it is valid: Clerk session tokens cannot be revoked early.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from clerk_backend_api.security import authenticate_request
from clerk_backend_api.security.types import AuthenticateRequestOptions, AuthStatus
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.views.decorators.debug import sensitive_variables

from agencies.choices import role_normalise

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClerkIdentity:
    """The signed-in Clerk user behind a request.

    `org_id` / `org_role` are the session's active Clerk organization and the user's role in it, normalised
    (`admin` or `member`, agencies.choices.AgencyRole). They only pick which agency a page opens with: access
    is decided from our database (the membership mirror and the grants), never from these claims.
    """

    user_id: str
    session_id: str
    # Read-only: one identity serves every request that carries its token.
    claims: MappingProxyType[str, Any] = field(repr=False)
    org_id: str | None = None
    org_role: str | None = None

    # Lets DRF and templates treat the identity like a user object.
    is_authenticated = True
    is_anonymous = False


@dataclass(frozen=True)
class ClerkRejection:
    reason: str


# Rejection reasons of our own, beside the SDK's (TOKEN_EXPIRED, TOKEN_INVALID_SIGNATURE, ...).
TOKEN_WITHOUT_EXPIRY = "TOKEN_WITHOUT_EXPIRY"
TOKEN_WITHOUT_ISSUED_AT = "TOKEN_WITHOUT_ISSUED_AT"
TOKEN_IAT_IN_THE_FUTURE = "TOKEN_IAT_IN_THE_FUTURE"
TOKEN_NOT_ACTIVE_YET = "TOKEN_NOT_ACTIVE_YET"
TOKEN_EXPIRED = "TOKEN_EXPIRED"
TOKEN_INVALID_AUTHORIZED_PARTIES = "TOKEN_INVALID_AUTHORIZED_PARTIES"
TOKEN_WITHOUT_SUBJECT = "TOKEN_WITHOUT_SUBJECT"
SESSION_NOT_ACTIVE = "SESSION_NOT_ACTIVE"
# Clerk's session status claim: `active` is signed in; `pending` (sign-in tasks left to do, such as choosing
# an organisation) is signed out to Clerk's own SDKs, and so it is here.
ACTIVE_SESSION_STATUS = "active"


def _options() -> AuthenticateRequestOptions:
    if not settings.CLERK_JWT_KEY:
        raise ImproperlyConfigured(
            "CLERK_JWT_KEY (or CLERK_JWT_KEY_FILE) is not set: session tokens cannot be verified"
        )
    if not settings.CLERK_AUTHORIZED_PARTIES:
        raise ImproperlyConfigured("CLERK_AUTHORIZED_PARTIES is empty: no session token's azp could be accepted")
    return AuthenticateRequestOptions(
        jwt_key=settings.CLERK_JWT_KEY,
        authorized_parties=list(settings.CLERK_AUTHORIZED_PARTIES),
        # Never fall back to fetching JWKS over the network with the secret key.
        secret_key=None,
        clock_skew_in_ms=settings.CLERK_CLOCK_SKEW_MS,
        # Session tokens only: any other token type is refused before the SDK would call Clerk to verify it.
        accepts_token=["session_token"],
    )


def _is_timestamp(value: Any) -> bool:
    # PyJWT takes int("1700000000") for a number; a claim of the wrong JSON type is refused here.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _claims_problem(payload: dict[str, Any], *, authorized_parties: list[str], leeway_seconds: float) -> str | None:
    """Why a token the SDK verified must still not sign anyone in, or None.

    The SDK checks the signature, and exp/nbf/iat only where present; the token must carry exp and iat, and
    its times must make sense under the same clock-skew leeway the SDK applies.
    """
    now = time.time()
    exp, iat, nbf = payload.get("exp"), payload.get("iat"), payload.get("nbf")
    if not _is_timestamp(exp):
        return TOKEN_WITHOUT_EXPIRY
    if not _is_timestamp(iat):
        return TOKEN_WITHOUT_ISSUED_AT
    if iat > now + leeway_seconds:
        return TOKEN_IAT_IN_THE_FUTURE
    if nbf is not None and (not _is_timestamp(nbf) or nbf > now + leeway_seconds):
        return TOKEN_NOT_ACTIVE_YET
    if exp <= now - leeway_seconds:
        return TOKEN_EXPIRED
    if "sts" in payload and payload["sts"] != ACTIVE_SESSION_STATUS:
        return SESSION_NOT_ACTIVE
    # The SDK checks azp only when handed a list; checked here whatever the SDK does with it.
    if not isinstance(payload.get("azp"), str) or payload["azp"] not in authorized_parties:
        return TOKEN_INVALID_AUTHORIZED_PARTIES
    if not isinstance(payload.get("sub"), str) or not payload["sub"]:
        return TOKEN_WITHOUT_SUBJECT
    return None


@sensitive_variables("authorization")
def _session_token(request) -> str | None:
    """The bearer token, else the `__session` cookie, else None (the precedence of the SDK)."""
    authorization = request.headers.get("Authorization", "")
    if authorization:
        # The SDK would take any Authorization header as a token; other schemes are not ours to judge.
        return authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else None
    return request.COOKIES.get(settings.CLERK_SESSION_COOKIE)


def token_from_cookie(request) -> bool:
    """True when the token judged for this request is the `__session` cookie (so the request needs CSRF)."""
    return not request.headers.get("Authorization") and settings.CLERK_SESSION_COOKIE in request.COOKIES


@sensitive_variables("token", "key", "state")
def clerk_identity_from_request(request) -> ClerkIdentity | ClerkRejection | None:
    """Verify the request's Clerk session token.

    Returns None when the request carries no token at all, a rejection (with the SDK's reason) when it
    carries one that fails verification, and the identity when it verifies.
    """
    token = _session_token(request)
    if token is None:
        return None
    options = _options()
    key = (token, options.jwt_key, tuple(options.authorized_parties), options.clock_skew_in_ms)
    identity = _verified.get(key)
    if identity is not None:
        return identity
    # The SDK is handed exactly the token chosen above, so the token remembered is the token verified.
    state = authenticate_request(_BearerOnly(token), options)
    if state.status != AuthStatus.SIGNED_IN or not state.payload:
        reason = getattr(state.reason, "name", None) or str(state.reason)
        return ClerkRejection(reason=reason)
    payload = state.payload
    problem = _claims_problem(
        payload,
        authorized_parties=options.authorized_parties,
        leeway_seconds=options.clock_skew_in_ms / 1000,
    )
    if problem:
        return ClerkRejection(reason=problem)
    sid = payload.get("sid")
    org_id, org_role = active_organization(payload)
    identity = ClerkIdentity(
        user_id=payload["sub"],
        session_id=sid if isinstance(sid, str) else "",
        claims=MappingProxyType(payload),
        org_id=org_id,
        org_role=org_role,
    )
    _verified.put(key, identity, expires_at=payload["exp"])
    return identity


def active_organization(payload: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(org id, normalised role) of the session's active organization, or (None, None).

    v2 tokens carry it in `o` (`{"id", "rol": "admin", "slg", ...}`, the role without `org:`); v1 tokens in
    top-level `org_id` / `org_role` (`org:admin`). Read from the raw claims rather than the SDK's copies, which
    exist for v2 only. A malformed claim counts as no organization.
    """
    o = payload.get("o")
    if payload.get("v") == 2 or isinstance(o, Mapping):
        if isinstance(o, Mapping) and isinstance(o.get("id"), str) and o["id"]:
            role = o.get("rol")
            return o["id"], role_normalise(role if isinstance(role, str) else "").value
        return None, None
    org_id, role = payload.get("org_id"), payload.get("org_role")
    if isinstance(org_id, str) and org_id:
        return org_id, role_normalise(role if isinstance(role, str) else "").value
    return None, None


class _BearerOnly:
    """What the SDK reads from a request: its headers. Only the token we chose is in them."""

    @sensitive_variables("token")
    def __init__(self, token: str) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}


class _VerifiedTokens:
    """Identities of tokens this process verified, each until its `exp`; the oldest go first when full."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, tuple[float, ClerkIdentity]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> ClerkIdentity | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if time.time() >= entry[0]:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: tuple, identity: ClerkIdentity, *, expires_at: float) -> None:
        with self._lock:
            self._entries[key] = (float(expires_at), identity)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


# Sessions active in one process within a token's minute: ample, and a few MB at most.
_verified = _VerifiedTokens(max_entries=10_000)
