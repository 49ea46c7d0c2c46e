"""Drive the sandbox's Airbyte stand-in over its control API (shared by tests/sandbox and tests/ingestion)."""

from __future__ import annotations

from typing import Any

from sandbox.server import SandboxControl, SandboxControlError

WORKSPACE_ID = "5ae6b09b-fdec-41af-aaf7-7d94cfc33ef6"


class AirbyteSandbox:
    def __init__(self, control: SandboxControl) -> None:
        self.control = control
        self.url = control.base_url
        self.api_url = f"{control.base_url}/airbyte/v1"

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        if timeout is None:
            response = self.control._request(method, path, json=payload)
        else:  # a call that waits for the sandbox's worker (a year of history takes a while)
            response = self.control.session.request(method, f"{self.url}{path}", json=payload, timeout=timeout)
            if response.status_code >= 400:
                raise SandboxControlError(response.status_code, response.text)
        return response.json() if response.content else None

    def configure(self, **options: Any) -> None:
        """client_id/client_secret (pin the accepted pair), token_ttl, pending_seconds/running_seconds (None: wait)."""
        self._call("POST", "/_control/airbyte/configure", options)

    def manual_jobs(self) -> None:
        """Jobs stay in each stage until `advance`: deterministic lifecycles."""
        self.configure(pending_seconds=None, running_seconds=None)

    def expire_tokens(self) -> int:
        return self._call("POST", "/_control/airbyte/tokens/expire")["expired"]

    def issued_tokens(self) -> list[str]:
        return self._call("GET", "/_control/airbyte/tokens")

    def script_job(self, **outcome: Any) -> dict[str, Any]:
        """How the next job ends: status, errorType, errorMessage, rowsSynced, runningSeconds, incomplete, ..."""
        return self._call("POST", "/_control/airbyte/outcomes", outcome)

    def job(self, job_id: int) -> dict[str, Any]:
        return self._call("GET", f"/_control/airbyte/jobs/{job_id}")

    def advance(self, job_id: int, to: str | None = None) -> dict[str, Any]:
        """Next stage, or straight to `to`; ending a job waits for its worker (what it wrote, or why it failed)."""
        return self._call("POST", f"/_control/airbyte/jobs/{job_id}/advance", {"to": to} if to else {}, timeout=300)

    def state(self) -> dict[str, Any]:
        return self._call("GET", "/_control/airbyte/state")

    def stored_source_configuration(self, source_id: str) -> dict[str, Any]:
        """The unmasked configuration the sandbox keeps for a source (what a sync would run with)."""
        return self._call("GET", f"/_control/airbyte/sources/{source_id}/configuration")

    def world(self, **settings: Any) -> dict[str, Any]:
        """The simulated world's settings (history_days, orders_per_day, seed, timezone, currency, start_date)."""
        return self._call("POST" if settings else "GET", "/_control/airbyte/world", settings or None)

    def set_clock(self, now: str) -> dict[str, Any]:
        """Freeze the world's "now" (ISO-8601 with a zone); jobs read it when they are created."""
        return self._call("POST", "/_control/airbyte/world/clock", {"now": now})

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        return self._call("POST", "/_control/airbyte/world/clock", {"advance": seconds})

    def last_sync(self, connection_id: str) -> dict[str, Any]:
        """What the connection's last job wrote: per stream table, rows, bytes, sums, window, generation."""
        return self._call("GET", f"/_control/airbyte/connections/{connection_id}/last-sync")

    def written_records(self, connection_id: str, stream: str) -> list[dict[str, Any]]:
        """The rows the connection's last sync wrote for `stream` (stream columns, numeric as strings)."""
        path = f"/_control/airbyte/connections/{connection_id}/last-sync/records?stream={stream}"
        return self._call("GET", path, timeout=120)  # the world is replayed to list them

    def notifications(self) -> list[dict[str, Any]]:
        """Every notification the sandbox delivered: url (no query), jobId, success, status (or error)."""
        return self._call("GET", "/_control/airbyte/notifications")
