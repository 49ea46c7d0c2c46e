"""The sandbox WSGI app: match a named route, apply scripted faults, call the handler, log the call."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from sandbox import control
from sandbox.providers import provider_routes
from sandbox.routing import Context, RequestBodyError, Route, generic_error_body, json_response
from sandbox.state import CallRecord, SandboxState

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

logger = logging.getLogger("sandbox")


class SandboxApp:
    """A WSGI callable over one `SandboxState`; `state` is public so in-process tests can reach it."""

    def __init__(self, state: SandboxState, routes: Iterable[Route]) -> None:
        self.state = state
        self.routes: dict[str, Route] = {}
        for route in routes:
            if route.name in self.routes:
                raise ValueError(f"route name {route.name!r} is registered twice")
            self.routes[route.name] = route
        # No slash redirects: requests' and httpx's handling of a 308 would hide a path mistake from the
        # test; a stray trailing slash is simply tolerated.
        self.url_map = Map(
            [Rule(r.rule, endpoint=r.name, methods=list(r.methods)) for r in self.routes.values()],
            strict_slashes=False,
            merge_slashes=False,
        )

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        started_at, started = time.time(), time.monotonic()
        route, response, faulted = self._dispatch(request)
        duration_ms = round((time.monotonic() - started) * 1000, 2)
        if route is None or not route.control:
            self.state.calls.append(
                CallRecord(
                    route=route.name if route else None,
                    method=request.method,
                    path=request.path,
                    status=response.status_code,
                    time=started_at,
                    duration_ms=duration_ms,
                    faulted=faulted,
                )
            )
        # Path only: query strings carry secrets for some providers (Meta's access_token).
        logger.info(
            "%s %s -> %s [%s%s] %.1f ms",
            request.method,
            request.path,
            response.status_code,
            route.name if route else "no route",
            ", fault" if faulted else "",
            duration_ms,
        )
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> tuple[Route | None, Response, bool]:
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            name, args = adapter.match()
        except HTTPException as exc:
            body = generic_error_body(exc.code or 500, f"no sandbox route for {request.method} {request.path}")
            headers = {"Allow": ", ".join(exc.valid_methods)} if getattr(exc, "valid_methods", None) else {}
            return None, json_response(body, status=exc.code or 500, headers=headers), False

        route = self.routes[name]
        fault = None if route.control else self.state.faults.take(route.name)
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status is not None:
            response = _fault_response(fault.status, fault.body, route)
        else:
            response = self._call_handler(route, request, args)
        if fault is not None:
            for header, value in fault.headers.items():
                response.headers[header] = value
        return route, response, fault is not None

    def _call_handler(self, route: Route, request: Request, args: dict) -> Response:
        try:
            return route.handler(Context(request=request, state=self.state, routes=self.routes), **args)
        except RequestBodyError as exc:
            return json_response(route.error_body(400, str(exc)), status=400)
        except Exception:
            # A sandbox bug must surface as a loud 500 in the test that hit it, not a dropped connection.
            logger.exception("sandbox handler %s failed", route.name)
            return json_response(generic_error_body(500, f"sandbox bug in {route.name}; see its log"), status=500)


def _fault_response(status: int, body: Any, route: Route) -> Response:
    if isinstance(body, str):
        # A text body imitates what proxies in front of a provider send (an HTML 502 page, say).
        return Response(body, status=status, mimetype="text/plain")
    if body is None:
        body = route.error_body(status, f"scripted fault on {route.name}") if status >= 400 else {}
    return Response(json.dumps(body), status=status, mimetype="application/json")


def create_app(state: SandboxState | None = None) -> SandboxApp:
    """Build the WSGI app with every provider's routes plus the control routes."""
    return SandboxApp(state or SandboxState(), (*provider_routes(), *control.ROUTES))
