"""Grant pages. Store side (`/m/<id>/agencies/`, owners only): requests and grants, approve with terms,
decline, end, one-time codes. Agency side (`/agencies/<id>/grants/`): ask a store, redeem a code, end a grant
(admins; other members see the list). An agency never reaches the store side: it is `manage_agencies`.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from accounts.access import MANAGE_AGENCIES
from accounts.decorators import clerk_login_required, merchant_member_required, require_action
from agencies import grants
from agencies.choices import GrantLevel
from agencies.models import AccessGrant
from agencies.views import _admin_or_403, _member_or_404
from compliance.services import request_context

APPROVED = "Access for {agency} approved."
DECLINED = "Request from {agency} declined."
ENDED = "Access for {agency} ended."
REDEEMED = "Code accepted: your agency now has access to {store}."


def _store_grant(request: HttpRequest, grant_id: int) -> AccessGrant:
    grant = grants.grant_list_for_store(merchant=request.merchant).filter(pk=grant_id).first()
    if grant is None:
        raise Http404("No such grant.")
    return grant


def _store_page(request: HttpRequest, *, code: str = "", errors: dict | None = None, status: int = 200):
    return render(
        request,
        "agencies/store_grants.html",
        {
            "merchant": request.merchant,
            "memberships": request.store_accesses,
            "grants": grants.grant_list_for_store(merchant=request.merchant),
            "levels": GrantLevel.choices,
            "new_code": code,  # shown once, in this response only
            "errors": errors or {},
        },
        status=status,
    )


def _flags(request: HttpRequest) -> tuple[str, bool, bool]:
    return (
        request.POST.get("level", ""),
        request.POST.get("can_see_pii") == "on",
        request.POST.get("can_see_costs") == "on",
    )


@require_GET
@merchant_member_required
def store_grants(request: HttpRequest) -> HttpResponse:
    require_action(request, MANAGE_AGENCIES)
    return _store_page(request)


@require_POST
@merchant_member_required
def store_grant_approve(request: HttpRequest, grant_id: int) -> HttpResponse:
    require_action(request, MANAGE_AGENCIES)
    grant = _store_grant(request, grant_id)
    level, pii, costs = _flags(request)
    try:
        grants.grant_approve(
            grant=grant, level=level, can_see_pii=pii, can_see_costs=costs,
            approved_by=request.clerk.user_id, request_ctx=request_context(request),
        )  # fmt: skip
    except grants.GrantError as exc:
        return _store_page(
            request, errors={"level" if level not in GrantLevel.values else "form": [exc.message]}, status=400
        )
    messages.success(request, APPROVED.format(agency=grant.agency.name))
    return redirect("agencies_grants:store", merchant_id=request.merchant.pk)


@require_POST
@merchant_member_required
def store_grant_decline(request: HttpRequest, grant_id: int) -> HttpResponse:
    require_action(request, MANAGE_AGENCIES)
    grant = _store_grant(request, grant_id)
    try:
        grants.grant_decline(grant=grant, declined_by=request.clerk.user_id, request_ctx=request_context(request))
    except grants.GrantError as exc:
        return _store_page(request, errors={"form": [exc.message]}, status=400)
    messages.success(request, DECLINED.format(agency=grant.agency.name))
    return redirect("agencies_grants:store", merchant_id=request.merchant.pk)


@require_POST
@merchant_member_required
def store_grant_end(request: HttpRequest, grant_id: int) -> HttpResponse:
    require_action(request, MANAGE_AGENCIES)
    grant = _store_grant(request, grant_id)
    try:
        grants.grant_end(
            grant=grant, ended_by=request.clerk.user_id, side="store",
            reason=request.POST.get("reason", "")[:500], request_ctx=request_context(request),
        )  # fmt: skip
    except grants.GrantError as exc:
        return _store_page(request, errors={"form": [exc.message]}, status=400)
    messages.success(request, ENDED.format(agency=grant.agency.name))
    return redirect("agencies_grants:store", merchant_id=request.merchant.pk)


@require_POST
@merchant_member_required
def store_code_create(request: HttpRequest) -> HttpResponse:
    require_action(request, MANAGE_AGENCIES)
    level, pii, costs = _flags(request)
    try:
        _, code = grants.access_code_create(
            merchant=request.merchant, level=level, can_see_pii=pii, can_see_costs=costs,
            created_by=request.clerk.user_id, request_ctx=request_context(request),
        )  # fmt: skip
    except grants.GrantError as exc:
        return _store_page(request, errors={"level": [exc.message]}, status=400)
    response = _store_page(request, code=code)
    response["Cache-Control"] = "no-store"  # the code is shown once; no cache keeps it
    return response


# --- agency side ------------------------------------------------------------------------------------


def _agency_page(request: HttpRequest, member, *, errors: dict | None = None, status: int = 200):
    return render(
        request,
        "agencies/agency_grants.html",
        {
            "agency": member.agency,
            "is_admin": member.role == "admin",
            "grants": grants.grant_list_for_agency(agency=member.agency),
            "errors": errors or {},
        },
        status=status,
    )


@require_GET
@clerk_login_required
def agency_grants(request: HttpRequest, agency_id: int) -> HttpResponse:
    return _agency_page(request, _member_or_404(request, agency_id))


@require_POST
@clerk_login_required
def agency_grant_request(request: HttpRequest, agency_id: int) -> HttpResponse:
    member = _admin_or_403(request, agency_id)
    shop = request.POST.get("shop_domain", "").strip()[:255]
    if not shop or "\x00" in shop:
        return _agency_page(
            request, member, errors={"shop_domain": ["Enter the store's myshopify.com domain."]}, status=400
        )
    grants.grant_request(
        agency=member.agency, shop_domain=shop, requested_by=request.clerk.user_id,
        note=request.POST.get("note", "")[:500].replace("\x00", ""), request_ctx=request_context(request),
    )  # fmt: skip
    messages.success(request, grants.REQUEST_SENT.format(shop=shop))  # the same whether the shop exists or not
    return redirect("agencies_grants:agency", agency_id=agency_id)


@require_POST
@clerk_login_required
def agency_code_redeem(request: HttpRequest, agency_id: int) -> HttpResponse:
    member = _admin_or_403(request, agency_id)
    try:
        grant = grants.access_code_redeem(
            agency=member.agency, code=request.POST.get("code", "")[:200], redeemed_by=request.clerk.user_id,
            request_ctx=request_context(request),
        )  # fmt: skip
    except grants.GrantError as exc:
        return _agency_page(request, member, errors={"code": [exc.message]}, status=400)
    messages.success(request, REDEEMED.format(store=grant.merchant.name))
    return redirect("agencies_grants:agency", agency_id=agency_id)


@require_POST
@clerk_login_required
def agency_grant_end(request: HttpRequest, agency_id: int, grant_id: int) -> HttpResponse:
    member = _admin_or_403(request, agency_id)
    grant = grants.grant_list_for_agency(agency=member.agency).filter(pk=grant_id).first()
    if grant is None:
        raise Http404("No such grant.")
    try:
        grants.grant_end(
            grant=grant, ended_by=request.clerk.user_id, side="agency", request_ctx=request_context(request)
        )
    except grants.GrantError as exc:
        return _agency_page(request, member, errors={"form": [exc.message]}, status=400)
    messages.success(request, ENDED.format(agency=member.agency.name))
    return redirect("agencies_grants:agency", agency_id=agency_id)
