from django.db import models

from compliance.choices import ActorType


class AuditEvent(models.Model):
    """One thing that happened, kept forever: the app's database role may only INSERT and SELECT it, and a
    trigger rejects UPDATE and DELETE from anyone (compliance/roles.py)."""

    occurred_at = models.DateTimeField(db_index=True)
    actor_type = models.CharField(max_length=20, choices=ActorType.choices)
    actor_id = models.CharField(max_length=128, blank=True)
    actor_label = models.CharField(max_length=255, blank=True, help_text="Who it was, as shown to people.")
    action = models.CharField(max_length=100, db_index=True, help_text="Dotted, e.g. credential.refreshed")
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=128, blank=True)
    # No database constraint: the log outlives the merchants it mentions, and a cascade would be a DELETE.
    merchant = models.ForeignKey(
        "accounts.Merchant",
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["merchant", "-occurred_at"], name="audit_merchant_time")]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M:%S} {self.action} by {self.actor_label or self.actor_id}"
