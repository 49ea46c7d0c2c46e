from django.urls import path, re_path

from connectors import views, views_shopify

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
    path("shopify/add/", views_shopify.shopify_add, name="shopify_add"),
    # Shopify's own paths: the App URL and the redirect URL, with or without the trailing slash.
    re_path(r"^shopify/install/?$", views_shopify.shopify_install, name="shopify_install"),
    re_path(r"^shopify/callback/?$", views_shopify.shopify_callback, name="shopify_callback"),
    path("shopify/claim/", views_shopify.shopify_claim, name="shopify_claim"),
    path("webhooks/shopify/", views_shopify.shopify_webhook, name="shopify_webhook"),
]
