"""Who may see a page: a signed-in Clerk user, and a member of the merchant in the URL."""

from __future__ import annotations

import functools
from urllib.parse import urlencode

from django.http import Http404, HttpRequest
from django.shortcuts import redirect
from django.urls import reverse

from accounts.selectors import MERCHANT_NOT_FOUND, membership_list

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
    """Resolve `merchant_id` from the URL against the user's memberships: 404 for anyone else's merchant."""

    @functools.wraps(view)
    @clerk_login_required
    def wrapper(request: HttpRequest, merchant_id: int, *args, **kwargs):
        # One query answers both the access check and the store switcher that every merchant page shows.
        request.memberships = membership_list(clerk_user_id=request.clerk.user_id)
        request.membership = next((m for m in request.memberships if m.merchant_id == merchant_id), None)
        if request.membership is None:
            raise Http404(MERCHANT_NOT_FOUND)  # the same answer whether the merchant exists or not
        request.merchant = request.membership.merchant
        response = view(request, *args, **kwargs)
        # Remember the store so "/" lands here next time; membership is still checked on every request.
        response.set_cookie(LAST_MERCHANT_COOKIE, str(request.merchant.pk), samesite="Lax", secure=request.is_secure())
        return response

    return wrapper
