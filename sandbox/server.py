"""Run the sandbox on a loopback port in a background thread, and drive it over HTTP.

Tests and ``make run`` talk to the sandbox only over HTTP (``SandboxControl``), never by reaching
into its state, so the same test code works against an in-process server and a separate process.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

import requests
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from sandbox.app import create_app
from sandbox.state import SandboxState


class _QuietRequestHandler(WSGIRequestHandler):
    """Werkzeug's access log prints query strings, which can hold provider secrets; the app logs instead."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


class SandboxServer:
    """A threaded sandbox server; ``port=0`` picks a free port, read the result from ``url``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, state: SandboxState | None = None) -> None:
        self.host = host
        self.port = port
        self.state = state or SandboxState()
        self.app = create_app(self.state)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the sandbox server is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_port}"

    def start(self) -> SandboxServer:
        if self._server is not None:
            raise RuntimeError("the sandbox server is already started")
        self._server = make_server(self.host, self.port, self.app, threaded=True, request_handler=_QuietRequestHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"sandbox-{self._server.server_port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop accepting requests; in-flight ones run on daemon threads and are not awaited."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class SandboxControlError(RuntimeError):
    """The sandbox refused a control call; the message carries its explanation."""

    def __init__(self, status_code: int, body: str) -> None:
        super().__init__(f"sandbox answered {status_code}: {body}")
        self.status_code = status_code
        self.body = body


class SandboxControl:
    """Client for the sandbox's control and dev endpoints (not for the fake provider APIs)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def _request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout)
        response = self.session.request(method, f"{self.base_url}{path}", **kwargs)
        if response.status_code >= 400:
            raise SandboxControlError(response.status_code, response.text)
        return response

    def reset(self) -> None:
        self._request("POST", "/_control/reset")

    def seed_clerk_user(
        self,
        user_id: str,
        *,
        first_name: str | None = None,
        last_name: str | None = None,
        email_addresses: Iterable[str | Mapping[str, Any]] = (),
        primary_email: str | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create or replace a Clerk user; returns the full User body the sandbox will serve.

        A plain string in `email_addresses` is a verified address; pass
        ``{"email_address": ..., "verified": False}`` for an unverified one. Extra keyword arguments
        override other User keys (``public_metadata={...}``, ``banned=True``, ...).
        """
        spec: dict[str, Any] = {
            "id": user_id,
            "first_name": first_name,
            "last_name": last_name,
            "email_addresses": [
                {"email_address": e, "verified": True} if isinstance(e, str) else dict(e) for e in email_addresses
            ],
            **fields,
        }
        if primary_email is not None:
            spec["primary_email"] = primary_email
        return self._request("POST", "/_control/clerk/users", json=spec).json()

    def delete_clerk_user(self, user_id: str) -> None:
        self._request("DELETE", f"/_control/clerk/users/{user_id}")

    def fault(
        self,
        route: str,
        status: int | None = None,
        *,
        body: Any = None,
        headers: Mapping[str, str | int | float] | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> dict[str, Any]:
        """Script the next `times` calls to `route`; without a status only the delay/headers apply."""
        payload = {
            "route": route,
            "status": status,
            "body": body,
            "headers": dict(headers or {}),
            "delay": delay,
            "times": times,
        }
        return self._request("POST", "/_control/faults", json=payload).json()

    def faults(self) -> list[dict[str, Any]]:
        return self._request("GET", "/_control/faults").json()

    def calls(self, route: str | None = None) -> list[dict[str, Any]]:
        params = {"route": route} if route else None
        return self._request("GET", "/_control/calls", params=params).json()

    def routes(self) -> list[dict[str, Any]]:
        return self._request("GET", "/_control/routes").json()

    def mint_session_token(
        self, user_id: str, azp: str, ttl_seconds: int = 3600, *, organization_id: str | None = None, **claims: Any
    ) -> str:
        """Mint a Clerk session JWT; `claims` override or add claims (None removes one).

        With `organization_id` the session's active organization is that one (the user must be a member):
        the token carries the v2 `o` claim built from the membership.
        """
        payload: dict[str, Any] = {"user_id": user_id, "azp": azp, "ttl_seconds": ttl_seconds, "claims": claims}
        if organization_id is not None:
            payload["organization_id"] = organization_id
        return self._request("POST", "/clerk/_dev/session_token", json=payload).json()["token"]

    def clerk_organization_put(
        self, organization_id: str, *, name: str, members: Iterable[tuple[str, str]] = (), **fields: Any
    ) -> dict[str, Any]:
        """Ensure an organization with this id exists, with these (user_id, role) members; no webhook events."""
        payload = {
            "id": organization_id,
            "name": name,
            "members": [{"user_id": user_id, "role": role} for user_id, role in members],
            **fields,
        }
        return self._request("POST", "/_control/clerk/organizations", json=payload).json()

    def clerk_invitation_accept(self, organization_id: str, invitation_id: str, user_id: str, **fields: Any) -> dict:
        """Accept an invitation as the invitee (signing up as `user_id` with the invited address if new)."""
        path = f"/_control/clerk/organizations/{organization_id}/invitations/{invitation_id}/accept"
        return self._request("POST", path, json={"user_id": user_id, **fields}).json()

    def clerk_invitation_expire(self, organization_id: str, invitation_id: str) -> dict:
        path = f"/_control/clerk/organizations/{organization_id}/invitations/{invitation_id}/expire"
        return self._request("POST", path).json()

    def clerk_events(self) -> list[dict[str, Any]]:
        """The webhook events the sandbox's Clerk has recorded: `[{"id", "type", "timestamp"}]`, oldest first."""
        return self._request("GET", "/_control/clerk/events").json()

    def clerk_events_deliver(
        self, target_url: str, *, secret: str | None = None, event_ids: list[str] | None = None, forge: bool = False
    ) -> list[dict[str, Any]]:
        """Send the recorded events not sent yet (or exactly `event_ids`) to `target_url`, Svix-signed."""
        payload: dict[str, Any] = {"target_url": target_url, "forge": forge}
        if secret is not None:
            payload["secret"] = secret
        if event_ids is not None:
            payload["event_ids"] = event_ids
        return self._request("POST", "/_control/clerk/webhooks/events", json=payload).json()["deliveries"]

    def clerk_limits_set(self, *, invitations_per_hour: int) -> None:
        self._request("POST", "/_control/clerk/limits", json={"invitations_per_hour": invitations_per_hour})

    def clerk_role_permissions_set(self, role: str, permissions: list[str]) -> None:
        self._request("POST", "/_control/clerk/roles", json={"role": role, "permissions": permissions})

    def jwt_public_key(self) -> str:
        return self._request("GET", "/clerk/_dev/jwt_public_key").text

    def clerk_dev_users(self) -> list[dict[str, Any]]:
        return self._request("GET", "/clerk/_dev/users").json()

    def klaviyo_key_create(self, *, name: str, scopes: list[str] | None = None) -> str:
        """A private API key of a new Klaviyo account named `name` (all read scopes unless `scopes`)."""
        payload: dict[str, Any] = {"name": name, **({"scopes": scopes} if scopes is not None else {})}
        return self._request("POST", "/_control/klaviyo/keys", json=payload).json()["api_key"]

    def attentive_key_create(self, *, company: str) -> str:
        """An API key of a new Attentive company named `company`."""
        return self._request("POST", "/_control/attentive/keys", json={"company": company}).json()["api_key"]

    def shopify_shop_set(self, shop: str, **fields: Any) -> dict[str, Any]:
        """Create or change the sandbox Shopify's record of `shop` (what shop.json serves)."""
        return self._request("POST", "/_control/shopify/shops", json={"shop": shop, **fields}).json()["shop"]

    def airbyte_world_link(self, *, to: str, sources: list[str], world: dict[str, Any]) -> dict[str, Any]:
        """The Airbyte sources `sources` read the simulated world of source `to`, which gets `world`'s settings."""
        return self._request(
            "POST", "/_control/airbyte/world/link", json={"to": to, "sources": sources, "world": world}
        ).json()

    def airbyte_world_seed(self, connection_id: str, *, tables: list[str] | None = None, timeout: float = 300) -> dict:
        """Write the connection's world's tables that no sandbox connector carries (web sessions, Attentive events)."""
        payload = {} if tables is None else {"tables": tables}
        return self._request(
            "POST", f"/_control/airbyte/connections/{connection_id}/world-seed", json=payload, timeout=timeout
        ).json()

    def airbyte_world_events(
        self, connection_id: str, *, after: dict[str, Any] | None = None, limit: int = 5000, timeout: float = 120
    ) -> dict[str, Any]:
        """A page of the web pixel's events of the connection's world's visitors, in order, from just after
        `after` (the previous page's `next`; None: from the first day): `{"events", "next", "now", "world"}`."""
        return self._request(
            "POST",
            f"/_control/airbyte/connections/{connection_id}/world-events",
            json={"after": after, "limit": limit},
            timeout=timeout,
        ).json()

    def close(self) -> None:
        self.session.close()
