from django.urls import path

from agencies import views_portfolio

app_name = "portfolio"  # not "agencies": the agency pages of the others own that namespace

urlpatterns = [
    path("agencies/<int:agency_id>/", views_portfolio.portfolio_page, name="page"),
    path("agencies/<int:agency_id>/groups/", views_portfolio.group_create, name="group_create"),
    path("agencies/<int:agency_id>/groups/<int:group_id>/", views_portfolio.group_update, name="group_update"),
    path("agencies/<int:agency_id>/groups/<int:group_id>/delete/", views_portfolio.group_delete, name="group_delete"),
]
