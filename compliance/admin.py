from django.contrib import admin

from compliance.models import AuditEvent, PrivacyRequest


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


class _OverdueFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request, model_admin):
        return (("overdue", "Overdue"), ("soon", "Due within 3 days"), ("open", "Not done"))

    def queryset(self, request, queryset):
        from compliance.selectors import privacy_request_list

        if self.value():
            return privacy_request_list(deadline=self.value(), queryset=queryset)
        return queryset


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):
    """Every Shopify privacy request with its deadline. Read-only but for "process again": what was done is
    the record of a legal obligation, changed only by the work itself."""

    list_display = (
        "id",
        "topic",
        "shop_domain",
        "merchant",
        "state",
        "received_at",
        "due_at",
        "is_overdue",
        "handled_at",
    )
    list_filter = (_OverdueFilter, "state", "topic")
    search_fields = ("shop_domain", "=shopify_request_id", "=id")
    list_select_related = ("merchant",)
    date_hierarchy = "received_at"
    ordering = ("due_at", "id")
    actions = ("process_again",)
    # The customer's identifiers are not shown: staff act on the request, not on the person.
    exclude = ("customer_email", "customer_phone")

    @admin.display(boolean=True, description="Overdue")
    def is_overdue(self, obj: PrivacyRequest) -> bool:
        from compliance.selectors import privacy_request_is_overdue

        return privacy_request_is_overdue(obj)

    @admin.action(description="Process the selected failed requests again")
    def process_again(self, request, queryset):
        from compliance.choices import ActorType, PrivacyState
        from compliance.privacy import privacy_request_retry
        from compliance.services import Actor

        actor = Actor(type=ActorType.STAFF, id=str(request.user.pk), label=request.user.get_username())
        retried = 0
        for pk in queryset.filter(state=PrivacyState.FAILED).values_list("pk", flat=True):
            privacy_request_retry(request_id=pk, actor=actor)
            retried += 1
        self.message_user(request, f"{retried} request(s) queued again.")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
