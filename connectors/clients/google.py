"""Google OAuth (authorize URL, code exchange, refresh grant via google-auth, revoke) and Google Ads reads.

Every method that holds a token or the client secret is marked `sensitive_variables()`: an error
report of an exception raised inside (or below) it shows none of its local values.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import requests
from django.conf import settings
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from google.auth import exceptions as google_exceptions
from google.auth import transport as google_auth_transport
from google.oauth2 import _client as google_oauth_client

from connectors.clients.base import BaseClient, Forbidden, Permanent, ProviderError, Transient, Unauthorized

INVALID_GRANT = "invalid_grant"


@dataclass(frozen=True)
class GoogleTokens:
    access_token: str = field(repr=False)
    expires_at: dt.datetime | None
    refresh_token: str | None = field(repr=False)  # None when Google did not send one (the normal case on refresh)
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

    @sensitive_variables()
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
        body = self._json_object(response)
        if response.status_code >= 400:
            if body.get("error") == INVALID_GRANT:
                raise Unauthorized("Google refused the authorization code", code=INVALID_GRANT, status=400)
            self._raise_common(response, f"Google refused the code exchange ({body.get('error', '')})")
        return _tokens(body, refresh_token=None)

    @sensitive_variables()
    def refresh(self, *, refresh_token: str, timeout: float | None = None) -> GoogleTokens:
        """The refresh-token grant through google-auth's own implementation, on our transport.

        `_client.refresh_grant` is used rather than `Credentials.refresh` for `can_retry=False`: retries
        are our task's job (with backoff, bounded, counted on the credential), and google-auth's own
        loop would multiply them while we hold the credential's lock. google-auth hides the answer
        behind RefreshError (and treats a 502, or an HTML page from a proxy, as not retryable), so the
        request goes through `_request` and a failure is classified from the HTTP answer itself
        (`_refresh_error`): 429 with its Retry-After, any 5xx and any body that is not JSON are
        transient; only Google's own `invalid_grant` ends the credential. `timeout` shortens the
        configured one (a caller with a deadline passes what it has left).
        """
        answers: list[requests.Response] = []

        def request(url: str, method: str = "GET", body: Any = None, headers: Any = None, **kwargs: Any):
            response = self._request(
                method, url, data=body, headers=headers, timeout=timeout, secrets=(refresh_token, self.client_secret)
            )  # transport failures raise Transient straight through google-auth
            answers.append(response)
            return _GoogleAuthResponse(response)

        try:
            access_token, new_refresh, expiry, extra = google_oauth_client.refresh_grant(
                request,
                self.base_url,
                refresh_token,
                self.client_id,
                self.client_secret,
                can_retry=False,
            )
        # RefreshError for any non-200; TypeError/KeyError/ValueError/OverflowError when a 200 is not a sane
        # token response (no token, an expires_in that is not a number of seconds).
        except (google_exceptions.RefreshError, TypeError, KeyError, ValueError, OverflowError):
            if not answers:
                raise
            raise self._refresh_error(answers[-1]) from None
        if not isinstance(access_token, str) or not access_token:
            raise Transient("Google's token endpoint answered without a token", code="invalid_response", status=200)
        changed = new_refresh if isinstance(new_refresh, str) and new_refresh and new_refresh != refresh_token else None
        scopes = str(extra.get("scope", "")).split()
        return GoogleTokens(
            access_token=access_token,
            expires_at=expiry.replace(tzinfo=dt.UTC) if expiry else None,
            refresh_token=changed,
            scopes=scopes,
        )

    def _refresh_error(self, response: requests.Response) -> ProviderError:
        body = self._json_object(response)  # raises RateLimited / Transient for 429, 5xx, non-JSON
        error = str(body.get("error") or "")
        if error == INVALID_GRANT:
            return Unauthorized("Google refused the refresh token", code=INVALID_GRANT, status=response.status_code)
        if response.status_code < 400:
            return Transient("Google's token endpoint answered without a token", code="invalid_response", status=200)
        return Permanent("Google refused the refresh", code=error or f"http_{response.status_code}",
                         status=response.status_code)  # fmt: skip

    @sensitive_variables()
    def revoke(self, *, token: str) -> None:
        response = self._request("POST", settings.GOOGLE_OAUTH_REVOKE_URL, data={"token": token}, secrets=(token,))
        if response.status_code >= 400 and response.status_code != 400:
            self._raise_common(response, "")


class _GoogleAuthResponse(google_auth_transport.Response):
    """A requests answer in the shape google-auth's token client reads."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Any:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


def _tokens(body: dict[str, Any], *, refresh_token: str | None) -> GoogleTokens:
    access_token, expires_in, new_refresh = body.get("access_token"), body.get("expires_in"), body.get("refresh_token")
    try:
        expires_at = timezone.now() + dt.timedelta(seconds=int(expires_in)) if expires_in else None
    except (TypeError, ValueError, OverflowError):
        expires_at = None
        access_token = None  # not a token response we can trust
    if not isinstance(access_token, str) or not access_token:
        raise Transient("Google's token endpoint answered without a token", code="invalid_response", status=200)
    return GoogleTokens(
        access_token=access_token,
        expires_at=expires_at,
        refresh_token=new_refresh if isinstance(new_refresh, str) and new_refresh else refresh_token,
        scopes=str(body.get("scope", "")).split(),
    )


class GoogleAdsClient(BaseClient):
    provider = "google_ads"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(base_url=kwargs.pop("base_url", settings.GOOGLE_ADS_API_URL), **kwargs)
        self.version = settings.GOOGLE_ADS_API_VERSION

    @sensitive_variables()
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

    @sensitive_variables()
    def accessible_customers(self, *, access_token: str) -> list[str]:
        response = self._request(
            "GET",
            f"/{self.version}/customers:listAccessibleCustomers",
            headers=self._headers(access_token),
            secrets=(access_token,),
        )
        body = self._parse(response) or {}
        return [name.split("/", 1)[1] for name in body.get("resourceNames", []) if "/" in name]

    @sensitive_variables()
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
