from django.urls import path

from agencies.api import views

urlpatterns = [
    path("agencies/<int:agency_id>/portfolio/", views.PortfolioApi.as_view(), name="api-agency-portfolio"),
    path(
        "agencies/<int:agency_id>/dashboard-templates/",
        views.AgencyTemplateListApi.as_view(),
        name="api-agency-dashboard-template-list",
    ),
    path(
        "agencies/<int:agency_id>/dashboard-templates/<int:template_id>/",
        views.AgencyTemplateDetailApi.as_view(),
        name="api-agency-dashboard-template-detail",
    ),
]
