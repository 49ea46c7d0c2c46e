from django.contrib import admin

from dashboards.models import DashboardTemplate


@admin.register(DashboardTemplate)
class DashboardTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "merchant", "agency", "version", "widget_count", "created_by", "updated_at"]
    list_select_related = ["merchant", "agency"]
    list_filter = [("agency", admin.EmptyFieldListFilter)]
    search_fields = ["name", "merchant__name", "agency__name"]
    readonly_fields = ["version", "created_by", "updated_by", "created_at", "updated_at"]

    @admin.display(description="Widgets")
    def widget_count(self, obj: DashboardTemplate) -> int:
        return len(obj.layout or [])
