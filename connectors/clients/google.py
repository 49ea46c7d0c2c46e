"""Google OAuth (authorize URL, code exchange, refresh grant via google-auth, revoke) and Google Ads reads."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.utils import timezone
from google.auth import exceptions as google_exceptions
from google.auth.transport.requests import Request as GoogleAuthRequest
from google.oauth2 import _client as google_oauth_client

from connectors.clients.base import BaseClient, Forbidden, Permanent, Transient, Unauthorized

INVALID_GRANT = "invalid_grant"


@dataclass(frozen=True)
class GoogleTokens:
    access_token: str
    expires_at: dt.datetime | None
    refresh_token: str | None  # None when Google did not send one (the normal case on refresh)
    scopes: list[str]


def pkce_pair() -> tuple[str, str]:
    """(code_verifier, S256 code_challenge) per RFC 7636."""
    verifier = secrets.token_urlsafe(64)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


class GoogleOAuthClient(BaseClient):
    provider = "google_oauth"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(base_url=kwargs.pop("base_url", settings.GOOGLE_OAUTH_TOKEN_URL), **kwargs)
        self.client_id = settings.GOOGLE_OAUTH_CLIENT_ID
        self.client_secret = settings.GOOGLE_OAUTH_CLIENT_SECRET

    @staticmethod
    def authorize_url(*, redirect_uri: str, state: str, code_challenge: str) -> str:
        query = urlencode(
            {
                "client_id": settings.GOOGLE_OAUTH_CLIENT_ID,
                "redirect_uri": redirect_uri,
                "response_type": "code",
                "scope": " ".join(settings.GOOGLE_OAUTH_SCOPES),
                "state": state,
                # offline + consent: Google sends a refresh token even if the user granted access before.
                "access_type": "offline",
                "prompt": "consent",
                "include_granted_scopes": "true",
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
            }
        )
        return f"{settings.GOOGLE_OAUTH_AUTHORIZE_URL}?{query}"

    def exchange_code(self, *, code: str, redirect_uri: str, code_verifier: str) -> GoogleTokens:
        response = self._request(
            "POST",
            self.base_url,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": self.client_id,
                "client_secret": self.client_secret,
                "code_verifier": code_verifier,
            },
            secrets=(code, code_verifier, self.client_secret),
        )
        body = self._json(response) or {}
        if response.status_code == 400 and isinstance(body, dict) and body.get("error") == INVALID_GRANT:
            raise Unauthorized("Google refused the authorization code", code=INVALID_GRANT, status=400)
        if response.status_code >= 400:
            self._raise_common(response, f"Google refused the code exchange ({body.get('error', '')})")
        return _tokens(body, refresh_token=None)

    def refresh(self, *, refresh_token: str) -> GoogleTokens:
        """The refresh-token grant through google-auth's own implementation.

        `_client.refresh_grant` is used rather than `Credentials.refresh` for `can_retry=False`: retries
        are our task's job (with backoff, bounded, counted on the credential), and google-auth's own
        loop would multiply them while we hold the credential's row lock.
        """
        transport = GoogleAuthRequest(session=self.session)
        timeout = settings.CONNECTORS_HTTP_TIMEOUT
        started = time.monotonic()

        def request(**kwargs: Any):
            kwargs["timeout"] = timeout  # google-auth's default is 120 s
            return transport(**kwargs)

        try:
            access_token, new_refresh, expiry, extra = google_oauth_client.refresh_grant(
                request,
                self.base_url,
                refresh_token,
                self.client_id,
                self.client_secret,
                can_retry=False,
            )
        except google_exceptions.RefreshError as exc:
            data = exc.args[1] if len(exc.args) > 1 else None
            error = data.get("error", "") if isinstance(data, dict) else ""
            self._log("POST", self.base_url, f"refused ({error or 'unknown'})", started, ())
            if error == INVALID_GRANT:
                raise Unauthorized("Google refused the refresh token", code=INVALID_GRANT, status=400) from None
            if getattr(exc, "retryable", False):
                raise Transient("Google's token endpoint failed", code=error or "server_error") from None
            raise Permanent("Google refused the refresh", code=error or "refresh_failed") from None
        except google_exceptions.TransportError as exc:
            self._log("POST", self.base_url, "transport error", started, ())
            raise Transient("Google's token endpoint could not be reached", code="connection_error") from exc
        self._log("POST", self.base_url, 200, started, ())
        changed = new_refresh if new_refresh and new_refresh != refresh_token else None
        scopes = str(extra.get("scope", "")).split()
        return GoogleTokens(
            access_token=access_token,
            expires_at=expiry.replace(tzinfo=dt.UTC) if expiry else None,
            refresh_token=changed,
            scopes=scopes,
        )

    def revoke(self, *, token: str) -> None:
        response = self._request("POST", settings.GOOGLE_OAUTH_REVOKE_URL, data={"token": token}, secrets=(token,))
        if response.status_code >= 400 and response.status_code != 400:
            self._raise_common(response, "")


def _tokens(body: dict[str, Any], *, refresh_token: str | None) -> GoogleTokens:
    expires_in = body.get("expires_in")
    return GoogleTokens(
        access_token=body["access_token"],
        expires_at=timezone.now() + dt.timedelta(seconds=int(expires_in)) if expires_in else None,
        refresh_token=body.get("refresh_token") or refresh_token,
        scopes=str(body.get("scope", "")).split(),
    )


class GoogleAdsClient(BaseClient):
    provider = "google_ads"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(base_url=kwargs.pop("base_url", settings.GOOGLE_ADS_API_URL), **kwargs)
        self.version = settings.GOOGLE_ADS_API_VERSION

    def _headers(self, access_token: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {access_token}"}
        if settings.GOOGLE_ADS_DEVELOPER_TOKEN:
            headers["developer-token"] = settings.GOOGLE_ADS_DEVELOPER_TOKEN
        return headers

    def _parse(self, response: requests.Response) -> Any:
        body = self._json(response)
        if response.status_code < 400:
            return body
        error = body.get("error", {}) if isinstance(body, dict) else {}
        reason = _auth_error(error) or str(error.get("status", "")) or f"http_{response.status_code}"
        message = str(error.get("message", ""))[:300]
        if response.status_code == 401:
            raise Unauthorized(message or "Google Ads refused the token", code=reason, status=401)
        if response.status_code == 403:
            raise Forbidden(message or "Google Ads denied access", code=reason, status=403)
        self._raise_common(response, message)
        return None

    def accessible_customers(self, *, access_token: str) -> list[str]:
        response = self._request(
            "GET",
            f"/{self.version}/customers:listAccessibleCustomers",
            headers=self._headers(access_token),
            secrets=(access_token,),
        )
        body = self._parse(response) or {}
        return [name.split("/", 1)[1] for name in body.get("resourceNames", []) if "/" in name]

    def search(self, *, access_token: str, customer_id: str, query: str) -> list[dict[str, Any]]:
        response = self._request(
            "POST",
            f"/{self.version}/customers/{customer_id}/googleAds:search",
            json={"query": query},
            headers=self._headers(access_token),
            secrets=(access_token,),
        )
        return (self._parse(response) or {}).get("results", [])


def _auth_error(error: dict[str, Any]) -> str:
    for detail in error.get("details", []) or []:
        for item in detail.get("errors", []) or []:
            code = (item.get("errorCode") or {}).get("authenticationError")
            if code:
                return str(code)
    return ""
