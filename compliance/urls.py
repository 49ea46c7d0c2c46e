from django.urls import path

from compliance import storage, views

app_name = "compliance"

urlpatterns = [
    path("compliance/files/<str:token>/", storage.file_download, name="file_download"),
    path("m/<int:merchant_id>/audit/exports/", views.audit_export_list_page, name="audit_exports"),
    path(
        "m/<int:merchant_id>/audit/exports/<int:export_id>/download/",
        views.audit_export_download,
        name="audit_export_download",
    ),
]
