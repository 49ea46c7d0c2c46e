"""Clerk Backend API, through the official `clerk-backend-api` SDK, for the one read we need: a user.

The SDK's own retries are switched off (they back off for up to an hour inside one call, which would
pin a worker); callers get a typed error at once and the Celery task decides when to try again.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

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


class ClerkUserNotFound(ClerkError):
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
    """Any other 4xx: the request itself is wrong; retrying sends the same wrong request."""


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

    def user_get(self, user_id: str) -> ClerkUser:
        started = time.monotonic()
        outcome = "ok"
        try:
            user = self._sdk.users.get(user_id=user_id, retries=None, timeout_ms=int(self.timeout * 1000))
        # Before ClerkBaseError: the SDK's validation error is one of those, with the 200's status.
        except (pydantic.ValidationError, models.ResponseValidationError) as exc:
            outcome = "bad body"
            raise ClerkTransientError("Clerk answered with a body the SDK could not read") from exc
        except models.ClerkBaseError as exc:
            outcome = str(exc.status_code)
            raise self._map_status(exc.status_code, exc.headers, user_id) from exc
        except httpx.TimeoutException as exc:
            outcome = "timeout"
            raise ClerkTransientError(f"Clerk did not answer within {self.timeout:g}s") from exc
        except (httpx.TransportError, models.NoResponseError) as exc:
            outcome = "connection error"
            raise ClerkTransientError(f"could not reach Clerk: {type(exc).__name__}") from exc
        finally:
            # No headers or bodies here: the Authorization header carries the secret key.
            logger.info("clerk GET /users/%s -> %s in %.0f ms", user_id, outcome, (time.monotonic() - started) * 1000)
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

    @staticmethod
    def _map_status(status: int, headers: httpx.Headers, user_id: str) -> ClerkError:
        if status == 404:
            return ClerkUserNotFound(f"Clerk has no user {user_id} (deleted?)")
        if status == 429:
            retry_after = _retry_after(headers)
            return ClerkRateLimited(f"Clerk rate limit hit; retry after {retry_after:g}s", retry_after)
        if status in (401, 403):
            logger.error(MISCONFIGURED_MESSAGE.format(status=status))
            return ClerkMisconfigured(MISCONFIGURED_MESSAGE.format(status=status))
        if status >= 500:
            return ClerkTransientError(f"Clerk answered {status}")
        return ClerkPermanentError(f"Clerk answered {status} for user {user_id}")


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
