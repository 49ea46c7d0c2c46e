"""A dashboard page asked for before the first dbt build: a page that says so, not a 500."""

from __future__ import annotations

import logging

from django.shortcuts import render

# The Content-Security-Policy middleware moved to config/csp.py (it covers every response, not the
# dashboards'). Re-exported for connectors/views.py and tests/connectors/test_pages.py, which still import
# it from here; drop these once they import config.csp.
from config.csp import allow_form_action, with_form_action  # noqa: F401

logger = logging.getLogger(__name__)


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
            {"merchant": request.merchant, "access": getattr(request, "access", None)},
            status=503,
        )
