from django.urls import path

from compliance import storage, views

app_name = "compliance"

urlpatterns = [
    path("compliance/files/<str:token>/", storage.file_download, name="file_download"),
    path("m/<int:merchant_id>/privacy/", views.privacy_requests, name="privacy_requests"),
]
