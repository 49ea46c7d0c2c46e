from django.urls import path

from connectors.api import views

urlpatterns = [
    path("connectors/api-key/connect", views.ApiKeyConnectApi.as_view(), name="api-connectors-api-key-connect"),
    path("merchants/<int:merchant_id>/connectors/", views.CredentialListApi.as_view(), name="api-connectors-list"),
]
