"""The owners' compliance pages of a store: the audit export page (ask for an export, follow it, download it)
and the Shopify privacy requests page (each request, and the customer data files)."""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.choices import Role
from accounts.decorators import merchant_member_required
from accounts.selectors import MERCHANT_NOT_FOUND
from compliance import exports, storage
from compliance.choices import ActorType, ExportFormat
from compliance.selectors import privacy_request_is_overdue, privacy_request_list
from compliance.services import Actor, request_context
from compliance.storage import download_link
from config.validators import prohibit_surrogates

NOT_OWNER = "Only the store's owners can see and export its audit log."
REQUESTED = "Export requested: it appears below as pending, then succeeded; reload the page to follow it."
NO_FILE = "This export has no file to download (it is {state}, or its file was deleted after retention)."
DATE_ORDER = "The last day must not be before the first."
PAGE_SIZE = 50

_SPLIT = re.compile(r"[\s,]+")


def _values(max_length: int) -> forms.CharField:
    return forms.CharField(
        required=False,
        max_length=exports.MAX_FILTER_VALUES * (max_length + 1),
        validators=[prohibit_surrogates],
        help_text="Separated by commas or spaces; empty for all.",
    )


class AuditExportForm(forms.Form):
    """Days in the store's time zone, both included; the service takes the half-open range they make."""

    first_day = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    last_day = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}))
    actions = _values(100)
    actor_ids = _values(128)
    target_type = forms.CharField(required=False, max_length=100, validators=[prohibit_surrogates])
    target_id = forms.CharField(required=False, max_length=128, validators=[prohibit_surrogates])
    format = forms.ChoiceField(choices=ExportFormat.choices, initial=ExportFormat.NDJSON)

    def clean(self):
        data = super().clean()
        if data.get("first_day") and data.get("last_day") and data["last_day"] < data["first_day"]:
            self.add_error("last_day", DATE_ORDER)
        for name in ("actions", "actor_ids"):
            if name in data:
                data[name] = [value for value in _SPLIT.split(data[name]) if value]
        return data

    def range(self, tz: str) -> tuple[dt.datetime, dt.datetime]:
        zone = zoneinfo.ZoneInfo(tz)
        start = dt.datetime.combine(self.cleaned_data["first_day"], dt.time.min, tzinfo=zone)
        end = dt.datetime.combine(self.cleaned_data["last_day"] + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
        return start, end


def _owner_only(request: HttpRequest) -> HttpResponse | None:
    """The store's own owners only: not its admins or viewers, and never an agency, whatever its grant (the
    log records what the agency itself did there)."""
    if request.membership is None or request.membership.role != Role.OWNER:
        return render(
            request, "compliance/not_owner.html", {"merchant": request.merchant, "message": NOT_OWNER}, status=403
        )
    return None


def _page(request: HttpRequest, form: AuditExportForm, *, status: int = 200) -> HttpResponse:
    return render(
        request,
        "compliance/audit_exports.html",
        {
            "merchant": request.merchant,
            "membership": request.membership,
            "memberships": request.memberships,
            "form": form,
            "exports": exports.audit_export_list(merchant=request.merchant)[:PAGE_SIZE],
        },
        status=status,
    )


def _actor(request: HttpRequest) -> Actor:
    return Actor(type=ActorType.CLERK_USER, id=request.clerk.user_id, label=request.clerk.user_id)


@require_http_methods(["GET", "POST"])
@merchant_member_required
def audit_export_list_page(request: HttpRequest) -> HttpResponse:
    if refused := _owner_only(request):
        return refused
    if request.method == "GET":
        today = timezone.localdate(timezone=zoneinfo.ZoneInfo(request.merchant.timezone))
        return _page(request, AuditExportForm(initial={"first_day": today - dt.timedelta(days=29), "last_day": today}))
    form = AuditExportForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    occurred_from, occurred_to = form.range(request.merchant.timezone)
    data = form.cleaned_data
    try:
        exports.audit_export_create(
            merchant=request.merchant,
            occurred_from=occurred_from,
            occurred_to=occurred_to,
            actions=data["actions"],
            actor_ids=data["actor_ids"],
            target_type=data["target_type"],
            target_id=data["target_id"],
            format=data["format"],
            actor=_actor(request),
            request_ctx=request_context(request),
        )
    except ValidationError as exc:
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
        return _page(request, form, status=400)
    messages.success(request, REQUESTED)
    return redirect("compliance:audit_exports", merchant_id=request.merchant.pk)


@require_POST
@merchant_member_required
def audit_export_download(request: HttpRequest, export_id: int) -> HttpResponse:
    """ "Download": a freshly signed link each time (the re-sign), followed at once — the page never holds a
    link that could expire in an open tab."""
    if refused := _owner_only(request):
        return refused
    export = exports.audit_export_get(merchant=request.merchant, export_id=export_id)
    if export.stored_file() is None:
        messages.error(request, NO_FILE.format(state=export.get_state_display().lower()))
        return redirect("compliance:audit_exports", merchant_id=request.merchant.pk)
    return HttpResponseRedirect(download_link(export).url, status=303)


@require_GET
@merchant_member_required
def privacy_requests(request: HttpRequest) -> HttpResponse:
    """Owners only (the files hold a customer's personal data): anyone else gets the same 404 as a stranger.
    Each view signs fresh 10-minute links; an expired one is answered 403 by the download view."""
    if request.membership is None or request.membership.role != Role.OWNER:  # None: an agency's access
        raise Http404(MERCHANT_NOT_FOUND)
    rows = []
    for item in privacy_request_list(merchant=request.merchant)[:200]:
        link = storage.download_link(item, request=request) if item.stored_file() is not None else None
        rows.append({"request": item, "link": link, "overdue": privacy_request_is_overdue(item)})
    return render(request, "compliance/privacy_requests.html", {"merchant": request.merchant, "rows": rows})
