from __future__ import annotations

from django.db import models
from django.db.models import Q

from connectors.choices import AuthKind, CredentialStatus, Provider

# Every encrypted column in this app: the key-rotation command walks exactly these.
SECRET_FIELDS = {
    "ConnectorCredential": ("access_token_enc", "refresh_token_enc", "api_key_enc"),
    "OAuthState": ("code_verifier_enc",),
    "AttentiveWebhook": ("signing_key_enc",),
    "ShopifyPendingInstall": ("access_token_enc", "refresh_token_enc"),
}


class ConnectorCredential(models.Model):
    """A merchant's access to one provider account; every secret is stored encrypted (connectors.crypto)."""

    merchant = models.ForeignKey("accounts.Merchant", on_delete=models.CASCADE, related_name="credentials")
    provider = models.CharField(max_length=20, choices=Provider.choices)
    auth_kind = models.CharField(max_length=10, choices=AuthKind.choices)
    external_account_id = models.CharField(max_length=128, help_text="The provider's id of the connected account.")
    account_label = models.CharField(max_length=255, blank=True)
    # Encrypted ("v1:<key id>:<fernet token>"); empty means "none".
    access_token_enc = models.TextField(blank=True)
    refresh_token_enc = models.TextField(blank=True)
    api_key_enc = models.TextField(blank=True)
    secret_last4 = models.CharField(max_length=4, blank=True, help_text="Last four characters, for people.")
    scopes = models.JSONField(default=list, blank=True)
    metadata = models.JSONField(default=dict, blank=True, help_text="Non-secret provider facts (ad accounts...).")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: the secret does not expire.")
    status = models.CharField(
        max_length=16, choices=CredentialStatus.choices, default=CredentialStatus.ACTIVE, db_index=True
    )
    last_refreshed_at = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True, help_text="Backoff after a transient failure.")
    # The negative cache of refresh: on the row, not in the shared cache, because it is written in the same
    # transaction as the failure and the release of the refresh lock, so every waiter sees it the moment it
    # gets the lock, in every process, and it cannot be evicted or lost with Redis.
    refresh_blocked_until = models.DateTimeField(
        null=True,
        blank=True,
        help_text="After a failed refresh: until then callers get that failure without calling the provider.",
    )
    last_error_code = models.CharField(max_length=64, blank=True)
    last_error_message = models.CharField(max_length=500, blank=True)
    connected_by = models.CharField(max_length=64, blank=True, help_text="Clerk user id who connected it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["merchant_id", "provider", "external_account_id"]
        constraints = [
            # Reconnecting replaces the secret on this row; the history lives in the audit log.
            models.UniqueConstraint(
                fields=["merchant", "provider", "external_account_id"], name="credential_one_per_account"
            ),
            models.CheckConstraint(
                condition=Q(auth_kind=AuthKind.API_KEY, api_key_enc__gt="")
                | Q(auth_kind=AuthKind.OAUTH, access_token_enc__gt="")
                | Q(status=CredentialStatus.REVOKED),
                name="credential_has_secret_unless_revoked",
            ),
        ]
        indexes = [models.Index(fields=["status", "expires_at"], name="credential_due")]

    def __str__(self) -> str:
        return f"{self.get_provider_display()} {self.account_label or self.external_account_id} ({self.merchant_id})"


class OAuthState(models.Model):
    """One OAuth connect attempt: binds the `state` to a merchant and user, used at most once."""

    nonce = models.CharField(max_length=64, unique=True)
    merchant = models.ForeignKey("accounts.Merchant", on_delete=models.CASCADE, related_name="+")
    clerk_user_id = models.CharField(max_length=64)
    provider = models.CharField(max_length=20, choices=Provider.choices)
    code_verifier_enc = models.TextField(blank=True, help_text="PKCE verifier (Google), encrypted.")
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.provider} connect for merchant {self.merchant_id} by {self.clerk_user_id}"


class AttentiveWebhook(models.Model):
    """A webhook registered at Attentive for an API-key credential: where its events arrive, and their key.

    Events are POSTed to /webhooks/attentive/<public_id>/ (connectors.attentive); the id is opaque so the URL says
    nothing about the merchant. The signing key (Attentive's per-webhook secret) is stored encrypted.
    """

    merchant = models.ForeignKey("accounts.Merchant", on_delete=models.CASCADE, related_name="+")
    credential = models.ForeignKey(ConnectorCredential, on_delete=models.CASCADE, related_name="attentive_webhooks")
    public_id = models.CharField(max_length=64, unique=True, help_text="Opaque id in the intake URL.")
    attentive_webhook_id = models.CharField(max_length=128, help_text="Attentive's id of the webhook.")
    signing_key_enc = models.TextField(help_text="Encrypted (connectors.crypto).")
    events = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    disabled_at = models.DateTimeField(null=True, blank=True, help_text="Set at disconnect: events are refused.")

    class Meta:
        ordering = ["merchant_id", "-created_at"]

    def __str__(self) -> str:
        return f"Attentive webhook {self.attentive_webhook_id} ({self.merchant_id})"


class ShopifyOAuthState(models.Model):
    """One Shopify install attempt: the `state` nonce, bound to the browser (a signed cookie holds it too),
    to the shop, and to the signed-in user who started it (empty when it started from Shopify)."""

    nonce = models.CharField(max_length=64, unique=True)
    shop_domain = models.CharField(max_length=255)
    clerk_user_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"Shopify install of {self.shop_domain} ({self.nonce[:6]}…)"


class ShopifyPendingInstall(models.Model):
    """An install completed at Shopify by someone not signed in: waits (tokens encrypted) for that person to
    sign in and claim it. The claim token lives only in their browser's cookie; this row has its hash."""

    claim_token_hash = models.CharField(max_length=64, unique=True)
    shop_domain = models.CharField(max_length=255, db_index=True)
    shop = models.JSONField(default=dict, help_text="The shop's record from shop.json (no secrets).")
    access_token_enc = models.TextField(blank=True)
    refresh_token_enc = models.TextField(blank=True)
    scopes = models.JSONField(default=list, blank=True)
    token_expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    claim_expires_at = models.DateTimeField()
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_by = models.CharField(max_length=64, blank=True)
    merchant = models.ForeignKey(
        "accounts.Merchant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"pending Shopify install of {self.shop_domain}"


class WebhookStatus(models.TextChoices):
    RECEIVED = "received", "Received"
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored"  # a topic we do not act on, or a shop we do not know
    FAILED = "failed", "Failed"


class ShopifyWebhookDelivery(models.Model):
    """One Shopify webhook delivery as received (its HMAC checked), stored before it is acted on."""

    # X-Shopify-Event-Id (Shopify's advice for dedupe), else the webhook id, which retries also keep.
    dedupe_key = models.CharField(max_length=128, unique=True)
    event_id = models.CharField(max_length=128, blank=True)
    webhook_id = models.CharField(max_length=128, blank=True)
    topic = models.CharField(max_length=64)
    shop_domain = models.CharField(max_length=255, db_index=True)
    api_version = models.CharField(max_length=16, blank=True)
    triggered_at = models.CharField(max_length=64, blank=True)
    body = models.JSONField(default=dict)
    merchant = models.ForeignKey(
        "accounts.Merchant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=WebhookStatus.choices, default=WebhookStatus.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.topic} for {self.shop_domain} ({self.status})"
