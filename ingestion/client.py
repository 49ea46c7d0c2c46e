"""A client for Airbyte's public API (shared/INGESTION.md §1): application token, sources, destinations,
connections, streams and jobs.

- Base URL: ``AIRBYTE_API_URL`` — Cloud ``https://api.airbyte.com/v1`` or a self-hosted server's
  ``<server>/api/public/v1``; the sandbox's stand-in locally.
- Workspace: ``GET``/``PATCH /workspaces/{id}`` (its notifications: the webhook Airbyte POSTs each sync's
  success or failure to, §1.7).
- Auth: ``AIRBYTE_CLIENT_ID``/``AIRBYTE_CLIENT_SECRET`` are exchanged at ``POST /applications/token`` for
  a bearer token that is cached per process (per base URL and client id) until shortly before its
  ``expires_in``, and fetched again once when a call answers 401; a second 401 is `Unauthorized`.
- Errors, on top of the shared ones of `connectors.clients.base` (429 → `RateLimited`, 5xx, timeouts,
  unreachable, and any answer that is not JSON → `Transient`): 409 ``try-again-later`` (a sync is
  already running for the connection) → `TryLater`, any other 409 → `Conflict`, 404 → `NotFound`,
  422 → `Unprocessable` carrying Airbyte's ``data.message``, any other 4xx → `Permanent`.
- Secrets: the client secret, the bearer token and every secret-looking value of a configuration we
  send are redacted from the log line, and removed from any message Airbyte sends back before it
  becomes an exception's text; the request bodies themselves are never logged.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from config.logging import REDACTED
from connectors.clients.base import (
    BaseClient,
    Forbidden,
    Permanent,
    ProviderError,
    RateLimited,
    Transient,
    Unauthorized,
)

__all__ = [
    "TERMINAL_JOB_STATUSES",
    "AirbyteClient",
    "Conflict",
    "Forbidden",
    "NotFound",
    "Permanent",
    "ProviderError",
    "RateLimited",
    "Transient",
    "TryLater",
    "Unauthorized",
    "Unprocessable",
]

# Any other status (pending, queued, running, incomplete, or one Airbyte adds later) is still in progress.
TERMINAL_JOB_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
# A cached token is renewed this long before Airbyte says it expires (a tenth of its life at most).
TOKEN_RENEW_AHEAD_SECONDS = 30.0
MAX_LIST_PAGES = 1000
_SECRET_KEY = re.compile(r"token|secret|password|api_key|private_key|ssh_key|client_key|certificate", re.I)


class Conflict(ProviderError):
    """409: the resource is not in a state that allows the call (Airbyte's ``state-conflict``)."""


class TryLater(Conflict):
    """409 ``try-again-later``: a job is already running for the connection; attach to it rather than retry."""


class NotFound(Permanent):
    """404 ``resource-not-found``: `detail` holds Airbyte's ``{resourceType, resourceId}``."""


class Unprocessable(Permanent):
    """422 ``unprocessable-entity``: the message is Airbyte's own (a configuration failing its spec, say)."""


def secret_values(configuration: Any) -> list[str]:
    """The values under secret-looking keys of a configuration, at any depth (for redaction)."""
    found: list[str] = []
    if isinstance(configuration, Mapping):
        for key, value in configuration.items():
            if isinstance(value, str) and _SECRET_KEY.search(str(key)) and value:
                found.append(value)
            else:
                found.extend(secret_values(value))
    elif isinstance(configuration, list):
        for item in configuration:
            found.extend(secret_values(item))
    return found


def _scrub(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


class _TokenCache:
    """Bearer tokens per (base URL, client id), shared by every client of the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}
        self._fetching: dict[tuple[str, str], threading.Lock] = {}

    def fetch_lock(self, key: tuple[str, str]) -> threading.Lock:
        """Held while a token is fetched, so that callers arriving meanwhile wait for it instead of fetching."""
        with self._lock:
            return self._fetching.setdefault(key, threading.Lock())

    def get(self, key: tuple[str, str]) -> str | None:
        with self._lock:
            entry = self._tokens.get(key)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, key: tuple[str, str], token: str, expires_in: float) -> None:
        ahead = min(TOKEN_RENEW_AHEAD_SECONDS, expires_in / 10)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + expires_in - ahead)

    def drop(self, key: tuple[str, str], token: str) -> None:
        """Forget `token` unless another caller already replaced it."""
        with self._lock:
            if self._tokens.get(key, ("",))[0] == token:
                del self._tokens[key]

    def clear(self) -> None:
        with self._lock:
            self._tokens.clear()


TOKENS = _TokenCache()


class AirbyteClient(BaseClient):
    provider = "airbyte"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        session: requests.Session | None = None,
    ) -> None:
        super().__init__(base_url=base_url or settings.AIRBYTE_API_URL, session=session)
        self.client_id = client_id if client_id is not None else settings.AIRBYTE_CLIENT_ID
        self._client_secret = client_secret if client_secret is not None else settings.AIRBYTE_CLIENT_SECRET

    def __repr__(self) -> str:
        return f"<AirbyteClient {self.base_url} client_id={self.client_id}>"

    # --- auth ------------------------------------------------------------------------------------------

    @property
    def _cache_key(self) -> tuple[str, str]:
        return (self.base_url, self.client_id)

    @sensitive_variables()
    def _fetch_token(self) -> str:
        secret = self._client_secret
        if not self.client_id or not secret:
            raise Unauthorized("Airbyte application credentials are not configured", code="not_configured")
        response = self._request(
            "POST",
            "/applications/token",
            json={"client_id": self.client_id, "client_secret": secret, "grant-type": "client_credentials"},
            secrets=(secret,),
        )
        if response.status_code in (400, 401, 403):
            raise Unauthorized(
                "Airbyte refused the application credentials", code="invalid_client", status=response.status_code
            )
        body = self._json_object(response)
        token, expires_in = body.get("access_token"), body.get("expires_in", 180)
        if response.status_code != 200 or not isinstance(token, str) or not token:
            raise Transient("Airbyte answered its token endpoint without a token", code="no_token")
        if isinstance(expires_in, bool) or not isinstance(expires_in, (int, float)) or expires_in <= 0:
            expires_in = 180  # the oldest documented lifetime (3 minutes)
        TOKENS.put(self._cache_key, token, float(expires_in))
        return token

    @sensitive_variables()
    def _token(self) -> str:
        token = TOKENS.get(self._cache_key)
        if token:
            return token
        with TOKENS.fetch_lock(self._cache_key):
            return TOKENS.get(self._cache_key) or self._fetch_token()

    # --- one call --------------------------------------------------------------------------------------

    @sensitive_variables()
    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        secrets: Iterable[str] = (),
        timeout: float | None = None,
        list_body: bool = False,
    ) -> Any:
        """Send an authenticated call and return its JSON body (None for a 204), or raise the typed error.

        The body must be a JSON object, or with `list_body` a JSON array; anything else is Transient.
        """
        secrets = [*secrets, self._client_secret]
        for attempt in (1, 2):
            token = self._token()
            response = self._request(
                method,
                path,
                json=json,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                secrets=[*secrets, token],
                timeout=timeout,
            )
            if response.status_code != 401:
                break
            TOKENS.drop(self._cache_key, token)
            if attempt == 2:
                raise Unauthorized("Airbyte refused a freshly issued token", code="unauthorized", status=401)
        if response.status_code == 204:
            return None
        if list_body and response.status_code < 400:
            body = self._json(response)
            if isinstance(body, list):
                return body
        body = self._json_object(response)  # 429, 5xx and non-JSON answers raise here
        if response.status_code < 400:
            return body
        raise self._error(response.status_code, body, secrets)

    def _error(self, status: int, body: dict[str, Any], secrets: Iterable[str]) -> ProviderError:
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        title = str(body.get("title") or "")
        message = data.get("message") or body.get("detail") or body.get("message") or f"Airbyte answered {status}"
        message = _scrub(str(message), secrets)
        code = title or f"http_{status}"
        if status == 409 and title == "try-again-later":
            return TryLater(message, code=code, status=status)
        if status == 409:
            return Conflict(message, code=code, status=status)
        if status == 404:
            detail = {k: data[k] for k in ("resourceType", "resourceId") if k in data}
            return NotFound(message, code=code, status=status, detail=detail)
        if status == 422:
            return Unprocessable(message, code=code, status=status)
        if status == 403:
            return Forbidden(message, code=code, status=status)
        return Permanent(message, code=code, status=status)

    def _list(self, path: str, params: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        """Every item of a paged list, following Airbyte's `next` links."""
        page = self._call("GET", path, params={**params, "limit": 100})
        for _ in range(MAX_LIST_PAGES):
            data = page.get("data")
            if not isinstance(data, list):
                raise Transient(f"Airbyte answered {path} without a data list", code="bad_list")
            yield from data
            following = page.get("next")
            if not following or not data:
                return
            page = self._call("GET", str(following))

    # --- sources ---------------------------------------------------------------------------------------

    @sensitive_variables()
    def create_source(
        self, *, name: str, workspace_id: str, source_type: str, configuration: Mapping[str, Any]
    ) -> dict[str, Any]:
        """A SourceResponse; its configuration comes back with secrets masked."""
        body = {
            "name": name,
            "workspaceId": workspace_id,
            "configuration": {**configuration, "sourceType": source_type},
        }
        return self._call("POST", "/sources", json=body, secrets=secret_values(configuration))

    def get_source(self, source_id: str) -> dict[str, Any]:
        return self._call("GET", f"/sources/{source_id}")

    def list_sources(self, *, workspace_ids: Iterable[str] = ()) -> list[dict[str, Any]]:
        return list(self._list("/sources", {"workspaceIds": ",".join(workspace_ids)} if workspace_ids else {}))

    @sensitive_variables()
    def patch_source(
        self, source_id: str, *, configuration: Mapping[str, Any] | None = None, name: str | None = None
    ) -> dict[str, Any]:
        """Deep-merged by Airbyte: send only the changed subtree (a rotated token, say)."""
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if configuration is not None:
            body["configuration"] = dict(configuration)
        return self._call("PATCH", f"/sources/{source_id}", json=body, secrets=secret_values(configuration))

    def delete_source(self, source_id: str) -> None:
        self._call("DELETE", f"/sources/{source_id}")

    # --- destinations ----------------------------------------------------------------------------------

    @sensitive_variables()
    def create_destination(
        self, *, name: str, workspace_id: str, destination_type: str, configuration: Mapping[str, Any]
    ) -> dict[str, Any]:
        body = {
            "name": name,
            "workspaceId": workspace_id,
            "configuration": {**configuration, "destinationType": destination_type},
        }
        return self._call("POST", "/destinations", json=body, secrets=secret_values(configuration))

    def get_destination(self, destination_id: str) -> dict[str, Any]:
        return self._call("GET", f"/destinations/{destination_id}")

    @sensitive_variables()
    def patch_destination(
        self, destination_id: str, *, configuration: Mapping[str, Any] | None = None, name: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = name
        if configuration is not None:
            body["configuration"] = dict(configuration)
        return self._call("PATCH", f"/destinations/{destination_id}", json=body, secrets=secret_values(configuration))

    def delete_destination(self, destination_id: str) -> None:
        self._call("DELETE", f"/destinations/{destination_id}")

    # --- connections -----------------------------------------------------------------------------------

    def create_connection(
        self,
        *,
        source_id: str,
        destination_id: str,
        streams: Iterable[Mapping[str, Any]],
        namespace_format: str,
        prefix: str,
        name: str | None = None,
        schedule: Mapping[str, Any] | None = None,
        status: str = "active",
    ) -> dict[str, Any]:
        """A connection landing in ``<namespace_format>.<prefix><stream>`` (namespaceDefinition custom_format)."""
        body: dict[str, Any] = {
            "sourceId": source_id,
            "destinationId": destination_id,
            "namespaceDefinition": "custom_format",
            "namespaceFormat": namespace_format,
            "prefix": prefix,
            "configurations": {"streams": [dict(s) for s in streams]},
            "schedule": dict(schedule or {"scheduleType": "manual"}),
            "status": status,
        }
        if name is not None:
            body["name"] = name
        return self._call("POST", "/connections", json=body)

    def get_connection(self, connection_id: str) -> dict[str, Any]:
        return self._call("GET", f"/connections/{connection_id}")

    def list_connections(self, *, workspace_ids: Iterable[str] = ()) -> list[dict[str, Any]]:
        return list(self._list("/connections", {"workspaceIds": ",".join(workspace_ids)} if workspace_ids else {}))

    def patch_connection(self, connection_id: str, **fields: Any) -> dict[str, Any]:
        """Any create field but source and destination, in Airbyte's names (status, schedule, configurations...)."""
        return self._call("PATCH", f"/connections/{connection_id}", json=fields)

    def delete_connection(self, connection_id: str) -> None:
        self._call("DELETE", f"/connections/{connection_id}")

    def streams(self, *, source_id: str, destination_id: str | None = None) -> list[dict[str, Any]]:
        params = {"sourceId": source_id, **({"destinationId": destination_id} if destination_id else {})}
        return self._call("GET", "/streams", params=params, list_body=True)

    # --- the workspace ---------------------------------------------------------------------------------

    def get_workspace(self, workspace_id: str) -> dict[str, Any]:
        return self._call("GET", f"/workspaces/{workspace_id}")

    @sensitive_variables()
    def patch_workspace(
        self, workspace_id: str, *, notifications: Mapping[str, Any], secrets: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Set the workspace's notifications (§1.7); `secrets` (a webhook URL's token) never reach an error."""
        return self._call(
            "PATCH", f"/workspaces/{workspace_id}", json={"notifications": dict(notifications)}, secrets=secrets
        )

    # --- jobs ------------------------------------------------------------------------------------------

    def start_job(self, connection_id: str, job_type: str = "sync") -> dict[str, Any]:
        """A JobResponse (``jobId``, ``status``...); `TryLater` when a job already runs for the connection."""
        return self._call("POST", "/jobs", json={"connectionId": connection_id, "jobType": job_type})

    def get_job(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", f"/jobs/{int(job_id)}")

    def list_jobs(
        self,
        *,
        connection_id: str | None = None,
        status: str | None = None,
        job_type: str | None = None,
        created_at_start: str | None = None,
        order_by: str = "createdAt|DESC",
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Jobs, newest first by default; `limit` stops after that many (else every page is read)."""
        params = {
            key: value
            for key, value in (
                ("connectionId", connection_id),
                ("status", status),
                ("jobType", job_type),
                ("createdAtStart", created_at_start),
                ("orderBy", order_by),
            )
            if value
        }
        jobs = []
        for job in self._list("/jobs", params):
            jobs.append(job)
            if limit is not None and len(jobs) >= limit:
                break
        return jobs

    def running_job(self, connection_id: str) -> dict[str, Any] | None:
        """The connection's job that is not terminal yet (what a `TryLater` refers to), or None.

        Airbyte runs one job per connection at a time, so it is among the newest; `incomplete`, `queued` and
        any status Airbyte adds later count as running.
        """
        for job in self.list_jobs(connection_id=connection_id, order_by="createdAt|DESC", limit=20):
            if job.get("status") not in TERMINAL_JOB_STATUSES:
                return job
        return None

    def cancel_job(self, job_id: int) -> dict[str, Any]:
        """`Conflict` (state-conflict) when the job is no longer running."""
        return self._call("DELETE", f"/jobs/{int(job_id)}")
