"""Merchant dashboard pages: parse the range and options, then render the page over the marts.

What each page draws is built in dashboards/charts.py and rendered (and cached) by dashboards/pages.py;
CSV exports are dashboards/views_exports.py, the template forms' POSTs dashboards/views_templates.py.
"""

from __future__ import annotations

import json

from django.http import Http404, HttpRequest, HttpResponse

from accounts.decorators import merchant_member_required
from dashboards import charts, selectors
from dashboards.layouts import STARTER_TEMPLATES
from dashboards.masking import masking_for
from dashboards.pages import dashboard_page_render, date_range_or_default, page_render
from dashboards.periods import LTV_DEFAULT_PRESET


@merchant_member_required
def overview(request: HttpRequest) -> HttpResponse:
    date_range, errors = date_range_or_default(request)
    masking = masking_for(request.access)
    return dashboard_page_render(
        request,
        "overview",
        date_range,
        errors,
        data=lambda: charts.overview_data(request.merchant, date_range, masking),
    )


@merchant_member_required
def ltv(request: HttpRequest) -> HttpResponse:
    date_range, errors = date_range_or_default(request, default_preset=LTV_DEFAULT_PRESET)
    metric = request.GET.get("metric", "revenue")
    if metric not in charts.LTV_METRICS:
        metric = "revenue"
    return dashboard_page_render(
        request,
        "ltv",
        date_range,
        errors,
        data=lambda: charts.ltv_data(request.merchant, date_range, metric, masking_for(request.access)),
        options=(metric,),
        range_hidden={"metric": metric},
    )


@merchant_member_required
def attribution(request: HttpRequest) -> HttpResponse:
    date_range, errors = date_range_or_default(request)
    model = request.GET.get("model", "last_touch")
    if model not in selectors.ATTRIBUTION_MODELS:
        model = "last_touch"
    channel = request.GET.get("channel") or None
    return dashboard_page_render(
        request,
        "attribution",
        date_range,
        errors,
        data=lambda: charts.attribution_data(
            request.merchant, date_range.current, model, channel, masking_for(request.access)
        ),
        options=(model, channel),
        range_hidden={"model": model},
    )


@merchant_member_required
def engagement(request: HttpRequest) -> HttpResponse:
    date_range, errors = date_range_or_default(request)
    return dashboard_page_render(
        request,
        "engagement",
        date_range,
        errors,
        data=lambda: charts.engagement_data(request.merchant, date_range.current),
    )


def _custom_dashboard(request: HttpRequest, *, layout: list[dict], title: str, template=None, starter_key=""):
    date_range, errors = date_range_or_default(request)
    # A saved template's version changes with every edit of its layout, name or description.
    options = ("template", template.pk, template.version) if template is not None else ("starter", starter_key)
    return dashboard_page_render(
        request,
        "custom",
        date_range,
        errors,
        data=lambda: charts.dashboard_data(request.merchant, layout, date_range, masking_for(request.access)),
        options=options,
        context={
            "page_title": title,
            "template": template,
            "starter_key": starter_key,
            # The edit form's text (dashboards/_template_edit.html); only the store's own saved template has the
            # form (an agency's template is edited by the agency).
            "layout_json": json.dumps(layout, indent=2) if template is not None and template.merchant_id else "",
        },
    )


@merchant_member_required
def template_list(request: HttpRequest) -> HttpResponse:
    return page_render(
        request,
        "dashboards/template_list.html",
        "templates",
        {
            "templates": selectors.dashboard_template_list(merchant=request.merchant),
            "agency_templates": selectors.agency_template_list(
                merchant=request.merchant, clerk_user_id=request.clerk.user_id
            ),
            "starters": STARTER_TEMPLATES,
        },
    )


@merchant_member_required
def template_detail(request: HttpRequest, template_id: int) -> HttpResponse:
    template = selectors.dashboard_template_viewable_get(
        merchant=request.merchant, template_id=template_id, clerk_user_id=request.clerk.user_id
    )
    return _custom_dashboard(request, layout=template.layout, title=template.name, template=template)


@merchant_member_required
def starter_detail(request: HttpRequest, key: str) -> HttpResponse:
    if key not in STARTER_TEMPLATES:
        raise Http404("No such starter template.")
    starter = STARTER_TEMPLATES[key]
    return _custom_dashboard(request, layout=starter["layout"], title=starter["name"], starter_key=key)
