"""Metrics and dashboard-template API. The metrics call the same selectors as the pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.exceptions import ValidationError as DrfValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.access import EDIT_TEMPLATES, StoreAccess, store_access_get
from accounts.models import Merchant
from agencies.authentication import TokenScopeRequired
from agencies.choices import TokenScope
from agencies.models import AgencyToken
from agencies.throttles import TOKEN_THROTTLES
from agencies.tokens import token_actor, token_store_access_get
from compliance.choices import ActorType
from compliance.services import Actor, request_context
from config.api import error_responses
from dashboards import selectors
from dashboards.api import serializers as s
from dashboards.cache import cached, marts_version
from dashboards.layouts import STARTER_TEMPLATES
from dashboards.masking import mask, masking_for
from dashboards.periods import DateRange, date_range_parse
from dashboards.services import (
    DashboardTemplateConflict,
    dashboard_template_apply_record,
    dashboard_template_create,
    dashboard_template_delete,
    dashboard_template_update,
)

MODEL_UNKNOWN = "Unknown attribution model; choose one of: {choices}."

# 400: the range or a choice; 403: an agency token without the scope; 429: an agency token's throttle;
# 503: marts not built yet.
METRICS_ERRORS = error_responses(400, 401, 403, 404, 429, 503)


def jsonable(value: Any) -> Any:
    """Money and ratios as decimal strings (no float rounding), dates as ISO strings."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def range_payload(merchant: Merchant, dr: DateRange) -> dict:
    return {
        "range": {
            "start": dr.current.start,
            "end": dr.current.end,
            "comparison_start": dr.comparison.start if dr.comparison else None,
            "comparison_end": dr.comparison.end if dr.comparison else None,
            "preset": dr.preset,
            "compare": dr.compare,
        },
        "currency": merchant.currency,
        "timezone": merchant.timezone,
    }


class MerchantApiView(APIView):
    """A merchant's API: a Clerk member of the store, or an agency token that lists it under an active grant
    and holds the method's scope (`token_scopes`; a method without one refuses tokens)."""

    permission_classes = [TokenScopeRequired]
    throttle_classes = TOKEN_THROTTLES
    token_scopes: dict[str, str] = {}
    default_preset = "last_30_days"

    access: StoreAccess

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # 404 for a store this person (or token) cannot open, whether by membership or by an agency's grant. A
        # token reaches a store only through its agency's grant (store_access_from_grant) and its own list.
        if isinstance(request.auth, AgencyToken):
            self.access = token_store_access_get(token=request.auth, merchant_id=kwargs["merchant_id"])
        else:
            self.access = store_access_get(clerk_user_id=request.user.user_id, merchant_id=kwargs["merchant_id"])
        self.merchant = self.access.merchant

    def require(self, action: str) -> None:
        """403 unless this access allows `action` (accounts.access: e.g. an agency viewer edits nothing)."""
        if not self.access.allows(action):
            raise PermissionDenied(f"Your access to this store does not allow {action.replace('_', ' ')}.")

    def date_range(self) -> DateRange:
        # A Django ValidationError with field errors becomes a 400 in config.api.exception_handler.
        return date_range_parse(
            self.request.query_params, timezone=self.merchant.timezone, default_preset=self.default_preset
        )

    def actor(self) -> Actor:
        if isinstance(self.request.auth, AgencyToken):
            return token_actor(self.request.auth)
        user_id = self.request.user.user_id
        return Actor(type=ActorType.CLERK_USER, id=user_id, label=user_id)


class MetricsApiView(MerchantApiView):
    token_scopes = {"GET": TokenScope.METRICS_READ}

    def metrics(self, dr: DateRange, build: Callable[[], dict], options: tuple = ()) -> Response:
        """The body: the range, then what `build` reads. Computed once per merchant, range, options and
        state of the marts (dashboards/cache.py), after the membership check of `initial`.

        The response serializers (serializers.py) document this body for the schema and are not run on it: the
        cached dict is sent as `jsonable` made it, so a request costs what it did, and the bodies are checked
        against the schema by the tests instead (tests/fuzz/test_schema_contract.py)."""
        merchant = self.merchant
        key = (
            "api",
            type(self).__name__,
            merchant.pk,
            merchant.currency,
            merchant.timezone,
            marts_version(),
            dr,
            options,
        )
        body = cached(key, lambda: jsonable({**range_payload(merchant, dr), **build()}))
        # Masked after the cache: the cached body is the store's, shared by its members and every grant.
        return Response(mask(body, masking_for(self.access)))


class OverviewApi(MetricsApiView):
    @extend_schema(
        parameters=[s.DateRangeQuerySerializer],
        responses={200: s.OverviewResponseSerializer, **METRICS_ERRORS},
        tags=["metrics"],
    )
    def get(self, request, merchant_id: int):
        """KPIs with the change against the comparison period, and the daily series."""
        dr = self.date_range()
        return self.metrics(
            dr,
            lambda: {
                "kpis": selectors.overview_get(merchant=self.merchant, date_range=dr),
                "daily": selectors.overview_daily_list(merchant=self.merchant, period=dr.current),
            },
        )


class LtvApi(MetricsApiView):
    default_preset = "last_12_months"

    @extend_schema(
        parameters=[s.DateRangeQuerySerializer],
        responses={200: s.LtvResponseSerializer, **METRICS_ERRORS},
        tags=["metrics"],
    )
    def get(self, request, merchant_id: int):
        """Cohorts whose first month falls in the range (default: the last 12 months), month by month."""
        dr = self.date_range()
        return self.metrics(
            dr, lambda: {"cohorts": selectors.ltv_cohort_list(merchant=self.merchant, period=dr.current)}
        )


class AttributionApi(MetricsApiView):
    @extend_schema(
        parameters=[s.AttributionQuerySerializer],
        responses={200: s.AttributionResponseSerializer, **METRICS_ERRORS},
        tags=["metrics"],
    )
    def get(self, request, merchant_id: int):
        """Channels and campaigns under one attribution model."""
        dr = self.date_range()
        model = request.query_params.get("model") or "last_touch"
        if model not in selectors.ATTRIBUTION_MODELS:
            raise DrfValidationError({"model": [MODEL_UNKNOWN.format(choices=", ".join(selectors.ATTRIBUTION_MODELS))]})
        channel = request.query_params.get("channel") or None
        return self.metrics(
            dr,
            lambda: {
                "model": model,
                "lookback_days": selectors.ATTRIBUTION_LOOKBACK_DAYS,
                **selectors.attribution_model_get(
                    merchant=self.merchant, period=dr.current, model=model, channel=channel
                ),
            },
            options=(model, channel),
        )


class AttributionCompareApi(MetricsApiView):
    @extend_schema(
        parameters=[s.DateRangeQuerySerializer],
        responses={200: s.AttributionCompareResponseSerializer, **METRICS_ERRORS},
        tags=["metrics"],
    )
    def get(self, request, merchant_id: int):
        """Every attribution model side by side, by channel: attributed revenue and ROAS."""
        dr = self.date_range()
        return self.metrics(
            dr,
            lambda: {
                "models": selectors.ATTRIBUTION_MODELS,
                "lookback_days": selectors.ATTRIBUTION_LOOKBACK_DAYS,
                "channels": selectors.attribution_comparison_list(merchant=self.merchant, period=dr.current),
            },
        )


class EngagementApi(MetricsApiView):
    @extend_schema(
        parameters=[s.DateRangeQuerySerializer],
        responses={200: s.EngagementResponseSerializer, **METRICS_ERRORS},
        tags=["metrics"],
    )
    def get(self, request, merchant_id: int):
        """Email and SMS: totals by channel, provider and campaign/flow, top messages, daily trend."""
        dr = self.date_range()
        return self.metrics(
            dr,
            lambda: {
                "summary": selectors.engagement_summary_list(merchant=self.merchant, period=dr.current),
                "messages": selectors.engagement_message_list(merchant=self.merchant, period=dr.current),
                "daily": selectors.engagement_daily_list(merchant=self.merchant, period=dr.current),
            },
        )


# --- dashboard templates ----------------------------------------------------------------------------


def conflict_response(exc: DashboardTemplateConflict) -> Response:
    return Response({exc.field: [exc.message]}, status=status.HTTP_409_CONFLICT)


class DashboardTemplateListApi(MerchantApiView):
    token_scopes = {"GET": TokenScope.REPORTS_READ}  # writes are for people only

    @extend_schema(
        responses={200: s.DashboardTemplateSerializer(many=True), **error_responses(401, 403, 404, 429)},
        tags=["dashboard templates"],
    )
    def get(self, request, merchant_id: int):
        """The merchant's saved templates (starter templates are built in and not listed here)."""
        templates = selectors.dashboard_template_list(merchant=self.merchant)
        return Response(s.DashboardTemplateSerializer(templates, many=True).data)

    @extend_schema(
        request=s.DashboardTemplateSerializer,
        responses={201: s.DashboardTemplateSerializer, **error_responses(400, 401, 403, 404, 409, 415, 429)},
        tags=["dashboard templates"],
    )
    def post(self, request, merchant_id: int):
        """Save a template. Invalid layout → 400 naming the widget; name taken → 409; an agency viewer → 403."""
        self.require(EDIT_TEMPLATES)
        serializer = s.DashboardTemplateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            template = dashboard_template_create(
                merchant=self.merchant,
                name=serializer.validated_data["name"],
                description=serializer.validated_data.get("description", ""),
                layout=serializer.validated_data["layout"],
                actor=self.actor(),
                request_context=request_context(request),
            )
        except DashboardTemplateConflict as exc:
            return conflict_response(exc)
        return Response(s.DashboardTemplateSerializer(template).data, status=status.HTTP_201_CREATED)


class StarterTemplateListApi(MerchantApiView):
    token_scopes = {"GET": TokenScope.REPORTS_READ}  # writes are for people only

    @extend_schema(
        responses={200: s.StarterTemplateSerializer(many=True), **error_responses(401, 403, 404, 429)},
        tags=["dashboard templates"],
    )
    def get(self, request, merchant_id: int):
        """The built-in starter templates (acquisition, retention, email & SMS); save one to customise it."""
        return Response([{"key": key, **starter} for key, starter in STARTER_TEMPLATES.items()])


class DashboardTemplateDetailApi(MerchantApiView):
    token_scopes = {"GET": TokenScope.REPORTS_READ}  # writes are for people only

    def template(self, template_id: int):
        return selectors.dashboard_template_get(merchant=self.merchant, template_id=template_id)

    @extend_schema(
        responses={200: s.DashboardTemplateSerializer, **error_responses(401, 403, 404, 429)},
        tags=["dashboard templates"],
    )
    def get(self, request, merchant_id: int, template_id: int):
        return Response(s.DashboardTemplateSerializer(self.template(template_id)).data)

    @extend_schema(
        request=s.DashboardTemplateUpdateSerializer,
        responses={200: s.DashboardTemplateSerializer, **error_responses(400, 401, 403, 404, 409, 415, 429)},
        tags=["dashboard templates"],
    )
    def patch(self, request, merchant_id: int, template_id: int):
        """Update with the version you read; a stale version answers 409 and changes nothing."""
        template = self.template(template_id)
        self.require(EDIT_TEMPLATES)
        serializer = s.DashboardTemplateUpdateSerializer(data=request.data)
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
        return Response(s.DashboardTemplateSerializer(template).data)

    @extend_schema(
        request=s.DashboardTemplateUpdateSerializer,
        responses={200: s.DashboardTemplateSerializer, **error_responses(400, 401, 403, 404, 409, 415, 429)},
        tags=["dashboard templates"],
    )
    def put(self, request, merchant_id: int, template_id: int):
        return self.patch(request, merchant_id, template_id)

    @extend_schema(responses={204: None, **error_responses(401, 403, 404, 429)}, tags=["dashboard templates"])
    def delete(self, request, merchant_id: int, template_id: int):
        template = self.template(template_id)
        self.require(EDIT_TEMPLATES)
        dashboard_template_delete(template=template, actor=self.actor(), request_context=request_context(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DashboardTemplateApplyApi(MerchantApiView):
    token_scopes = {"POST": TokenScope.REPORTS_READ}  # renders a saved layout: a read, though a POST

    @extend_schema(
        request=None,
        parameters=[s.DateRangeQuerySerializer],
        responses={200: s.DashboardApplyResponseSerializer, **error_responses(400, 401, 403, 404, 429, 503)},
        tags=["dashboard templates"],
    )
    def post(self, request, merchant_id: int, template_id: int):
        """Render the template's layout with live data for the range (the same numbers as the pages)."""
        template = selectors.dashboard_template_viewable_get(
            merchant=self.merchant, template_id=template_id, clerk_user_id=self.request.user.user_id
        )
        dr = self.date_range()
        widgets = selectors.dashboard_widget_list(merchant=self.merchant, layout=template.layout, date_range=dr)
        dashboard_template_apply_record(
            template=template, actor=self.actor(), request_context=request_context(request), merchant=self.merchant
        )
        body = {
            **range_payload(self.merchant, dr),
            "template": s.DashboardTemplateSerializer(template).data,
            "widgets": widgets,
        }
        return Response(mask(jsonable(body), masking_for(self.access)))
