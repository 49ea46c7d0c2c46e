from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from compliance.choices import ActorType
from compliance.services import Actor, request_context
from connectors import services
from connectors.models import (
    AttentiveWebhook,
    ConnectorCredential,
    ShopifyPendingInstall,
    ShopifyWebhookDelivery,
)
from connectors.selectors import credential_needs_attention_q


def _staff_actor(request) -> Actor:
    return Actor(type=ActorType.STAFF, id=str(request.user.pk), label=request.user.get_username())


class NeedsAttentionFilter(admin.SimpleListFilter):
    title = "attention"
    parameter_name = "attention"

    def lookups(self, request, model_admin):
        return [("needs", "Needs attention")]

    def queryset(self, request, queryset):
        if self.value() == "needs":
            return queryset.filter(credential_needs_attention_q())
        return queryset


@admin.register(ConnectorCredential)
class ConnectorCredentialAdmin(admin.ModelAdmin):
    """Secrets are never shown (the last four characters at most); changes go through the actions."""

    list_display = (
        "id",
        "merchant",
        "provider",
        "account",
        "status_badge",
        "expires_in",
        "last_refreshed_at",
        "consecutive_failures",
        "secret",
    )
    list_filter = (NeedsAttentionFilter, "status", "provider", "auth_kind")
    search_fields = ("external_account_id", "account_label", "merchant__name", "merchant__shop_domain")
    list_select_related = ("merchant",)
    ordering = ("merchant__name", "provider")
    actions = ("refresh_now", "revoke", "reencrypt")
    fields = (
        "merchant",
        "provider",
        "auth_kind",
        "external_account_id",
        "account_label",
        "secret",
        "scopes",
        "metadata",
        "status",
        "expires_at",
        "last_refreshed_at",
        "consecutive_failures",
        "next_attempt_at",
        "last_error_code",
        "last_error_message",
        "connected_by",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="account", ordering="account_label")
    def account(self, obj: ConnectorCredential) -> str:
        return obj.account_label or obj.external_account_id

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: ConnectorCredential) -> str:
        return format_html('<span data-status="{}">{}</span>', obj.status, obj.get_status_display())

    @admin.display(description="expires in", ordering="expires_at")
    def expires_in(self, obj: ConnectorCredential) -> str:
        if obj.expires_at is None:
            return "never"
        seconds = (obj.expires_at - timezone.now()).total_seconds()
        if seconds <= 0:
            return "expired"
        if seconds < 3600:
            return f"{int(seconds // 60)} min"
        if seconds < 86400 * 2:
            return f"{int(seconds // 3600)} h"
        return f"{int(seconds // 86400)} days"

    @admin.display(description="secret")
    def secret(self, obj: ConnectorCredential) -> str:
        return f"••••{obj.secret_last4}" if obj.secret_last4 else "••••"

    # Each action calls one service per credential with the staff user as actor; every one is audited.

    @admin.action(description="Refresh now (queued)")
    def refresh_now(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        for credential_id in ids:
            services.credential_refresh_request(
                credential_id=credential_id, actor=_staff_actor(request), request_ctx=request_context(request)
            )
        messages.success(request, f"Queued a refresh of {len(ids)} credential(s).")

    @admin.action(description="Revoke (forget the secrets)")
    def revoke(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        for credential_id in ids:
            services.credential_revoke(
                credential_id=credential_id, actor=_staff_actor(request), request_ctx=request_context(request)
            )
        messages.success(request, f"Revoked {len(ids)} credential(s).")

    @admin.action(description="Re-encrypt under the current key")
    def reencrypt(self, request, queryset):
        changed = sum(
            services.credential_reencrypt(
                credential_id=pk, actor=_staff_actor(request), request_ctx=request_context(request)
            )
            for pk in queryset.values_list("pk", flat=True)
        )
        messages.success(request, f"Re-encrypted {changed} credential(s).")


class _ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ShopifyWebhookDelivery)
class ShopifyWebhookDeliveryAdmin(_ReadOnlyAdmin):
    """What Shopify sent and what became of it (a failed one says why)."""

    list_display = ("id", "topic", "shop_domain", "status", "attempts", "received_at", "processed_at", "error")
    list_filter = ("status", "topic")
    search_fields = ("shop_domain", "event_id", "webhook_id")
    fields = (
        "topic", "shop_domain", "merchant", "status", "error", "attempts", "event_id", "webhook_id",
        "api_version", "triggered_at", "received_at", "processed_at", "body",
    )  # fmt: skip
    readonly_fields = fields


@admin.register(ShopifyPendingInstall)
class ShopifyPendingInstallAdmin(_ReadOnlyAdmin):
    """Installs waiting for their person to sign in. The tokens are never shown."""

    list_display = ("id", "shop_domain", "created_at", "claim_expires_at", "claimed_at", "claimed_by", "merchant")
    search_fields = ("shop_domain", "claimed_by")
    fields = ("shop_domain", "shop", "scopes", "created_at", "claim_expires_at", "claimed_at", "claimed_by", "merchant")
    readonly_fields = fields


@admin.register(AttentiveWebhook)
class AttentiveWebhookAdmin(_ReadOnlyAdmin):
    """Read-only: rows are written by connect and disconnect; the signing key is never shown (nor its ciphertext)."""

    list_display = ("id", "merchant", "credential", "attentive_webhook_id", "created_at", "disabled_at")
    list_filter = ("disabled_at",)
    list_select_related = ("merchant", "credential")
    search_fields = ("attentive_webhook_id", "merchant__name")
    fields = ("merchant", "credential", "attentive_webhook_id", "events", "created_at", "disabled_at")
    readonly_fields = fields
