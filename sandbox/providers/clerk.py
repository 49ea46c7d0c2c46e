"""Clerk Backend API stand-in (see shared/PROVIDERS.md §3), mounted under ``/clerk/v1``.

Point the official SDK at it with ``Clerk(bearer_auth="sk_test_...", server_url=f"{base}/clerk/v1")``
and, for networked JWT verification, ``api_url=f"{base}/clerk"``. Bodies carry every key the SDK's
pydantic models require: a missing one makes the SDK fail to parse, which would hide real bugs.

Besides Clerk's own routes there are dev routes under ``/clerk/_dev/`` (mint session tokens, list
users for a dev sign-in page) and control routes under ``/_control/clerk/`` (seed and delete users).
Organizations are not modelled: any organization id is accepted.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import secrets
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import jwt
from werkzeug.wrappers import Response

from sandbox.keys import RsaKeyPair
from sandbox.routing import Context, Handler, Route, json_response, read_json_object

ACCEPTED_SECRET_KEY_PREFIXES = ("sk_test_", "sk_live_")
DEFAULT_INVITATION_EXPIRY_DAYS = 30
DEFAULT_LIST_LIMIT = 10
MAX_LIST_LIMIT = 500
MS_PER_DAY = 86_400_000

# Codes Clerk uses in its error bodies; tests and clients match on these, not on the wording.
CODE_AUTHENTICATION_INVALID = "authentication_invalid"
CODE_RESOURCE_NOT_FOUND = "resource_not_found"
CODE_DUPLICATE_RECORD = "duplicate_record"
CODE_FORM_PARAM_MISSING = "form_param_missing"
CODE_FORM_PARAM_FORMAT_INVALID = "form_param_format_invalid"

_CODE_BY_STATUS = {
    400: ("malformed request", "malformed_request"),
    401: ("Invalid authentication", CODE_AUTHENTICATION_INVALID),
    403: ("forbidden", "authorization_invalid"),
    404: ("not found", CODE_RESOURCE_NOT_FOUND),
    422: ("invalid request", CODE_FORM_PARAM_FORMAT_INVALID),
    429: ("Too Many Requests", "too_many_requests"),
}


class SeedError(ValueError):
    """A user spec given to the control API or the seed file is unusable."""


class DuplicateInvitationError(Exception):
    pass


def _now_ms() -> int:
    return int(time.time() * 1000)


# --- response bodies -------------------------------------------------------------------------------


def clerk_error_body(status: int, message: str) -> dict[str, Any]:
    """Clerk's error shape for a status alone: used for scripted faults and malformed requests."""
    short, code = _CODE_BY_STATUS.get(status, ("internal error", "internal_clerk_error"))
    return _errors_body(code, short, message)


def _errors_body(code: str, message: str, long_message: str, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"message": message, "long_message": long_message, "code": code}
    if meta:
        error["meta"] = dict(meta)
    return {"errors": [error], "clerk_trace_id": uuid.uuid4().hex}


def _error(status: int, code: str, message: str, long_message: str, meta: Mapping[str, Any] | None = None) -> Response:
    return json_response(_errors_body(code, message, long_message, meta), status=status)


def _not_found(long_message: str) -> Response:
    return _error(404, CODE_RESOURCE_NOT_FOUND, "not found", long_message)


def _param_missing(name: str) -> Response:
    return _error(422, CODE_FORM_PARAM_MISSING, "is missing", f"{name} must be included.", {"param_name": name})


def _param_invalid(name: str, why: str) -> Response:
    return _error(422, CODE_FORM_PARAM_FORMAT_INVALID, "is invalid", f"{name} {why}", {"param_name": name})


def _email_id(user_id: str, email: str) -> str:
    # Stable across restarts and resets, so a demo database that stored an id keeps matching.
    return "idn_" + hashlib.sha256(f"{user_id}:{email.casefold()}".encode()).hexdigest()[:24]


def _email_address_json(email_id: str, address: str, verified: bool, now_ms: int) -> dict[str, Any]:
    return {
        "id": email_id,
        "object": "email_address",
        "email_address": address,
        "reserved": False,
        # The SDK picks the verification model by its `object`, so it must be present.
        "verification": {
            "object": "verification_otp",
            "status": "verified" if verified else "unverified",
            "strategy": "email_code",
            "attempts": 1 if verified else None,
            "expire_at": None,
        },
        "linked_to": [],
        "matches_sso_connection": False,
        "created_at": now_ms,
        "updated_at": now_ms,
    }


def _default_user(user_id: str, now_ms: int) -> dict[str, Any]:
    return {
        "id": user_id,
        "object": "user",
        "external_id": None,
        "primary_email_address_id": None,
        "primary_phone_number_id": None,
        "primary_web3_wallet_id": None,
        "username": None,
        "first_name": None,
        "last_name": None,
        "has_image": False,
        "public_metadata": {},
        "private_metadata": {},
        "unsafe_metadata": {},
        "email_addresses": [],
        "phone_numbers": [],
        "web3_wallets": [],
        "passkeys": [],
        "password_enabled": True,
        "password_last_updated_at": None,
        "two_factor_enabled": False,
        "totp_enabled": False,
        "backup_code_enabled": False,
        "mfa_enabled_at": None,
        "mfa_disabled_at": None,
        "external_accounts": [],
        "saml_accounts": [],
        "enterprise_accounts": [],
        "last_sign_in_at": None,
        "banned": False,
        "locked": False,
        "lockout_expires_in_seconds": None,
        "verification_attempts_remaining": 100,
        "created_at": now_ms,
        "updated_at": now_ms,
        "delete_self_enabled": True,
        "create_organization_enabled": True,
        "last_active_at": None,
        "legal_accepted_at": None,
        "locale": None,
    }


_DERIVED_USER_KEYS = {"object", "primary_email_address_id", "email_addresses"}
_EMAIL_SPEC_KEYS = {"id", "email_address", "verified"}


def build_user(spec: Mapping[str, Any], now_ms: int | None = None) -> dict[str, Any]:
    """Turn a short seed spec into a full Clerk User body.

    Spec: ``{"id", "first_name", "last_name", "email_addresses": [{"id"?, "email_address",
    "verified"?}], "primary_email"?}`` plus, optionally, any other User key to override its default.
    Unknown keys are refused so that a typo does not silently seed a default.
    """
    if not isinstance(spec, Mapping):
        raise SeedError("a user spec must be a JSON object")
    now_ms = _now_ms() if now_ms is None else now_ms
    user_id = spec.get("id") or "user_" + secrets.token_hex(12)
    if not isinstance(user_id, str) or "/" in user_id:
        raise SeedError("id must be a string without '/'")
    user = _default_user(user_id, now_ms)

    allowed = (set(user) - _DERIVED_USER_KEYS) | {"email_addresses", "primary_email"}
    unknown = set(spec) - allowed
    if unknown:
        raise SeedError(f"unknown user fields: {sorted(unknown)}")

    entries = spec.get("email_addresses") or []
    if not isinstance(entries, list):
        raise SeedError("email_addresses must be a list")
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, Mapping) or set(entry) - _EMAIL_SPEC_KEYS:
            raise SeedError(f"each email address is an object with keys {sorted(_EMAIL_SPEC_KEYS)}")
        address = entry.get("email_address")
        if not isinstance(address, str) or "@" not in address:
            raise SeedError(f"not an email address: {address!r}")
        if address.casefold() in seen:
            raise SeedError(f"email address listed twice: {address}")
        seen.add(address.casefold())
        verified = entry.get("verified", True)
        if not isinstance(verified, bool):
            raise SeedError("verified must be true or false")
        email_id = entry.get("id") or _email_id(user_id, address)
        user["email_addresses"].append(_email_address_json(email_id, address, verified, now_ms))

    primary = spec.get("primary_email")
    if primary is not None:
        match = [e for e in user["email_addresses"] if e["email_address"].casefold() == str(primary).casefold()]
        if not match:
            raise SeedError(f"primary_email {primary!r} is not one of the user's email addresses")
        user["primary_email_address_id"] = match[0]["id"]
    elif user["email_addresses"]:
        user["primary_email_address_id"] = user["email_addresses"][0]["id"]

    for key, value in spec.items():
        if key not in ("id", "email_addresses", "primary_email"):
            user[key] = copy.deepcopy(value)
    return user


def _primary_email(user: Mapping[str, Any]) -> str | None:
    for entry in user["email_addresses"]:
        if entry["id"] == user["primary_email_address_id"]:
            return entry["email_address"]
    return None


def _role_name(role: str) -> str:
    return role.removeprefix("org:").replace("_", " ").title()


def _with_ticket(redirect_url: str) -> str:
    parts = urlsplit(redirect_url)
    ticket = urlencode({"__clerk_ticket": secrets.token_urlsafe(24)})
    query = f"{parts.query}&{ticket}" if parts.query else ticket
    return urlunsplit(parts._replace(query=query))


# --- state -----------------------------------------------------------------------------------------


class ClerkState:
    """Users, invitations and the signing key of one fake Clerk instance."""

    def __init__(
        self, *, key_pair: RsaKeyPair, secret_key: str | None, seed_users: Iterable[Mapping[str, Any]]
    ) -> None:
        self._lock = threading.Lock()
        self.key_pair = key_pair
        # None accepts any sk_test_/sk_live_ key; set it to prove a client sends the configured one.
        self.secret_key = secret_key
        self._seed = [copy.deepcopy(dict(spec)) for spec in seed_users]
        self._users: dict[str, dict[str, Any]] = {}
        self._invitations: dict[str, list[dict[str, Any]]] = {}
        self.reset()

    def reset(self) -> None:
        users = {}
        for spec in self._seed:
            user = build_user(spec)
            users[user["id"]] = user
        with self._lock:
            self._users = users
            self._invitations = {}

    def put_user(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        user = build_user(spec)
        with self._lock:
            self._users[user["id"]] = user
        return copy.deepcopy(user)

    def delete_user(self, user_id: str) -> bool:
        with self._lock:
            return self._users.pop(user_id, None) is not None

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        with self._lock:
            user = self._users.get(user_id)
            return copy.deepcopy(user) if user is not None else None

    def list_users(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(list(self._users.values()))

    def create_invitation(self, organization_id: str, invitation: dict[str, Any]) -> dict[str, Any]:
        """Store a pending invitation; the duplicate check and the insert happen under one lock."""
        email = invitation["email_address"].casefold()
        with self._lock:
            existing = self._invitations.setdefault(organization_id, [])
            if any(i["status"] == "pending" and i["email_address"].casefold() == email for i in existing):
                raise DuplicateInvitationError(invitation["email_address"])
            existing.append(invitation)
        return copy.deepcopy(invitation)

    def list_invitations(self, organization_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._invitations.get(organization_id, []))

    def mint_session_token(
        self, *, user_id: str, azp: str, issuer: str, ttl_seconds: int, claims: Mapping[str, Any]
    ) -> str:
        """Sign a v2 session token the way Clerk's frontend API would issue one.

        `claims` are applied last so tests can mint expired, not-yet-valid or org-scoped tokens; a
        claim set to None is removed.
        """
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": user_id,
            "sid": "sess_" + secrets.token_hex(12),
            "azp": azp,
            "iss": issuer,
            "iat": now,
            # Clerk back-dates nbf a little so verifiers with a slow clock accept fresh tokens.
            "nbf": now - 10,
            "exp": now + ttl_seconds,
            "sts": "active",
            "v": 2,
        }
        for name, value in claims.items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        return jwt.encode(payload, self.key_pair.private_key, algorithm="RS256", headers={"kid": self.key_pair.kid})


# --- handlers --------------------------------------------------------------------------------------


def _authenticated(handler: Handler) -> Handler:
    """Demand ``Authorization: Bearer sk_...`` as Clerk's Backend API does on every route."""

    @functools.wraps(handler)
    def wrapper(ctx: Context, **kwargs: Any) -> Response:
        scheme, _, key = ctx.request.headers.get("Authorization", "").partition(" ")
        key = key.strip()
        expected = ctx.state.clerk.secret_key
        if scheme.lower() != "bearer" or not key.startswith(ACCEPTED_SECRET_KEY_PREFIXES):
            reason = "send the secret key as `Authorization: Bearer sk_...`"
        elif expected is not None and not hmac.compare_digest(key.encode(), expected.encode()):
            reason = "the secret key is not this instance's key"
        else:
            return handler(ctx, **kwargs)
        return _error(
            401, CODE_AUTHENTICATION_INVALID, "Invalid authentication", f"Unable to authenticate the request: {reason}."
        )

    return wrapper


def users_get(ctx: Context, user_id: str) -> Response:
    user = ctx.state.clerk.get_user(user_id)
    if user is None:
        return _not_found(f"No user was found with id {user_id}")
    return json_response(user)


def jwks_get(ctx: Context) -> Response:
    return json_response({"keys": [ctx.state.clerk.key_pair.public_jwk()]})


def invitations_create(ctx: Context, organization_id: str) -> Response:
    payload = read_json_object(ctx.request)
    for name in ("email_address", "role"):
        if not isinstance(payload.get(name), str) or not payload[name].strip():
            return _param_missing(name)
    email = payload["email_address"].strip()
    if "@" not in email:
        return _param_invalid("email_address", "must be a valid email address.")
    days = payload.get("expires_in_days")
    if days is None:
        days = DEFAULT_INVITATION_EXPIRY_DAYS
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 365:
        return _param_invalid("expires_in_days", "must be a whole number of days between 1 and 365.")

    clerk = ctx.state.clerk
    inviter_id = payload.get("inviter_user_id")
    inviter = clerk.get_user(inviter_id) if inviter_id else None
    redirect_url = payload.get("redirect_url")
    now = _now_ms()
    invitation = {
        "object": "organization_invitation",
        "id": "orginv_" + secrets.token_hex(12),
        "email_address": email,
        "role": payload["role"],
        "role_name": _role_name(payload["role"]),
        "organization_id": organization_id,
        "inviter_id": inviter_id,
        "public_inviter_data": None
        if inviter is None
        else {
            "user_id": inviter["id"],
            "first_name": inviter["first_name"],
            "last_name": inviter["last_name"],
            "image_url": inviter.get("image_url") or "",
            "has_image": inviter["has_image"],
            "identifier": _primary_email(inviter) or inviter["id"],
        },
        "status": "pending",
        "public_metadata": payload.get("public_metadata") or {},
        "private_metadata": payload.get("private_metadata") or {},
        "url": _with_ticket(redirect_url) if isinstance(redirect_url, str) and redirect_url else None,
        "expires_at": now + days * MS_PER_DAY,
        "created_at": now,
        "updated_at": now,
    }
    try:
        created = clerk.create_invitation(organization_id, invitation)
    except DuplicateInvitationError:
        return _error(
            422,
            CODE_DUPLICATE_RECORD,
            "duplicate invitation",
            f"There is already a pending invitation for {email} in organization {organization_id}.",
        )
    return json_response(created)


def invitations_list(ctx: Context, organization_id: str) -> Response:
    args = ctx.request.args
    try:
        limit = int(args.get("limit", DEFAULT_LIST_LIMIT))
        offset = int(args.get("offset", 0))
    except ValueError:
        return _param_invalid("limit", "and offset must be whole numbers.")
    if not 1 <= limit <= MAX_LIST_LIMIT or offset < 0:
        return _param_invalid("limit", f"must be between 1 and {MAX_LIST_LIMIT}, offset at least 0.")
    statuses = set(args.getlist("status"))
    email = args.get("email_address", "").casefold()
    found = [
        i
        for i in ctx.state.clerk.list_invitations(organization_id)
        if (not statuses or i["status"] in statuses) and (not email or i["email_address"].casefold() == email)
    ]
    found.reverse()  # Clerk's default order is newest first.
    return json_response({"data": found[offset : offset + limit], "total_count": len(found)})


def dev_session_token(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    user_id, azp = payload.get("user_id"), payload.get("azp")
    ttl_seconds = payload.get("ttl_seconds", 3600)
    claims = payload.get("claims") or {}
    if not isinstance(user_id, str) or not user_id:
        return _param_missing("user_id")
    if not isinstance(azp, str) or not azp:
        return _param_missing("azp")
    # Negative values are allowed on purpose: they mint an already expired token.
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        return _param_invalid("ttl_seconds", "must be a whole number of seconds.")
    if not isinstance(claims, Mapping):
        return _param_invalid("claims", "must be an object.")
    clerk = ctx.state.clerk
    if clerk.get_user(user_id) is None:
        return _not_found(f"No user was found with id {user_id}")
    issuer = ctx.request.host_url.rstrip("/") + "/clerk"
    token = clerk.mint_session_token(user_id=user_id, azp=azp, issuer=issuer, ttl_seconds=ttl_seconds, claims=claims)
    return json_response({"token": token})


def dev_jwt_public_key(ctx: Context) -> Response:
    return Response(ctx.state.clerk.key_pair.public_pem, mimetype="text/plain")


def dev_users(ctx: Context) -> Response:
    summaries = []
    for user in ctx.state.clerk.list_users():
        name = " ".join(part for part in (user["first_name"], user["last_name"]) if part)
        summaries.append(
            {
                "id": user["id"],
                "first_name": user["first_name"],
                "last_name": user["last_name"],
                "name": name or user["id"],
                "email_address": _primary_email(user),
            }
        )
    return json_response(summaries)


def control_users_put(ctx: Context) -> Response:
    try:
        user = ctx.state.clerk.put_user(read_json_object(ctx.request))
    except SeedError as exc:
        return json_response({"error": str(exc)}, status=400)
    return json_response(user, status=201)


def control_users_delete(ctx: Context, user_id: str) -> Response:
    if not ctx.state.clerk.delete_user(user_id):
        return json_response({"error": f"no Clerk user {user_id}"}, status=404)
    return Response(status=204)


_INVITATIONS = "/clerk/v1/organizations/<organization_id>/invitations"

ROUTES = (
    Route("clerk.users.get", "/clerk/v1/users/<user_id>", ("GET",), _authenticated(users_get), clerk_error_body),
    Route("clerk.jwks.get", "/clerk/v1/jwks", ("GET",), _authenticated(jwks_get), clerk_error_body),
    Route(
        "clerk.organization_invitations.create",
        _INVITATIONS,
        ("POST",),
        _authenticated(invitations_create),
        clerk_error_body,
    ),
    Route(
        "clerk.organization_invitations.list",
        _INVITATIONS,
        ("GET",),
        _authenticated(invitations_list),
        clerk_error_body,
    ),
    Route("clerk.dev.session_token", "/clerk/_dev/session_token", ("POST",), dev_session_token, clerk_error_body),
    Route("clerk.dev.jwt_public_key", "/clerk/_dev/jwt_public_key", ("GET",), dev_jwt_public_key, clerk_error_body),
    Route("clerk.dev.users", "/clerk/_dev/users", ("GET",), dev_users, clerk_error_body),
    Route("control.clerk.users.put", "/_control/clerk/users", ("POST",), control_users_put, control=True),
    Route(
        "control.clerk.users.delete",
        "/_control/clerk/users/<user_id>",
        ("DELETE",),
        control_users_delete,
        control=True,
    ),
)
