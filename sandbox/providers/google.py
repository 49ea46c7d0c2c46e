"""Google OAuth 2.0 and Google Ads stand-in (shared/PROVIDERS.md §2), mounted under ``/google``.

Point the app at it with GOOGLE_OAUTH_AUTHORIZE_URL=<base>/google/o/oauth2/v2/auth,
GOOGLE_OAUTH_TOKEN_URL=<base>/google/token, GOOGLE_OAUTH_REVOKE_URL=<base>/google/revoke and
GOOGLE_ADS_API_URL=<base>/google/ads. Tokens are really checked: an access token past its expiry
gets 401 UNAUTHENTICATED / OAUTH_TOKEN_EXPIRED from the Ads routes, a revoked refresh token gets
400 invalid_grant from the token endpoint.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import secrets
import threading
import time
from typing import Any
from urllib.parse import urlencode

from werkzeug.wrappers import Response

from sandbox.routing import Context, Route, json_response, read_json_object

ACCESS_TOKEN_TTL = 3599
DEFAULT_SCOPE = "https://www.googleapis.com/auth/adwords"
DEFAULT_CUSTOMERS = ("1234567890",)


def google_error_body(status: int, message: str) -> dict[str, Any]:
    names = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 429: "RESOURCE_EXHAUSTED"}
    return {"error": {"code": status, "message": message, "status": names.get(status, "INTERNAL")}}


def token_error_body(status: int, message: str) -> dict[str, Any]:
    # The token endpoint speaks RFC 6749 errors, not the API envelope.
    return {"error": "server_error" if status >= 500 else "invalid_request", "error_description": message}


class GoogleState:
    """Authorization codes, refresh tokens and access tokens of one fake Google project."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.codes: dict[str, dict[str, Any]] = {}
            self.refresh_tokens: dict[str, dict[str, Any]] = {}
            self.access_tokens: dict[str, dict[str, Any]] = {}
            self.deny_next_consent = False
            self.omit_refresh_token = False  # the next code exchange sends no refresh_token
            self.rotate_refresh_tokens = False  # refresh grants answer with a new refresh_token
            self.customers: list[str] = list(DEFAULT_CUSTOMERS)

    def configure(self, options: dict[str, Any]) -> None:
        with self._lock:
            for name in ("deny_next_consent", "omit_refresh_token", "rotate_refresh_tokens"):
                if name in options:
                    setattr(self, name, bool(options[name]))
            if "customers" in options:
                self.customers = [str(c) for c in options["customers"]]

    def take_deny(self) -> bool:
        with self._lock:
            deny, self.deny_next_consent = self.deny_next_consent, False
            return deny

    def new_code(self, grant: dict[str, Any]) -> str:
        code = "4/" + secrets.token_urlsafe(24)
        with self._lock:
            self.codes[code] = grant
        return code

    def take_code(self, code: str) -> dict[str, Any] | None:
        with self._lock:
            return self.codes.pop(code, None)

    def issue(self, *, scope: str, refresh_token: str | None = None, ttl: int = ACCESS_TOKEN_TTL) -> dict[str, Any]:
        """A new access token (and a refresh token unless one is given); returns the token response."""
        access = "ya29." + secrets.token_urlsafe(32)
        with self._lock:
            if refresh_token is None:
                refresh_token = "1//" + secrets.token_urlsafe(40)
                self.refresh_tokens[refresh_token] = {"scope": scope, "revoked": False}
            self.access_tokens[access] = {"expires_at": time.time() + ttl, "refresh_token": refresh_token}
        return {"access_token": access, "expires_in": ttl, "refresh_token": refresh_token, "scope": scope}

    def refresh(self, refresh_token: str) -> dict[str, Any] | None:
        with self._lock:
            record = self.refresh_tokens.get(refresh_token)
            if record is None or record["revoked"]:
                return None
            rotate = self.rotate_refresh_tokens
            scope = record["scope"]
            if rotate:
                record["revoked"] = True
        if rotate:
            return self.issue(scope=scope)
        body = self.issue(scope=scope, refresh_token=refresh_token)
        del body["refresh_token"]  # Google normally keeps the refresh token as it is
        return body

    def revoke(self, token: str) -> bool:
        with self._lock:
            if token in self.refresh_tokens:
                self.refresh_tokens[token]["revoked"] = True
                for record in self.access_tokens.values():
                    if record["refresh_token"] == token:
                        record["expires_at"] = 0
                return True
            if token in self.access_tokens:
                self.access_tokens[token]["expires_at"] = 0
                return True
            return False

    def expire_access_token(self, token: str) -> bool:
        with self._lock:
            if token not in self.access_tokens:
                return False
            self.access_tokens[token]["expires_at"] = time.time() - 1
            return True

    def check_access_token(self, token: str) -> str | None:
        """None when valid, else the Ads authentication error name."""
        with self._lock:
            record = self.access_tokens.get(token)
            if record is None:
                return "OAUTH_TOKEN_INVALID"
            if record["expires_at"] == 0:
                return "OAUTH_TOKEN_REVOKED"
            if record["expires_at"] <= time.time():
                return "OAUTH_TOKEN_EXPIRED"
            return None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy({"customers": self.customers})


# --- handlers --------------------------------------------------------------------------------------


def authorize(ctx: Context) -> Response:
    """Consent is given at once (or refused, once, after `deny_next_consent`) and the browser sent back."""
    args = ctx.request.args
    redirect_uri, state = args.get("redirect_uri", ""), args.get("state", "")
    if not redirect_uri or not args.get("client_id"):
        return json_response(token_error_body(400, "redirect_uri and client_id are required"), status=400)
    if ctx.state.google.take_deny():
        query = {"error": "access_denied", "state": state}
    else:
        code = ctx.state.google.new_code(
            {
                "client_id": args.get("client_id"),
                "redirect_uri": redirect_uri,
                "scope": args.get("scope") or DEFAULT_SCOPE,
                "offline": args.get("access_type") == "offline",
                "challenge": args.get("code_challenge"),
                "challenge_method": args.get("code_challenge_method", "plain"),
            }
        )
        query = {"code": code, "state": state, "scope": args.get("scope") or DEFAULT_SCOPE}
    separator = "&" if "?" in redirect_uri else "?"
    return Response(status=302, headers={"Location": f"{redirect_uri}{separator}{urlencode(query)}"})


def _grant_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status=status)


def token(ctx: Context) -> Response:
    form = ctx.request.form
    if not form.get("client_id") or not form.get("client_secret"):
        return _grant_error("invalid_client", "The OAuth client was not found.", 401)
    google = ctx.state.google
    grant_type = form.get("grant_type")
    if grant_type == "refresh_token":
        body = google.refresh(form.get("refresh_token", ""))
        if body is None:
            return _grant_error("invalid_grant", "Token has been expired or revoked.")
        return json_response({**body, "token_type": "Bearer"})
    if grant_type == "authorization_code":
        grant = google.take_code(form.get("code", ""))
        if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
            return _grant_error("invalid_grant", "Malformed auth code.")
        if grant["challenge"]:
            verifier = form.get("code_verifier", "")
            if grant["challenge_method"] == "S256":
                digest = hashlib.sha256(verifier.encode()).digest()
                computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
            else:
                computed = verifier
            if computed != grant["challenge"]:
                return _grant_error("invalid_grant", "Invalid code verifier.")
        body = google.issue(scope=grant["scope"])
        if not grant["offline"] or google.omit_refresh_token:
            body.pop("refresh_token")
        return json_response({**body, "token_type": "Bearer"})
    return _grant_error("unsupported_grant_type", f"Invalid grant_type: {grant_type}")


def revoke(ctx: Context) -> Response:
    token_value = ctx.request.form.get("token") or ctx.request.args.get("token", "")
    if not ctx.state.google.revoke(token_value):
        return _grant_error("invalid_token", "Token expired or revoked")
    return json_response({})


def _ads_auth(ctx: Context) -> Response | None:
    scheme, _, value = ctx.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not value:
        reason, message = (
            "AUTHENTICATION_ERROR",
            ("Request is missing required authentication credential. Expected OAuth 2 access token."),
        )
    else:
        reason = ctx.state.google.check_access_token(value.strip())
        if reason is None:
            return None
        message = (
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or "
            "other valid authentication credential."
        )
    body = google_error_body(401, message)
    body["error"]["details"] = [
        {
            "@type": "type.googleapis.com/google.ads.googleads.v24.errors.GoogleAdsFailure",
            "errors": [{"errorCode": {"authenticationError": reason}, "message": message}],
            "requestId": secrets.token_hex(8),
        }
    ]
    return json_response(body, status=401)


def ads_customers(ctx: Context, version: str) -> Response:
    refused = _ads_auth(ctx)
    if refused is not None:
        return refused
    customers = ctx.state.google.snapshot()["customers"]
    return json_response({"resourceNames": [f"customers/{c}" for c in customers]})


def ads_search(ctx: Context, version: str, customer_id: str) -> Response:
    refused = _ads_auth(ctx)
    if refused is not None:
        return refused
    read_json_object(ctx.request)
    return json_response(
        {
            "results": [
                {
                    "campaign": {"resourceName": f"customers/{customer_id}/campaigns/1", "id": "1", "name": "Brand"},
                    "metrics": {"costMicros": "1250000", "clicks": "42", "impressions": "1000"},
                },
            ],
            "fieldMask": "campaign.id,campaign.name,metrics.costMicros,metrics.clicks,metrics.impressions",
        }
    )


# --- control ---------------------------------------------------------------------------------------


def control_tokens_create(ctx: Context) -> Response:
    """Issue a refresh + access token pair directly (as if a user had consented); `ttl` may be negative."""
    payload = read_json_object(ctx.request)
    ttl = int(payload.get("ttl", ACCESS_TOKEN_TTL))
    body = ctx.state.google.issue(scope=str(payload.get("scope") or DEFAULT_SCOPE), ttl=ttl)
    return json_response(body, status=201)


def control_tokens_expire(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    if not ctx.state.google.expire_access_token(str(payload.get("access_token", ""))):
        return json_response({"error": "unknown access token"}, status=404)
    return Response(status=204)


def control_tokens_revoke(ctx: Context) -> Response:
    payload = read_json_object(ctx.request)
    if not ctx.state.google.revoke(str(payload.get("token", ""))):
        return json_response({"error": "unknown token"}, status=404)
    return Response(status=204)


def control_configure(ctx: Context) -> Response:
    ctx.state.google.configure(read_json_object(ctx.request))
    return Response(status=204)


ROUTES = (
    Route("google.oauth.authorize", "/google/o/oauth2/v2/auth", ("GET",), authorize, token_error_body),
    Route("google.oauth.token", "/google/token", ("POST",), token, token_error_body),
    Route("google.oauth.revoke", "/google/revoke", ("POST",), revoke, token_error_body),
    Route(
        "google.ads.customers.list",
        "/google/ads/<version>/customers:listAccessibleCustomers",
        ("GET",),
        ads_customers,
        google_error_body,
    ),
    Route(
        "google.ads.search",
        "/google/ads/<version>/customers/<customer_id>/googleAds:search",
        ("POST",),
        ads_search,
        google_error_body,
    ),
    Route("control.google.tokens.create", "/_control/google/tokens", ("POST",), control_tokens_create, control=True),
    Route(
        "control.google.tokens.expire", "/_control/google/tokens/expire", ("POST",), control_tokens_expire, control=True
    ),
    Route(
        "control.google.tokens.revoke", "/_control/google/tokens/revoke", ("POST",), control_tokens_revoke, control=True
    ),
    Route("control.google.configure", "/_control/google/configure", ("POST",), control_configure, control=True),
)
