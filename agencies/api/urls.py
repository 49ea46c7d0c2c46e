from django.urls import path

from agencies.api import views

urlpatterns = [
    path("agencies/<int:agency_id>/portfolio/", views.PortfolioApi.as_view(), name="api-agency-portfolio"),
]
