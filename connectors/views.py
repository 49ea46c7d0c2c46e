"""Merchant pages: the connections list, API-key connect form, OAuth start and callback, disconnect.

Input is validated by a form (connectors.forms) before any provider is called. The API key (a POST
parameter) and every local that holds a key, code or token are marked sensitive, so Django's error
reports show none of them. (The callback's query string itself, code included, is shown by Django's
reporter in its GET section whatever the marks say; the code is single-use and short-lived.)
"""

from __future__ import annotations

import dataclasses

from django.contrib import messages
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_POST

from accounts.access import MANAGE_CONNECTORS
from accounts.views import clerk_login_required, merchant_member_required, shopify_add_url
from compliance.services import request_context
from connectors import attentive, oauth, services
from connectors.choices import API_KEY_PROVIDERS, OAUTH_PROVIDERS, Provider
from connectors.consent import consent_origins
from connectors.forms import ApiKeyConnectForm, OAuthCallbackForm
from connectors.selectors import credential_get, source_checklist
from dashboards.middleware import allow_form_action

CONNECTED = "{provider} connected: {label}."
DISCONNECTED = "{provider} disconnected."


def _callback_uri(request: HttpRequest, provider: str) -> str:
    return request.build_absolute_uri(reverse("connectors:oauth_callback", kwargs={"provider": provider}))


def _page(request: HttpRequest, *, form_errors: dict | None = None, form_values: dict | None = None, status=200):
    can_manage = request.access.allows(MANAGE_CONNECTORS)
    # Shopify is connected by its own add/install flow (when this build has it), not by a form on this page.
    elsewhere = {"shopify": shopify_add_url()}
    sources = [
        dataclasses.replace(s, connect_url=elsewhere.get(s.provider.value) or "") if not s.connect_kind else s
        for s in source_checklist(merchant=request.merchant)
    ]
    if form_values is None and request.GET.get("provider") in API_KEY_PROVIDERS:
        form_values = {"provider": request.GET["provider"]}  # "Enter a new key" preselects the source
    response = render(
        request,
        "connectors/list.html",
        {
            "merchant": request.merchant,
            "access": request.access,
            "can_manage": can_manage,
            "memberships": request.store_accesses,
            "sources": sources,
            "has_connections": any(s.connections for s in sources),
            "api_key_providers": [Provider(p) for p in API_KEY_PROVIDERS],
            "form_errors": form_errors or {},
            "form_values": form_values or {},
        },
        status=status,
    )
    # Only a page that carries the connect buttons may send a form to the providers' consent pages.
    return allow_form_action(response, consent_origins() if can_manage else ())


@require_GET
@merchant_member_required
def connector_list(request: HttpRequest) -> HttpResponse:
    return _page(request)


@sensitive_post_parameters("api_key")
@sensitive_variables("form")
@require_POST
@merchant_member_required
def api_key_connect(request: HttpRequest) -> HttpResponse:
    form = ApiKeyConnectForm(request.POST)
    # What the page shows back (never the key); NUL would only garble it.
    values = {name: str(form.data.get(name, "")).replace("\x00", "") for name in ("provider", "label")}
    if not request.access.allows(MANAGE_CONNECTORS):
        return _page(request, form_errors={"form": [oauth.NOT_MANAGER]}, form_values=values, status=403)
    if not form.is_valid():
        return _page(request, form_errors=_field_errors(form.errors), form_values=values, status=400)
    try:
        credential = services.credential_connect_api_key(
            merchant=request.merchant,
            provider=form.cleaned_data["provider"],
            api_key=form.cleaned_data["api_key"],
            label=form.cleaned_data["label"],
            actor=services.clerk_actor(request.clerk.user_id),
            request_ctx=request_context(request),
        )
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"form": exc.messages}
        return _page(request, form_errors=_field_errors(errors), form_values=values, status=400)
    except (services.ApiKeyRejected, services.ApiKeyMissingScope) as exc:
        return _page(request, form_errors={"api_key": [exc.message]}, form_values=values, status=422)
    except services.ProviderUnavailable as exc:
        return _page(request, form_errors={"form": [exc.message]}, form_values=values, status=503)
    messages.success(
        request, CONNECTED.format(provider=credential.get_provider_display(), label=credential.account_label)
    )
    return redirect("connectors:list", merchant_id=request.merchant.pk)


def _field_errors(errors) -> dict[str, list[str]]:
    """Form errors as the template reads them: per field, and the form's own under "form"."""
    return {("form" if field == NON_FIELD_ERRORS else field): list(messages_) for field, messages_ in errors.items()}


@require_POST
@merchant_member_required
def oauth_start(request: HttpRequest, provider: str) -> HttpResponse:
    try:
        url = oauth.oauth_start(
            access=request.access,
            clerk_user_id=request.clerk.user_id,
            provider=provider,
            redirect_uri=_callback_uri(request, provider),
        )
    except oauth.OAuthFailed as exc:
        return render(request, "connectors/oauth_failed.html", {"message": exc.message}, status=403)
    return redirect(url)


@sensitive_variables("query", "credential")
@require_GET
@clerk_login_required
def oauth_callback(request: HttpRequest, provider: str) -> HttpResponse:
    if provider not in OAUTH_PROVIDERS:
        return render(request, "connectors/oauth_failed.html", {"message": oauth.STATE_INVALID}, status=404)
    query = OAuthCallbackForm(request.GET)
    if not query.is_valid():
        # Nothing is looked up or sent to the provider for a query that could not be genuine.
        return render(request, "connectors/oauth_failed.html", {"message": oauth.STATE_INVALID}, status=400)
    try:
        credential = oauth.oauth_complete(
            provider=provider,
            state=query.cleaned_data["state"],
            code=query.cleaned_data["code"],
            error=query.cleaned_data["error"],
            clerk_user_id=request.clerk.user_id,
            redirect_uri=_callback_uri(request, provider),
            actor=services.clerk_actor(request.clerk.user_id),
            request_ctx=request_context(request),
        )
    except oauth.OAuthFailed as exc:
        return render(request, "connectors/oauth_failed.html", {"message": exc.message}, status=400)
    messages.success(
        request, CONNECTED.format(provider=credential.get_provider_display(), label=credential.account_label)
    )
    return redirect("connectors:list", merchant_id=credential.merchant_id)


@require_POST
@merchant_member_required
def credential_disconnect(request: HttpRequest, credential_id: int) -> HttpResponse:
    credential = credential_get(merchant=request.merchant, credential_id=credential_id)
    if not request.access.allows(MANAGE_CONNECTORS):
        return _page(request, form_errors={"form": [oauth.NOT_MANAGER]}, status=403)
    services.credential_revoke(
        credential_id=credential.pk,
        actor=services.clerk_actor(request.clerk.user_id),
        request_ctx=request_context(request),
    )
    messages.success(request, DISCONNECTED.format(provider=credential.get_provider_display()))
    return redirect("connectors:list", merchant_id=request.merchant.pk)


@csrf_exempt  # authenticated by the per-webhook HMAC signature, not a browser session
@require_POST
def attentive_webhook(request: HttpRequest, public_id: str) -> HttpResponse:
    """Attentive's event deliveries (connectors.attentive): 200 stored (or already stored), 400 not an event we
    can store, 401 unsigned or badly signed, 404 unknown webhook, 503 not stored — deliver again."""
    status, body = attentive.attentive_delivery_receive(
        public_id=public_id, body=request.body, signature=request.META.get(attentive.SIGNATURE_HEADER)
    )
    return JsonResponse(body, status=status)
