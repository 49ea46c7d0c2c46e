"""Dashboard templates from the pages: open one, save a page as one, edit and delete them.

Each answers with a redirect and a message; the pages that show templates are in dashboards/views.py.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.access import EDIT_TEMPLATES
from accounts.decorators import merchant_member_required, require_action
from compliance.choices import ActorType
from compliance.services import Actor, request_context
from config.validators import has_surrogates
from dashboards import selectors
from dashboards.forms import DashboardTemplateEditForm, DashboardTemplateSaveForm
from dashboards.layouts import PAGE_LAYOUTS, STARTER_TEMPLATES
from dashboards.services import (
    DashboardTemplateConflict,
    dashboard_template_apply_record,
    dashboard_template_create,
    dashboard_template_delete,
    dashboard_template_update,
)


def _actor(request: HttpRequest) -> Actor:
    return Actor(type=ActorType.CLERK_USER, id=request.clerk.user_id, label=request.clerk.user_id)


@require_POST
@merchant_member_required
def template_apply(request: HttpRequest) -> HttpResponse:
    """The template picker: record the choice and open the template with live data."""
    choice = request.POST.get("template", "")
    if choice.startswith("starter:") and choice.removeprefix("starter:") in STARTER_TEMPLATES:
        return redirect("dashboards:starter_detail", request.merchant.pk, choice.removeprefix("starter:"))
    template = selectors.dashboard_template_viewable_get(
        merchant=request.merchant, template_id=choice, clerk_user_id=request.clerk.user_id
    )
    dashboard_template_apply_record(
        template=template, actor=_actor(request), request_context=request_context(request), merchant=request.merchant
    )
    return redirect("dashboards:template_detail", request.merchant.pk, template.pk)


def _form_error_text(form) -> str:
    return " ".join(message for messages_ in form.errors.values() for message in messages_)


def _back_url(request: HttpRequest) -> str:
    """Where a failed save returns to: the page it came from if that is one of ours, else the template list."""
    back = request.POST.get("back", "")
    if "\x00" in back or has_surrogates(back) or not url_has_allowed_host_and_scheme(back, {request.get_host()}):
        return reverse("dashboards:template_list", args=[request.merchant.pk])
    return back


@require_POST
@merchant_member_required
def template_save(request: HttpRequest) -> HttpResponse:
    """ "Save as template" from a built-in page, a starter or another template."""
    require_action(request, EDIT_TEMPLATES)  # 403: an agency viewer reads templates, never changes them
    form = DashboardTemplateSaveForm(request.POST)
    if not form.is_valid():
        if "source" in form.errors:
            raise Http404("Nothing to save from.")
        messages.error(request, f"Not saved: {_form_error_text(form)}")
        return redirect(_back_url(request))
    kind, _, key = form.cleaned_data["source"].partition(":")
    if kind == "page" and key in PAGE_LAYOUTS:
        layout = PAGE_LAYOUTS[key]
    elif kind == "starter" and key in STARTER_TEMPLATES:
        layout = STARTER_TEMPLATES[key]["layout"]
    elif kind == "template":
        layout = selectors.dashboard_template_viewable_get(
            merchant=request.merchant, template_id=key, clerk_user_id=request.clerk.user_id
        ).layout
    else:
        raise Http404("Nothing to save from.")
    # An agency member may save it for their agency instead (it then applies on every store that granted the
    # agency); the store's own people have no agency here, so the choice is not theirs to make.
    owner = {"merchant": request.merchant}
    if request.POST.get("owner") == "agency" and request.access.is_agency:
        owner = {"agency": request.access.agency}
    try:
        template = dashboard_template_create(
            **owner,
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            layout=layout,
            actor=_actor(request),
            request_context=request_context(request),
        )
    except (ValidationError, DashboardTemplateConflict) as exc:
        text = exc.message if isinstance(exc, DashboardTemplateConflict) else " ".join(exc.messages)
        messages.error(request, f"Not saved: {text}")
        return redirect(_back_url(request))
    messages.success(request, f"Saved “{template.name}”.")
    return redirect("dashboards:template_detail", request.merchant.pk, template.pk)


@require_POST
@merchant_member_required
def template_edit(request: HttpRequest, template_id: int) -> HttpResponse:
    """Rename or re-lay out a template; the form carries the version it was read at (stale → refused)."""
    require_action(request, EDIT_TEMPLATES)  # 403: an agency viewer reads templates, never changes them
    template = selectors.dashboard_template_get(merchant=request.merchant, template_id=template_id)
    detail = reverse("dashboards:template_detail", args=[request.merchant.pk, template.pk])
    form = DashboardTemplateEditForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not saved: {_form_error_text(form)}")
        return redirect(detail)
    try:
        template = dashboard_template_update(
            template=template,
            version=form.cleaned_data["version"],
            name=form.cleaned_data["name"],
            description=form.cleaned_data["description"],
            layout=form.cleaned_data["layout"],
            actor=_actor(request),
            request_context=request_context(request),
        )
    except (ValidationError, DashboardTemplateConflict) as exc:
        text = exc.message if isinstance(exc, DashboardTemplateConflict) else " ".join(exc.messages)
        messages.error(request, f"Not saved: {text}")
        return redirect(detail)
    messages.success(request, f"Saved “{template.name}” (version {template.version}).")
    return redirect(detail)


@require_POST
@merchant_member_required
def template_delete(request: HttpRequest, template_id: int) -> HttpResponse:
    require_action(request, EDIT_TEMPLATES)  # 403: an agency viewer reads templates, never changes them
    template = selectors.dashboard_template_get(merchant=request.merchant, template_id=template_id)
    name = template.name
    dashboard_template_delete(template=template, actor=_actor(request), request_context=request_context(request))
    messages.success(request, f"Deleted “{name}”.")
    return redirect("dashboards:template_list", request.merchant.pk)
