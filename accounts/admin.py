from django.contrib import admin

from accounts.models import Membership, Merchant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ("clerk_user_id", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = (
        "name", "shop_domain", "key", "timezone", "currency", "is_active", "uninstalled_at", "member_count",
        "created_at",
    )  # fmt: skip
    list_filter = ("is_active", "currency", "timezone")
    search_fields = ("name", "shop_domain", "key")
    # Set by Shopify's app/uninstalled webhook, cleared by a reinstall: not for hand editing.
    readonly_fields = ("uninstalled_at", "created_at", "updated_at")
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        # The key names the raw data schema; renaming it would orphan the merchant's data.
        return (*self.readonly_fields, "key") if obj else self.readonly_fields

    def get_queryset(self, request):
        from django.db.models import Count

        return super().get_queryset(request).annotate(_member_count=Count("memberships"))

    @admin.display(description="Members", ordering="_member_count")
    def member_count(self, obj: Merchant) -> int:
        return obj._member_count


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("clerk_user_id", "merchant", "role", "created_at")
    list_filter = ("role", "merchant")
    search_fields = ("clerk_user_id", "merchant__name", "merchant__shop_domain")
    list_select_related = ("merchant",)
    autocomplete_fields = ("merchant",)
