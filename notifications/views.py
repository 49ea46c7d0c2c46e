"""Clerk's webhooks (user events drop cached addresses; organization events go to agencies.webhooks), the
List-Unsubscribe landing page, email preferences."""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST
from svix.webhooks import Webhook, WebhookVerificationError

from accounts.decorators import merchant_member_required
from agencies import webhooks as agency_webhooks
from config.api import json_loads
from notifications import selectors, services

logger = logging.getLogger(__name__)

# Events whose data.id is a user whose cached address may now be wrong.
USER_EVENTS = frozenset({"user.updated", "user.deleted"})


@csrf_exempt  # authenticated by the Svix signature, not a browser session
@require_POST
@sensitive_variables("secret", "verifier")  # the Svix signing secret, in any error report of this view
def clerk_webhook(request: HttpRequest) -> HttpResponse:
    secret = settings.CLERK_WEBHOOK_SECRET
    if not secret:
        # Never accept an unsigned event: a forged user.updated is harmless, but the habit is not.
        logger.error("Clerk webhook refused: CLERK_WEBHOOK_SECRET is not set")
        return JsonResponse({"error": "webhook not configured"}, status=503)
    body = request.body
    try:
        verifier = Webhook(secret)
    except Exception:
        logger.error("Clerk webhook refused: CLERK_WEBHOOK_SECRET is not a valid Svix secret (whsec_...)")
        return JsonResponse({"error": "webhook not configured"}, status=503)
    try:
        verifier.verify(body, dict(request.headers))
    except WebhookVerificationError:
        logger.warning(
            "Clerk webhook refused: bad or stale Svix signature (svix-id %s)", request.headers.get("svix-id")
        )
        return JsonResponse({"error": "invalid signature"}, status=400)
    try:
        event = json_loads(body)  # signed, but still bounded: a deep document is a 400, not a RecursionError
        event_type, user_id = event["type"], event["data"]["id"]
    except (ValueError, KeyError, TypeError):
        return JsonResponse({"error": "not a Clerk event"}, status=400)
    if agency_webhooks.is_organization_event(event_type):
        try:
            outcome = agency_webhooks.clerk_organization_event_apply(
                svix_id=request.headers.get("svix-id", ""), event=event
            )
        except agency_webhooks.MalformedEvent as exc:
            return JsonResponse({"error": str(exc)}, status=400)
        return JsonResponse({"ok": True, "outcome": outcome})
    if event_type in USER_EVENTS and isinstance(user_id, str):
        services.user_email_cache_drop(clerk_user_id=user_id)
        logger.info("Clerk webhook %s for %s: cached email dropped", event_type, user_id)
    return JsonResponse({"ok": True})


@csrf_exempt  # RFC 8058 one-click unsubscribe POSTs come from mail providers, without our cookies
@require_http_methods(["GET", "POST"])
@sensitive_variables("token")  # whoever holds it can unsubscribe its recipient
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    if request.method == "GET":
        # GET only shows a button: link scanners follow GET links and must not unsubscribe anyone.
        return render(request, "notifications/unsubscribe.html", {"token": token, "done": False})
    try:
        opt_out = services.notification_unsubscribe(token=token)
    except services.NotificationError as exc:
        return render(request, "notifications/unsubscribe.html", {"error": str(exc)}, status=400)
    return render(request, "notifications/unsubscribe.html", {"done": True, "kind": opt_out.get_kind_display()})


@merchant_member_required
@require_http_methods(["GET", "POST"])
def preferences(request: HttpRequest) -> HttpResponse:
    """A member's own email choices for this merchant."""
    keys = {"merchant_id": request.merchant.pk, "clerk_user_id": request.clerk.user_id}
    if request.method == "POST":
        services.notification_preferences_set(**keys, enabled_kinds=set(request.POST.getlist("kind")))
        messages.success(request, "Email preferences saved.")
        return redirect("notifications:preferences", merchant_id=request.merchant.pk)
    return render(
        request,
        "notifications/preferences.html",
        {"merchant": request.merchant, "preferences": selectors.notification_preference_list(**keys)},
    )
