from django.urls import path

from compliance.api import views

prefix = "merchants/<int:merchant_id>/audit-exports/"

urlpatterns = [
    path(prefix, views.AuditExportListApi.as_view(), name="api-audit-export-list"),
    path(prefix + "<int:export_id>/", views.AuditExportDetailApi.as_view(), name="api-audit-export-detail"),
    path(
        prefix + "<int:export_id>/download-link/",
        views.AuditExportDownloadLinkApi.as_view(),
        name="api-audit-export-download-link",
    ),
]
