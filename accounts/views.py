"""Merchant-user pages: sign-in, sign-out, and the merchant home with its switcher."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST

from accounts import dev_sign_in
from accounts.access import MANAGE_AGENCIES, store_access_list

# connectors/views.py and views_shopify.py still import the two decorators from here; their home is
# accounts/decorators.py.
from accounts.decorators import LAST_MERCHANT_COOKIE, clerk_login_required, merchant_member_required
from accounts.forms import DevSignInForm, safe_next_path
from accounts.selectors import member_list
from compliance.choices import ActorType
from compliance.services import Actor, audit_event_record, request_context

logger = logging.getLogger(__name__)

SIGN_IN_REQUIRED = "Please sign in."
NO_SUCH_DEMO_USER = "No such demo user."
NOT_AUTHORIZED_PARTY = "This address ({origin}) is not an authorised origin for sign-in (CLERK_AUTHORIZED_PARTIES)."


@clerk_login_required
def home(request: HttpRequest) -> HttpResponse:
    # Store members and agency staff alike land on a store they may open (an agency-only user: a granted one).
    accesses = store_access_list(clerk_user_id=request.clerk.user_id)
    if not accesses:
        return render(request, "accounts/onboarding.html", {"shopify_add_url": shopify_add_url()})
    preferred = request.COOKIES.get(LAST_MERCHANT_COOKIE, "")
    chosen = next((a for a in accesses if str(a.merchant_id) == preferred), accesses[0])
    return redirect("dashboards:overview", merchant_id=chosen.merchant_id)


def shopify_add_url() -> str | None:
    """Where "Add your Shopify store" leads, once the Shopify connect flow is installed (connectors)."""
    try:
        return reverse("connectors:shopify_add")
    except NoReverseMatch:
        return None


@merchant_member_required
def merchant_home(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "accounts/merchant_home.html",
        {
            "merchant": request.merchant,
            "access": request.access,
            "memberships": request.store_accesses,
            # The store's own people are the store's business: agency staff do not see (or manage) them.
            "members": member_list(merchant=request.merchant) if request.access.agency is None else None,
            "can_manage_agencies": request.access.allows(MANAGE_AGENCIES),
        },
    )


@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if not dev_sign_in.dev_sign_in_enabled():
        if settings.CLERK_SIGN_IN_URL:
            return HttpResponseRedirect(settings.CLERK_SIGN_IN_URL)
        return render(request, "accounts/sign_in_unconfigured.html", status=503)
    if request.method == "POST":
        form = DevSignInForm(request.POST)
        if form.is_valid():
            return _dev_sign_in_post(request, form)
        return _dev_sign_in_page(request, form, status=400)
    return _dev_sign_in_page(request, None, status=200)


def _dev_sign_in_page(request: HttpRequest, form: DevSignInForm | None, *, status: int) -> HttpResponse:
    next_url = form.cleaned_data.get("next", "/") if form is not None else safe_next_path(request.GET.get("next", ""))
    try:
        users = dev_sign_in.demo_user_list()
    except dev_sign_in.SandboxUnavailable as exc:
        messages.error(request, str(exc))
        users = []
    return render(
        request,
        "accounts/dev_sign_in.html",
        {"users": users, "next": next_url or "/", "form": form, "rejection": request.clerk_rejection},
        status=status,
    )


@sensitive_variables("token")
def _dev_sign_in_post(request: HttpRequest, form: DevSignInForm) -> HttpResponse:
    origin = f"{request.scheme}://{request.get_host()}"
    if origin not in settings.CLERK_AUTHORIZED_PARTIES:
        messages.error(request, NOT_AUTHORIZED_PARTY.format(origin=origin))
        return redirect("accounts:sign_in")
    try:
        token = dev_sign_in.dev_session_token_mint(user_id=form.cleaned_data["user_id"], authorized_party=origin)
    except dev_sign_in.SandboxUnavailable as exc:
        messages.error(request, str(exc))
        return redirect("accounts:sign_in")
    if token is None:
        messages.error(request, NO_SUCH_DEMO_USER)
        return redirect("accounts:sign_in")
    response = redirect(form.cleaned_data["next"])
    response.set_cookie(
        settings.CLERK_SESSION_COOKIE,
        token,
        max_age=dev_sign_in.DEV_SESSION_TTL_SECONDS,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure(),
    )
    return response


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    if request.clerk is not None:
        audit_event_record(
            action="user.signed_out",
            actor=Actor(type=ActorType.CLERK_USER, id=request.clerk.user_id, label=request.clerk.user_id),
            target_type="clerk.session",
            target_id=request.clerk.session_id,
            **request_context(request),
        )
    response = redirect("accounts:sign_in")
    response.delete_cookie(settings.CLERK_SESSION_COOKIE, samesite="Lax")
    response.delete_cookie(LAST_MERCHANT_COOKIE, samesite="Lax")
    return response
