"""Content-Security-Policy on every response.

Pages load scripts and styles from our own origin only (vendored Chart.js and htmx, JSON data in
`<script type="application/json">`), so the strict policy needs no nonce. Django admin and the Swagger
UI at /api/docs/ use inline script and style; they get a relaxed policy instead of none.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.shortcuts import render

logger = logging.getLogger(__name__)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.strict = settings.CSP_POLICY
        self.relaxed = settings.CSP_RELAXED_POLICY
        self.relaxed_prefixes = tuple(settings.CSP_RELAXED_PATH_PREFIXES)

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            relaxed = request.path.startswith(self.relaxed_prefixes)
            response["Content-Security-Policy"] = self.relaxed if relaxed else self.strict
        return response


class MartsNotBuiltMiddleware:
    """A dashboard page asked for marts that do not exist yet: explain instead of failing with a 500."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from dashboards.selectors import MartsNotBuilt

        if not isinstance(exception, MartsNotBuilt) or getattr(request, "merchant", None) is None:
            return None
        logger.warning("dashboard page before the first dbt build", extra={"path": request.path})
        return render(
            request,
            "dashboards/not_built.html",
            {"merchant": request.merchant, "membership": request.membership},
            status=503,
        )
