from rest_framework.permissions import BasePermission

from accounts.clerk import ClerkIdentity


class IsClerkUser(BasePermission):
    message = "Sign in with a Clerk session token."

    def has_permission(self, request, view) -> bool:
        return isinstance(request.user, ClerkIdentity)
