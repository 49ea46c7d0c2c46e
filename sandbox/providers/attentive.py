"""Attentive stand-in, mounted under ``/attentive``: ``GET /v1/me`` and CRUD on ``/v1/webhooks``, plus an
emitter that delivers signed webhook events the way Attentive does.

ATTENTIVE_API_URL=<base>/attentive. Facts from shared/INGESTION.md §5:

- ``POST /v1/webhooks`` ``{"url", "events": [...]}`` → 201 ``{"id", "url", "events", "type", "disabledAt": null,
  "signingKey"}``. The signing key is unique per webhook and shown only here: the app must store it.
- ``GET /v1/webhooks`` → ``{"webhooks": [{"id", "url", "type", "events", "companyId", "disabledAt"}]}`` (the
  caller's company only, no signing keys); ``PUT /v1/webhooks/{id}`` ``{"events"?, "disabled"?}``;
  ``DELETE /v1/webhooks/{id}`` → 204.
- Errors are ``{"errors": [{"status", "message"}]}``: 400 (bad body, unknown event name), 401 (no or unknown
  bearer key), 403 (a key without ``webhooks:write``), 404 (a webhook that is not the company's).

The emitter (control) POSTs events to a registered webhook's URL with
``x-attentive-hmac-sha256: hex(HMAC_SHA256(signing key, raw body))`` and no event id, and retries a non-2xx
answer or a connection error with exponential backoff until delivered or ``max_attempts`` (bounded for tests;
Attentive itself retries for up to three days, in no particular order).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import queue
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from werkzeug.wrappers import Response

from sandbox.routing import Context, Route, json_response, read_json_object

WEBHOOKS_SCOPE = "webhooks:write"
DEFAULT_SCOPES = ("webhooks:write",)
SIGNATURE_HEADER = "x-attentive-hmac-sha256"
# The API's create list [V], plus the names other sources use [C]; names are case-sensitive.
EVENT_TYPES = frozenset(
    {
        "sms.subscribed",
        "sms.sent",
        "sms.message_link_click",
        "email.subscribed",
        "email.unsubscribed",
        "email.message_link_click",
        "email.opened",
        "custom_attribute.set",
        "sms.unsubscribed",
        "sms.inbound_message",
        "email.sent",
        "phone.subscribed",
        "phone.unsubscribed",
    }
)
MAX_EMIT_EVENTS = 100_000
MAX_ATTEMPTS = 50
DELIVERY_TIMEOUT_SECONDS = 10.0
DETAIL_LIMIT = 100  # per-event results are listed up to this many events


def attentive_error_body(status: int, message: str) -> dict[str, Any]:
    return {"errors": [{"status": status, "message": message}]}


def _error(status: int, message: str) -> Response:
    return json_response(attentive_error_body(status, message), status=status)


class AttentiveState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.keys: dict[str, dict[str, Any]] = {}
        self.webhooks: dict[str, dict[str, Any]] = {}

    def reset(self) -> None:
        with self._lock:
            self.keys = {}
            self.webhooks = {}

    def create_key(self, *, company: str, scopes: tuple[str, ...] = DEFAULT_SCOPES) -> str:
        key = secrets.token_urlsafe(30)
        with self._lock:
            self.keys[key] = {
                "companyId": "co_" + secrets.token_hex(4),
                "companyName": company,
                "scopes": list(scopes),
            }
        return key

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            record = self.keys.get(key)
            return dict(record) if record else None

    def webhook_create(self, *, company: dict[str, Any], url: str, events: list[str]) -> dict[str, Any]:
        webhook = {
            # Attentive's ids are opaque base64 strings ("MjU6…").
            "id": base64.b64encode(f"25:{secrets.token_hex(6)}".encode()).decode().rstrip("="),
            "url": url,
            "type": "SUBSCRIPTION",
            "events": list(events),
            "companyId": company["companyId"],
            "companyName": company["companyName"],
            "disabledAt": None,
            "signingKey": secrets.token_hex(32),
        }
        with self._lock:
            self.webhooks[webhook["id"]] = webhook
        return dict(webhook)

    def webhook_get(self, webhook_id: str) -> dict[str, Any] | None:
        with self._lock:
            webhook = self.webhooks.get(webhook_id)
            return dict(webhook) if webhook else None

    def webhook_list(self, company_id: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(w) for w in self.webhooks.values() if company_id is None or w["companyId"] == company_id]

    def webhook_update(self, webhook_id: str, **changes: Any) -> dict[str, Any]:
        with self._lock:
            self.webhooks[webhook_id].update(changes)
            return dict(self.webhooks[webhook_id])

    def webhook_delete(self, webhook_id: str) -> None:
        with self._lock:
            self.webhooks.pop(webhook_id, None)


def public_webhook(webhook: dict[str, Any]) -> dict[str, Any]:
    """A webhook as the list shows it: never its signing key."""
    return {k: webhook[k] for k in ("id", "url", "type", "events", "companyId", "disabledAt")}


def _company(ctx: Context, *, scope: str | None = None) -> tuple[dict[str, Any] | None, Response | None]:
    scheme, _, key = ctx.request.headers.get("Authorization", "").partition(" ")
    record = ctx.state.attentive.get(key.strip()) if scheme.lower() == "bearer" else None
    if record is None:
        return None, _error(401, "Unauthorized")
    if scope is not None and scope not in record.get("scopes", ()):
        return None, _error(403, f"Forbidden: the API key lacks the {scope} scope")
    return record, None


def me(ctx: Context) -> Response:
    record, refusal = _company(ctx)
    if refusal is not None:
        return refusal
    return json_response(
        {"applicationName": "Sandbox App", "companyId": record["companyId"], "companyName": record["companyName"]}
    )


def _events_problem(events: Any) -> str | None:
    if not isinstance(events, list) or not events:
        return "events must be a non-empty list of event types"
    unknown = [e for e in events if not isinstance(e, str) or e not in EVENT_TYPES]
    if unknown:
        return f"unknown event types: {', '.join(map(str, unknown))}"
    return None


def webhooks_create(ctx: Context) -> Response:
    company, refusal = _company(ctx, scope=WEBHOOKS_SCOPE)
    if refusal is not None:
        return refusal
    payload = read_json_object(ctx.request)
    url, events = payload.get("url"), payload.get("events")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return _error(400, "url must be an http(s) URL")
    if problem := _events_problem(events):
        return _error(400, problem)
    webhook = ctx.state.attentive.webhook_create(company=company, url=url, events=list(dict.fromkeys(events)))
    return json_response({**public_webhook(webhook), "signingKey": webhook["signingKey"]}, status=201)


def webhooks_list(ctx: Context) -> Response:
    company, refusal = _company(ctx, scope=WEBHOOKS_SCOPE)
    if refusal is not None:
        return refusal
    webhooks = ctx.state.attentive.webhook_list(company["companyId"])
    return json_response({"webhooks": [public_webhook(w) for w in webhooks]})


def _own_webhook(ctx: Context, webhook_id: str) -> tuple[dict[str, Any] | None, Response | None]:
    company, refusal = _company(ctx, scope=WEBHOOKS_SCOPE)
    if refusal is not None:
        return None, refusal
    webhook = ctx.state.attentive.webhook_get(webhook_id)
    if webhook is None or webhook["companyId"] != company["companyId"]:
        return None, _error(404, "Webhook not found")
    return webhook, None


def webhooks_update(ctx: Context, webhook_id: str) -> Response:
    webhook, refusal = _own_webhook(ctx, webhook_id)
    if refusal is not None:
        return refusal
    payload = read_json_object(ctx.request)
    changes: dict[str, Any] = {}
    if "events" in payload:
        if problem := _events_problem(payload["events"]):
            return _error(400, problem)
        changes["events"] = list(dict.fromkeys(payload["events"]))
    if "disabled" in payload:
        if not isinstance(payload["disabled"], bool):
            return _error(400, "disabled must be a boolean")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        changes["disabledAt"] = (webhook["disabledAt"] or now) if payload["disabled"] else None
    updated = ctx.state.attentive.webhook_update(webhook_id, **changes)
    return json_response(public_webhook(updated))


def webhooks_delete(ctx: Context, webhook_id: str) -> Response:
    _, refusal = _own_webhook(ctx, webhook_id)
    if refusal is not None:
        return refusal
    ctx.state.attentive.webhook_delete(webhook_id)
    return Response(status=204)


def control_keys_create(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    scopes = payload.get("scopes", list(DEFAULT_SCOPES))
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        return json_response({"error": "scopes must be a list of strings"}, status=400)
    key = ctx.state.attentive.create_key(company=str(payload.get("company") or "Demo Store"), scopes=tuple(scopes))
    return json_response({"api_key": key, **ctx.state.attentive.get(key)}, status=201)


def control_webhooks_list(ctx: Context) -> Response:
    """Every webhook of every company, signing keys included: what a test needs to sign events itself."""
    return json_response({"webhooks": ctx.state.attentive.webhook_list()})


# --- the emitter -------------------------------------------------------------------------------------


def sample_event(event_type: str, n: int, webhook: dict[str, Any], now_ms: int) -> dict[str, Any]:
    """An event of `event_type` in §5's shapes; `n` makes subscriber and message distinct per event."""
    channel = "EMAIL" if event_type.startswith("email.") else "TEXT"
    event: dict[str, Any] = {
        "type": event_type,
        "timestamp": now_ms + n,
        "company": {"display_name": webhook["companyName"], "company_id": webhook["companyId"]},
        "subscriber": {
            "external_id": 16_000_000 + n,
            "phone": f"+1555{n % 10_000_000:07d}",
            "email": f"subscriber{n}@example.com",
            "external_identifiers": {"client_user_id": [f"cu_{n}"], "custom_identifiers": {}},
        },
    }
    kind = event_type.split(".", 1)[1] if "." in event_type else event_type
    if kind in ("subscribed", "unsubscribed"):
        event["creative"] = {"name": "Text to Join", "type": "TEXT_TO_JOIN", "subtype": "CODE"}
        event["subscription"] = {"type": "MARKETING"}
    elif event_type == "sms.inbound_message":
        event["message"] = {"type": "TYPE_CONVERSATION", "text": "STOP", "to_phone": "+15550000000"}
    elif kind in ("sent", "opened", "message_link_click"):
        event["message"] = {
            "id": f"msg_{n // 3}",
            "type": "CAMPAIGN",
            "name": f"Campaign {n // 3}",
            "text": "New drop inside",
            "channel": channel,
            **({"subject": "New drop"} if channel == "EMAIL" else {}),
        }
        if kind == "message_link_click":
            event["link"] = {"url": f"https://shop.example/?utm_source=attentive&n={n}"}
    elif event_type == "custom_attribute.set":
        event["custom_attributes"] = {"favorite_color": "blue"}
    return event


def sign(key: str, body: bytes, encoding: str = "hex") -> str:
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode() if encoding == "base64" else digest.hex()


class _Delivery:
    __slots__ = ("answer", "attempts", "body", "delivered", "latencies", "status")

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.attempts = 0
        self.status: int | None = None
        self.delivered = False
        self.answer = ""
        self.latencies: list[float] = []


def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int | None, str]:
    # http.client rather than requests: a burst of thousands of deliveries shares the machine's cores with
    # the receiver, and requests spends several times the CPU per call.
    parts = urlsplit(url)
    conn_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = conn_class(parts.hostname, parts.port, timeout=DELIVERY_TIMEOUT_SECONDS)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(2000).decode(errors="replace")
    except (OSError, http.client.HTTPException) as exc:
        return None, f"connection error: {type(exc).__name__}"
    finally:
        conn.close()


def deliver_all(
    url: str,
    deliveries: list[_Delivery],
    headers_for: Any,
    *,
    max_attempts: int,
    base_delay: float,
    max_delay: float,
    concurrency: int,
) -> None:
    """Deliver every body, `concurrency` at a time; a failed attempt goes back in the queue after its backoff."""
    pending: queue.Queue[_Delivery] = queue.Queue()
    for delivery in deliveries:
        pending.put(delivery)
    retry_lock = threading.Lock()
    retrying: list[tuple[float, _Delivery]] = []
    outstanding = [len(deliveries)]

    def next_delivery() -> _Delivery | None:
        while True:
            with retry_lock:
                if outstanding[0] == 0:
                    return None
                now = time.monotonic()
                due = [item for item in retrying if item[0] <= now]
                if due:
                    retrying.remove(due[0])
                    return due[0][1]
            try:
                return pending.get(timeout=0.01)
            except queue.Empty:
                continue

    def worker() -> None:
        while (delivery := next_delivery()) is not None:
            delivery.attempts += 1
            started = time.monotonic()
            status, answer = _post(url, delivery.body, headers_for(delivery.body))
            delivery.latencies.append(time.monotonic() - started)
            delivery.status, delivery.answer = status, answer
            if status is not None and 200 <= status < 300:
                delivery.delivered = True
            if delivery.delivered or delivery.attempts >= max_attempts:
                with retry_lock:
                    outstanding[0] -= 1
                continue
            backoff = min(max_delay, base_delay * 2 ** (delivery.attempts - 1))
            with retry_lock:
                retrying.append((time.monotonic() + backoff * (0.5 + secrets.randbelow(1000) / 1000), delivery))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, concurrency))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _number(payload: dict[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = payload.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"{name} must be a number from {low} to {high}")
    return value


def control_emit(ctx: Context, webhook_id: str) -> Response:
    """POST /_control/attentive/webhooks/{id}/emit

    ``{"events"?: [event objects, sent as given], "type"?: str | "types"?: [str], "count"?: 1,
    "max_attempts"?: 10, "base_delay"?: 0.05, "max_delay"?: 2.0, "concurrency"?: 4,
    "signature"?: "hex" | "base64" | "forged" | "none"}``
    → ``{"delivered", "undelivered", "attempts", "statuses", "latency_ms": {"p50", "p99", "max"},
    "elapsed_s", "deliveries"?: [...] (up to 100 events)}``. Events are sent to the webhook's URL whatever its
    event list says, so a test can send a type it did not subscribe to.
    """
    webhook = ctx.state.attentive.webhook_get(webhook_id)
    if webhook is None:
        return json_response({"error": f"no webhook {webhook_id}"}, status=404)
    payload = read_json_object(ctx.request)
    try:
        max_attempts = int(_number(payload, "max_attempts", 10, 1, MAX_ATTEMPTS))
        base_delay = _number(payload, "base_delay", 0.05, 0, 10)
        max_delay = _number(payload, "max_delay", 2.0, 0, 60)
        concurrency = int(_number(payload, "concurrency", 4, 1, 64))
        count = int(_number(payload, "count", 1, 1, MAX_EMIT_EVENTS))
    except ValueError as exc:
        return json_response({"error": str(exc)}, status=400)
    signature = payload.get("signature", "hex")
    if signature not in ("hex", "base64", "forged", "none"):
        return json_response({"error": "signature must be hex, base64, forged or none"}, status=400)

    if "events" in payload:
        events = payload["events"]
        if not isinstance(events, list) or not events or len(events) > MAX_EMIT_EVENTS:
            return json_response({"error": f"events must be a list of 1 to {MAX_EMIT_EVENTS} items"}, status=400)
        bodies = [e.encode() if isinstance(e, str) else json.dumps(e).encode() for e in events]
    else:
        types = payload.get("types") or [payload.get("type") or "sms.sent"]
        if not isinstance(types, list) or not all(isinstance(t, str) and t for t in types):
            return json_response({"error": "types must be a list of event type names"}, status=400)
        now_ms = int(time.time() * 1000)
        bodies = [json.dumps(sample_event(types[n % len(types)], n, webhook, now_ms)).encode() for n in range(count)]

    key = webhook["signingKey"] if signature != "forged" else secrets.token_hex(32)

    def headers_for(body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "Attentive-Webhooks (sandbox)"}
        if signature != "none":
            headers[SIGNATURE_HEADER] = sign(key, body, "base64" if signature == "base64" else "hex")
        return headers

    deliveries = [_Delivery(body) for body in bodies]
    started = time.monotonic()
    deliver_all(
        webhook["url"],
        deliveries,
        headers_for,
        max_attempts=max_attempts,
        base_delay=base_delay,
        max_delay=max_delay,
        concurrency=concurrency,
    )
    elapsed = time.monotonic() - started
    statuses: dict[str, int] = {}
    latencies = sorted(latency for d in deliveries for latency in d.latencies)
    for delivery in deliveries:
        label = str(delivery.status) if delivery.status is not None else "connection_error"
        statuses[label] = statuses.get(label, 0) + 1

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 2) if latencies else 0.0

    report: dict[str, Any] = {
        "delivered": sum(d.delivered for d in deliveries),
        "undelivered": sum(not d.delivered for d in deliveries),
        "attempts": sum(d.attempts for d in deliveries),
        "statuses": statuses,  # the last answer per event
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "max": pct(1.0) if latencies else 0.0},
        "elapsed_s": round(elapsed, 3),
    }
    if len(deliveries) <= DETAIL_LIMIT:
        report["deliveries"] = [
            {"attempts": d.attempts, "status": d.status, "delivered": d.delivered, "answer": d.answer}
            for d in deliveries
        ]
    return json_response(report)


ROUTES = (
    Route("attentive.me.get", "/attentive/v1/me", ("GET",), me, attentive_error_body),
    Route("attentive.webhooks.create", "/attentive/v1/webhooks", ("POST",), webhooks_create, attentive_error_body),
    Route("attentive.webhooks.list", "/attentive/v1/webhooks", ("GET",), webhooks_list, attentive_error_body),
    Route(
        "attentive.webhooks.update",
        "/attentive/v1/webhooks/<webhook_id>",
        ("PUT",),
        webhooks_update,
        attentive_error_body,
    ),
    Route(
        "attentive.webhooks.delete",
        "/attentive/v1/webhooks/<webhook_id>",
        ("DELETE",),
        webhooks_delete,
        attentive_error_body,
    ),
    Route("control.attentive.keys.create", "/_control/attentive/keys", ("POST",), control_keys_create, control=True),
    Route(
        "control.attentive.webhooks.list", "/_control/attentive/webhooks", ("GET",), control_webhooks_list, control=True
    ),
    Route(
        "control.attentive.webhooks.emit",
        "/_control/attentive/webhooks/<webhook_id>/emit",
        ("POST",),
        control_emit,
        control=True,
    ),
)
