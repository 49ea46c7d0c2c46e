from django.urls import path

from dashboards.api import views

prefix = "merchants/<int:merchant_id>/"

urlpatterns = [
    path(prefix + "metrics/overview/", views.OverviewApi.as_view(), name="api-metrics-overview"),
    path(prefix + "metrics/ltv/", views.LtvApi.as_view(), name="api-metrics-ltv"),
    path(prefix + "metrics/attribution/", views.AttributionApi.as_view(), name="api-metrics-attribution"),
    path(
        prefix + "metrics/attribution/compare/",
        views.AttributionCompareApi.as_view(),
        name="api-metrics-attribution-compare",
    ),
    path(prefix + "metrics/engagement/", views.EngagementApi.as_view(), name="api-metrics-engagement"),
    path(prefix + "dashboard-templates/", views.DashboardTemplateListApi.as_view(), name="api-dashboard-template-list"),
    path(
        prefix + "dashboard-templates/starters/",
        views.StarterTemplateListApi.as_view(),
        name="api-dashboard-template-starters",
    ),
    path(
        prefix + "dashboard-templates/<int:template_id>/",
        views.DashboardTemplateDetailApi.as_view(),
        name="api-dashboard-template-detail",
    ),
    path(
        prefix + "dashboard-templates/<int:template_id>/apply/",
        views.DashboardTemplateApplyApi.as_view(),
        name="api-dashboard-template-apply",
    ),
]
