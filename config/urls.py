from django.contrib import admin
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from config import health
from config.docs import SwaggerView

admin.site.site_header = "Marketing analytics — operations"
admin.site.site_title = "Operations"
admin.site.index_title = "Merchants, connectors, jobs and the audit log"

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    # Browsers ask for /favicon.ico on pages that name no icon (the admin's).
    path("favicon.ico", lambda request: redirect(static("favicon.svg"), permanent=True)),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("accounts.api.urls")),
    path("api/", include("connectors.api.urls")),
    path("api/", include("dashboards.api.urls")),
    path("api/", include("agencies.api.urls")),
    path("api/", include("compliance.api.urls")),
    path("", include("dashboards.urls")),
    path("", include("agencies.urls_portfolio")),
    path("", include("connectors.urls")),
    path("", include("notifications.urls")),
    path("", include("accounts.urls")),
    path("", include("agencies.urls")),
    path("", include("agencies.urls_grants")),
    path("", include("ingestion.urls")),
    path("", include("agencies.urls_tokens")),
    path("", include("compliance.urls")),
    path("", include("collector.urls")),  # under gunicorn answered ahead of Django (config/wsgi.py)
]

handler400 = "config.errors.bad_request"
handler403 = "config.errors.permission_denied"
handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
