"""Provider-independent control routes under ``/_control/``: reset, faults, call log, route list.

Provider-specific controls (seeding Clerk users, ...) live with their provider module.
"""

from __future__ import annotations

from werkzeug.wrappers import Response

from sandbox.faults import fault_from_payload
from sandbox.routing import Context, Route, json_response, read_json_object


def reset(ctx: Context) -> Response:
    ctx.state.reset()
    return Response(status=204)


def faults_create(ctx: Context) -> Response:
    faultable = [name for name, route in ctx.routes.items() if not route.control]
    try:
        fault = fault_from_payload(read_json_object(ctx.request), faultable)
    except ValueError as exc:
        return json_response({"error": str(exc)}, status=400)
    ctx.state.faults.add(fault)
    return json_response(fault.to_dict(), status=201)


def faults_list(ctx: Context) -> Response:
    return json_response([fault.to_dict() for fault in ctx.state.faults.pending()])


def calls_list(ctx: Context) -> Response:
    route = ctx.request.args.get("route") or None
    if route is not None and route not in ctx.routes:
        return json_response({"error": f"unknown route {route!r}"}, status=400)
    return json_response([record.to_dict() for record in ctx.state.calls.list(route)])


def routes_list(ctx: Context) -> Response:
    return json_response(
        [
            {"name": r.name, "methods": list(r.methods), "rule": r.rule, "control": r.control}
            for r in ctx.routes.values()
        ]
    )


ROUTES = (
    Route("control.reset", "/_control/reset", ("POST",), reset, control=True),
    Route("control.faults.create", "/_control/faults", ("POST",), faults_create, control=True),
    Route("control.faults.list", "/_control/faults", ("GET",), faults_list, control=True),
    Route("control.calls.list", "/_control/calls", ("GET",), calls_list, control=True),
    Route("control.routes.list", "/_control/routes", ("GET",), routes_list, control=True),
)
