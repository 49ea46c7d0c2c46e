"""Who may see a page: a signed-in Clerk user with access to the store in the URL (accounts.access)."""

from __future__ import annotations

import functools
from urllib.parse import urlencode

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import redirect
from django.urls import reverse

from accounts.access import store_access_list, store_access_pick

# The store a member last opened: "/" lands there next time (accounts.views.home).
LAST_MERCHANT_COOKIE = "last_merchant"


def clerk_login_required(view):
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.clerk is None:
            # encoded: the page's own query (`?start=...&end=...`) must come back whole after signing in
            return redirect(f"{reverse('accounts:sign_in')}?{urlencode({'next': request.get_full_path()})}")
        return view(request, *args, **kwargs)

    return wrapper


def merchant_member_required(view):
    """Resolve `merchant_id` from the URL against the user's store access: 404 for any store they cannot see.

    Sets `request.access` (accounts.access.StoreAccess: a membership or an agency grant), `request.merchant`,
    and `request.store_accesses` (every store they may open, for the store switcher; `request.memberships` is
    the same list under its old name). `request.membership` is the Membership for a store member, None for
    agency access: code that still reads it must not assume it is set.
    """

    @functools.wraps(view)
    @clerk_login_required
    def wrapper(request: HttpRequest, merchant_id: int, *args, **kwargs):
        # One pair of queries answers both the access check and the store switcher that every store page shows.
        request.store_accesses = store_access_list(clerk_user_id=request.clerk.user_id)
        request.memberships = request.store_accesses
        request.access = store_access_pick(request.store_accesses, merchant_id)  # 404: same whether it exists
        request.merchant = request.access.merchant
        request.membership = request.access.membership
        response = view(request, *args, **kwargs)
        # Remember the store so "/" lands here next time; access is still checked on every request.
        response.set_cookie(LAST_MERCHANT_COOKIE, str(request.merchant.pk), samesite="Lax", secure=request.is_secure())
        return response

    return wrapper


def require_action(request: HttpRequest, action: str) -> None:
    """403 unless the page's access allows `action` (after `merchant_member_required` found the store)."""
    if not request.access.allows(action):
        raise PermissionDenied(f"Your access to this store does not allow {action.replace('_', ' ')}.")
