"""DRF authentication with the same Clerk verification as the pages (the middleware already ran it)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.clerk import ClerkRejection, clerk_identity_from_request, token_from_cookie


class ClerkSessionAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <Clerk session token>`, or the `__session` cookie set by Clerk.

    A browser sends the cookie to us whichever site made the request, so a request authenticated by the
    cookie must pass Django's CSRF check, as DRF's SessionAuthentication makes it (DRF views are otherwise
    exempt). A bearer token is only sent by code that holds it: no CSRF token is asked of it.
    """

    def authenticate(self, request):
        django_request = request._request
        identity = getattr(django_request, "clerk", None)
        if identity is None:
            result = clerk_identity_from_request(django_request)
            if isinstance(result, ClerkRejection):
                raise exceptions.AuthenticationFailed(f"Session token rejected: {result.reason}.")
            if result is None:
                return None
            identity = result
        if token_from_cookie(django_request):
            self.enforce_csrf(request)
        return identity, None

    def enforce_csrf(self, request) -> None:
        # DRF's own check (CsrfViewMiddleware on this request): unsafe methods need the CSRF cookie and token,
        # and a matching Origin/Referer.
        authentication.SessionAuthentication().enforce_csrf(request)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'


class ClerkSessionAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = ClerkSessionAuthentication
    name = "clerkSession"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "A Clerk session token (RS256 JWT), as sent in the `__session` cookie.",
        }
