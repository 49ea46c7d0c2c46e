"""Shopify: the authorize URL, the token endpoint (code and refresh grants, expiring offline tokens) and the
Admin API calls the app makes (shop.json, webhook registration, the web pixel's GraphQL mutations).
shared/INGESTION.md §4.

Every shop is its own host, `settings.SHOPIFY_ADMIN_URL` with `{shop}` (https://{shop} in production, the
sandbox's /shopify/{shop} locally). The shop must already be validated (connectors.shopify.shop_domain_clean).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from connectors.clients.base import BaseClient, Forbidden, Permanent, RateLimited, Unauthorized

INVALID_GRANT = "invalid_grant"
PIXEL_TAKEN = "TAKEN"

# The web pixel (collector/): Shopify validates `settings` against the extension's settings definition.
_PIXEL_FIELDS = "webPixel { id settings } userErrors { code field message }"
WEB_PIXEL_CREATE = (
    "mutation webPixelCreate($webPixel: WebPixelInput!) { webPixelCreate(webPixel: $webPixel) { "
    + _PIXEL_FIELDS
    + " } }"
)
WEB_PIXEL_UPDATE = (
    "mutation webPixelUpdate($id: ID!, $webPixel: WebPixelInput!) "
    "{ webPixelUpdate(id: $id, webPixel: $webPixel) { " + _PIXEL_FIELDS + " } }"
)
WEB_PIXEL_QUERY = "query { webPixel { id settings } }"
WEBHOOK_TAKEN = "for this topic has already been taken"


@dataclass(frozen=True)
class ShopifyTokens:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    scopes: tuple[str, ...]
    expires_at: dt.datetime | None
    refresh_expires_at: dt.datetime | None


def admin_url(shop: str) -> str:
    return settings.SHOPIFY_ADMIN_URL.format(shop=shop).rstrip("/")


def authorize_url(*, shop: str, redirect_uri: str, state: str) -> str:
    query = urlencode(
        {
            "client_id": settings.SHOPIFY_API_KEY,
            "scope": ",".join(settings.SHOPIFY_SCOPES),
            "redirect_uri": redirect_uri,
            "state": state,
            "grant_options[]": "",  # empty: an offline token (per-user would be an online one)
        }
    )
    return f"{admin_url(shop)}/admin/oauth/authorize?{query}"


class ShopifyClient(BaseClient):
    provider = "shopify"

    def __init__(self, *, shop: str, **kwargs: Any) -> None:
        super().__init__(base_url=kwargs.pop("base_url", admin_url(shop)), **kwargs)
        self.shop_domain = shop

    # --- token endpoint ---

    @sensitive_variables()
    def exchange_code(self, *, code: str) -> ShopifyTokens:
        body = {"code": code, "expiring": "1"}
        return self._token_call(body, secrets=(code,), timeout=None)

    @sensitive_variables()
    def refresh(self, *, refresh_token: str, timeout: float | None = None) -> ShopifyTokens:
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_call(body, secrets=(refresh_token,), timeout=timeout)

    @sensitive_variables()
    def _token_call(self, body: dict[str, str], *, secrets: tuple[str, ...], timeout: float | None) -> ShopifyTokens:
        payload = {"client_id": settings.SHOPIFY_API_KEY, "client_secret": settings.SHOPIFY_API_SECRET, **body}
        response = self._request(
            "POST",
            "/admin/oauth/access_token",
            json=payload,
            headers={"Accept": "application/json"},
            secrets=(*secrets, settings.SHOPIFY_API_SECRET),
            timeout=timeout,
        )
        answer = self._json_object(response)
        if response.status_code >= 400:
            if answer.get("error") == INVALID_GRANT:
                raise Unauthorized("Shopify refused the grant", code=INVALID_GRANT, status=response.status_code)
            reason = str(answer.get("error") or answer.get("errors") or "")[:100]
            self._raise_common(response, f"Shopify refused the token request ({reason})")
        if not answer.get("access_token") or not answer.get("refresh_token"):
            # The app asks for expiring tokens only: a non-expiring answer cannot be refreshed as designed.
            raise Permanent("Shopify answered without an expiring token", code="not_expiring")
        now = timezone.now()
        expires_in, refresh_in = answer.get("expires_in"), answer.get("refresh_token_expires_in")
        return ShopifyTokens(
            access_token=str(answer["access_token"]),
            refresh_token=str(answer["refresh_token"]),
            scopes=tuple(s for s in str(answer.get("scope", "")).split(",") if s),
            expires_at=now + dt.timedelta(seconds=int(expires_in)) if expires_in else None,
            refresh_expires_at=now + dt.timedelta(seconds=int(refresh_in)) if refresh_in else None,
        )

    # --- Admin API ---

    def _api(self, path: str) -> str:
        return f"/admin/api/{settings.SHOPIFY_API_VERSION}/{path}"

    @sensitive_variables()
    def _admin(self, method: str, path: str, *, access_token: str, json: Any = None) -> tuple[int, dict]:
        response = self._request(
            method,
            self._api(path),
            json=json,
            headers={"X-Shopify-Access-Token": access_token, "Accept": "application/json"},
            secrets=(access_token,),
        )
        body = self._json_object(response)
        if response.status_code == 401:
            raise Unauthorized("Shopify refused the access token", code="invalid_token", status=401)
        if response.status_code == 403:
            raise Forbidden("Shopify refused: a scope is missing", code="forbidden", status=403)
        return response.status_code, body

    @sensitive_variables()
    def shop(self, *, access_token: str) -> dict[str, Any]:
        status, body = self._admin("GET", "shop.json", access_token=access_token)
        if status >= 400 or not isinstance(body.get("shop"), dict):
            raise Permanent(f"Shopify refused shop.json ({status})", code=f"http_{status}", status=status)
        return body["shop"]

    @sensitive_variables()
    def webhook_create(self, *, access_token: str, topic: str, address: str) -> dict[str, Any]:
        """Subscribe `address` to `topic`; an existing identical subscription counts as done."""
        payload = {"webhook": {"topic": topic, "address": address, "format": "json"}}
        status, body = self._admin("POST", "webhooks.json", access_token=access_token, json=payload)
        if status == 422 and WEBHOOK_TAKEN in str(body.get("errors", "")):
            return {"topic": topic, "address": address, "existing": True}
        if status >= 400:
            raise Permanent(f"Shopify refused the {topic} webhook ({status})", code=f"http_{status}", status=status)
        return body.get("webhook") or {}

    # --- GraphQL Admin API (the web pixel) ---

    @sensitive_variables()
    def _graphql(self, *, access_token: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """`data` of a GraphQL call. Top-level `errors` map to the typed errors: ACCESS_DENIED (a scope is missing)
        → Forbidden, THROTTLED → RateLimited, anything else → Permanent."""
        status, body = self._admin(
            "POST", "graphql.json", access_token=access_token, json={"query": query, "variables": variables or {}}
        )
        if status >= 400:
            raise Permanent(f"Shopify refused the GraphQL call ({status})", code=f"http_{status}", status=status)
        errors = body.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
            code = str((first.get("extensions") or {}).get("code") or "graphql_error")
            message = str(first.get("message") or errors)[:300]
            if code == "ACCESS_DENIED":
                raise Forbidden(f"Shopify: {message}", code="forbidden", status=status)
            if code == "THROTTLED":
                raise RateLimited(f"Shopify: {message}", code="rate_limited", status=status, retry_after=2.0)
            raise Permanent(f"Shopify: {message}", code=code.lower(), status=status)
        data = body.get("data")
        if not isinstance(data, dict):
            raise Permanent("Shopify answered GraphQL without data", code="no_data", status=status)
        return data

    @sensitive_variables()
    def web_pixel_upsert(
        self, *, access_token: str, settings: dict[str, str], web_pixel_id: str | None = None
    ) -> dict[str, Any]:
        """The app's web pixel on this shop, with `settings`: updated when its id is known, else created; a
        create that finds one already (TAKEN: a reinstall) reads its id and updates it. Returns {id, settings}."""
        webpixel = {"settings": json_dumps(settings)}
        if web_pixel_id is None:
            data = self._graphql(access_token=access_token, query=WEB_PIXEL_CREATE, variables={"webPixel": webpixel})
            payload = data.get("webPixelCreate") or {}
            errors = payload.get("userErrors") or []
            if not errors and payload.get("webPixel"):
                return payload["webPixel"]
            if not any(e.get("code") == PIXEL_TAKEN for e in errors):
                raise self._pixel_refused("webPixelCreate", errors)
            existing = self._graphql(access_token=access_token, query=WEB_PIXEL_QUERY).get("webPixel") or {}
            web_pixel_id = existing.get("id")
            if not web_pixel_id:
                raise Permanent("Shopify says the pixel exists but did not return it", code="pixel_missing")
        data = self._graphql(
            access_token=access_token, query=WEB_PIXEL_UPDATE, variables={"id": web_pixel_id, "webPixel": webpixel}
        )
        payload = data.get("webPixelUpdate") or {}
        if payload.get("userErrors") or not payload.get("webPixel"):
            raise self._pixel_refused("webPixelUpdate", payload.get("userErrors") or [])
        return payload["webPixel"]

    @staticmethod
    def _pixel_refused(mutation: str, errors: list[dict[str, Any]]) -> Permanent:
        first = errors[0] if errors else {}
        return Permanent(
            f"Shopify refused {mutation}: {str(first.get('message') or 'no pixel returned')[:200]}",
            code=str(first.get("code") or "pixel_refused").lower(),
            detail=errors,
        )


def json_dumps(value: Any) -> str:
    import json

    return json.dumps(value, separators=(",", ":"), sort_keys=True)
