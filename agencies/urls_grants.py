from django.urls import path

from agencies import views_grants as v

app_name = "agencies_grants"

urlpatterns = [
    path("m/<int:merchant_id>/agencies/", v.store_grants, name="store"),
    path("m/<int:merchant_id>/agencies/codes/", v.store_code_create, name="store_code_create"),
    path("m/<int:merchant_id>/agencies/<int:grant_id>/approve/", v.store_grant_approve, name="store_approve"),
    path("m/<int:merchant_id>/agencies/<int:grant_id>/decline/", v.store_grant_decline, name="store_decline"),
    path("m/<int:merchant_id>/agencies/<int:grant_id>/end/", v.store_grant_end, name="store_end"),
    path("agencies/<int:agency_id>/grants/", v.agency_grants, name="agency"),
    path("agencies/<int:agency_id>/grants/request/", v.agency_grant_request, name="agency_request"),
    path("agencies/<int:agency_id>/grants/redeem/", v.agency_code_redeem, name="agency_redeem"),
    path("agencies/<int:agency_id>/grants/<int:grant_id>/end/", v.agency_grant_end, name="agency_end"),
]
