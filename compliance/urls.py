from django.urls import path

from compliance import storage

app_name = "compliance"

urlpatterns = [
    path("compliance/files/<str:token>/", storage.file_download, name="file_download"),
]
