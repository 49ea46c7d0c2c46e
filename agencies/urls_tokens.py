from django.urls import path

from agencies import views_tokens

app_name = "agencies_tokens"

urlpatterns = [
    path("agencies/<int:agency_id>/tokens/", views_tokens.token_list, name="token_list"),
    path("agencies/<int:agency_id>/tokens/<int:token_id>/revoke/", views_tokens.token_revoke, name="token_revoke"),
]
