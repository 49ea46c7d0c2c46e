"""Shopify stand-in (shared/INGESTION.md §4): app install by authorization code grant, expiring rotating
offline tokens, the Admin API's shop.json and webhook registration, the GraphQL Admin API's web pixel
mutations (shopify_graphql.py), and an emitter of signed webhooks.

Each shop is addressed by its own path, ``/shopify/<shop>/admin/...``: point the app at it with
SHOPIFY_ADMIN_URL=<base>/shopify/{shop} (real shops are ``https://{shop}``). Any shop domain that matches
Shopify's pattern exists here, created on first use with a name made from its handle; the control API
changes its fields.

One app is known from the start, ``SANDBOX_API_KEY`` / ``SANDBOX_API_SECRET`` (or $SANDBOX_SHOPIFY_API_KEY /
$SANDBOX_SHOPIFY_API_SECRET); ``POST /_control/shopify/configure {"apps": {key: secret}}`` adds others.

Tokens behave as §4 says:
- a code is single use and lives 10 minutes; a reused or unknown code gets 400 ``invalid_grant``;
- the code grant must ask for ``expiring: "1"`` (a public app created after 2026-04-01 gets 403 otherwise);
- access tokens last ACCESS_TTL seconds; a refresh token is replaced on each use, and the previous one
  stays valid until the new one is first used ("more resilient refreshes"); only one grant is active per
  app and shop: a new code exchange or token exchange revokes the old one;
- the Admin API answers 401 ``{"errors": "[API] Invalid API key or access token ..."}`` for an expired or
  unknown ``X-Shopify-Access-Token``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import re
import secrets
import threading
import time
from typing import Any
from urllib.parse import quote, urlencode

import requests
from werkzeug.wrappers import Response

from sandbox.providers.shopify_graphql import control_pixels, graphql_endpoint
from sandbox.routing import Context, Route, json_response, read_json_object

SANDBOX_API_KEY = os.environ.get("SANDBOX_SHOPIFY_API_KEY", "sandbox-shopify-api-key")
SANDBOX_API_SECRET = os.environ.get("SANDBOX_SHOPIFY_API_SECRET", "shpss_sandbox_shopify_api_secret_0000")
ACCESS_TTL = 3600
REFRESH_TTL = 7_776_000  # 90 days
CODE_TTL = 600
DELIVERY_TIMEOUT_SECONDS = 10.0
DEFAULT_ATTEMPTS = 8  # Shopify: 8 tries over 4 hours; here back to back unless `retry_delay` is given
SHOP_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-_]*\.(myshopify\.com|shopify\.com|myshopify\.io|shop\.dev)/*$")
INVALID_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
NON_EXPIRING_REFUSED = "Non-expiring access tokens are no longer accepted for this app. Request expiring=1."
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
OFFLINE_TOKEN_TYPE = "urn:shopify:params:oauth:token-type:offline-access-token"
TOPICS = ("app/uninstalled", "shop/update", "customers/data_request", "customers/redact", "shop/redact")


def shopify_error_body(status: int, message: str) -> dict[str, Any]:
    return {"errors": message}


def oauth_error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": "server_error" if status >= 500 else "invalid_request", "error_description": message}


def _encode(value: str) -> str:
    # URLSearchParams' encoding with "+" turned into "%20" (SAJ processed-query.ts): "*" stays, "~" is encoded.
    return quote(value, safe="*").replace("~", "%7E")


def query_hmac(secret: str, params: dict[str, str]) -> str:
    """hex HMAC-SHA256 over the sorted query without hmac/signature, as Shopify signs redirects and installs."""
    message = "&".join(
        f"{_encode(k)}={_encode(v)}" for k, v in sorted(params.items()) if k not in ("hmac", "signature")
    )
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def webhook_hmac(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def _host_param(shop: str) -> str:
    handle = shop.split(".", 1)[0]
    return base64.b64encode(f"admin.shopify.com/store/{handle}".encode()).decode().rstrip("=")


def _uuidish() -> str:
    return f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{secrets.token_hex(6)}"


def _now() -> float:
    return time.time()


class ShopifyState:
    """Apps, shops, codes, token grants and webhook subscriptions of the fake Shopify."""

    def __init__(self) -> None:
        from sandbox.providers.shopify_graphql import PixelState

        self._lock = threading.RLock()
        self.pixel_state = PixelState()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.apps: dict[str, str] = {SANDBOX_API_KEY: SANDBOX_API_SECRET}
            self.shops: dict[str, dict[str, Any]] = {}
            self.codes: dict[str, dict[str, Any]] = {}
            self.used_codes: set[str] = set()
            self.access: dict[str, dict[str, Any]] = {}  # token -> {shop, app, expires_at (0 = never), scope}
            self.refresh: dict[str, dict[str, Any]] = {}  # token -> {shop, app, expires_at, scope, previous}
            self.webhooks: dict[int, dict[str, Any]] = {}
            self.deliveries: list[dict[str, Any]] = []
            self.deny_next_consent = False
            self._next_id = 1
            self.pixel_state.reset()

    def configure(self, options: dict[str, Any]) -> None:
        with self._lock:
            if "deny_next_consent" in options:
                self.deny_next_consent = bool(options["deny_next_consent"])
            for key, secret in dict(options.get("apps") or {}).items():
                self.apps[str(key)] = str(secret)

    def take_deny(self) -> bool:
        with self._lock:
            deny, self.deny_next_consent = self.deny_next_consent, False
            return deny

    def _id(self) -> int:
        self._next_id += 1
        return 1000 + self._next_id

    def shop(self, domain: str) -> dict[str, Any]:
        """The shop's record (created on first use), as shop.json serves it."""
        domain = domain.lower()
        with self._lock:
            if domain not in self.shops:
                handle = domain.split(".", 1)[0]
                self.shops[domain] = {
                    "id": 54_000_000_000 + self._id(),
                    "name": handle.replace("-", " ").title(),
                    "email": f"owner@{handle}.example",
                    "domain": domain,
                    "myshopify_domain": domain,
                    "iana_timezone": "America/New_York",
                    "timezone": "(GMT-05:00) Eastern Time (US & Canada)",
                    "currency": "USD",
                    "country_code": "US",
                    "plan_name": "basic",
                    "created_at": "2024-01-01T00:00:00-05:00",
                    "updated_at": "2024-01-01T00:00:00-05:00",
                }
            return dict(self.shops[domain])

    def shop_update(self, domain: str, fields: dict[str, Any]) -> dict[str, Any]:
        self.shop(domain)
        with self._lock:
            self.shops[domain.lower()].update(fields)
            return dict(self.shops[domain.lower()])

    def new_code(self, *, shop: str, app: str, scope: str, redirect_uri: str) -> str:
        code = secrets.token_hex(16)
        with self._lock:
            self.codes[code] = {
                "shop": shop,
                "app": app,
                "scope": scope,
                "redirect_uri": redirect_uri,
                "expires_at": _now() + CODE_TTL,
            }
        return code

    def take_code(self, code: str) -> dict[str, Any] | None:
        with self._lock:
            grant = self.codes.pop(code, None)
            if grant is None or code in self.used_codes:
                return None
            self.used_codes.add(code)
            return grant if grant["expires_at"] > _now() else None

    def _revoke_grant(self, shop: str, app: str) -> None:
        for store in (self.access, self.refresh):
            for token in [t for t, r in store.items() if r["shop"] == shop and r["app"] == app]:
                del store[token]

    def issue(self, *, shop: str, app: str, scope: str, expiring: bool = True, ttl: int = ACCESS_TTL) -> dict[str, Any]:
        """A new grant for (app, shop): the old one is revoked (one active offline token per app and shop)."""
        with self._lock:
            self._revoke_grant(shop, app)
            return self._pair(shop=shop, app=app, scope=scope, expiring=expiring, ttl=ttl, previous=None)

    def _pair(self, *, shop: str, app: str, scope: str, expiring: bool, ttl: int, previous: str | None) -> dict:
        access = "shpat_" + secrets.token_hex(16)
        now = _now()
        self.access[access] = {"shop": shop, "app": app, "scope": scope, "expires_at": now + ttl if expiring else 0}
        body: dict[str, Any] = {"access_token": access, "scope": scope}
        if expiring:
            refresh = "shprt_" + secrets.token_hex(16)
            self.refresh[refresh] = {
                "shop": shop,
                "app": app,
                "scope": scope,
                "expires_at": now + REFRESH_TTL,
                "previous": previous,
            }
            body.update(expires_in=ttl, refresh_token=refresh, refresh_token_expires_in=REFRESH_TTL)
        return body

    def rotate(self, *, refresh_token: str, app: str) -> dict[str, Any] | None:
        """Use a refresh token: a new pair, or None (invalid_grant).

        The token used stays valid (as the new one's `previous`) until the new one is first used: using a
        token drops every other refresh token of the grant — the previous one it kept alive, or, when a
        kept previous token is used again (the answer that rotated it was lost), the never-used new one.
        """
        with self._lock:
            record = self.refresh.get(refresh_token)
            if record is None or record["app"] != app or record["expires_at"] <= _now():
                return None
            shop = record["shop"]
            # Every other refresh token of this grant goes, except `refresh_token` itself, which stays
            # valid as the new token's previous.
            for token in [t for t, r in self.refresh.items() if r["shop"] == shop and r["app"] == app]:
                if token != refresh_token:
                    del self.refresh[token]
            for token in [t for t, r in self.access.items() if r["shop"] == shop and r["app"] == app]:
                del self.access[token]
            scope = record["scope"]
            return self._pair(shop=shop, app=app, scope=scope, expiring=True, ttl=ACCESS_TTL, previous=refresh_token)

    def access_record(self, token: str) -> dict[str, Any] | None:
        with self._lock:
            record = self.access.get(token)
            if record is None or (record["expires_at"] and record["expires_at"] <= _now()):
                return None
            return dict(record)

    def expire_access(self, token: str) -> bool:
        with self._lock:
            if token not in self.access:
                return False
            self.access[token]["expires_at"] = _now() - 1
            return True

    def revoke_shop(self, shop: str) -> None:
        with self._lock:
            for app in list(self.apps):
                self._revoke_grant(shop, app)

    def revoke_refresh(self, token: str) -> bool:
        with self._lock:
            return self.refresh.pop(token, None) is not None

    def webhook_create(self, *, shop: str, app: str, topic: str, address: str, fmt: str) -> dict | None:
        with self._lock:
            for hook in self.webhooks.values():
                if (hook["shop"], hook["app"], hook["topic"], hook["address"]) == (shop, app, topic, address):
                    return None
            hook_id = self._id()
            self.webhooks[hook_id] = {
                "id": hook_id,
                "shop": shop,
                "app": app,
                "topic": topic,
                "address": address,
                "format": fmt,
                "api_version": "2026-01",
            }
            return self._public(self.webhooks[hook_id])

    def webhook_list(self, *, shop: str, app: str | None = None, topic: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                self._public(h)
                for h in self.webhooks.values()
                if h["shop"] == shop and (app is None or h["app"] == app) and (topic is None or h["topic"] == topic)
            ]

    def webhook_apps(self, *, shop: str, topic: str) -> list[tuple[str, str]]:
        with self._lock:
            hooks = self.webhooks.values()
            return [(h["app"], h["address"]) for h in hooks if h["shop"] == shop and h["topic"] == topic]

    @staticmethod
    def _public(hook: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in hook.items() if k not in ("shop", "app")} | {
            "created_at": "2026-01-01T00:00:00Z",
            "fields": [],
            "metafield_namespaces": [],
        }

    def record_delivery(self, delivery: dict[str, Any]) -> None:
        with self._lock:
            self.deliveries.append(delivery)


# --- helpers ---------------------------------------------------------------------------------------


def _valid_shop(shop: str) -> bool:
    return bool(SHOP_PATTERN.match(shop or ""))


def _token_body(ctx: Context) -> dict[str, Any]:
    if ctx.request.mimetype == "application/json" or not ctx.request.form:
        return read_json_object(ctx.request)
    return ctx.request.form.to_dict()


def _page(title: str, body: str, status: int = 200) -> Response:
    page = (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>"
        f"{html.escape(title)}</title></head><body style='font-family:sans-serif;max-width:36rem;margin:3rem auto'>"
        f"{body}</body></html>"
    )
    return Response(page, status=status, mimetype="text/html")


def _admin_token(ctx: Context, shop: str) -> tuple[dict[str, Any] | None, Response | None]:
    token = ctx.request.headers.get("X-Shopify-Access-Token", "")
    record = ctx.state.shopify.access_record(token) if token else None
    if record is None or record["shop"] != shop.lower():
        return None, json_response({"errors": INVALID_TOKEN}, status=401)
    return record, None


# --- OAuth -----------------------------------------------------------------------------------------


def authorize(ctx: Context, shop: str) -> Response:
    """The consent screen: the app's name, the scopes, Install and Cancel."""
    args = ctx.request.args
    client_id, redirect_uri = args.get("client_id", ""), args.get("redirect_uri", "")
    if not _valid_shop(shop):
        return _page("Shop not found", "<h1>There is no store at this address</h1>", status=404)
    if client_id not in ctx.state.shopify.apps or not redirect_uri.startswith(("http://", "https://")):
        message = "<h1>Oauth error invalid_request: The redirect_uri is missing or not whitelisted</h1>"
        return _page("Oauth error", message, status=400)
    fields = {
        "client_id": client_id,
        "scope": args.get("scope", ""),
        "redirect_uri": redirect_uri,
        "state": args.get("state", ""),
    }
    hidden = "".join(
        f"<input type='hidden' name='{html.escape(k)}' value='{html.escape(v)}'>" for k, v in fields.items()
    )
    scopes = "".join(f"<li>{html.escape(s)}</li>" for s in fields["scope"].split(",") if s)
    body = (
        f"<h1>Install app on {html.escape(shop)}</h1><p>The app will be able to:</p><ul>{scopes}</ul>"
        f"<form method='post'>{hidden}<button type='submit' name='decision' value='approve'>Install app</button> "
        f"<button type='submit' name='decision' value='cancel'>Cancel</button></form>"
    )
    return _page(f"Install app on {shop}", body)


def authorize_decide(ctx: Context, shop: str) -> Response:
    form = ctx.request.form
    client_id, redirect_uri, state = form.get("client_id", ""), form.get("redirect_uri", ""), form.get("state", "")
    secret = ctx.state.shopify.apps.get(client_id)
    if not _valid_shop(shop) or secret is None or not redirect_uri.startswith(("http://", "https://")):
        return _page("Oauth error", "<h1>Oauth error invalid_request</h1>", status=400)
    shop = shop.lower()
    if form.get("decision") != "approve" or ctx.state.shopify.take_deny():
        # Shopify sends the merchant back to the admin, not to the app.
        return _page("Installation cancelled", f"<h1>The app was not installed on {html.escape(shop)}</h1>")
    ctx.state.shopify.shop(shop)
    code = ctx.state.shopify.new_code(shop=shop, app=client_id, scope=form.get("scope", ""), redirect_uri=redirect_uri)
    params = {"code": code, "host": _host_param(shop), "shop": shop, "state": state, "timestamp": str(int(_now()))}
    params["hmac"] = query_hmac(secret, params)
    separator = "&" if "?" in redirect_uri else "?"
    return Response(status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(params)}"})


def access_token(ctx: Context, shop: str) -> Response:
    body = _token_body(ctx)
    shopify = ctx.state.shopify
    client_id, client_secret = str(body.get("client_id", "")), str(body.get("client_secret", ""))
    known = shopify.apps.get(client_id)
    if known is None or not hmac.compare_digest(known.encode(), client_secret.encode()):
        return json_response(
            {"error": "invalid_client", "error_description": "Client authentication failed"}, status=401
        )
    shop = shop.lower()
    expiring = str(body.get("expiring", "")) == "1"
    grant_type = body.get("grant_type")
    if grant_type == "refresh_token":
        pair = shopify.rotate(refresh_token=str(body.get("refresh_token", "")), app=client_id)
        if pair is None:
            return _invalid_grant("The refresh token is invalid, expired or revoked.")
        return json_response(pair)
    if grant_type == TOKEN_EXCHANGE:
        subject = shopify.access_record(str(body.get("subject_token", "")))
        if subject is None or subject["shop"] != shop or subject["app"] != client_id:
            return _invalid_grant("The subject token is invalid.")
        types = (body.get("subject_token_type"), body.get("requested_token_type"))
        if types != (OFFLINE_TOKEN_TYPE, OFFLINE_TOKEN_TYPE):
            return json_response({"error": "invalid_request", "error_description": "unsupported token types"}, 400)
        if not expiring:
            return json_response({"error": "invalid_request", "error_description": "expiring must be 1"}, status=400)
        return json_response(shopify.issue(shop=shop, app=client_id, scope=subject["scope"]))
    if grant_type not in (None, "", "authorization_code"):
        return json_response({"error": "unsupported_grant_type", "error_description": str(grant_type)}, status=400)
    grant = shopify.take_code(str(body.get("code", "")))
    if grant is None or grant["shop"] != shop or grant["app"] != client_id:
        return _invalid_grant("The authorization code was not found or was already used.")
    if not expiring:
        return json_response({"errors": NON_EXPIRING_REFUSED}, status=403)
    return json_response(shopify.issue(shop=shop, app=client_id, scope=grant["scope"]))


def _invalid_grant(description: str) -> Response:
    return json_response({"error": "invalid_grant", "error_description": description}, status=400)


# --- Admin API -------------------------------------------------------------------------------------


def shop_get(ctx: Context, shop: str, version: str) -> Response:
    _record, refused = _admin_token(ctx, shop)
    if refused is not None:
        return refused
    return json_response({"shop": ctx.state.shopify.shop(shop)})


def webhooks_create(ctx: Context, shop: str, version: str) -> Response:
    record, refused = _admin_token(ctx, shop)
    if refused is not None:
        return refused
    hook = read_json_object(ctx.request).get("webhook")
    if not isinstance(hook, dict):
        return json_response({"errors": {"webhook": "Required parameter missing or invalid"}}, status=400)
    topic, address, fmt = hook.get("topic"), hook.get("address"), hook.get("format", "json")
    errors: dict[str, list[str]] = {}
    if topic not in TOPICS:
        errors["topic"] = ["Invalid topic specified."]
    if not isinstance(address, str) or not address.startswith(("http://", "https://")):
        errors["address"] = ["is invalid"]
    if errors:
        return json_response({"errors": errors}, status=422)
    created = ctx.state.shopify.webhook_create(
        shop=shop.lower(), app=record["app"], topic=topic, address=address, fmt=fmt
    )
    if created is None:
        return json_response({"errors": {"address": ["for this topic has already been taken"]}}, status=422)
    return json_response({"webhook": created | {"api_version": version}}, status=201)


def webhooks_list(ctx: Context, shop: str, version: str) -> Response:
    record, refused = _admin_token(ctx, shop)
    if refused is not None:
        return refused
    hooks = ctx.state.shopify.webhook_list(shop=shop.lower(), app=record["app"], topic=ctx.request.args.get("topic"))
    return json_response({"webhooks": hooks})


# --- control ---------------------------------------------------------------------------------------


def control_configure(ctx: Context) -> Response:
    ctx.state.shopify.configure(read_json_object(ctx.request))
    return Response(status=204)


def control_shop(ctx: Context) -> Response:
    """`{"shop": "x.myshopify.com", ...fields}`: create or change a shop; answers its record."""
    payload = read_json_object(ctx.request)
    shop = str(payload.pop("shop", ""))
    if not _valid_shop(shop):
        return json_response({"error": "shop must be a *.myshopify.com domain"}, status=400)
    return json_response({"shop": ctx.state.shopify.shop_update(shop, payload)})


def control_tokens_create(ctx: Context) -> Response:
    """`{"shop", "app"?, "scope"?, "expiring"?: true, "ttl"?: seconds (negative = already expired)}`."""
    payload = read_json_object(ctx.request)
    shop = str(payload.get("shop", "")).lower()
    if not _valid_shop(shop):
        return json_response({"error": "shop must be a *.myshopify.com domain"}, status=400)
    ctx.state.shopify.shop(shop)
    body = ctx.state.shopify.issue(
        shop=shop,
        app=str(payload.get("app") or SANDBOX_API_KEY),
        scope=str(payload.get("scope") or "read_orders,read_customers"),
        expiring=bool(payload.get("expiring", True)),
        ttl=int(payload.get("ttl", ACCESS_TTL)),
    )
    return json_response(body, status=201)


def control_tokens_expire(ctx: Context) -> Response:
    if not ctx.state.shopify.expire_access(str(read_json_object(ctx.request).get("access_token", ""))):
        return json_response({"error": "unknown token"}, status=404)
    return Response(status=204)


def control_tokens_revoke(ctx: Context) -> Response:
    """`{"refresh_token"}` kills one refresh token; `{"shop"}` every token of the shop."""
    payload = read_json_object(ctx.request)
    if payload.get("shop"):
        ctx.state.shopify.revoke_shop(str(payload["shop"]).lower())
        return Response(status=204)
    if not ctx.state.shopify.revoke_refresh(str(payload.get("refresh_token", ""))):
        return json_response({"error": "unknown refresh token"}, status=404)
    return Response(status=204)


def control_install_url(ctx: Context) -> Response:
    """`{"shop", "app_url", "app"?}`: the signed URL Shopify opens when a merchant installs from the admin."""
    payload = read_json_object(ctx.request)
    shop, app_url = str(payload.get("shop", "")).lower(), str(payload.get("app_url", ""))
    secret = ctx.state.shopify.apps.get(str(payload.get("app") or SANDBOX_API_KEY))
    if not _valid_shop(shop) or not app_url.startswith(("http://", "https://")) or secret is None:
        return json_response({"error": "give a valid shop, an http(s) app_url and a known app"}, status=400)
    params = {"host": _host_param(shop), "shop": shop, "timestamp": str(int(_now()))}
    params["hmac"] = query_hmac(secret, params)
    separator = "&" if "?" in app_url else "?"
    return json_response({"url": f"{app_url}{separator}{urlencode(params)}", "params": params})


def control_webhooks_send(ctx: Context) -> Response:
    """Send one webhook delivery the way Shopify does, retrying non-2xx answers.

    `{"shop", "topic", "payload"?: object (default: the shop's record), "target_url"?: default every address
    subscribed to the topic for the shop, "app"?, "attempts"?: 8, "retry_delay"?: 0, "forge"?: false,
    "event_id"?, "repeat"?: 1 (the same delivery sent again: duplicates share their ids)}`.
    `app/uninstalled` also revokes the shop's tokens first, as uninstalling does.
    Answers ``{"deliveries": [{"target_url", "webhook_id", "event_id", "attempts": [status|"error", ...]}]}``.
    """
    payload = read_json_object(ctx.request)
    shop, topic = str(payload.get("shop", "")).lower(), payload.get("topic")
    if not _valid_shop(shop) or topic not in TOPICS:
        return json_response({"error": f"give a valid shop and a topic in {list(TOPICS)}"}, status=400)
    shopify = ctx.state.shopify
    if payload.get("target_url"):
        app = str(payload.get("app") or SANDBOX_API_KEY)
        targets = [(app, str(payload["target_url"]))]
    else:
        targets = shopify.webhook_apps(shop=shop, topic=topic)
    if not targets:
        return json_response({"error": f"nobody is subscribed to {topic} for {shop}"}, status=404)
    if topic == "app/uninstalled":
        shopify.revoke_shop(shop)
    body_obj = payload.get("payload") if isinstance(payload.get("payload"), dict) else shopify.shop(shop)
    raw = json.dumps(body_obj).encode()
    attempts = max(1, min(int(payload.get("attempts", DEFAULT_ATTEMPTS)), 20))
    delay = max(0.0, min(float(payload.get("retry_delay", 0.0)), 5.0))
    results = []
    for app, address in targets:
        secret = shopify.apps.get(app, "")
        if payload.get("forge"):
            secret = "forged-" + secrets.token_hex(8)
        webhook_id = str(payload.get("webhook_id") or _uuidish())
        event_id = str(payload.get("event_id") or _uuidish())
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": shop,
            "X-Shopify-API-Version": "2026-01",
            "X-Shopify-Webhook-Id": webhook_id,
            "X-Shopify-Event-Id": event_id,
            "X-Shopify-Triggered-At": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "X-Shopify-Hmac-Sha256": webhook_hmac(secret, raw),
        }
        for _ in range(max(1, int(payload.get("repeat", 1)))):
            statuses: list[Any] = []
            for attempt in range(attempts):
                if attempt and delay:
                    time.sleep(delay)
                try:
                    answer = requests.post(address, data=raw, headers=headers, timeout=DELIVERY_TIMEOUT_SECONDS)
                    statuses.append(answer.status_code)
                    if 200 <= answer.status_code < 300:
                        break
                except requests.RequestException as exc:
                    statuses.append(f"error: {type(exc).__name__}")
            delivery = {"target_url": address, "webhook_id": webhook_id, "event_id": event_id, "attempts": statuses}
            shopify.record_delivery(delivery | {"topic": topic, "shop": shop})
            results.append(delivery)
    return json_response({"deliveries": results})


_SHOP = "/shopify/<shop>/admin"
_API = f"{_SHOP}/api/<version>"


def _control(name: str, path: str, handler) -> Route:
    return Route(f"control.shopify.{name}", f"/_control/shopify/{path}", ("POST",), handler, control=True)


ROUTES = (
    Route("shopify.oauth.authorize", f"{_SHOP}/oauth/authorize", ("GET",), authorize, shopify_error_body),
    Route("shopify.oauth.decide", f"{_SHOP}/oauth/authorize", ("POST",), authorize_decide, shopify_error_body),
    Route("shopify.oauth.access_token", f"{_SHOP}/oauth/access_token", ("POST",), access_token, oauth_error_body),
    Route("shopify.shop.get", f"{_API}/shop.json", ("GET",), shop_get, shopify_error_body),
    Route("shopify.webhooks.create", f"{_API}/webhooks.json", ("POST",), webhooks_create, shopify_error_body),
    Route("shopify.webhooks.list", f"{_API}/webhooks.json", ("GET",), webhooks_list, shopify_error_body),
    Route("shopify.graphql", f"{_API}/graphql.json", ("POST",), graphql_endpoint, shopify_error_body),
    _control("configure", "configure", control_configure),
    _control("shops", "shops", control_shop),
    _control("tokens.create", "tokens", control_tokens_create),
    _control("tokens.expire", "tokens/expire", control_tokens_expire),
    _control("tokens.revoke", "tokens/revoke", control_tokens_revoke),
    _control("install_url", "install_url", control_install_url),
    _control("webhooks.send", "webhooks", control_webhooks_send),
    _control("pixels", "pixels", control_pixels),
)
