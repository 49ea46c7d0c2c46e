"""The portfolio API: the page's figures (agencies.views_portfolio shares the parsing and the selector)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.exceptions import ValidationError as DrfValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.permissions import IsClerkUser
from agencies.api import serializers as s
from agencies.portfolio import portfolio_viewer_get
from agencies.views_portfolio import portfolio_arranged_get, portfolio_query_parse
from config.api import error_responses
from dashboards.api.views import jsonable


class PortfolioApi(APIView):
    permission_classes = [IsClerkUser]

    @extend_schema(
        parameters=[s.PortfolioQuerySerializer],
        responses={200: s.PortfolioResponseSerializer, **error_responses(400, 401, 404, 503)},
        tags=["agencies"],
    )
    def get(self, request, agency_id: int):
        """One entry per client store the caller may see, and blended totals in the agency's currency."""
        viewer = portfolio_viewer_get(clerk_user_id=request.user.user_id, agency_id=agency_id)
        query, errors = portfolio_query_parse(request.query_params, viewer)
        if errors:
            raise DrfValidationError(errors)
        result = portfolio_arranged_get(viewer, query)
        dr = query["date_range"]
        group = query["group"]
        body = {
            "range": {
                "start": dr.current.start,
                "end": dr.current.end,
                "comparison_start": dr.comparison.start if dr.comparison else None,
                "comparison_end": dr.comparison.end if dr.comparison else None,
                "preset": dr.preset,
                "compare": dr.compare,
            },
            "currency": result["currency"],
            "group": {"id": group.pk, "name": group.name} if group else None,
            "blended": result["blended"],
            "stores": result["tiles"],
        }
        return Response(jsonable(body))
