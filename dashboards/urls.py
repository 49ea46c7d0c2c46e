from django.urls import path

from dashboards import views, views_exports, views_templates

app_name = "dashboards"

urlpatterns = [
    path("m/<int:merchant_id>/overview/", views.overview, name="overview"),
    path("m/<int:merchant_id>/ltv/", views.ltv, name="ltv"),
    path("m/<int:merchant_id>/attribution/", views.attribution, name="attribution"),
    path("m/<int:merchant_id>/engagement/", views.engagement, name="engagement"),
    path("m/<int:merchant_id>/export/<slug:table>.csv", views_exports.export_csv, name="export_csv"),
    path("m/<int:merchant_id>/dashboards/", views.template_list, name="template_list"),
    path("m/<int:merchant_id>/dashboards/apply/", views_templates.template_apply, name="template_apply"),
    path("m/<int:merchant_id>/dashboards/save/", views_templates.template_save, name="template_save"),
    path("m/<int:merchant_id>/dashboards/starter/<slug:key>/", views.starter_detail, name="starter_detail"),
    path("m/<int:merchant_id>/dashboards/<int:template_id>/", views.template_detail, name="template_detail"),
    path("m/<int:merchant_id>/dashboards/<int:template_id>/edit/", views_templates.template_edit, name="template_edit"),
    path(
        "m/<int:merchant_id>/dashboards/<int:template_id>/delete/",
        views_templates.template_delete,
        name="template_delete",
    ),
]
