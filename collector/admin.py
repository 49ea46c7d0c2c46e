from __future__ import annotations

from django.contrib import admin, messages

from collector import services
from collector.models import EventCount, PixelActivation, WriteKey


@admin.register(EventCount)
class EventCountAdmin(admin.ModelAdmin):
    """Per store and hour: what the collector stored, found already stored, dropped (no consent, bots) and
    refused. Written by each web process every few seconds (COLLECTOR_COUNTS_FLUSH_SECONDS)."""

    list_display = ("hour", "merchant", "accepted", "duplicate", "no_consent", "bot", "rejected")
    list_filter = ("hour",)
    search_fields = ("merchant__name", "merchant__shop_domain")
    list_select_related = ("merchant",)
    date_hierarchy = "hour"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WriteKey)
class WriteKeyAdmin(admin.ModelAdmin):
    """Public keys (they are in the storefront); rotation keeps the old one working for the grace period."""

    list_display = ("key", "merchant", "created_at", "expires_at")
    search_fields = ("key", "merchant__name", "merchant__shop_domain")
    list_select_related = ("merchant",)
    readonly_fields = ("merchant", "key", "created_at", "expires_at")
    actions = ("rotate",)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Rotate the store's key (the old one is accepted for the grace period)")
    def rotate(self, request, queryset):
        merchants = {key.merchant for key in queryset.select_related("merchant")}
        for merchant in merchants:
            services.write_key_rotate(merchant=merchant)
        self.message_user(request, f"Rotated the write key of {len(merchants)} store(s).", messages.SUCCESS)


@admin.register(PixelActivation)
class PixelActivationAdmin(admin.ModelAdmin):
    list_display = ("merchant", "status", "web_pixel_id", "attempts", "activated_at", "updated_at")
    list_filter = ("status",)
    search_fields = ("merchant__name", "merchant__shop_domain", "web_pixel_id")
    list_select_related = ("merchant",)
    readonly_fields = (
        "merchant", "status", "web_pixel_id", "settings_sent", "attempts", "last_error", "activated_at", "updated_at",
    )  # fmt: skip
    actions = ("activate_again",)

    def has_add_permission(self, request):
        return False

    @admin.action(description="Activate the pixel at Shopify again")
    def activate_again(self, request, queryset):
        for activation in queryset:
            services.pixel_activation_request(merchant_id=activation.merchant_id)
        self.message_user(request, f"Asked Shopify again for {queryset.count()} store(s).", messages.SUCCESS)
