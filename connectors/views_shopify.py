"""Shopify's pages: "Add a Shopify store", the install request from Shopify, the callback, the claim, and
the webhook endpoint. The work is in connectors.shopify; these views move cookies and choose answers.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.models import Membership
from accounts.views import clerk_login_required
from compliance.services import request_context
from connectors import shopify
from connectors.forms import ShopifyAddForm
from connectors.models import WebhookStatus

logger = logging.getLogger(__name__)

INSTALLED = "{name} is connected. Its data will appear here as it arrives."
STATE_COOKIE_AGE = int(shopify.STATE_MAX_AGE.total_seconds())


def _failed(request: HttpRequest, message: str, status: int) -> HttpResponse:
    return render(request, "connectors/oauth_failed.html", {"message": message}, status=status)


def _state_cookie(request: HttpRequest, response: HttpResponse, nonce: str) -> None:
    response.set_signed_cookie(
        shopify.STATE_COOKIE, nonce, salt=shopify.STATE_SALT, max_age=STATE_COOKIE_AGE,
        httponly=True, samesite="Lax", secure=request.is_secure(),
    )  # fmt: skip


def _to_shopify(request: HttpRequest, url: str, nonce: str) -> HttpResponse:
    response = redirect(url)
    _state_cookie(request, response, nonce)
    return response


def _user_id(request: HttpRequest) -> str:
    return request.clerk.user_id if request.clerk is not None else ""


@require_http_methods(["GET", "POST"])
@clerk_login_required
def shopify_add(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        # ?shop= prefills the field (a reconnect link can name the store); it is only shown back, escaped.
        shop = str(request.GET.get("shop", "")).replace("\x00", "")[:255]
        return render(request, "connectors/shopify_add.html", {"errors": {}, "shop": shop})
    form = ShopifyAddForm(request.POST)
    if not form.is_valid():
        shop = str(form.data.get("shop", "")).replace("\x00", "")[:255]
        errors = {field: list(errs) for field, errs in form.errors.items()}
        return render(request, "connectors/shopify_add.html", {"errors": errors, "shop": shop}, status=400)
    shop = form.cleaned_data["shop"]
    url, nonce = shopify.install_begin(shop=shop, clerk_user_id=request.clerk.user_id)
    # Not a redirect: the page's CSP (form-action 'self') forbids a form submission to end on another origin,
    # and each shop is its own origin. A navigation from our page is allowed; the state stays bound to this
    # browser by its cookie and single use.
    response = render(request, "connectors/shopify_continue.html", {"url": url, "shop": shop})
    _state_cookie(request, response, nonce)
    return response


@sensitive_variables("nonce")
@require_GET
def shopify_install(request: HttpRequest) -> HttpResponse:
    """Shopify opens the App URL signed: on install, and each time the merchant opens the app."""
    try:
        shop = shopify.query_verify(dict(request.GET.lists()))
    except shopify.ShopifyFailed as exc:
        return _failed(request, exc.message, exc.status)
    user_id = _user_id(request)
    if user_id:
        member = Membership.objects.filter(
            clerk_user_id=user_id, merchant__shop_domain=shop, merchant__is_active=True
        ).first()
        if member is not None and shopify.installed(merchant=member.merchant):
            return redirect("dashboards:overview", merchant_id=member.merchant_id)
    url, nonce = shopify.install_begin(shop=shop, clerk_user_id=user_id)
    return _to_shopify(request, url, nonce)


@sensitive_variables("params", "cookie_nonce", "outcome")
@require_GET
def shopify_callback(request: HttpRequest) -> HttpResponse:
    cookie_nonce = request.get_signed_cookie(
        shopify.STATE_COOKIE, default="", salt=shopify.STATE_SALT, max_age=STATE_COOKIE_AGE
    )
    try:
        outcome = shopify.callback_complete(
            params=dict(request.GET.lists()),
            cookie_nonce=cookie_nonce,
            clerk_user_id=_user_id(request),
            request_ctx=request_context(request),
        )
    except shopify.ShopifyFailed as exc:
        return _failed(request, exc.message, exc.status)
    if outcome.merchant is not None:
        messages.success(request, INSTALLED.format(name=outcome.merchant.name))
        response = redirect("dashboards:overview", merchant_id=outcome.merchant.pk)
    else:
        response = redirect(f"{reverse('connectors:shopify_claim')}?shop={outcome.shop_domain}")
        response.set_signed_cookie(
            shopify.CLAIM_COOKIE, outcome.claim_token, salt=shopify.CLAIM_SALT,
            max_age=settings.SHOPIFY_CLAIM_MAX_AGE_SECONDS, httponly=True, samesite="Lax", secure=request.is_secure(),
        )  # fmt: skip
    response.delete_cookie(shopify.STATE_COOKIE, samesite="Lax")
    return response


@sensitive_variables("claim_token")
@require_http_methods(["GET", "POST"])
@clerk_login_required
def shopify_claim(request: HttpRequest) -> HttpResponse:
    claim_token = request.get_signed_cookie(
        shopify.CLAIM_COOKIE, default="", salt=shopify.CLAIM_SALT, max_age=settings.SHOPIFY_CLAIM_MAX_AGE_SECONDS
    )
    try:
        shop = shopify.shop_domain_clean(request.GET.get("shop", "") or request.POST.get("shop", ""))
    except shopify.ShopifyFailed:
        return _failed(request, shopify.CLAIM_INVALID, 400)
    if request.method == "GET":
        pending = shopify.pending_get(claim_token=claim_token, shop=shop)
        if pending is None:
            return _failed(request, shopify.CLAIM_INVALID, 403)
        name = pending.shop.get("name") or shop
        return render(request, "connectors/shopify_claim.html", {"shop": shop, "name": name})
    try:
        merchant = shopify.pending_claim(
            claim_token=claim_token, shop=shop, clerk_user_id=request.clerk.user_id,
            request_ctx=request_context(request),
        )  # fmt: skip
    except shopify.ShopifyFailed as exc:
        return _failed(request, exc.message, exc.status)
    messages.success(request, INSTALLED.format(name=merchant.name))
    response = redirect("dashboards:overview", merchant_id=merchant.pk)
    response.delete_cookie(shopify.CLAIM_COOKIE, samesite="Lax")
    return response


@sensitive_post_parameters()
@csrf_exempt
@require_POST
def shopify_webhook(request: HttpRequest) -> HttpResponse:
    """Verify, store, answer 200; the work happens in a task (Shopify wants an answer within ~5 s)."""
    body = request.body
    if not shopify.webhook_hmac_valid(body, shopify.webhook_header(request.headers, "Hmac-Sha256")):
        return HttpResponse("invalid signature", status=401, content_type="text/plain")
    try:
        delivery, created = shopify.webhook_receive(headers=request.headers, body=body)
    except shopify.WebhookRejected as exc:
        return HttpResponse(str(exc), status=exc.status, content_type="text/plain")
    if created or delivery.status == WebhookStatus.RECEIVED:
        # A retry of a delivery not processed yet (its task lost with the broker, say) enqueues it again;
        # processing is idempotent. A processed one is answered 200 and left alone.
        from connectors.tasks import shopify_webhook_process_task

        shopify_webhook_process_task.delay_on_commit(delivery.pk)
    return HttpResponse(status=200)
