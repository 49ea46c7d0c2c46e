from django.urls import path

from ingestion import views

app_name = "ingestion"

urlpatterns = [
    # The token is in the query string: config.logging drops the query of every /webhooks/ path from logs.
    path("webhooks/airbyte/", views.airbyte_notification, name="airbyte_notification"),
]
