"""Klaviyo stand-in (shared/PROVIDERS.md checklist), mounted under ``/klaviyo``: key validation only.

KLAVIYO_API_URL=<base>/klaviyo. ``GET /api/accounts`` needs the ``revision`` header and
``Authorization: Klaviyo-API-Key pk_...``; unknown keys get 401 ``authentication_failed``, a wrong
scheme 401 ``not_authenticated``, a known key without ``accounts:read`` 403 ``permission_denied``.
"""

from __future__ import annotations

import secrets
import string
import threading
import uuid
from typing import Any

from werkzeug.wrappers import Response

from sandbox.routing import Context, Route, json_response, read_json_object

ACCOUNTS_SCOPE = "accounts:read"


def _errors(status: int, code: str, title: str, detail: str) -> dict[str, Any]:
    return {"errors": [{"id": str(uuid.uuid4()), "status": status, "code": code, "title": title, "detail": detail,
                        "source": {"pointer": "/data/"}}]}  # fmt: skip


def klaviyo_error_body(status: int, message: str) -> dict[str, Any]:
    code = {400: "invalid", 401: "authentication_failed", 403: "permission_denied", 429: "throttled"}.get(
        status, "error"
    )
    return _errors(status, code, message, message)


class KlaviyoState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        with self._lock:
            self.keys = {}

    def create_key(self, *, scopes: list[str], name: str) -> str:
        alphabet = string.ascii_letters + string.digits
        key = "pk_" + "".join(secrets.choice(alphabet) for _ in range(34))
        with self._lock:
            self.keys[key] = {"scopes": scopes, "name": name, "account_id": "KL" + secrets.token_hex(3).upper()}
        return key

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            record = self.keys.get(key)
            return dict(record) if record else None


def accounts_list(ctx: Context) -> Response:
    if not ctx.request.headers.get("revision"):
        return json_response(_errors(400, "invalid", "Invalid input.", "The revision header is required."), 400)
    scheme, _, key = ctx.request.headers.get("Authorization", "").partition(" ")
    if scheme != "Klaviyo-API-Key":
        body = _errors(
            401, "not_authenticated", "Authentication credentials were not provided.", "Missing or bad scheme."
        )
        return json_response(body, 401)
    record = ctx.state.klaviyo.get(key.strip())
    if record is None:
        return json_response(_errors(401, "authentication_failed", "Incorrect authentication credentials.",
                                     "Incorrect authentication credentials."), 401)  # fmt: skip
    if ACCOUNTS_SCOPE not in record["scopes"]:
        return json_response(_errors(403, "permission_denied", "You do not have permission to perform this action.",
                                     "You do not have permission to perform this action."), 403)  # fmt: skip
    return json_response(
        {
            "data": [
                {
                    "type": "account",
                    "id": record["account_id"],
                    "attributes": {"contact_information": {"organization_name": record["name"]}},
                    "links": {"self": f"/api/accounts/{record['account_id']}/"},
                }
            ],
            "links": {"self": "/api/accounts/", "next": None, "prev": None},
        }
    )


def control_keys_create(ctx: Context) -> Response:
    """`{"scopes"?: [...] (default accounts:read), "name"?}` → `{"api_key", "account_id"}`."""
    payload = read_json_object(ctx.request)
    scopes = payload.get("scopes")
    key = ctx.state.klaviyo.create_key(
        scopes=list(scopes) if scopes is not None else [ACCOUNTS_SCOPE], name=str(payload.get("name") or "Demo Store")
    )
    return json_response({"api_key": key, "account_id": ctx.state.klaviyo.get(key)["account_id"]}, status=201)


ROUTES = (
    Route("klaviyo.accounts.list", "/klaviyo/api/accounts", ("GET",), accounts_list, klaviyo_error_body),
    Route("control.klaviyo.keys.create", "/_control/klaviyo/keys", ("POST",), control_keys_create, control=True),
)
