from django.urls import path

from agencies import views

app_name = "agencies"

urlpatterns = [
    path("agencies/", views.agency_index, name="index"),
    path("agencies/new/", views.agency_new, name="new"),
    path("agencies/<int:agency_id>/members/", views.agency_members, name="members"),
    path("agencies/<int:agency_id>/invitations/", views.invitation_create, name="invitation_create"),
    path(
        "agencies/<int:agency_id>/invitations/<int:invitation_id>/revoke/",
        views.invitation_revoke,
        name="invitation_revoke",
    ),
    path("agencies/<int:agency_id>/members/<int:member_id>/clients/", views.member_clients, name="member_clients"),
]
