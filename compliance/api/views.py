"""The audit exports of a merchant, for its owners: create, list, read, and a fresh download link."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.permissions import IsClerkUser
from accounts.choices import Role
from accounts.selectors import membership_get
from compliance import exports
from compliance.api.serializers import AuditExportCreateSerializer, AuditExportSerializer, DownloadLinkSerializer
from compliance.choices import ActorType
from compliance.models import AuditExport
from compliance.services import Actor, request_context
from compliance.storage import download_link
from config.api import FieldErrorsSerializer, error_responses

NOT_OWNER = "Only the store's owners can see and export its audit log."
NOT_DOWNLOADABLE = "This export has no file to download: it is {state}, or its file was deleted after retention."


class OwnerApiMixin:
    """Resolve the merchant from the URL (404 for anyone else's) and require the owner role (403)."""

    permission_classes = [IsClerkUser]

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        membership = membership_get(clerk_user_id=request.user.user_id, merchant_id=kwargs["merchant_id"])
        if membership.role != Role.OWNER:
            raise PermissionDenied(NOT_OWNER)
        self.merchant = membership.merchant

    def actor(self) -> Actor:
        user_id = self.request.user.user_id
        return Actor(type=ActorType.CLERK_USER, id=user_id, label=user_id)


class AuditExportListApi(OwnerApiMixin, ListAPIView):
    serializer_class = AuditExportSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return AuditExport.objects.none()
        return exports.audit_export_list(merchant=self.merchant)

    @extend_schema(
        responses={200: AuditExportSerializer(many=True), **error_responses(400, 401, 403, 404)},
        tags=["audit exports"],
    )
    def get(self, request, *args, **kwargs):
        """The merchant's audit exports, newest first."""
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=AuditExportCreateSerializer,
        responses={201: AuditExportSerializer, **error_responses(400, 401, 403, 404, 415)},
        tags=["audit exports"],
    )
    def post(self, request, merchant_id: int):
        """Ask for an export (state `pending`); poll it until `succeeded`, then ask for a download link."""
        serializer = AuditExportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        export = exports.audit_export_create(
            merchant=self.merchant,
            actor=self.actor(),
            request_ctx=request_context(request),
            **serializer.validated_data,
        )
        return Response(AuditExportSerializer(export).data, status=status.HTTP_201_CREATED)


class AuditExportDetailApi(OwnerApiMixin, APIView):
    @extend_schema(responses={200: AuditExportSerializer, **error_responses(401, 403, 404)}, tags=["audit exports"])
    def get(self, request, merchant_id: int, export_id: int):
        """One export: its state, and once succeeded its rows, bytes and sha256 (of the .gz file)."""
        export = exports.audit_export_get(merchant=self.merchant, export_id=export_id)
        return Response(AuditExportSerializer(export).data)


class AuditExportDownloadLinkApi(OwnerApiMixin, APIView):
    @extend_schema(
        request=None,
        responses={
            200: DownloadLinkSerializer,
            **error_responses(401, 403, 404),
            409: OpenApiResponse(FieldErrorsSerializer, "No file to download (not succeeded, or deleted)."),
        },
        tags=["audit exports"],
    )
    def post(self, request, merchant_id: int, export_id: int):
        """A fresh signed link to the export's file, valid 10 minutes; ask again for another."""
        export = exports.audit_export_get(merchant=self.merchant, export_id=export_id)
        if export.stored_file() is None:
            message = NOT_DOWNLOADABLE.format(state=export.get_state_display().lower())
            return Response({"state": [message]}, status=status.HTTP_409_CONFLICT)
        link = download_link(export, request=request)
        return Response(DownloadLinkSerializer({"url": link.url, "expires_at": link.expires_at}).data)
