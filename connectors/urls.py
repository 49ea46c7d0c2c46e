from django.urls import path

from connectors import views

app_name = "connectors"

urlpatterns = [
    path("m/<int:merchant_id>/connectors/", views.connector_list, name="list"),
    path("m/<int:merchant_id>/connectors/api-key/", views.api_key_connect, name="api_key_connect"),
    path("m/<int:merchant_id>/connectors/<str:provider>/connect/", views.oauth_start, name="oauth_start"),
    path(
        "m/<int:merchant_id>/connectors/<int:credential_id>/disconnect/",
        views.credential_disconnect,
        name="disconnect",
    ),
    path("connectors/oauth/<str:provider>/callback/", views.oauth_callback, name="oauth_callback"),
    path("webhooks/attentive/<str:public_id>/", views.attentive_webhook, name="attentive_webhook"),
]
