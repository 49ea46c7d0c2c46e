"""The agency's tokens page: list, create (the token is shown once, on the answer to the POST), revoke.

For the agency's admins only: anyone else (another agency's admin, a member who is not an admin, a removed
member) gets the same 404 as for an agency that does not exist.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import clerk_login_required
from agencies.choices import TokenScope
from agencies.models import Agency
from agencies.tokens import (
    agency_admin_check,
    agency_token_create,
    agency_token_get,
    agency_token_list,
    agency_token_revoke,
    agency_token_store_choices,
)
from compliance.services import request_context

AGENCY_NOT_FOUND = "No such agency among yours."
REVOKED = "Token “{name}” (…{hint}) revoked."


def _admin_agency(request: HttpRequest, agency_id: int) -> Agency:
    agency = Agency.objects.filter(pk=agency_id).first()
    try:
        if agency is None:
            raise PermissionError
        agency_admin_check(agency=agency, clerk_user_id=request.clerk.user_id)
    except PermissionError:
        raise Http404(AGENCY_NOT_FOUND) from None
    return agency


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=100)
    scopes = forms.MultipleChoiceField(choices=TokenScope.choices, widget=forms.CheckboxSelectMultiple)
    merchants = forms.TypedMultipleChoiceField(coerce=int, widget=forms.CheckboxSelectMultiple, label="Stores")
    expires_in_days = forms.IntegerField(
        initial=settings.AGENCY_TOKEN_DEFAULT_DAYS,
        label="Expires in (days)",
        help_text=f"Required; at most {settings.AGENCY_TOKEN_MAX_DAYS}.",
    )

    def __init__(self, *args, agency: Agency, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["merchants"].choices = [(m.pk, m.name) for m in agency_token_store_choices(agency=agency)]


@require_http_methods(["GET", "POST"])
@clerk_login_required
def token_list(request: HttpRequest, agency_id: int) -> HttpResponse:
    agency = _admin_agency(request, agency_id)
    issued = None
    status = 200
    if request.method == "POST":
        form = TokenCreateForm(request.POST, agency=agency)
        if form.is_valid():
            try:
                issued = agency_token_create(
                    agency=agency,
                    created_by=request.clerk.user_id,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    merchant_ids=form.cleaned_data["merchants"],
                    expires_in_days=form.cleaned_data["expires_in_days"],
                    request_context=request_context(request),
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
        if issued is None:
            status = 400
        else:
            form = TokenCreateForm(agency=agency)
    else:
        form = TokenCreateForm(agency=agency)
    response = render(
        request,
        "agencies/tokens.html",
        {
            "agency": agency,
            "tokens": agency_token_list(agency=agency),
            "form": form,
            "issued": issued,
            "now": timezone.now(),
        },
        status=status,
    )
    if issued is not None:
        # The one response that carries the token: no cache may keep a copy.
        response["Cache-Control"] = "no-store"
    return response


@require_POST
@clerk_login_required
def token_revoke(request: HttpRequest, agency_id: int, token_id: int) -> HttpResponse:
    agency = _admin_agency(request, agency_id)
    token = agency_token_revoke(
        token=agency_token_get(agency=agency, token_id=token_id),
        clerk_user_id=request.clerk.user_id,
        request_context=request_context(request),
    )
    messages.success(request, REVOKED.format(name=token.name, hint=token.display_hint))
    return redirect("agencies_tokens:token_list", agency_id=agency.pk)
