"""The portfolio API (the page's figures: agencies.views_portfolio shares the parsing and the selector), and the
agency's own dashboard templates."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError as DrfValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.permissions import IsClerkUser
from agencies.api import serializers as s
from agencies.portfolio import portfolio_viewer_get
from agencies.views_portfolio import portfolio_arranged_get, portfolio_query_parse
from compliance.choices import ActorType
from compliance.services import Actor, request_context
from config.api import error_responses
from dashboards.api.serializers import DashboardTemplateSerializer, DashboardTemplateUpdateSerializer
from dashboards.api.views import conflict_response, jsonable
from dashboards.models import DashboardTemplate
from dashboards.selectors import TEMPLATE_NOT_FOUND
from dashboards.services import (
    DashboardTemplateConflict,
    dashboard_template_create,
    dashboard_template_delete,
    dashboard_template_update,
)


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


# --- agency-owned dashboard templates ---------------------------------------------------------------------------


class AgencyTemplateApiView(APIView):
    """An agency's own dashboard templates, for its active members; applied on a granted store's dashboards with
    the store's apply endpoint (dashboards/api), like the store's own templates."""

    permission_classes = [IsClerkUser]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.viewer = portfolio_viewer_get(clerk_user_id=request.user.user_id, agency_id=kwargs["agency_id"])

    def actor(self) -> Actor:
        user_id = self.request.user.user_id
        return Actor(type=ActorType.CLERK_USER, id=user_id, label=user_id)

    def template(self, template_id) -> DashboardTemplate:
        try:
            return DashboardTemplate.objects.get(agency=self.viewer.agency, pk=int(template_id))
        except (TypeError, ValueError, DashboardTemplate.DoesNotExist):
            raise Http404(TEMPLATE_NOT_FOUND) from None


class AgencyTemplateListApi(AgencyTemplateApiView):
    @extend_schema(
        responses={200: DashboardTemplateSerializer(many=True), **error_responses(401, 404)},
        tags=["agencies"],
    )
    def get(self, request, agency_id: int):
        """The agency's templates, by name."""
        templates = DashboardTemplate.objects.filter(agency=self.viewer.agency)
        return Response(DashboardTemplateSerializer(templates, many=True).data)

    @extend_schema(
        request=DashboardTemplateSerializer,
        responses={201: DashboardTemplateSerializer, **error_responses(400, 401, 403, 404, 409, 415)},
        tags=["agencies"],
    )
    def post(self, request, agency_id: int):
        """Save a template for the agency. Invalid layout → 400 naming the widget; name taken → 409."""
        serializer = DashboardTemplateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            template = dashboard_template_create(
                agency=self.viewer.agency,
                name=serializer.validated_data["name"],
                description=serializer.validated_data.get("description", ""),
                layout=serializer.validated_data["layout"],
                actor=self.actor(),
                request_context=request_context(request),
            )
        except DashboardTemplateConflict as exc:
            return conflict_response(exc)
        return Response(DashboardTemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class AgencyTemplateDetailApi(AgencyTemplateApiView):
    @extend_schema(responses={200: DashboardTemplateSerializer, **error_responses(401, 404)}, tags=["agencies"])
    def get(self, request, agency_id: int, template_id: int):
        return Response(DashboardTemplateSerializer(self.template(template_id)).data)

    @extend_schema(
        request=DashboardTemplateUpdateSerializer,
        responses={200: DashboardTemplateSerializer, **error_responses(400, 401, 403, 404, 409, 415)},
        tags=["agencies"],
    )
    def patch(self, request, agency_id: int, template_id: int):
        """Update with the version you read; a stale version answers 409 and changes nothing."""
        template = self.template(template_id)
        serializer = DashboardTemplateUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            template = dashboard_template_update(
                template=template,
                version=data["version"],
                name=data.get("name"),
                description=data.get("description"),
                layout=data.get("layout"),
                actor=self.actor(),
                request_context=request_context(request),
            )
        except DashboardTemplateConflict as exc:
            return conflict_response(exc)
        return Response(DashboardTemplateSerializer(template).data)

    @extend_schema(responses={204: None, **error_responses(401, 403, 404)}, tags=["agencies"])
    def delete(self, request, agency_id: int, template_id: int):
        dashboard_template_delete(
            template=self.template(template_id), actor=self.actor(), request_context=request_context(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
