"""Clerk Backend API, through the official `clerk-backend-api` SDK: a user, and the agency side's organizations,
memberships and invitations (agencies/services.py).

The SDK's own retries are switched off (they back off for up to an hour inside one call, which would
pin a worker); callers get a typed error at once and the Celery task decides when to try again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pydantic
from clerk_backend_api import Clerk, models
from django.conf import settings

from config.retry import retry_after_seconds

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
DEFAULT_RETRY_AFTER_SECONDS = 10

MISCONFIGURED_MESSAGE = (
    "Clerk refused the secret key ({status}); check CLERK_SECRET_KEY and CLERK_API_URL — retrying will not help"
)


class ClerkError(Exception):
    """Base of every failure talking to Clerk; the message never carries the secret key."""


class ClerkNotFound(ClerkError):
    """404: the user, organization, membership or invitation is gone (or never existed)."""


class ClerkUserNotFound(ClerkNotFound):
    """404: the user was deleted (or never existed); nothing will ever reach them."""


class ClerkRateLimited(ClerkError):
    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ClerkTransientError(ClerkError):
    """5xx, timeouts, connection errors, unexpected bodies: worth trying again later."""


class ClerkMisconfigured(ClerkError):
    """401/403: our secret key or base URL is wrong. Loud, and not retried."""


class ClerkPermanentError(ClerkError):
    """Any other 4xx: the request itself is wrong; retrying sends the same wrong request.

    `code` is Clerk's own (`duplicate_record`, `already_a_member_in_organization`, ...) when the body had one.
    """

    def __init__(self, message: str, code: str = "", status: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


T = TypeVar("T")

# Clerk's list endpoints take at most 500 per page; 100 keeps one page's body small.
MEMBERSHIP_PAGE_SIZE = 100


@dataclass(frozen=True)
class ClerkOrganization:
    id: str
    name: str
    slug: str


@dataclass(frozen=True)
class ClerkMembership:
    id: str
    user_id: str
    role: str
    identifier: str  # the member's primary email address (or another identifier)
    updated_at_ms: int


@dataclass(frozen=True)
class ClerkInvitation:
    id: str
    email_address: str
    role: str
    status: str
    expires_at_ms: int | None


@dataclass(frozen=True)
class ClerkEmailAddress:
    id: str
    email_address: str
    verified: bool


@dataclass(frozen=True)
class ClerkUser:
    id: str
    primary_email_address_id: str | None
    email_addresses: tuple[ClerkEmailAddress, ...]
    # For people (the top bar), never for deciding where mail goes.
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None


def _retry_after(headers: httpx.Headers) -> float:
    # Absent or unreadable: a conservative pause rather than hammering.
    seconds = retry_after_seconds(headers.get("Retry-After"))
    return float(DEFAULT_RETRY_AFTER_SECONDS) if seconds is None else seconds


class ClerkClient:
    """One per process (see `clerk_client()`), sharing one HTTP connection pool across threads."""

    def __init__(self, *, secret_key: str, server_url: str, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> None:
        if not secret_key:
            raise ClerkMisconfigured("CLERK_SECRET_KEY is not set; the Clerk Backend API cannot be called")
        self.server_url = server_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(timeout=timeout, follow_redirects=False)
        self._sdk = Clerk(bearer_auth=secret_key, server_url=self.server_url, client=self._http)

    def close(self) -> None:
        self._http.close()

    def _call(self, what: str, subject: str, call: Callable[[int], T]) -> T:
        """Run one SDK call (handed the timeout in ms) and map every failure to a typed ClerkError.

        `what` names the call in the one log line (no headers, no bodies: the Authorization header carries the
        secret key); `subject` is the id the error messages name.
        """
        started = time.monotonic()
        outcome = "ok"
        try:
            return call(int(self.timeout * 1000))
        # Before ClerkBaseError: the SDK's validation error is one of those, with the 200's status.
        except (pydantic.ValidationError, models.ResponseValidationError) as exc:
            outcome = "bad body"
            raise ClerkTransientError("Clerk answered with a body the SDK could not read") from exc
        except models.ClerkBaseError as exc:
            outcome = str(exc.status_code)
            raise self._map_status(exc.status_code, exc.headers, subject, _error_code(exc.body)) from exc
        except httpx.TimeoutException as exc:
            outcome = "timeout"
            raise ClerkTransientError(f"Clerk did not answer within {self.timeout:g}s") from exc
        except (httpx.TransportError, models.NoResponseError) as exc:
            outcome = "connection error"
            raise ClerkTransientError(f"could not reach Clerk: {type(exc).__name__}") from exc
        finally:
            logger.info("clerk %s -> %s in %.0f ms", what, outcome, (time.monotonic() - started) * 1000)

    def user_get(self, user_id: str) -> ClerkUser:
        user = self._call(
            f"GET /users/{user_id}",
            user_id,
            lambda timeout_ms: self._sdk.users.get(user_id=user_id, retries=None, timeout_ms=timeout_ms),
        )
        addresses = tuple(
            ClerkEmailAddress(
                id=e.id,
                email_address=e.email_address,
                verified=getattr(e.verification, "status", None) == "verified",
            )
            for e in user.email_addresses
        )
        return ClerkUser(
            id=user.id,
            primary_email_address_id=user.primary_email_address_id,
            email_addresses=addresses,
            first_name=getattr(user, "first_name", None),
            last_name=getattr(user, "last_name", None),
            username=getattr(user, "username", None),
        )

    def organization_create(
        self,
        *,
        name: str,
        created_by: str,
        public_metadata: dict[str, Any],
        private_metadata: dict[str, Any],
        max_allowed_memberships: int,
    ) -> ClerkOrganization:
        body = {
            "name": name,
            "created_by": created_by,
            "public_metadata": public_metadata,
            "private_metadata": private_metadata,
            "max_allowed_memberships": max_allowed_memberships,
        }
        org = self._call(
            "POST /organizations",
            name,
            lambda timeout_ms: self._sdk.organizations.create(request=body, retries=None, timeout_ms=timeout_ms),
        )
        return ClerkOrganization(id=org.id, name=org.name, slug=org.slug)

    def organization_membership_page(
        self, *, organization_id: str, limit: int = MEMBERSHIP_PAGE_SIZE, offset: int = 0
    ) -> tuple[list[ClerkMembership], int]:
        """One page of an organization's memberships, oldest first, and the total count."""
        page = self._call(
            f"GET /organizations/{organization_id}/memberships?offset={offset}",
            organization_id,
            lambda timeout_ms: self._sdk.organization_memberships.list(
                organization_id=organization_id,
                order_by="+created_at",
                limit=limit,
                offset=offset,
                retries=None,
                timeout_ms=timeout_ms,
            ),
        )
        members = []
        for m in page.data:
            user = m.public_user_data
            if user is None:  # optional in the SDK's model; a membership without a user is nobody's
                continue
            members.append(
                ClerkMembership(
                    id=m.id,
                    user_id=user.user_id,
                    role=m.role,
                    identifier=getattr(user, "identifier", None) or "",
                    updated_at_ms=m.updated_at,
                )
            )
        return members, page.total_count

    def organization_membership_list(self, *, organization_id: str) -> Iterator[ClerkMembership]:
        """Every membership, page after page. A page that shrinks under us ends the walk: the reconcile is
        nightly, and the next night sees whatever this one missed."""
        offset, size = 0, MEMBERSHIP_PAGE_SIZE
        while True:
            members, total = self.organization_membership_page(
                organization_id=organization_id, limit=size, offset=offset
            )
            yield from members
            offset += size
            if not members or offset >= total:
                return

    def organization_invitation_create(
        self,
        *,
        organization_id: str,
        email_address: str,
        role: str,
        inviter_user_id: str,
        redirect_url: str | None,
        expires_in_days: int,
        public_metadata: dict[str, Any],
    ) -> ClerkInvitation:
        invitation = self._call(
            f"POST /organizations/{organization_id}/invitations",
            organization_id,
            lambda timeout_ms: self._sdk.organization_invitations.create(
                organization_id=organization_id,
                email_address=email_address,
                role=role,
                inviter_user_id=inviter_user_id,
                redirect_url=redirect_url,
                expires_in_days=expires_in_days,
                public_metadata=public_metadata,
                retries=None,
                timeout_ms=timeout_ms,
            ),
        )
        return _invitation(invitation)

    def organization_invitation_revoke(
        self, *, organization_id: str, invitation_id: str, requesting_user_id: str | None
    ) -> ClerkInvitation:
        invitation = self._call(
            f"POST /organizations/{organization_id}/invitations/{invitation_id}/revoke",
            invitation_id,
            lambda timeout_ms: self._sdk.organization_invitations.revoke(
                organization_id=organization_id,
                invitation_id=invitation_id,
                requesting_user_id=requesting_user_id,
                retries=None,
                timeout_ms=timeout_ms,
            ),
        )
        return _invitation(invitation)

    def organization_invitation_get(self, *, organization_id: str, invitation_id: str) -> ClerkInvitation:
        invitation = self._call(
            f"GET /organizations/{organization_id}/invitations/{invitation_id}",
            invitation_id,
            lambda timeout_ms: self._sdk.organization_invitations.get(
                organization_id=organization_id, invitation_id=invitation_id, retries=None, timeout_ms=timeout_ms
            ),
        )
        return _invitation(invitation)

    @staticmethod
    def _map_status(status: int, headers: httpx.Headers, subject: str, code: str = "") -> ClerkError:
        if status == 404:
            if subject.startswith("user_"):
                return ClerkUserNotFound(f"Clerk has no user {subject} (deleted?)")
            return ClerkNotFound(f"Clerk has no {subject} (deleted?)")
        if status == 429:
            retry_after = _retry_after(headers)
            return ClerkRateLimited(f"Clerk rate limit hit; retry after {retry_after:g}s", retry_after)
        if status in (401, 403):
            logger.error(MISCONFIGURED_MESSAGE.format(status=status))
            return ClerkMisconfigured(MISCONFIGURED_MESSAGE.format(status=status))
        if status >= 500:
            return ClerkTransientError(f"Clerk answered {status}")
        return ClerkPermanentError(f"Clerk answered {status} ({code or 'no code'}) for {subject}", code, status)


def _error_code(body: str | None) -> str:
    """Clerk's first error code in an error body, or "" (a proxy's HTML page, an empty body)."""
    try:
        return str(json.loads(body or "")["errors"][0]["code"])
    except (ValueError, KeyError, IndexError, TypeError):
        return ""


def _invitation(invitation: Any) -> ClerkInvitation:
    return ClerkInvitation(
        id=invitation.id,
        email_address=invitation.email_address,
        role=invitation.role,
        status=getattr(invitation, "status", None) or "pending",
        expires_at_ms=invitation.expires_at,
    )


_clients: dict[tuple[str, str, float], ClerkClient] = {}
_clients_lock = threading.Lock()


def clerk_client(timeout: float | None = None) -> ClerkClient:
    """The process-wide client for the configured Clerk instance (a settings change gets a new one).

    A page that waits on Clerk asks for a shorter `timeout` than the workers' default (one client per value).
    """
    timeout = DEFAULT_TIMEOUT_SECONDS if timeout is None else timeout
    key = (settings.CLERK_API_URL, settings.CLERK_SECRET_KEY, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = ClerkClient(
                secret_key=settings.CLERK_SECRET_KEY,
                server_url=settings.CLERK_API_URL,
                timeout=timeout,
            )
            _clients[key] = client
        return client
