"""Clerk Backend API stand-in (see shared/PROVIDERS.md §3), mounted under ``/clerk/v1``.

Point the official SDK at it with ``Clerk(bearer_auth="sk_test_...", server_url=f"{base}/clerk/v1")``
and, for networked JWT verification, ``api_url=f"{base}/clerk"``. Bodies carry every key the SDK's
pydantic models require: a missing one makes the SDK fail to parse, which would hide real bugs.

Besides Clerk's own routes there are dev routes under ``/clerk/_dev/`` (mint session tokens, org-scoped
with ``organization_id``; list users for a dev sign-in page) and control routes under ``/_control/clerk/``
(seed and delete users, seed an organization with a chosen id, accept or expire an invitation as the
invitee would, list the events Clerk would send as webhooks, lower the invitation rate limit).

Organizations, memberships and invitations are modelled the way the Backend API serves them: an unknown
organization is a 404, only pending invitations can be revoked, a second pending invitation for one
address is Clerk's 422 ``duplicate_record``, invitations are rate-limited per instance (429 with
``Retry-After``), and an organization holds at most ``max_allowed_memberships`` members.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import hmac
import math
import re
import secrets
import threading
import time
import uuid
from collections import deque
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


# --- organizations: constants and bodies -------------------------------------------------------------

# Clerk's defaults: five members per organization unless raised (at most 20 without the B2B add-on).
DEFAULT_MAX_ALLOWED_MEMBERSHIPS = 5
# POST /organizations/{id}/invitations is limited per instance (shared/AGENCIES.md A1.7).
DEFAULT_INVITATIONS_PER_HOUR = 250
INVITATION_WINDOW_MS = 3_600_000
MAX_ORGANIZATION_NAME_LENGTH = 256
CODE_ALREADY_A_MEMBER = "already_a_member_in_organization"
CODE_MEMBERSHIP_QUOTA_EXCEEDED = "organization_membership_quota_exceeded"
CODE_INVITATION_NOT_PENDING = "organization_invitation_not_pending"
CODE_FORM_PARAM_UNKNOWN = "form_param_unknown"
CODE_TOO_MANY_REQUESTS = "too_many_requests"

# System permissions of the two default roles. They are never put in session tokens (A1.4).
DEFAULT_ROLE_PERMISSIONS: dict[str, list[str]] = {
    "org:admin": [
        "org:sys_profile:manage",
        "org:sys_profile:delete",
        "org:sys_memberships:read",
        "org:sys_memberships:manage",
        "org:sys_domains:read",
        "org:sys_domains:manage",
    ],
    "org:member": ["org:sys_memberships:read"],
}

ORGANIZATION_EVENT_TYPES = (
    "organization.created",
    "organization.updated",
    "organization.deleted",
    "organizationMembership.created",
    "organizationMembership.updated",
    "organizationMembership.deleted",
    "organizationInvitation.created",
    "organizationInvitation.accepted",
    "organizationInvitation.revoked",
)

_SLUG_CHARS = re.compile(r"[^a-z0-9]+")
_VALID_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_URL_OR_HTML = re.compile(r"(https?://|www\.|<[^>]*>)", re.IGNORECASE)


class ClerkApiError(Exception):
    """A Backend API refusal in Clerk's error shape; raised by the state, answered by `_authenticated`."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        long_message: str,
        meta: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(long_message)
        self.status, self.code, self.message, self.long_message = status, code, message, long_message
        self.meta = meta
        self.headers = dict(headers or {})

    def response(self) -> Response:
        response = _error(self.status, self.code, self.message, self.long_message, self.meta)
        for name, value in self.headers.items():
            response.headers[name] = value
        return response


def _missing(name: str) -> ClerkApiError:
    return ClerkApiError(422, CODE_FORM_PARAM_MISSING, "is missing", f"{name} must be included.", {"param_name": name})


def _invalid(name: str, why: str) -> ClerkApiError:
    return ClerkApiError(422, CODE_FORM_PARAM_FORMAT_INVALID, "is invalid", f"{name} {why}", {"param_name": name})


def _organization_not_found(organization_id: str) -> ClerkApiError:
    return ClerkApiError(
        404, CODE_RESOURCE_NOT_FOUND, "not found", f"No organization was found with id {organization_id}"
    )


def _slugify(name: str) -> str:
    return _SLUG_CHARS.sub("-", name.casefold()).strip("-")[:60] or "org"


def _public_user_data(user: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "user_id": user["id"],
        "first_name": user["first_name"],
        "last_name": user["last_name"],
        "profile_image_url": user.get("image_url") or "",
        "image_url": user.get("image_url") or "",
        "has_image": user["has_image"],
        "identifier": _primary_email(user) or user["id"],
        "username": user["username"],
        "banned": user["banned"],
    }


def _organization_json(org: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    body = {key: copy.deepcopy(value) for key, value in org.items()}
    body.update(extra)
    return body


def _custom_permissions(permissions: Iterable[str]) -> list[tuple[str, str]]:
    """(feature, permission) for each `org:<feature>:<permission>` that is not a system permission."""
    found = []
    for key in permissions:
        parts = key.split(":")
        if len(parts) == 3 and parts[0] == "org" and not parts[1].startswith("sys_"):
            found.append((parts[1], parts[2]))
    return found


def organization_claims(org: Mapping[str, Any], membership: Mapping[str, Any]) -> dict[str, Any]:
    """The v2 `o` claim (and `fea`) for a session whose active organization is `org`.

    `rol` is bare (`admin`, not `org:admin`); `per` lists the permission names of the custom
    permissions once each; `fpm` holds one bitmask per feature in `fea`, bit i (from the lowest)
    standing for the i-th name in `per` (clerk-docs session-tokens.mdx).
    """
    pairs = _custom_permissions(membership["permissions"] or [])
    features: list[str] = []
    names: list[str] = []
    for feature, name in pairs:
        if feature not in features:
            features.append(feature)
        if name not in names:
            names.append(name)
    masks = []
    for feature in features:
        mask = 0
        for index, name in enumerate(names):
            if (feature, name) in pairs:
                mask |= 1 << index
        masks.append(str(mask))
    claim = {"id": org["id"], "rol": membership["role"].removeprefix("org:"), "slg": org["slug"]}
    claim["per"] = ",".join(names)
    claim["fpm"] = ",".join(masks)
    return {"o": claim, "fea": ",".join(f"o:{feature}" for feature in features) or None}


# --- state -----------------------------------------------------------------------------------------


class ClerkState:
    """Users, organizations (memberships, invitations), emitted events and the signing key of one fake
    Clerk instance.

    Every change Clerk would announce by webhook appends an event (`events`), with its data as it was at
    that moment; the webhook sender delivers them on request (sandbox/providers/clerk_webhooks.py).
    """

    def __init__(
        self, *, key_pair: RsaKeyPair, secret_key: str | None, seed_users: Iterable[Mapping[str, Any]]
    ) -> None:
        self._lock = threading.Lock()
        self.key_pair = key_pair
        # None accepts any sk_test_/sk_live_ key; set it to prove a client sends the configured one.
        self.secret_key = secret_key
        self._seed = [copy.deepcopy(dict(spec)) for spec in seed_users]
        self._users: dict[str, dict[str, Any]] = {}
        self._organizations: dict[str, dict[str, Any]] = {}
        # organization id -> user id -> membership (kept without its `organization`, added when served)
        self._memberships: dict[str, dict[str, dict[str, Any]]] = {}
        self._invitations: dict[str, list[dict[str, Any]]] = {}
        self._events: list[dict[str, Any]] = []
        self._delivered = 0
        self._invitation_times: deque[int] = deque()
        self.invitations_per_hour = DEFAULT_INVITATIONS_PER_HOUR
        self._role_permissions: dict[str, list[str]] = {}
        self.reset()

    def reset(self) -> None:
        users = {}
        for spec in self._seed:
            user = build_user(spec)
            users[user["id"]] = user
        with self._lock:
            self._users = users
            self._organizations = {}
            self._memberships = {}
            self._invitations = {}
            self._events = []
            self._delivered = 0
            self._invitation_times = deque()
            self.invitations_per_hour = DEFAULT_INVITATIONS_PER_HOUR
            self._role_permissions = copy.deepcopy(DEFAULT_ROLE_PERMISSIONS)

    # users

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

    # events (call with the lock held)

    def _emit(self, event_type: str, data: Mapping[str, Any]) -> None:
        self._events.append(
            {
                "id": "evt_" + secrets.token_hex(12),
                "type": event_type,
                "data": copy.deepcopy(dict(data)),
                "timestamp": _now_ms(),
            }
        )

    def events(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._events)

    def events_take(self, event_ids: Iterable[str] | None) -> list[dict[str, Any]]:
        """The events named (a replay may repeat delivered ones), or every one not yet taken, in order."""
        with self._lock:
            if event_ids is None:
                taken = self._events[self._delivered :]
                self._delivered = len(self._events)
                return copy.deepcopy(taken)
            by_id = {event["id"]: event for event in self._events}
            wanted = list(event_ids)
            unknown = [event_id for event_id in wanted if event_id not in by_id]
            if unknown:
                raise KeyError(unknown)
            return copy.deepcopy([by_id[event_id] for event_id in wanted])

    def set_role_permissions(self, role: str, permissions: list[str]) -> None:
        with self._lock:
            self._role_permissions[role] = list(permissions)

    # organizations (the `_…_locked` helpers expect the lock held)

    def _org_locked(self, organization_id: str) -> dict[str, Any]:
        org = self._organizations.get(organization_id)
        if org is None:
            # GET accepts an id or a slug.
            org = next((o for o in self._organizations.values() if o["slug"] == organization_id), None)
        if org is None:
            raise _organization_not_found(organization_id)
        return org

    def _unique_slug_locked(self, wanted: str | None, name: str, organization_id: str | None = None) -> str:
        taken = {o["slug"] for o in self._organizations.values() if o["id"] != organization_id}
        if wanted is not None:
            if not _VALID_SLUG.fullmatch(wanted):
                raise _invalid("slug", "can contain only lowercase alphanumeric characters and the dash '-'.")
            if wanted in taken:
                raise ClerkApiError(
                    422,
                    CODE_DUPLICATE_RECORD,
                    "is taken",
                    "This slug is already taken by another organization.",
                    {"param_name": "slug"},
                )
            return wanted
        slug = _slugify(name)
        while slug in taken:
            slug = f"{_slugify(name)}-{secrets.token_hex(3)}"
        return slug

    def _membership_json_locked(self, org: Mapping[str, Any], membership: Mapping[str, Any]) -> dict[str, Any]:
        body = copy.deepcopy(dict(membership))
        user = self._users.get(membership["public_user_data"]["user_id"])
        if user is not None:
            body["public_user_data"] = _public_user_data(user)
        body["organization"] = _organization_json(org)
        return body

    def _permissions_locked(self, role: str) -> list[str]:
        return list(self._role_permissions.get(role, []))

    def _add_membership_locked(
        self,
        org: dict[str, Any],
        user: Mapping[str, Any],
        role: str,
        public_metadata: Mapping[str, Any] | None = None,
        private_metadata: Mapping[str, Any] | None = None,
        *,
        emit: bool = True,
    ) -> dict[str, Any]:
        members = self._memberships.setdefault(org["id"], {})
        if user["id"] in members:
            raise ClerkApiError(
                400,
                CODE_ALREADY_A_MEMBER,
                "already a member",
                f"User {user['id']} is already a member of organization {org['id']}.",
            )
        if len(members) >= org["max_allowed_memberships"]:
            raise ClerkApiError(
                403,
                CODE_MEMBERSHIP_QUOTA_EXCEEDED,
                "membership quota exceeded",
                f"Organization {org['id']} allows at most {org['max_allowed_memberships']} members.",
            )
        now = _now_ms()
        membership = {
            "object": "organization_membership",
            "id": "orgmem_" + secrets.token_hex(12),
            "role": role,
            "role_name": _role_name(role),
            "permissions": self._permissions_locked(role),
            "public_metadata": dict(public_metadata or {}),
            "private_metadata": dict(private_metadata or {}),
            "public_user_data": _public_user_data(user),
            "created_at": now,
            "updated_at": now,
        }
        members[user["id"]] = membership
        body = self._membership_json_locked(org, membership)
        if emit:
            self._emit("organizationMembership.created", body)
        return body

    def create_organization(self, payload: Mapping[str, Any], *, emit: bool = True) -> dict[str, Any]:
        name = payload.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _missing("name")
        name = name.strip()
        if len(name) > MAX_ORGANIZATION_NAME_LENGTH:
            raise _invalid("name", f"must be at most {MAX_ORGANIZATION_NAME_LENGTH} characters.")
        if _URL_OR_HTML.search(name):
            raise _invalid("name", "must not contain URLs or HTML.")
        for key in ("public_metadata", "private_metadata"):
            if payload.get(key) is not None and not isinstance(payload[key], Mapping):
                raise _invalid(key, "must be an object.")
        limit = payload.get("max_allowed_memberships")
        if limit is None:
            limit = DEFAULT_MAX_ALLOWED_MEMBERSHIPS
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise _invalid("max_allowed_memberships", "must be a whole number, 0 or more.")
        created_by = payload.get("created_by")
        organization_id = payload.get("id") or "org_" + secrets.token_hex(12)
        with self._lock:
            creator = None
            if created_by:
                creator = self._users.get(created_by)
                if creator is None:
                    raise ClerkApiError(
                        404, CODE_RESOURCE_NOT_FOUND, "not found", f"No user was found with id {created_by}"
                    )
            now = _now_ms()
            org = {
                "object": "organization",
                "id": organization_id,
                "name": name,
                "slug": self._unique_slug_locked(payload.get("slug"), name, organization_id),
                "image_url": "",
                "has_image": False,
                "max_allowed_memberships": limit,
                "admin_delete_enabled": True,
                "public_metadata": dict(payload.get("public_metadata") or {}),
                "private_metadata": dict(payload.get("private_metadata") or {}),
                "created_by": created_by or "",
                "role_set_key": None,
                "created_at": now,
                "updated_at": now,
            }
            self._organizations[organization_id] = org
            if emit:
                self._emit("organization.created", _organization_json(org))
            if creator is not None:
                # The creator becomes the organization's first admin (Clerk's *Creator* role).
                self._add_membership_locked(org, creator, "org:admin", emit=emit)
            return _organization_json(org)

    def get_organization(self, organization_id: str, *, include_members_count: bool = False) -> dict[str, Any]:
        with self._lock:
            org = self._org_locked(organization_id)
            extra = {}
            if include_members_count:
                extra["members_count"] = len(self._memberships.get(org["id"], {}))
            return _organization_json(org, **extra)

    def list_organizations(self, *, query: str, include_members_count: bool) -> list[dict[str, Any]]:
        with self._lock:
            found = []
            for org in self._organizations.values():
                if query and not (
                    org["id"] == query or query.casefold() in org["name"].casefold() or query in org["slug"]
                ):
                    continue
                extra = {"members_count": len(self._memberships.get(org["id"], {}))} if include_members_count else {}
                found.append(_organization_json(org, **extra))
            return found

    def update_organization(self, organization_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        for key in ("public_metadata", "private_metadata"):
            if key in payload:
                # API version 2026-05-12 moved metadata to PATCH/PUT /organizations/{id}/metadata.
                raise ClerkApiError(
                    422, CODE_FORM_PARAM_UNKNOWN, "is unknown", f"{key} is not a valid parameter.", {"param_name": key}
                )
        with self._lock:
            org = self._organizations.get(organization_id)
            if org is None:
                raise _organization_not_found(organization_id)
            changed = dict(org)
            if payload.get("name") is not None:
                name = payload["name"]
                if not isinstance(name, str) or not name.strip() or _URL_OR_HTML.search(name):
                    raise _invalid("name", "must be a name without URLs or HTML.")
                changed["name"] = name.strip()[:MAX_ORGANIZATION_NAME_LENGTH]
            if payload.get("slug") is not None:
                changed["slug"] = self._unique_slug_locked(payload["slug"], changed["name"], organization_id)
            limit = payload.get("max_allowed_memberships")
            if limit is not None:
                if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                    raise _invalid("max_allowed_memberships", "must be a whole number, 0 or more.")
                changed["max_allowed_memberships"] = limit
            if payload.get("admin_delete_enabled") is not None:
                changed["admin_delete_enabled"] = bool(payload["admin_delete_enabled"])
            changed["updated_at"] = max(_now_ms(), org["updated_at"] + 1)
            org.update(changed)
            self._emit("organization.updated", _organization_json(org))
            return _organization_json(org)

    def delete_organization(self, organization_id: str) -> dict[str, Any]:
        """Delete it with its memberships and invitations, as Clerk does; one organization.deleted event."""
        with self._lock:
            org = self._organizations.pop(organization_id, None)
            if org is None:
                raise _organization_not_found(organization_id)
            self._memberships.pop(organization_id, None)
            self._invitations.pop(organization_id, None)
            deleted = {"object": "organization", "id": org["id"], "slug": org["slug"], "deleted": True}
            self._emit("organization.deleted", deleted)
            return deleted

    def put_organization(
        self, payload: Mapping[str, Any], members: Iterable[Mapping[str, Any]]
    ) -> tuple[dict[str, Any], bool]:
        """Control: ensure the organization `payload["id"]` and these members exist; no events."""
        organization_id = payload["id"]
        with self._lock:
            existing = self._organizations.get(organization_id)
        created = existing is None
        if created:
            self.create_organization(payload, emit=False)
        with self._lock:
            org = self._organizations[organization_id]
            have = self._memberships.get(organization_id, {})
            for member in members:
                user = self._users.get(member.get("user_id"))
                if user is None:
                    raise ClerkApiError(
                        404, CODE_RESOURCE_NOT_FOUND, "not found", f"No user was found with id {member.get('user_id')}"
                    )
                if user["id"] not in have:
                    self._add_membership_locked(org, user, member.get("role") or "org:member", emit=False)
            return _organization_json(org), created

    # memberships

    def create_membership(self, organization_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        for name in ("user_id", "role"):
            if not isinstance(payload.get(name), str) or not payload[name].strip():
                raise _missing(name)
        with self._lock:
            org = self._organizations.get(organization_id)
            if org is None:
                raise _organization_not_found(organization_id)
            user = self._users.get(payload["user_id"])
            if user is None:
                raise ClerkApiError(
                    404, CODE_RESOURCE_NOT_FOUND, "not found", f"No user was found with id {payload['user_id']}"
                )
            return self._add_membership_locked(
                org, user, payload["role"], payload.get("public_metadata"), payload.get("private_metadata")
            )

    def list_memberships(self, organization_id: str) -> list[dict[str, Any]]:
        with self._lock:
            org = self._organizations.get(organization_id)
            if org is None:
                raise _organization_not_found(organization_id)
            return [self._membership_json_locked(org, m) for m in self._memberships.get(organization_id, {}).values()]

    def _membership_locked(self, organization_id: str, user_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
        org = self._organizations.get(organization_id)
        if org is None:
            raise _organization_not_found(organization_id)
        membership = self._memberships.get(organization_id, {}).get(user_id)
        if membership is None:
            raise ClerkApiError(
                404,
                CODE_RESOURCE_NOT_FOUND,
                "not found",
                f"User {user_id} is not a member of organization {organization_id}",
            )
        return org, membership

    def update_membership(self, organization_id: str, user_id: str, role: str) -> dict[str, Any]:
        with self._lock:
            org, membership = self._membership_locked(organization_id, user_id)
            membership["role"] = role
            membership["role_name"] = _role_name(role)
            membership["permissions"] = self._permissions_locked(role)
            membership["updated_at"] = max(_now_ms(), membership["updated_at"] + 1)
            body = self._membership_json_locked(org, membership)
            self._emit("organizationMembership.updated", body)
            return body

    def delete_membership(self, organization_id: str, user_id: str) -> dict[str, Any]:
        with self._lock:
            org, membership = self._membership_locked(organization_id, user_id)
            del self._memberships[organization_id][user_id]
            membership["updated_at"] = max(_now_ms(), membership["updated_at"] + 1)
            body = self._membership_json_locked(org, membership)
            self._emit("organizationMembership.deleted", body)
            return body

    def session_organization_claims(self, organization_id: str, user_id: str) -> dict[str, Any]:
        with self._lock:
            org, membership = self._membership_locked(organization_id, user_id)
            return organization_claims(org, membership)

    # invitations

    def _refresh_invitation_locked(self, invitation: dict[str, Any], now: int) -> dict[str, Any]:
        # Clerk expires invitations on its own clock and sends no webhook for it.
        expires_at = invitation["expires_at"]
        if invitation["status"] == "pending" and expires_at is not None and expires_at <= now:
            invitation["status"] = "expired"
            invitation["updated_at"] = invitation["expires_at"]
        return invitation

    def _take_invitation_budget_locked(self, now: int) -> None:
        times = self._invitation_times
        while times and times[0] <= now - INVITATION_WINDOW_MS:
            times.popleft()
        if len(times) >= self.invitations_per_hour:
            retry_after = max(1, math.ceil((times[0] + INVITATION_WINDOW_MS - now) / 1000))
            raise ClerkApiError(
                429,
                CODE_TOO_MANY_REQUESTS,
                "Too Many Requests",
                f"Invitations are limited to {self.invitations_per_hour} per hour for this instance.",
                headers={"Retry-After": str(retry_after)},
            )
        times.append(now)

    def create_invitation(self, organization_id: str, invitation: dict[str, Any]) -> dict[str, Any]:
        """Store a pending invitation; the checks, the rate budget and the insert happen under one lock."""
        email = invitation["email_address"].casefold()
        now = _now_ms()
        with self._lock:
            if organization_id not in self._organizations:
                raise _organization_not_found(organization_id)
            existing = self._invitations.setdefault(organization_id, [])
            for other in existing:
                self._refresh_invitation_locked(other, now)
            if any(i["status"] == "pending" and i["email_address"].casefold() == email for i in existing):
                raise DuplicateInvitationError(invitation["email_address"])
            for membership in self._memberships.get(organization_id, {}).values():
                user = self._users.get(membership["public_user_data"]["user_id"])
                if user and any(e["email_address"].casefold() == email for e in user["email_addresses"]):
                    raise ClerkApiError(
                        400,
                        CODE_ALREADY_A_MEMBER,
                        "already a member",
                        f"{invitation['email_address']} is already a member of organization {organization_id}.",
                    )
            self._take_invitation_budget_locked(now)
            existing.append(invitation)
            self._emit("organizationInvitation.created", invitation)
        return copy.deepcopy(invitation)

    def list_invitations(self, organization_id: str) -> list[dict[str, Any]]:
        now = _now_ms()
        with self._lock:
            if organization_id not in self._organizations:
                raise _organization_not_found(organization_id)
            found = self._invitations.get(organization_id, [])
            return copy.deepcopy([self._refresh_invitation_locked(i, now) for i in found])

    def _invitation_locked(self, organization_id: str, invitation_id: str) -> dict[str, Any]:
        if organization_id not in self._organizations:
            raise _organization_not_found(organization_id)
        for invitation in self._invitations.get(organization_id, []):
            if invitation["id"] == invitation_id:
                return self._refresh_invitation_locked(invitation, _now_ms())
        raise ClerkApiError(
            404, CODE_RESOURCE_NOT_FOUND, "not found", f"No organization invitation was found with id {invitation_id}"
        )

    def get_invitation(self, organization_id: str, invitation_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._invitation_locked(organization_id, invitation_id))

    def _not_pending(self, invitation: Mapping[str, Any]) -> ClerkApiError:
        return ClerkApiError(
            400,
            CODE_INVITATION_NOT_PENDING,
            "invitation is not pending",
            f"Only pending invitations can be changed; {invitation['id']} is {invitation['status']}.",
        )

    def revoke_invitation(self, organization_id: str, invitation_id: str) -> dict[str, Any]:
        with self._lock:
            invitation = self._invitation_locked(organization_id, invitation_id)
            if invitation["status"] != "pending":
                raise self._not_pending(invitation)
            invitation["status"] = "revoked"
            invitation["updated_at"] = max(_now_ms(), invitation["updated_at"] + 1)
            self._emit("organizationInvitation.revoked", invitation)
            return copy.deepcopy(invitation)

    def expire_invitation(self, organization_id: str, invitation_id: str) -> dict[str, Any]:
        """Control: move a pending invitation's expiry into the past (as if its 30 days went by)."""
        with self._lock:
            invitation = self._invitation_locked(organization_id, invitation_id)
            if invitation["status"] != "pending":
                raise self._not_pending(invitation)
            invitation["expires_at"] = _now_ms() - 1
            return copy.deepcopy(self._refresh_invitation_locked(invitation, _now_ms()))

    def accept_invitation(self, organization_id: str, invitation_id: str, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Control: what Clerk does when the invitee follows the link and signs in (or up).

        `spec["user_id"]` names the user; one that does not exist yet signs up with the invited address.
        The membership gets the invitation's role and metadata; two events, as Clerk sends them.
        """
        user_id = spec.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            raise _missing("user_id")
        with self._lock:
            invitation = self._invitation_locked(organization_id, invitation_id)
            if invitation["status"] != "pending":
                raise self._not_pending(invitation)
            user = self._users.get(user_id)
            if user is None:
                user = build_user(
                    {
                        "id": user_id,
                        "first_name": spec.get("first_name"),
                        "last_name": spec.get("last_name"),
                        "email_addresses": [{"email_address": invitation["email_address"], "verified": True}],
                    }
                )
                self._users[user_id] = user
            org = self._organizations[organization_id]
            membership = self._add_membership_locked(
                org,
                user,
                invitation["role"],
                invitation["public_metadata"],
                invitation.get("private_metadata"),
                emit=False,
            )
            invitation["status"] = "accepted"
            invitation["updated_at"] = max(_now_ms(), invitation["updated_at"] + 1)
            # @clerk/backend types the accepted event with the user who accepted (PR #6887).
            self._emit("organizationInvitation.accepted", {**invitation, "user_id": user_id})
            self._emit("organizationMembership.created", membership)
            return {"invitation": copy.deepcopy(invitation), "membership": membership}

    # session tokens

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
            try:
                return handler(ctx, **kwargs)
            except ClerkApiError as exc:
                return exc.response()
        return _error(
            401, CODE_AUTHENTICATION_INVALID, "Invalid authentication", f"Unable to authenticate the request: {reason}."
        )

    return wrapper


def _page(ctx: Context, items: list[dict[str, Any]]) -> Response:
    """`{"data", "total_count"}` for one limit/offset page, as every Clerk list endpoint answers."""
    args = ctx.request.args
    try:
        limit = int(args.get("limit", DEFAULT_LIST_LIMIT))
        offset = int(args.get("offset", 0))
    except ValueError:
        return _param_invalid("limit", "and offset must be whole numbers.")
    if not 1 <= limit <= MAX_LIST_LIMIT or offset < 0:
        return _param_invalid("limit", f"must be between 1 and {MAX_LIST_LIMIT}, offset at least 0.")
    return json_response({"data": items[offset : offset + limit], "total_count": len(items)})


def _order(items: list[dict[str, Any]], order_by: str, default: str) -> list[dict[str, Any]]:
    order_by = order_by or default
    field_name = order_by.lstrip("+-")
    if field_name not in ("created_at", "updated_at"):
        raise _invalid("order_by", "must be created_at or updated_at, optionally with + or -.")
    return sorted(items, key=lambda item: item[field_name], reverse=order_by.startswith("-"))


def _flag(value: str | None) -> bool:
    return (value or "").casefold() in ("true", "1")


def users_get(ctx: Context, user_id: str) -> Response:
    user = ctx.state.clerk.get_user(user_id)
    if user is None:
        return _not_found(f"No user was found with id {user_id}")
    return json_response(user)


def jwks_get(ctx: Context) -> Response:
    return json_response({"keys": [ctx.state.clerk.key_pair.public_jwk()]})


def organizations_create(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    payload.pop("id", None)  # only the control route picks ids
    return json_response(ctx.state.clerk.create_organization(payload))


def organizations_list(ctx: Context) -> Response:
    args = ctx.request.args
    found = ctx.state.clerk.list_organizations(
        query=args.get("query", ""), include_members_count=_flag(args.get("include_members_count"))
    )
    # Newest first; ties (same millisecond) keep the order of creation reversed.
    found.reverse()
    return _page(ctx, _order(found, args.get("order_by", ""), "-created_at"))


def organizations_get(ctx: Context, organization_id: str) -> Response:
    include = _flag(ctx.request.args.get("include_members_count"))
    return json_response(ctx.state.clerk.get_organization(organization_id, include_members_count=include))


def organizations_update(ctx: Context, organization_id: str) -> Response:
    return json_response(ctx.state.clerk.update_organization(organization_id, read_json_object(ctx.request)))


def organizations_delete(ctx: Context, organization_id: str) -> Response:
    return json_response(ctx.state.clerk.delete_organization(organization_id))


def memberships_create(ctx: Context, organization_id: str) -> Response:
    return json_response(ctx.state.clerk.create_membership(organization_id, read_json_object(ctx.request)))


def memberships_list(ctx: Context, organization_id: str) -> Response:
    args = ctx.request.args
    found = ctx.state.clerk.list_memberships(organization_id)
    user_ids, roles = set(args.getlist("user_id")), set(args.getlist("role"))
    emails = {e.casefold() for e in args.getlist("email_address")}
    found = [
        m
        for m in found
        if (not user_ids or m["public_user_data"]["user_id"] in user_ids)
        and (not roles or m["role"] in roles)
        and (not emails or (m["public_user_data"].get("identifier") or "").casefold() in emails)
    ]
    return _page(ctx, _order(found, args.get("order_by", ""), "+created_at"))


def memberships_update(ctx: Context, organization_id: str, user_id: str) -> Response:
    payload = read_json_object(ctx.request)
    if not isinstance(payload.get("role"), str) or not payload["role"].strip():
        return _param_missing("role")
    return json_response(ctx.state.clerk.update_membership(organization_id, user_id, payload["role"]))


def memberships_delete(ctx: Context, organization_id: str, user_id: str) -> Response:
    return json_response(ctx.state.clerk.delete_membership(organization_id, user_id))


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
    statuses = set(args.getlist("status"))
    email = args.get("email_address", "").casefold()
    found = [
        i
        for i in ctx.state.clerk.list_invitations(organization_id)
        if (not statuses or i["status"] in statuses) and (not email or i["email_address"].casefold() == email)
    ]
    found.reverse()  # Clerk's default order is newest first.
    return _page(ctx, found)


def invitations_get(ctx: Context, organization_id: str, invitation_id: str) -> Response:
    return json_response(ctx.state.clerk.get_invitation(organization_id, invitation_id))


def invitations_revoke(ctx: Context, organization_id: str, invitation_id: str) -> Response:
    read_json_object(ctx.request)  # {requesting_user_id?}: a malformed body is still a 400
    return json_response(ctx.state.clerk.revoke_invitation(organization_id, invitation_id))


def dev_session_token(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    user_id, azp = payload.get("user_id"), payload.get("azp")
    ttl_seconds = payload.get("ttl_seconds", 3600)
    claims = payload.get("claims") or {}
    organization_id = payload.get("organization_id")
    if not isinstance(user_id, str) or not user_id:
        return _param_missing("user_id")
    if not isinstance(azp, str) or not azp:
        return _param_missing("azp")
    # Negative values are allowed on purpose: they mint an already expired token.
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        return _param_invalid("ttl_seconds", "must be a whole number of seconds.")
    if not isinstance(claims, Mapping):
        return _param_invalid("claims", "must be an object.")
    if organization_id is not None and (not isinstance(organization_id, str) or not organization_id):
        return _param_invalid("organization_id", "must be an organization id.")
    clerk = ctx.state.clerk
    if clerk.get_user(user_id) is None:
        return _not_found(f"No user was found with id {user_id}")
    if organization_id is not None:
        # The session's active organization: the `o` claim, only for a member (as Clerk's frontend refuses
        # to activate an organization the user is not in).
        try:
            claims = {**clerk.session_organization_claims(organization_id, user_id), **claims}
        except ClerkApiError as exc:
            return exc.response()
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


def _control_error(exc: ClerkApiError) -> Response:
    return json_response({"error": exc.long_message, "code": exc.code}, status=exc.status)


def control_organizations_put(ctx: Context) -> Response:
    """Create an organization with a chosen id (the demo's), and its members, without webhook events.

    Body: the create body plus ``id`` and ``members: [{"user_id", "role"}]``. An organization that
    already has that id is answered as it is (idempotent, for a demo loader that runs every start).
    """
    payload = read_json_object(ctx.request)
    organization_id = payload.get("id")
    if not isinstance(organization_id, str) or not organization_id.startswith("org_"):
        return json_response({"error": "id must be an organization id (org_...)"}, status=400)
    members = payload.pop("members", None) or []
    if not isinstance(members, list) or not all(isinstance(m, Mapping) for m in members):
        return json_response({"error": "members must be a list of {user_id, role}"}, status=400)
    try:
        org, created = ctx.state.clerk.put_organization(payload, members)
    except ClerkApiError as exc:
        return _control_error(exc)
    return json_response(org, status=201 if created else 200)


def control_invitation_accept(ctx: Context, organization_id: str, invitation_id: str) -> Response:
    try:
        return json_response(
            ctx.state.clerk.accept_invitation(organization_id, invitation_id, read_json_object(ctx.request))
        )
    except ClerkApiError as exc:
        return _control_error(exc)
    except SeedError as exc:
        return json_response({"error": str(exc)}, status=400)


def control_invitation_expire(ctx: Context, organization_id: str, invitation_id: str) -> Response:
    try:
        return json_response(ctx.state.clerk.expire_invitation(organization_id, invitation_id))
    except ClerkApiError as exc:
        return _control_error(exc)


def control_events_list(ctx: Context) -> Response:
    return json_response(
        [{"id": e["id"], "type": e["type"], "timestamp": e["timestamp"]} for e in ctx.state.clerk.events()]
    )


def control_limits_set(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    per_hour = payload.get("invitations_per_hour")
    if isinstance(per_hour, bool) or not isinstance(per_hour, int) or per_hour < 0:
        return json_response({"error": "invitations_per_hour must be a whole number, 0 or more"}, status=400)
    ctx.state.clerk.invitations_per_hour = per_hour
    return json_response({"invitations_per_hour": per_hour})


def control_role_permissions_set(ctx: Context) -> Response:
    """Give a role custom permissions (``org:<feature>:<permission>``), for org-scoped session tokens."""
    payload = read_json_object(ctx.request)
    role, permissions = payload.get("role"), payload.get("permissions")
    if not isinstance(role, str) or not role.startswith("org:"):
        return json_response({"error": "role must be a role key (org:...)"}, status=400)
    if not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions):
        return json_response({"error": "permissions must be a list of permission keys"}, status=400)
    ctx.state.clerk.set_role_permissions(role, permissions)
    return json_response({"role": role, "permissions": permissions})


_ORGS = "/clerk/v1/organizations"
_ORG = _ORGS + "/<organization_id>"
_MEMBERSHIPS = _ORG + "/memberships"
_INVITATIONS = _ORG + "/invitations"
_CONTROL_INVITATION = "/_control/clerk/organizations/<organization_id>/invitations/<invitation_id>"


def _api(name: str, rule: str, method: str, handler: Handler) -> Route:
    return Route(name, rule, (method,), _authenticated(handler), clerk_error_body)


ROUTES = (
    _api("clerk.users.get", "/clerk/v1/users/<user_id>", "GET", users_get),
    _api("clerk.jwks.get", "/clerk/v1/jwks", "GET", jwks_get),
    _api("clerk.organizations.create", _ORGS, "POST", organizations_create),
    _api("clerk.organizations.list", _ORGS, "GET", organizations_list),
    _api("clerk.organizations.get", _ORG, "GET", organizations_get),
    _api("clerk.organizations.update", _ORG, "PATCH", organizations_update),
    _api("clerk.organizations.delete", _ORG, "DELETE", organizations_delete),
    _api("clerk.organization_memberships.create", _MEMBERSHIPS, "POST", memberships_create),
    _api("clerk.organization_memberships.list", _MEMBERSHIPS, "GET", memberships_list),
    _api("clerk.organization_memberships.update", _MEMBERSHIPS + "/<user_id>", "PATCH", memberships_update),
    _api("clerk.organization_memberships.delete", _MEMBERSHIPS + "/<user_id>", "DELETE", memberships_delete),
    _api("clerk.organization_invitations.create", _INVITATIONS, "POST", invitations_create),
    _api("clerk.organization_invitations.list", _INVITATIONS, "GET", invitations_list),
    _api("clerk.organization_invitations.get", _INVITATIONS + "/<invitation_id>", "GET", invitations_get),
    _api("clerk.organization_invitations.revoke", _INVITATIONS + "/<invitation_id>/revoke", "POST", invitations_revoke),
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
    Route(
        "control.clerk.organizations.put",
        "/_control/clerk/organizations",
        ("POST",),
        control_organizations_put,
        control=True,
    ),
    Route(
        "control.clerk.invitations.accept",
        _CONTROL_INVITATION + "/accept",
        ("POST",),
        control_invitation_accept,
        control=True,
    ),
    Route(
        "control.clerk.invitations.expire",
        _CONTROL_INVITATION + "/expire",
        ("POST",),
        control_invitation_expire,
        control=True,
    ),
    Route("control.clerk.events.list", "/_control/clerk/events", ("GET",), control_events_list, control=True),
    Route("control.clerk.limits.set", "/_control/clerk/limits", ("POST",), control_limits_set, control=True),
    Route(
        "control.clerk.roles.set",
        "/_control/clerk/roles",
        ("POST",),
        control_role_permissions_set,
        control=True,
    ),
)
