from __future__ import annotations

from django.conf import settings
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_variables
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from accounts.access import MANAGE_CONNECTORS, store_access_get
from accounts.api.permissions import IsClerkUser
from compliance.services import request_context
from config.api import ProviderUnavailableSerializer, error_responses
from connectors import services
from connectors.api.serializers import ApiKeyConnectSerializer, ApiKeyRefusedSerializer, CredentialSerializer
from connectors.oauth import NOT_MANAGER
from connectors.selectors import credential_list


class ApiKeyConnectThrottle(SimpleRateThrottle):
    """Per signed-in user: each attempt calls the provider, and guessing keys must stay slow."""

    scope = "connectors.api_key_connect"

    def get_rate(self) -> str:
        return settings.CONNECTORS_API_KEY_CONNECT_RATE

    def get_cache_key(self, request, view) -> str | None:
        user_id = getattr(request.user, "user_id", None)
        return self.cache_format % {"scope": self.scope, "ident": user_id} if user_id else None


@extend_schema(
    request=ApiKeyConnectSerializer,
    responses={
        201: CredentialSerializer,
        **error_responses(400, 401, 403, 404, 415, 429),
        422: OpenApiResponse(ApiKeyRefusedSerializer, "The provider refused the key, or it lacks a scope."),
        503: OpenApiResponse(ProviderUnavailableSerializer, "The provider is unavailable; try again later."),
    },
)
class ApiKeyConnectApi(APIView):
    """Connect Klaviyo or Attentive with an API key, validated live with the provider before it is stored.

    400: malformed input (field errors; the provider is not called). 422: the provider refused the
    key, or it lacks a scope. 503: the provider is unavailable (see `retry_after`). Nothing is stored
    unless the answer is 201.
    """

    permission_classes = [IsClerkUser]
    throttle_classes = [ApiKeyConnectThrottle]

    @method_decorator(sensitive_variables("serializer", "data"))  # both hold the API key
    def post(self, request):
        serializer = ApiKeyConnectSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        access = store_access_get(clerk_user_id=request.user.user_id, merchant_id=data["merchant_id"])
        if not access.allows(MANAGE_CONNECTORS):
            raise PermissionDenied(NOT_MANAGER)
        try:
            credential = services.credential_connect_api_key(
                merchant=access.merchant,
                provider=data["provider"],
                api_key=data["api_key"],
                label=data["label"],
                actor=services.clerk_actor(request.user.user_id),
                request_ctx=request_context(request._request),
            )
        except services.ApiKeyMissingScope as exc:
            return Response(
                {"api_key": [exc.message], "missing_scope": exc.extra["missing_scope"]},
                status=status.HTTP_422_UNPROCESSABLE_ENTITY,
            )
        except services.ApiKeyRejected as exc:
            return Response({"api_key": [exc.message]}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
        except services.ProviderUnavailable as exc:
            retry_after = int(exc.extra.get("retry_after") or 30)
            return Response(
                {"detail": exc.message, "retry_after": retry_after},
                status=status.HTTP_503_SERVICE_UNAVAILABLE,
                headers={"Retry-After": str(retry_after)},
            )
        return Response(CredentialSerializer(credential).data, status=status.HTTP_201_CREATED)


@extend_schema(responses={200: CredentialSerializer(many=True), **error_responses(401, 404)})
class CredentialListApi(ListAPIView):
    """The merchant's connections (secrets never included)."""

    permission_classes = [IsClerkUser]
    serializer_class = CredentialSerializer
    pagination_class = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return CredentialSerializer.Meta.model.objects.none()
        access = store_access_get(clerk_user_id=self.request.user.user_id, merchant_id=self.kwargs["merchant_id"])
        return credential_list(merchant=access.merchant)
