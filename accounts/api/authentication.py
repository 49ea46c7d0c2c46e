"""DRF authentication with the same Clerk verification as the pages (the middleware already ran it)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.clerk import ClerkRejection, clerk_identity_from_request


class ClerkSessionAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <Clerk session token>`, or the `__session` cookie set by Clerk."""

    def authenticate(self, request):
        django_request = request._request
        identity = getattr(django_request, "clerk", None)
        if identity is not None:
            return identity, None
        result = clerk_identity_from_request(django_request)
        if isinstance(result, ClerkRejection):
            raise exceptions.AuthenticationFailed(f"Session token rejected: {result.reason}.")
        if result is None:
            return None
        return result, None

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
