from django.contrib import admin, messages
from django.utils.html import format_html

from compliance.choices import ActorType
from compliance.services import Actor, request_context
from notifications import services
from notifications.models import Notification, NotificationOptOut


def _staff_actor(request) -> Actor:
    return Actor(type=ActorType.STAFF, id=str(request.user.pk), label=request.user.get_username())


class RecipientTypeFilter(admin.SimpleListFilter):
    title = "recipient"
    parameter_name = "recipient"

    def lookups(self, request, model_admin):
        return (("staff", "Staff user"), ("merchant", "Merchant (Clerk user)"))

    def queryset(self, request, queryset):
        if self.value() == "staff":
            return queryset.filter(staff_user__isnull=False)
        if self.value() == "merchant":
            return queryset.filter(staff_user__isnull=True)
        return queryset


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    """Read-only outbox: staff change rows only through the resend and cancel actions, each audited
    (tests/notifications/test_admin.py fails on an action it does not know)."""

    list_display = (
        "id",
        "created_at",
        "kind",
        "recipient",
        "merchant",
        "to_email",
        "status",
        "attempts",
        "sent_at",
    )
    list_filter = ("status", "kind", RecipientTypeFilter, "merchant")
    search_fields = ("to_email", "=clerk_user_id", "dedupe_key", "staff_user__username", "staff_user__email")
    list_select_related = ("merchant", "staff_user")
    date_hierarchy = "created_at"
    ordering = ("-created_at", "-id")
    actions = ("resend", "cancel")
    fields = (
        "recipient",
        "merchant",
        "clerk_user_id",
        "staff_user",
        "to_email",
        "kind",
        "dedupe_key",
        "status",
        "last_error",
        "attempts",
        "created_at",
        "next_attempt_at",
        "claimed_at",
        "give_up_at",
        "sent_at",
        "subject",
        "context",
        "text_body",
        "html_body",
    )
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # Viewing needs the view permission only; actions check their own permission below.
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_resend_permission(self, request) -> bool:
        return request.user.has_perm("notifications.view_notification") and request.user.is_staff

    has_cancel_permission = has_resend_permission

    @admin.display(description="Recipient")
    def recipient(self, obj: Notification) -> str:
        if obj.staff_user_id is not None:
            user = obj.staff_user
            return format_html("Staff: {} ({})", user.get_username(), user.email or "no email")
        return format_html("Clerk user: {}", obj.clerk_user_id)

    @admin.display(description="Text body")
    def text_body(self, obj: Notification) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', obj.body_text)

    @admin.display(description="HTML body (source; not rendered, so no remote content loads in the admin)")
    def html_body(self, obj: Notification) -> str:
        return format_html('<pre style="white-space: pre-wrap">{}</pre>', obj.body_html)

    @admin.action(description="Resend the selected notifications", permissions=["resend"])
    def resend(self, request, queryset) -> None:
        done, refused = 0, []
        for notification in queryset:
            try:
                services.notification_resend(
                    notification=notification, actor=_staff_actor(request), audit_context=request_context(request)
                )
                done += 1
            except services.NotificationError as exc:
                refused.append(str(exc))
        self._report(request, f"{done} notification(s) queued again.", refused)

    @admin.action(description="Cancel the selected pending notifications", permissions=["cancel"])
    def cancel(self, request, queryset) -> None:
        done, refused = 0, []
        for notification in queryset:
            try:
                services.notification_cancel(
                    notification=notification, actor=_staff_actor(request), audit_context=request_context(request)
                )
                done += 1
            except services.NotificationError as exc:
                refused.append(str(exc))
        self._report(request, f"{done} notification(s) cancelled.", refused)

    def _report(self, request, summary: str, refused: list[str]) -> None:
        self.message_user(request, summary, messages.SUCCESS)
        for message in refused[:20]:
            self.message_user(request, message, messages.WARNING)


@admin.register(NotificationOptOut)
class NotificationOptOutAdmin(admin.ModelAdmin):
    """Read-only: an opt-out is the member's own choice (their preferences page or an unsubscribe link).
    Staff may look, to answer "why did I get no email?", but not subscribe anyone again or mute them; so no
    add, change or delete, and with no delete permission Django offers no "delete selected" action either."""

    list_display = ("clerk_user_id", "merchant", "kind", "created_at")
    list_filter = ("kind", "merchant")
    search_fields = ("=clerk_user_id",)
    list_select_related = ("merchant",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
