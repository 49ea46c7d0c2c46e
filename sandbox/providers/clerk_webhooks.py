"""Clerk's outgoing webhooks, delivered the way Clerk does it: through Svix, signed with the endpoint secret.

Clerk sends no webhook by itself here; a test or a developer asks for one:

    POST /_control/clerk/webhooks
    {"target_url": "http://127.0.0.1:8000/webhooks/clerk/", "type": "user.updated", "user_id": "user_1",
     "secret"?: "whsec_...", "forge"?: false}

The event body is ``{"data", "object": "event", "type", "timestamp", "instance_id"}``; ``data`` is the
user's full User body for ``user.created``/``user.updated`` (the user must exist) and
``{"deleted": true, "id", "object": "user"}`` for ``user.deleted``. Headers: ``svix-id``,
``svix-timestamp`` (Unix seconds) and ``svix-signature`` (``v1,<base64 HMAC-SHA256>`` of
``{id}.{timestamp}.{body}``, made by the svix package). ``forge: true`` signs with a different secret,
to prove the receiver refuses it. Without ``secret`` the sandbox uses ``$SANDBOX_CLERK_WEBHOOK_SECRET``.
The answer is ``{"status", "body", "svix_id"}`` from the target, or 502 if it could not be reached.

Organization events are not asked for one by one: the sandbox's Clerk records one whenever something
changes (an organization created, a member added, an invitation accepted...), with the data as it was then,
and this sends them:

    POST /_control/clerk/webhooks/events
    {"target_url": "...", "secret"?: "whsec_...", "forge"?: false, "event_ids"?: ["evt_..."]}

Without ``event_ids`` it sends every event not sent yet, oldest first; with them, exactly those (already
sent ones too: that is a replay from Clerk's dashboard). An event keeps its ``svix-id`` across deliveries,
as Svix keeps a message's id when it retries or replays it, so a receiver can dedupe on it. The answer is
``{"deliveries": [{"event_id", "type", "svix_id", "status", "body"}]}``; delivery stops at the first
target that cannot be reached (502, with the deliveries so far).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
from datetime import UTC, datetime
from typing import Any

import requests
from svix.webhooks import Webhook
from werkzeug.wrappers import Response

from sandbox.routing import Context, Route, json_response, read_json_object

EVENT_TYPES = ("user.created", "user.updated", "user.deleted")
SECRET_ENV = "SANDBOX_CLERK_WEBHOOK_SECRET"
DELIVERY_TIMEOUT_SECONDS = 10.0


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    return Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body)


def _secret(payload: dict[str, Any]) -> tuple[str | None, Response | None]:
    secret = payload.get("secret") or os.environ.get(SECRET_ENV, "")
    if not secret:
        return None, json_response({"error": f"give a secret, or start the sandbox with ${SECRET_ENV} set"}, status=400)
    if payload.get("forge"):
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    return secret, None


def _deliver(target: str, secret: str, msg_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """Sign and POST one event; raises ValueError for an unusable secret, OSError-ish for no answer."""
    body = json.dumps(event)
    now = int(time.time())
    try:
        signature = sign(secret, msg_id, now, body)
    except Exception as exc:  # the svix package refuses secrets that are not base64
        raise ValueError(f"cannot sign with that secret: {type(exc).__name__}") from exc
    headers = {
        "Content-Type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": str(now),
        "svix-signature": signature,
    }
    answer = requests.post(target, data=body.encode(), headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS)
    return {"status": answer.status_code, "body": answer.text[:2000], "svix_id": msg_id}


def events_send(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    target = payload.get("target_url")
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        return json_response({"error": "target_url must be an http(s) URL"}, status=400)
    event_ids = payload.get("event_ids")
    if event_ids is not None and (not isinstance(event_ids, list) or not all(isinstance(i, str) for i in event_ids)):
        return json_response({"error": "event_ids must be a list of event ids"}, status=400)
    secret, refusal = _secret(payload)
    if refusal is not None:
        return refusal
    try:
        events = ctx.state.clerk.events_take(event_ids)
    except KeyError as exc:
        return json_response({"error": f"unknown events {exc.args[0]}"}, status=404)
    deliveries = []
    for recorded in events:
        event = {
            "data": recorded["data"],
            "object": "event",
            "type": recorded["type"],
            "timestamp": recorded["timestamp"],
            "instance_id": "ins_sandbox",
            "event_attributes": {"http_request": {"client_ip": "127.0.0.1", "user_agent": "sandbox"}},
        }
        msg_id = "msg_" + recorded["id"].removeprefix("evt_")
        try:
            answer = _deliver(target, secret, msg_id, event)
        except ValueError as exc:
            return json_response({"error": str(exc)}, status=400)
        except requests.RequestException as exc:
            return json_response(
                {"error": f"could not deliver: {type(exc).__name__}", "deliveries": deliveries}, status=502
            )
        deliveries.append({"event_id": recorded["id"], "type": recorded["type"], **answer})
    return json_response({"deliveries": deliveries})


def webhook_send(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    target, event_type, user_id = payload.get("target_url"), payload.get("type"), payload.get("user_id")
    if not isinstance(target, str) or not target.startswith(("http://", "https://")):
        return json_response({"error": "target_url must be an http(s) URL"}, status=400)
    if event_type not in EVENT_TYPES:
        return json_response({"error": f"type must be one of {list(EVENT_TYPES)}"}, status=400)
    if not isinstance(user_id, str) or not user_id:
        return json_response({"error": "user_id is required"}, status=400)
    secret = payload.get("secret") or os.environ.get(SECRET_ENV, "")
    if not secret:
        return json_response({"error": f"give a secret, or start the sandbox with ${SECRET_ENV} set"}, status=400)
    if payload.get("forge"):
        secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()

    if event_type == "user.deleted":
        data: dict[str, Any] = {"deleted": True, "id": user_id, "object": "user"}
    else:
        user = ctx.state.clerk.get_user(user_id)
        if user is None:
            return json_response({"error": f"no Clerk user {user_id}"}, status=404)
        data = user
    now = time.time()
    event = {
        "data": data,
        "object": "event",
        "type": event_type,
        "timestamp": int(now * 1000),
        "instance_id": "ins_sandbox",
    }
    body = json.dumps(event)
    msg_id = "msg_" + secrets.token_hex(12)
    try:
        signature = sign(secret, msg_id, int(now), body)
    except Exception as exc:  # the svix package refuses secrets that are not base64
        return json_response({"error": f"cannot sign with that secret: {type(exc).__name__}"}, status=400)
    headers = {
        "Content-Type": "application/json",
        "svix-id": msg_id,
        "svix-timestamp": str(int(now)),
        "svix-signature": signature,
    }
    try:
        answer = requests.post(target, data=body.encode(), headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        return json_response({"error": f"could not deliver: {type(exc).__name__}", "svix_id": msg_id}, status=502)
    return json_response({"status": answer.status_code, "body": answer.text[:2000], "svix_id": msg_id})


ROUTES = (
    Route("control.clerk.webhooks.send", "/_control/clerk/webhooks", ("POST",), webhook_send, control=True),
    Route("control.clerk.webhooks.events", "/_control/clerk/webhooks/events", ("POST",), events_send, control=True),
)
