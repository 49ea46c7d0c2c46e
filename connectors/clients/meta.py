"""Meta Graph API: OAuth code and long-lived token exchange, debug_token, ad accounts, insights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

from config.retry import retry_after_seconds
from connectors.clients.base import BaseClient, Permanent, RateLimited, Transient, Unauthorized

# Graph error codes (PROVIDERS.md §1.3): 190/102 are token errors, 1/2 temporary, 4/17/341 throttling.
TOKEN_ERROR_CODES = {102, 190}
TEMPORARY_CODES = {1, 2}
THROTTLE_CODES = {4, 17, 32, 341, 613}
# Long-lived tokens last about 60 days; anything past ten years is not a token lifetime.
MAX_EXPIRES_IN = 10 * 366 * 86400


@dataclass(frozen=True)
class MetaToken:
    access_token: str = field(repr=False)
    expires_in: int | None  # None: Meta gave no expiry


class MetaClient(BaseClient):
    provider = "meta"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(base_url=kwargs.pop("base_url", settings.META_GRAPH_URL), **kwargs)
        self.version = settings.META_GRAPH_VERSION
        self.app_id = settings.META_APP_ID
        self.app_secret = settings.META_APP_SECRET

    @staticmethod
    def authorize_url(*, redirect_uri: str, state: str) -> str:
        query = urlencode(
            {
                "client_id": settings.META_APP_ID,
                "redirect_uri": redirect_uri,
                "state": state,
                "scope": ",".join(settings.META_OAUTH_SCOPES),
                "response_type": "code",
            }
        )
        return f"{settings.META_DIALOG_URL.rstrip('/')}/{settings.META_GRAPH_VERSION}/dialog/oauth?{query}"

    @sensitive_variables()
    def _get(self, path: str, *, params: dict[str, Any], secrets: tuple[str, ...], timeout: float | None = None) -> Any:
        response = self._request(
            "GET", f"/{self.version}{path}", params=params, secrets=(*secrets, self.app_secret), timeout=timeout
        )
        return self._parse(response)

    def _parse(self, response: requests.Response) -> dict[str, Any]:
        # 429, any 5xx and any answer that is not a JSON object (a proxy's HTML page) are transient.
        body = self._json_object(response)
        error = body.get("error")
        if response.status_code < 400 and not error:
            return body
        if not isinstance(error, dict):
            self._raise_common(response, "")
            raise Permanent(f"meta answered {response.status_code}", code=f"http_{response.status_code}")
        code, subcode = error.get("code"), error.get("error_subcode")
        reason = f"meta_{code}" + (f"_{subcode}" if subcode else "")
        # Meta's messages describe the token, never contain it; keep them short all the same.
        message = str(error.get("message", ""))[:300]
        if code in TOKEN_ERROR_CODES:
            raise Unauthorized(message, code=reason, status=response.status_code, detail={"subcode": subcode})
        if code in THROTTLE_CODES or response.status_code == 429:
            raise RateLimited(
                message,
                code=reason,
                status=response.status_code,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        if code in TEMPORARY_CODES or response.status_code >= 500:
            raise Transient(message, code=reason, status=response.status_code)
        raise Permanent(message, code=reason, status=response.status_code)

    @sensitive_variables()
    def exchange_code(self, *, code: str, redirect_uri: str) -> MetaToken:
        body = self._get(
            "/oauth/access_token",
            params={
                "client_id": self.app_id,
                "client_secret": self.app_secret,
                "redirect_uri": redirect_uri,
                "code": code,
            },
            secrets=(code,),
        )
        return _token(body)

    @sensitive_variables()
    def exchange_long_lived(self, *, access_token: str, timeout: float | None = None) -> MetaToken:
        """`timeout` shortens the configured one (a caller with a deadline passes what it has left)."""
        body = self._get(
            "/oauth/access_token",
            params={
                "grant_type": "fb_exchange_token",
                "client_id": self.app_id,
                "client_secret": self.app_secret,
                "fb_exchange_token": access_token,
            },
            secrets=(access_token,),
            timeout=timeout,
        )
        return _token(body)

    @sensitive_variables()
    def debug_token(self, *, access_token: str) -> dict[str, Any]:
        app_token = f"{self.app_id}|{self.app_secret}"
        body = self._get(
            "/debug_token",
            params={"input_token": access_token, "access_token": app_token},
            secrets=(access_token, app_token),
        )
        return body.get("data", {})

    @sensitive_variables()
    def ad_accounts(self, *, access_token: str) -> list[dict[str, Any]]:
        body = self._get(
            "/me/adaccounts",
            params={"access_token": access_token, "fields": "account_id,name"},
            secrets=(access_token,),
        )
        return body.get("data", [])

    @sensitive_variables()
    def insights(self, *, access_token: str, ad_account_id: str, date_preset: str = "last_7d") -> list[dict]:
        body = self._get(
            f"/{ad_account_id}/insights",
            params={"access_token": access_token, "date_preset": date_preset, "fields": "spend,impressions,clicks"},
            secrets=(access_token,),
        )
        return body.get("data", [])


def _token(body: dict[str, Any]) -> MetaToken:
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise Transient("meta answered without an access token", code="invalid_response", status=200)
    expires_in = body.get("expires_in")
    if expires_in is not None and (
        isinstance(expires_in, bool) or not isinstance(expires_in, int | float) or not 0 < expires_in <= MAX_EXPIRES_IN
    ):
        raise Transient("meta answered a token with a nonsensical expires_in", code="invalid_response", status=200)
    return MetaToken(access_token=token, expires_in=int(expires_in) if expires_in is not None else None)


__all__ = ["MetaClient", "MetaToken", "RateLimited", "Transient", "Unauthorized"]
