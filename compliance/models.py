from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from compliance.choices import ActorType, ExportFormat, ExportState
from compliance.storage import StoredFile, downloadable

# Shown by forms that run the model's checks (the admin's), and raised by compliance.exports with the same words.
RANGE_ORDER = "The end must be after the start."
TARGET_ID_NEEDS_TYPE = "A target id needs its target type."


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


@downloadable(audit_action="audit_export.downloaded")
class AuditExport(models.Model):
    """One export of the audit log over a range, as a gzip file in the compliance storage (docs/audit-export.md)."""

    # Null: a global export (every merchant's events and none), staff's alone.
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.CASCADE, null=True, blank=True, related_name="audit_exports"
    )
    occurred_from = models.DateTimeField(help_text="Inclusive.")
    occurred_to = models.DateTimeField(help_text="Exclusive: consecutive ranges never share or miss an event.")
    actions = ArrayField(models.CharField(max_length=100), default=list, blank=True)
    actor_ids = ArrayField(models.CharField(max_length=128), default=list, blank=True)
    target_type = models.CharField(max_length=100, blank=True)
    target_id = models.CharField(max_length=128, blank=True)
    format = models.CharField(max_length=10, choices=ExportFormat.choices, default=ExportFormat.NDJSON)
    state = models.CharField(max_length=10, choices=ExportState.choices, default=ExportState.PENDING)
    failure_reason = models.TextField(blank=True)
    row_count = models.BigIntegerField(null=True, blank=True)
    byte_size = models.BigIntegerField(null=True, blank=True, help_text="Of the stored gzip file.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="Hex digest of the stored gzip file.")
    file_key = models.CharField(max_length=255, blank=True, help_text="Blank until succeeded and once deleted.")
    file_name = models.CharField(max_length=255, blank=True)
    requested_by_type = models.CharField(max_length=20, choices=ActorType.choices)
    requested_by_id = models.CharField(max_length=128, blank=True)
    requested_by_label = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["merchant", "-created_at"], name="audit_export_merchant_created"),
            models.Index(
                fields=["created_at"],
                name="audit_export_unfinished",
                condition=Q(state__in=[ExportState.PENDING, ExportState.RUNNING]),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(occurred_from__lt=models.F("occurred_to")),
                name="audit_export_range_ordered",
                violation_error_message=RANGE_ORDER,
            ),
            models.CheckConstraint(
                condition=Q(target_id="") | ~Q(target_type=""),
                name="audit_export_target_id_needs_type",
                violation_error_message=TARGET_ID_NEEDS_TYPE,
            ),
            models.CheckConstraint(
                condition=~Q(state=ExportState.SUCCEEDED)
                | (~Q(sha256="") & Q(row_count__isnull=False) & Q(byte_size__isnull=False)),
                name="audit_export_succeeded_has_file",
            ),
            models.CheckConstraint(
                condition=~Q(state=ExportState.FAILED) | ~Q(failure_reason=""), name="audit_export_failed_has_reason"
            ),
        ]

    def __str__(self) -> str:
        scope = self.merchant_id if self.merchant_id else "global"
        return f"Audit export {self.pk} ({scope}, {self.occurred_from:%Y-%m-%d} to {self.occurred_to:%Y-%m-%d})"

    def stored_file(self) -> StoredFile | None:
        if self.state != ExportState.SUCCEEDED or not self.file_key:
            return None
        return StoredFile(key=self.file_key, name=self.file_name, content_type="application/gzip")
