from django.db import models

from accounts.choices import Role
from accounts.validators import (
    validate_currency,
    validate_merchant_key,
    validate_shop_domain,
    validate_timezone,
)


class Merchant(models.Model):
    """A Shopify store: the tenant every piece of merchant data belongs to."""

    name = models.CharField(max_length=200)
    shop_domain = models.CharField(
        max_length=255, unique=True, validators=[validate_shop_domain], help_text="e.g. my-store.myshopify.com"
    )
    timezone = models.CharField(max_length=64, validators=[validate_timezone], help_text="IANA time zone")
    currency = models.CharField(max_length=3, validators=[validate_currency], help_text="ISO 4217 code")
    key = models.CharField(
        max_length=40,
        unique=True,
        validators=[validate_merchant_key],
        help_text="Names the merchant's raw data schema, raw_<key>. Never changes once data has landed.",
    )
    is_active = models.BooleanField(default=True, help_text="Inactive merchants are left out of dbt runs.")
    uninstalled_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the Shopify app was uninstalled (empty: installed, or never via Shopify).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def raw_schema(self) -> str:
        return f"raw_{self.key}"


class Membership(models.Model):
    """A Clerk user's access to one merchant, with a role."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="memberships")
    clerk_user_id = models.CharField(max_length=64, db_index=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["merchant__name", "clerk_user_id"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "clerk_user_id"], name="membership_unique_user_per_merchant")
        ]

    def __str__(self) -> str:
        return f"{self.clerk_user_id} → {self.merchant} ({self.role})"
