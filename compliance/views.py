"""The store's privacy requests page: its owners see each Shopify request and download the customer data files."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.choices import Role
from accounts.decorators import merchant_member_required
from accounts.selectors import MERCHANT_NOT_FOUND
from compliance import storage
from compliance.selectors import privacy_request_is_overdue, privacy_request_list


@require_GET
@merchant_member_required
def privacy_requests(request: HttpRequest) -> HttpResponse:
    """Owners only (the files hold a customer's personal data): anyone else gets the same 404 as a stranger.
    Each view signs fresh 10-minute links; an expired one is answered 403 by the download view."""
    if request.membership.role != Role.OWNER:
        raise Http404(MERCHANT_NOT_FOUND)
    rows = []
    for item in privacy_request_list(merchant=request.merchant)[:200]:
        link = storage.download_link(item, request=request) if item.stored_file() is not None else None
        rows.append({"request": item, "link": link, "overdue": privacy_request_is_overdue(item)})
    return render(request, "compliance/privacy_requests.html", {"merchant": request.merchant, "rows": rows})
