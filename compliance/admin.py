from django.contrib import admin

from compliance.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only, in the admin as in the database."""

    list_display = ("occurred_at", "action", "actor_type", "actor_label", "target_type", "target_id", "merchant", "ip")
    list_filter = ("action", "actor_type", "target_type", ("occurred_at", admin.DateFieldListFilter))
    search_fields = ("action", "actor_id", "actor_label", "target_id", "=ip")
    list_select_related = ("merchant",)
    date_hierarchy = "occurred_at"
    ordering = ("-occurred_at", "-id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
