"""The agency portfolio page and its saved groups: parse the request, call one selector or service, render.

Every view resolves the agency from the viewer's own membership (agencies.portfolio.portfolio_viewer_get): a
person who is not an active member gets 404, whether the agency exists or not.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.decorators import clerk_login_required
from agencies import groups, portfolio
from compliance.choices import ActorType
from compliance.services import Actor, request_context
from dashboards.periods import COMPARISONS, PRESETS, date_range_parse
from dashboards.selectors import MartsNotBuilt

# The portfolio's dates are UTC calendar days: its stores are in many time zones, and the range must be one.
PORTFOLIO_TIMEZONE = "UTC"
SORT_LABELS = {
    "name": "Store name",
    "net_revenue": "Net revenue",
    "orders": "Orders",
    "ad_spend": "Ad spend",
    "mer": "MER",
    "new_customer_cac": "New-customer CAC",
    "change_net_revenue": "Change in net revenue",
    "problems": "Problems",
    "freshness": "Data freshness",
}


def _actor(request: HttpRequest) -> Actor:
    return Actor(type=ActorType.CLERK_USER, id=request.clerk.user_id, label=request.clerk.user_id)


def portfolio_query_parse(params, viewer: portfolio.PortfolioViewer) -> tuple[dict, dict]:
    """The range, group, sort and filter of a portfolio request, and field errors for what could not be read.

    Shared by the page (which falls back to the defaults and shows the errors) and the API (which answers 400)."""
    errors: dict[str, list[str]] = {}
    try:
        date_range = date_range_parse(params, timezone=PORTFOLIO_TIMEZONE)
    except ValidationError as exc:
        errors.update(exc.message_dict)
        date_range = date_range_parse({}, timezone=PORTFOLIO_TIMEZONE)
    group = None
    if params.get("group"):
        try:
            group = groups.merchant_group_get(agency=viewer.agency, group_id=params["group"])
        except Http404:  # a group of another agency is as unknown as one that never existed
            errors["group"] = [groups.GROUP_NOT_FOUND]
    sort = params.get("sort") or "name"
    if sort not in portfolio.SORT_KEYS:
        errors["sort"] = [f"Unknown sort; choose one of: {', '.join(portfolio.SORT_KEYS)}."]
        sort = "name"
    direction = params.get("dir") or ("asc" if sort == "name" else "desc")
    if direction not in ("asc", "desc"):
        errors["dir"] = ["Choose asc or desc."]
        direction = "asc"
    problem = params.get("problem") or ""
    if problem and problem not in portfolio.PROBLEM_FILTERS:
        errors["problem"] = [f"Unknown filter; choose one of: {', '.join(portfolio.PROBLEM_FILTERS)}."]
        problem = ""
    query = {"date_range": date_range, "group": group, "sort": sort, "dir": direction, "problem": problem}
    return query, errors


def portfolio_arranged_get(viewer: portfolio.PortfolioViewer, query: dict) -> dict:
    """The portfolio for the viewer's stores (a group's, when one is chosen): tiles filtered and sorted. The
    blended totals cover the stores shown, so a group's totals are the group's."""
    stores = viewer.stores
    if query["group"] is not None:
        in_group = set(query["group"].merchants.values_list("pk", flat=True))
        stores = [s for s in stores if s.merchant.pk in in_group]
    if query["problem"]:
        # The filter needs the tiles' problems: compute all, then blend only what is shown.
        everything = portfolio.portfolio_get(agency=viewer.agency, stores=stores, date_range=query["date_range"])
        shown_ids = {
            t["merchant_id"] for t in portfolio.portfolio_tiles_arrange(everything["tiles"], problem=query["problem"])
        }
        stores = [s for s in stores if s.merchant.pk in shown_ids]
    result = portfolio.portfolio_get(agency=viewer.agency, stores=stores, date_range=query["date_range"])
    result["tiles"] = portfolio.portfolio_tiles_arrange(
        result["tiles"], sort=query["sort"], descending=query["dir"] == "desc"
    )
    return result


@clerk_login_required
def portfolio_page(request: HttpRequest, agency_id: int) -> HttpResponse:
    viewer = portfolio.portfolio_viewer_get(clerk_user_id=request.clerk.user_id, agency_id=agency_id)
    query, errors = portfolio_query_parse(request.GET, viewer)
    context = {
        "agency": viewer.agency,
        "member": viewer.member,
        "query": query,
        "errors": errors,
        "date_range": query["date_range"],
        "presets": PRESETS,
        "comparisons": COMPARISONS,
        "sort_labels": SORT_LABELS,
        "problem_filters": portfolio.PROBLEM_FILTERS,
        "metrics": portfolio.TILE_METRICS,
        "lower_is_better": portfolio.LOWER_IS_BETTER,
        "cost_metrics": portfolio.COST_METRICS,
        "groups": groups.merchant_group_list(agency=viewer.agency),
        "stores": viewer.stores,
        "page_title": f"{viewer.agency.name} · portfolio",
    }
    try:
        context["portfolio"] = portfolio_arranged_get(viewer, query)
    except MartsNotBuilt:
        return render(request, "agencies/portfolio_not_built.html", context, status=503)
    return render(request, "agencies/portfolio.html", context, status=400 if errors else 200)


def _group_post(request: HttpRequest, viewer: portfolio.PortfolioViewer) -> tuple[str, list[str], set[int]]:
    return (
        request.POST.get("name", ""),
        request.POST.getlist("merchants"),
        {s.merchant.pk for s in viewer.stores},
    )


def _errors_text(exc: ValidationError) -> str:
    return " ".join(m for msgs in exc.message_dict.values() for m in msgs)


@require_POST
@clerk_login_required
def group_create(request: HttpRequest, agency_id: int) -> HttpResponse:
    viewer = portfolio.portfolio_viewer_get(clerk_user_id=request.clerk.user_id, agency_id=agency_id)
    name, merchant_ids, visible = _group_post(request, viewer)
    back = reverse("portfolio:page", args=[viewer.agency.pk])
    try:
        group = groups.merchant_group_create(
            agency=viewer.agency, name=name, merchant_ids=merchant_ids, visible_ids=visible, actor=_actor(request),
            request_context=request_context(request),
        )  # fmt: skip
    except ValidationError as exc:
        messages.error(request, f"Group not saved: {_errors_text(exc)}")
        return redirect(back)
    messages.success(request, f"Saved the group “{group.name}”.")
    return redirect(f"{back}?group={group.pk}")


@require_POST
@clerk_login_required
def group_update(request: HttpRequest, agency_id: int, group_id: int) -> HttpResponse:
    viewer = portfolio.portfolio_viewer_get(clerk_user_id=request.clerk.user_id, agency_id=agency_id)
    group = groups.merchant_group_get(agency=viewer.agency, group_id=group_id)
    name, merchant_ids, visible = _group_post(request, viewer)
    back = f"{reverse('portfolio:page', args=[viewer.agency.pk])}?group={group.pk}"
    try:
        group = groups.merchant_group_update(
            group=group, name=name, merchant_ids=merchant_ids, visible_ids=visible, actor=_actor(request),
            request_context=request_context(request),
        )  # fmt: skip
    except ValidationError as exc:
        messages.error(request, f"Group not saved: {_errors_text(exc)}")
        return redirect(back)
    messages.success(request, f"Saved the group “{group.name}”.")
    return redirect(back)


@require_POST
@clerk_login_required
def group_delete(request: HttpRequest, agency_id: int, group_id: int) -> HttpResponse:
    viewer = portfolio.portfolio_viewer_get(clerk_user_id=request.clerk.user_id, agency_id=agency_id)
    group = groups.merchant_group_get(agency=viewer.agency, group_id=group_id)
    name = group.name
    groups.merchant_group_delete(group=group, actor=_actor(request), request_context=request_context(request))
    messages.success(request, f"Deleted the group “{name}”.")
    return redirect("portfolio:page", viewer.agency.pk)
