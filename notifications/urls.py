from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("webhooks/clerk/", views.clerk_webhook, name="clerk_webhook"),
    path("m/<int:merchant_id>/notifications/", views.preferences, name="preferences"),
    path("notifications/unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
