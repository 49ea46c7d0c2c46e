"""DRF authentication and permission for agency API tokens (agencies/tokens.py has the rules).

`AgencyTokenAuthentication` runs before Clerk's (REST_FRAMEWORK's DEFAULT_AUTHENTICATION_CLASSES) and claims
only `Authorization: Bearer mkt_at_…`: such a request is ours to accept or refuse, and Clerk's SDK never sees
the token (accounts.clerk skips it too, for the middleware). Anything else is left to the next class.

A token is a principal of its own, not a Clerk user: every view whose permission is `IsClerkUser` refuses it
(403), and only views that name a scope per method (`token_scopes`) and check `TokenScopeRequired` take it.
Tokens are API-only: the pages read `request.clerk`, which a token never sets.
"""

from __future__ import annotations

from dataclasses import dataclass

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from accounts.clerk import ClerkIdentity
from agencies.models import AgencyToken
from agencies.token_format import PREFIX, looks_like_token
from agencies.tokens import TokenRejected, agency_token_authenticate

SCOPE_MISSING = "This agency token lacks the {scope} scope."
NOT_FOR_TOKENS = "Agency tokens cannot be used here; sign in with a Clerk session token."


@dataclass(frozen=True)
class AgencyTokenPrincipal:
    """`request.user` of a token request (the token itself is `request.auth`)."""

    token_id: int
    agency_id: int
    label: str

    is_authenticated = True
    is_anonymous = False


class AgencyTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        header = request._request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return None
        raw = header.removeprefix("Bearer ").strip()
        if not looks_like_token(raw):
            return None
        # The store the URL names is read with the token (one statement); token_store_access_get still decides.
        merchant_id = (getattr(request, "parser_context", None) or {}).get("kwargs", {}).get("merchant_id")
        try:
            token = agency_token_authenticate(
                raw=raw,
                ip=request._request.META.get("REMOTE_ADDR") or None,
                merchant_id=merchant_id if isinstance(merchant_id, int) else None,
            )
        except TokenRejected as exc:
            raise exceptions.AuthenticationFailed(exc.public) from None
        principal = AgencyTokenPrincipal(
            token_id=token.pk, agency_id=token.agency_id, label=f"{token.name} (…{token.display_hint})"
        )
        return principal, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class TokenScopeRequired(BasePermission):
    """A Clerk user passes (their store access is the view's to check); an agency token needs the view's scope
    for the method (`view.token_scopes`, e.g. {"GET": "metrics:read"}); a method without one refuses tokens."""

    message = NOT_FOR_TOKENS

    def has_permission(self, request, view) -> bool:
        if isinstance(request.user, ClerkIdentity):
            return True
        token = request.auth
        if not isinstance(token, AgencyToken):
            return False
        scope = getattr(view, "token_scopes", {}).get(request.method)
        if scope is None:
            self.message = NOT_FOR_TOKENS
            return False
        if scope not in token.scopes:
            self.message = SCOPE_MISSING.format(scope=scope)
            return False
        return True


class AgencyTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = AgencyTokenAuthentication
    name = "agencyToken"

    def get_security_requirement(self, auto_schema):
        # Listed only on operations that take a token, so the schema says which routes an agency may call.
        scopes = getattr(auto_schema.view, "token_scopes", {})
        return {self.name: []} if scopes.get(auto_schema.method.upper()) else None

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": f"{PREFIX}…",
            "description": (
                f"An agency API token (`{PREFIX}` + 49 characters), created by an agency admin on the agency's"
                " tokens page. It reaches only the stores it lists whose grant to the agency is active, with its"
                " scopes (`metrics:read` for the metrics, `reports:read` for dashboard templates); a missing scope"
                " answers 403, an invalid, expired or revoked token 401, too many requests 429 with Retry-After."
            ),
        }
