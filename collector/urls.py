from django.urls import path

from collector import views

app_name = "collector"

urlpatterns = [
    path("collect/v1/batch", views.batch, name="batch"),
]
