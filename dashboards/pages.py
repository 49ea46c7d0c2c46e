"""Rendering a dashboard page: what every member sees alike is rendered once per state of the marts.

A page over the marts is the same for every member of a merchant except for the member's own parts: the
store switcher and sign-out form in the top bar, the messages of their session, and in the forms under the
dashboard their CSRF token and the page they are on. So the page is two kinds of template:

- the fragments (`dashboards/_nav.html`, `dashboards/_dashboard.html`: the tabs, the head with its range
  form and "data as of" badge, the charts and tables — nearly all of the rendering) are rendered with
  `render_to_string` and no request, so no CSRF token, session, message or user can get into them, and
  cached per merchant, range, options and state of the marts (dashboards/cache.py);
- the page around them (`dashboards/dashboard.html`) is rendered with `render()` for each request, as any
  Django page is, and holds every member part.

A range the form could not parse is answered without the cache, so arbitrary input cannot crowd out the
pages merchants use.
"""

from __future__ import annotations

from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.http import urlencode

from accounts.access import EDIT_TEMPLATES, EXPORT, StoreAccess
from dashboards import selectors
from dashboards.cache import cached, marts_version
from dashboards.layouts import PAGE_LAYOUTS
from dashboards.periods import COMPARISONS, DEFAULT_PRESET, PRESETS, DateRange, date_range_parse

PAGES = {
    # page: (title, URL name)
    "overview": ("Overview", "dashboards:overview"),
    "ltv": ("LTV cohorts", "dashboards:ltv"),
    "attribution": ("Attribution", "dashboards:attribution"),
    "engagement": ("Email & SMS", "dashboards:engagement"),
    "templates": ("Dashboards", "dashboards:template_list"),
    "custom": ("Dashboard", "dashboards:template_list"),
}


def date_range_or_default(request: HttpRequest, default_preset: str = DEFAULT_PRESET) -> tuple[DateRange, dict]:
    """The requested range, or the default one together with the field errors that made us fall back."""
    try:
        return date_range_parse(request.GET, timezone=request.merchant.timezone, default_preset=default_preset), {}
    except ValidationError as exc:
        fallback = date_range_parse({}, timezone=request.merchant.timezone, default_preset=default_preset)
        return fallback, exc.message_dict


def _member_context(request: HttpRequest, page: str) -> dict:
    """What the top bar's store switcher needs (the person's stores, and the page to link in each), and what
    their access lets the per-request forms offer."""
    return {
        "merchant": request.merchant,
        "memberships": request.store_accesses,
        "page_url_name": PAGES[page][1],
        "access": request.access,
        "can_edit_templates": request.access.allows(EDIT_TEMPLATES),
    }


def access_terms(access: StoreAccess) -> tuple[bool, bool, bool]:
    """What of the shared fragments depends on who looks: the export links, and (masking) PII and costs.

    Part of the fragments' cache key, so every store member still shares one entry, and an agency whose grant
    shows less never gets a member's page out of the cache.
    """
    return (access.allows(EXPORT), access.can_see_pii, access.can_see_costs)


def _head_context(merchant, date_range: DateRange | None, errors: dict, version: str, title: str) -> dict:
    """What dashboards/_head.html shows: the title, the "data as of" badge and the range form."""
    return {
        "merchant": merchant,
        "currency": merchant.currency,
        "page_title": title,
        "date_range": date_range,
        "range_query": urlencode(date_range.as_query()) if date_range else "",
        "range_errors": errors,
        "presets": PRESETS,
        "comparisons": COMPARISONS,
        "freshness": cached(
            ("freshness", merchant.pk, merchant.key, version), lambda: selectors.data_freshness_get(merchant=merchant)
        ),
    }


def _save_source(page: str, context: dict) -> str:
    """What "Save as template" on this page copies: the page's own layout, a starter, or a saved template."""
    if page in PAGE_LAYOUTS:
        return f"page:{page}"
    if context.get("starter_key"):
        return f"starter:{context['starter_key']}"
    if context.get("template") is not None:
        return f"template:{context['template'].pk}"
    return ""


def page_render(request: HttpRequest, template: str, page: str, context: dict) -> HttpResponse:
    """A dashboards page that is not over the marts (the template list), rendered whole for each request."""
    head = _head_context(request.merchant, None, {}, marts_version(), PAGES[page][0])
    return render(request, template, {**head, **_member_context(request, page), "page": page, **context})


def dashboard_page_render(
    request: HttpRequest,
    page: str,
    date_range: DateRange,
    errors: dict,
    *,
    data: Callable[[], dict],
    options: tuple = (),
    range_hidden: dict | None = None,
    context: dict | None = None,
) -> HttpResponse:
    """A dashboard page over the marts: its fragments with `data()`, cached, in the page of this request.

    `options` names what else, beyond the merchant, range and marts, `data()` depends on; `context` is
    shown by both (a saved template's name, version and layout).
    """
    merchant = request.merchant
    version = marts_version()
    context = context or {}
    title = context.get("page_title") or PAGES[page][0]
    view_name = request.resolver_match.view_name
    terms = access_terms(request.access)

    def fragments() -> dict[str, str]:
        shared = {
            **_head_context(merchant, date_range, errors, version, title),
            "page": page,
            "nav_view": view_name,
            "range_hidden": range_hidden or {},
            "body_template": f"dashboards/{page}.html",
            "can_export": terms[0],
            **context,
            **data(),
        }
        return {
            "nav": render_to_string("dashboards/_nav.html", shared),
            "dashboard": render_to_string("dashboards/_dashboard.html", shared),
        }

    key = (
        "page", page, view_name, title, merchant.pk, merchant.name, merchant.key, merchant.currency, merchant.timezone,
        version, date_range, options, terms,
    )  # fmt: skip
    return render(
        request,
        "dashboards/dashboard.html",
        {
            **_member_context(request, page),
            "page_title": title,
            "save_source": _save_source(page, context),
            **context,
            "fragments": fragments() if errors else cached(key, fragments),
        },
        status=400 if errors else 200,
    )
