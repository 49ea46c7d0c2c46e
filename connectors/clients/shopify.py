"""Shopify: the authorize URL, the token endpoint (code and refresh grants, expiring offline tokens) and the
Admin API calls the app makes (shop.json, webhook registration). shared/INGESTION.md §4.

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

from connectors.clients.base import BaseClient, Forbidden, Permanent, Unauthorized

INVALID_GRANT = "invalid_grant"
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
