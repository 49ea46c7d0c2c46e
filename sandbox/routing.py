"""What a provider module hands the app: named routes, plus small JSON helpers.

Route names (``clerk.users.get``) are the handle tests use to script faults and read the call log,
so they are part of the sandbox's public interface: rename one only together with its callers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from sandbox.state import SandboxState

JSON_MIMETYPE = "application/json"

Handler = Callable[..., Response]
"""Called as ``handler(ctx, **path_args)``; returns the response to send."""

ErrorBody = Callable[[int, str], Any]
"""Builds a provider-shaped error body for a status and a human message."""


def generic_error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": message, "status": status}


@dataclass(frozen=True)
class Route:
    name: str
    rule: str
    methods: tuple[str, ...]
    handler: Handler
    # Shapes scripted faults without a body and sandbox-level errors (bad JSON) the way the real
    # provider would, so a client's error parsing is exercised by faults too.
    error_body: ErrorBody = generic_error_body
    # Control routes are neither faultable nor logged: a test must always be able to reach them,
    # and the call log answers "what did the code under test send to the providers".
    control: bool = False


@dataclass(frozen=True)
class Context:
    request: Request
    state: SandboxState
    routes: Mapping[str, Route]


class RequestBodyError(ValueError):
    """The request body is not the JSON object the route expects."""


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    return Response(json.dumps(data), status=status, headers=dict(headers or {}), mimetype=JSON_MIMETYPE)


def read_json_object(request: Request) -> dict[str, Any]:
    """Parse the body as a JSON object; an empty body counts as ``{}``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RequestBodyError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RequestBodyError("request body must be a JSON object")
    return data
