"""What every provider client shares: one pooled session, a forced timeout, typed errors, one log line.

Callers catch the error types, never status codes. A log line names the provider, method, path
(never the query string: Meta carries tokens there), status and duration, and is redacted again
with the values the call was given as secrets.

Transient versus terminal is decided here, once, for every provider (`_json_object`): a 429 is
rate limiting (with its Retry-After), any 5xx is transient, and so is any answer whose body is not
the JSON object the provider speaks (an HTML 502 from a proxy, an empty 500, a truncated 200) —
such an answer says nothing about the credential. Only a provider's own, parsed refusal (Google's
`invalid_grant`, Meta's code 190) may end a credential.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables
from requests.adapters import HTTPAdapter
from urllib3.util import Timeout

from config.logging import REDACTED, redact
from config.retry import retry_after_seconds

logger = logging.getLogger("connectors.http")


class ProviderError(Exception):
    """A provider call failed. `code` is a short machine-readable reason, safe to store and show."""

    def __init__(self, message: str, *, code: str = "", status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.detail = detail


class Unauthorized(ProviderError):
    """The credential was refused (expired, revoked, invalid)."""


class Forbidden(ProviderError):
    """The credential is valid but lacks a permission (scope) the call needs."""


class RateLimited(ProviderError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class Transient(ProviderError):
    """5xx, timeouts, connection errors: worth retrying later."""


class Permanent(ProviderError):
    """Any other refusal: retrying the same call will not help."""


def _session() -> requests.Session:
    session = requests.Session()
    # Big enough that a storm of callers (or a sweep) does not open and drop connections per call.
    adapter = HTTPAdapter(pool_connections=8, pool_maxsize=64, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def call_timeout(limit: float | None) -> tuple[float, float] | Timeout:
    """CONNECTORS_HTTP_TIMEOUT (connect, read); with `limit`, connecting and reading together take at most
    that many seconds (urllib3's `total`), so a caller with a deadline can pass what it has left."""
    connect, read = settings.CONNECTORS_HTTP_TIMEOUT
    if limit is None:
        return connect, read
    return Timeout(total=max(0.001, limit), connect=connect, read=read)


class BaseClient:
    provider = "provider"
    _shared_session: requests.Session | None = None

    def __init__(self, *, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        if session is None:
            cls = type(self)
            if cls._shared_session is None:
                cls._shared_session = _session()
            session = cls._shared_session
        self.session = session

    # Every local here (and in requests and urllib3 below) can hold a token: hidden from error reports.
    @sensitive_variables()
    def _request(
        self,
        method: str,
        path: str,
        *,
        secrets: Iterable[str] = (),
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, Any] | bytes | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> requests.Response:
        """Send one request and return the response for any status; transport failures raise Transient.

        `timeout` (seconds, connect and read together) may only shorten CONNECTORS_HTTP_TIMEOUT.
        """
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        started = time.monotonic()
        try:
            response = self.session.request(
                method,
                url,
                params=params,
                data=data,
                json=json,
                headers=dict(headers or {}),
                timeout=call_timeout(timeout),
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            self._log(method, url, "timeout", started, secrets)
            raise Transient(f"{self.provider} did not answer in time", code="timeout") from exc
        except requests.RequestException as exc:
            self._log(method, url, "connection error", started, secrets)
            raise Transient(f"{self.provider} could not be reached", code="connection_error") from exc
        self._log(method, url, response.status_code, started, secrets)
        return response

    def _log(self, method: str, url: str, status: Any, started: float, secrets: Iterable[str]) -> None:
        path = url.split("?", 1)[0]
        line = f"{self.provider} {method} {path} -> {status} in {(time.monotonic() - started) * 1000:.0f} ms"
        for secret in secrets:
            if secret:
                line = line.replace(secret, REDACTED)
        logger.info(redact(line))

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            return None

    def _json_object(self, response: requests.Response) -> dict[str, Any]:
        """The JSON object the provider answered, or the typed error for an answer that cannot be one.

        429 → RateLimited (Retry-After honoured), 5xx → Transient, a body that is not a JSON object at
        any status → Transient. What is left is the provider's own answer, for its client to map.
        """
        status = response.status_code
        if status == 429:
            raise RateLimited(
                f"{self.provider} is rate limiting us",
                code="rate_limited",
                status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status >= 500:
            raise Transient(f"{self.provider} answered {status}", code=f"http_{status}", status=status)
        body = self._json(response)
        if not isinstance(body, dict):
            raise Transient(
                f"{self.provider} answered {status} without a JSON object", code=f"non_json_{status}", status=status
            )
        return body

    def _raise_common(self, response: requests.Response, message: str) -> None:
        """The mapping every provider shares: 429, 5xx, then anything else >= 400."""
        status = response.status_code
        if status == 429:
            raise RateLimited(
                f"{self.provider} is rate limiting us",
                code="rate_limited",
                status=status,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status >= 500:
            raise Transient(f"{self.provider} answered {status}", code=f"http_{status}", status=status)
        if status >= 400:
            raise Permanent(
                message or f"{self.provider} refused the request ({status})", code=f"http_{status}", status=status
            )
