from django.urls import path

from accounts.api import views

urlpatterns = [
    path("merchants/", views.MerchantListApi.as_view(), name="api-merchant-list"),
    path("merchants/<int:merchant_id>/", views.MerchantDetailApi.as_view(), name="api-merchant-detail"),
]
