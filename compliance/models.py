from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from compliance.choices import (
    ActorType,
    DataCategory,
    ExportFormat,
    ExportState,
    PrivacyState,
    PrivacyTopic,
    PurgeStatus,
)
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


@downloadable(audit_action="privacy_request.downloaded")
class PrivacyRequest(models.Model):
    """One Shopify compliance webhook (customers/data_request, customers/redact, shop/redact) and what we did.

    Stored on receipt with Shopify's 30-day deadline; processed by a task (compliance.privacy). The delivery it
    came from is unique, so a redelivery finds the same row. After a redaction the customer's identifiers are
    dropped from this row too (kept only as the salted digests the redaction registry matches on)."""

    topic = models.CharField(max_length=40, choices=PrivacyTopic.choices, db_index=True)
    delivery = models.OneToOneField(
        "connectors.ShopifyWebhookDelivery", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.PROTECT, null=True, blank=True, related_name="privacy_requests"
    )
    shop_domain = models.CharField(max_length=255)
    shop_id = models.BigIntegerField(null=True, blank=True)
    shopify_request_id = models.CharField(max_length=64, blank=True, help_text="data_request.id, when given.")
    customer_id = models.BigIntegerField(null=True, blank=True)
    customer_email = models.CharField(max_length=320, blank=True)
    customer_phone = models.CharField(max_length=64, blank=True)
    orders = models.JSONField(default=list, blank=True, help_text="orders_requested / orders_to_redact")
    received_at = models.DateTimeField()
    due_at = models.DateTimeField(db_index=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="shop/redact: not erased before this.")
    state = models.CharField(max_length=20, choices=PrivacyState.choices, default=PrivacyState.RECEIVED)
    attempts = models.PositiveIntegerField(default=0)
    handled_at = models.DateTimeField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    exemptions = models.JSONField(default=list, blank=True, help_text="What a legal hold kept, and which hold.")
    result = models.JSONField(default=dict, blank=True, help_text="Rows touched per table; counts only.")
    identifiers_redacted = models.BooleanField(default=False)
    file_key = models.CharField(max_length=255, blank=True, help_text="data_request: the stored file's key.")
    file_name = models.CharField(max_length=255, blank=True)
    alerted_at = models.DateTimeField(null=True, blank=True, help_text="When staff were told it is due.")

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["state", "due_at"], name="privacy_state_due")]

    def __str__(self) -> str:
        return f"{self.topic} for {self.shop_domain} ({self.state})"

    def stored_file(self) -> StoredFile | None:
        if not self.file_key:
            return None
        return StoredFile(key=self.file_key, name=self.file_name, content_type="application/json")


class LegalHold(models.Model):
    """A preservation order on a store's data: while active (not released) no purge, redaction, erasure or
    uninstall cleanup may touch what it covers, which triggers enforce in the database (compliance/guards.py).

    Scope narrows from the whole store: customers (by Shopify id or e-mail), data categories and a date range
    of the data, each empty meaning "all". Rows are never deleted (a trigger refuses): a release is a change,
    and what it released stays on record.
    """

    # Like the audit log's: the hold outlives the store it names (shop/redact must not cascade it away).
    merchant = models.ForeignKey(
        "accounts.Merchant", on_delete=models.DO_NOTHING, db_constraint=False, related_name="legal_holds"
    )
    matter = models.CharField(max_length=200, help_text="The case or matter this hold belongs to.")
    reason = models.TextField(help_text="Why the data must be preserved.")
    customer_ids = ArrayField(
        models.CharField(max_length=64), default=list, blank=True, help_text="Shopify customer ids; empty: all."
    )
    emails = ArrayField(
        models.CharField(max_length=254), default=list, blank=True, help_text="Lower-cased; empty: all customers."
    )
    categories = ArrayField(
        models.CharField(max_length=20, choices=DataCategory.choices),
        default=list,
        blank=True,
        help_text="Empty: every category.",
    )
    date_from = models.DateTimeField(null=True, blank=True, help_text="Data from this moment on (inclusive).")
    date_to = models.DateTimeField(null=True, blank=True, help_text="Data before this moment (exclusive).")
    placed_at = models.DateTimeField(default=timezone.now)
    placed_by_type = models.CharField(max_length=20, choices=ActorType.choices)
    placed_by_id = models.CharField(max_length=128, blank=True)
    placed_by_label = models.CharField(max_length=255, blank=True)
    released_at = models.DateTimeField(null=True, blank=True)
    released_by_type = models.CharField(max_length=20, choices=ActorType.choices, blank=True)
    released_by_id = models.CharField(max_length=128, blank=True)
    released_by_label = models.CharField(max_length=255, blank=True)
    release_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        indexes = [
            # What the triggers ask on every guarded delete: the store's active holds.
            models.Index(fields=["merchant"], condition=Q(released_at__isnull=True), name="legalhold_active"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(date_from__isnull=True) | Q(date_to__isnull=True) | Q(date_from__lt=F("date_to")),
                name="legalhold_date_range",
                violation_error_message="The date range must end after it starts.",
            )
        ]

    def __str__(self) -> str:
        state = "released" if self.released_at else "active"
        return f"hold {self.pk} on {self.merchant_id}: {self.matter} ({state})"

    @property
    def is_active(self) -> bool:
        return self.released_at is None


class HoldExemption(models.Model):
    """Work that was skipped because a hold covered its data (the evidence an erasure or purge did not run
    there, and why); append-only like the audit log (a trigger refuses UPDATE and DELETE)."""

    hold = models.ForeignKey(LegalHold, on_delete=models.PROTECT, related_name="exemptions")
    merchant_id = models.BigIntegerField(db_index=True)
    work = models.CharField(max_length=100, help_text='What was skipped, e.g. "customers/redact".')
    target = models.CharField(max_length=500, help_text='What it would have touched, e.g. "customer 123".')
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    # Set by the retention purge, which records one exemption per hold, category and run (not one per row).
    purge_run = models.ForeignKey(
        "compliance.PurgeRun", on_delete=models.PROTECT, null=True, blank=True, related_name="exemptions"
    )
    category = models.CharField(max_length=20, choices=DataCategory.choices, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["purge_run", "hold", "category"],
                condition=Q(purge_run__isnull=False),
                name="holdexemption_once_per_purge_run",
            )
        ]

    def __str__(self) -> str:
        return f"{self.work} of {self.target} skipped (hold {self.hold_id})"


class PurgeRun(models.Model):
    """One run of the retention purge (compliance/retention.py): the cut-off per category it purged before, and
    what it deleted and left for holds. A run that died mid-way stays `running` and the next run resumes it, with
    the same cut-offs, from the categories it had not finished."""

    started_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=PurgeStatus.choices, default=PurgeStatus.RUNNING)
    cutoffs = models.JSONField(default=dict, help_text="{category: ISO time}: data older than this is purged.")
    deleted = models.JSONField(default=dict, help_text="{category: rows deleted}")
    held = models.JSONField(default=dict, help_text="{category: rows past retention kept for a legal hold}")
    done = models.JSONField(default=list, help_text="The categories finished.")
    batches = models.PositiveIntegerField(default=0)
    resumed = models.PositiveIntegerField(default=0, help_text="How many times a later run took it up again.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status=PurgeStatus.RUNNING), name="purgerun_one_running"
            )
        ]

    def __str__(self) -> str:
        return f"purge {self.pk} ({self.status}) {self.started_at:%Y-%m-%d %H:%M}"
