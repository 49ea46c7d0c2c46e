"""The web pixel's per-store write keys, its activation at Shopify, and what the collector counted."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from collector.choices import ActivationStatus


class WriteKey(models.Model):
    """A store's public write key: the pixel sends it with every batch, the collector maps it to the store.

    Public (it is in the storefront's pixel settings), so it only says which store a batch claims to be for;
    rotatable: a new key is made and the old one keeps being accepted until `expires_at` (cached storefront
    pages and pixels already loaded still send it)."""

    merchant = models.ForeignKey("accounts.Merchant", on_delete=models.CASCADE, related_name="write_keys")
    key = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="Empty: the current key. Set at rotation: accepted until then."
    )

    class Meta:
        ordering = ["merchant", "-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["merchant"], condition=models.Q(expires_at__isnull=True), name="writekey_one_current_per_store"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key[:10]}… ({self.merchant_id})"


class PixelActivation(models.Model):
    """The store's web pixel at Shopify (webPixelCreate / webPixelUpdate) and how its last attempt went."""

    merchant = models.OneToOneField("accounts.Merchant", on_delete=models.CASCADE, related_name="pixel_activation")
    status = models.CharField(max_length=16, choices=ActivationStatus.choices, default=ActivationStatus.PENDING)
    web_pixel_id = models.CharField(max_length=128, blank=True, help_text="Shopify's gid://shopify/WebPixel/…")
    settings_sent = models.JSONField(default=dict, blank=True, help_text="The settings Shopify last accepted.")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    activated_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"pixel of {self.merchant_id}: {self.status}"


class EventCount(models.Model):
    """What the collector did with a store's events in one hour (UTC), for operators."""

    merchant = models.ForeignKey("accounts.Merchant", on_delete=models.CASCADE, related_name="web_event_counts")
    hour = models.DateTimeField()
    accepted = models.BigIntegerField(default=0, help_text="Stored in raw_<key>.web_events.")
    duplicate = models.BigIntegerField(default=0, help_text="Already stored (a resent batch).")
    no_consent = models.BigIntegerField(default=0, help_text="Dropped: no analytics consent.")
    bot = models.BigIntegerField(default=0, help_text="Dropped: a bot's user agent.")
    rejected = models.BigIntegerField(default=0, help_text="Refused (4xx): invalid events, rate limited.")

    class Meta:
        ordering = ["-hour", "merchant"]
        constraints = [models.UniqueConstraint(fields=["merchant", "hour"], name="eventcount_one_per_store_hour")]

    def __str__(self) -> str:
        return f"{self.merchant_id} {self.hour:%Y-%m-%d %H}:00"
