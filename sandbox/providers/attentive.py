"""Attentive stand-in, mounted under ``/attentive``: ``GET /v1/me`` with a bearer API key.

ATTENTIVE_API_URL=<base>/attentive. The response shape is [U] in shared/PROVIDERS.md: a minimal JSON
object naming the company; clients must not depend on more.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from werkzeug.wrappers import Response

from sandbox.routing import Context, Route, json_response, read_json_object


def attentive_error_body(status: int, message: str) -> dict[str, Any]:
    return {"errors": [{"status": status, "message": message}]}


class AttentiveState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        with self._lock:
            self.keys = {}

    def create_key(self, *, company: str) -> str:
        key = secrets.token_urlsafe(30)
        with self._lock:
            self.keys[key] = {"companyId": "co_" + secrets.token_hex(4), "companyName": company}
        return key

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            record = self.keys.get(key)
            return dict(record) if record else None


def me(ctx: Context) -> Response:
    scheme, _, key = ctx.request.headers.get("Authorization", "").partition(" ")
    record = ctx.state.attentive.get(key.strip()) if scheme.lower() == "bearer" else None
    if record is None:
        return json_response(attentive_error_body(401, "Unauthorized"), status=401)
    return json_response({"applicationName": "Sandbox App", **record})


def control_keys_create(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    key = ctx.state.attentive.create_key(company=str(payload.get("company") or "Demo Store"))
    return json_response({"api_key": key, **ctx.state.attentive.get(key)}, status=201)


ROUTES = (
    Route("attentive.me.get", "/attentive/v1/me", ("GET",), me, attentive_error_body),
    Route("control.attentive.keys.create", "/_control/attentive/keys", ("POST",), control_keys_create, control=True),
)
