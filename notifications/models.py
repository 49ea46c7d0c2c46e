from django.conf import settings
from django.db import models
from django.db.models import Q

from accounts.models import Merchant
from notifications.choices import NotificationKind, NotificationStatus


class Notification(models.Model):
    """One email to one recipient, from creation to a final status; the outbox row is never deleted by code.

    The recipient is EITHER a Clerk user of a merchant (merchant + clerk_user_id; the address comes from
    Clerk) OR a staff operator (staff_user; the address is the user's `email` at send time). The
    `notification_one_recipient` constraint enforces exactly one of the two shapes.
    """

    merchant = models.ForeignKey(
        Merchant, on_delete=models.CASCADE, related_name="notifications", null=True, blank=True
    )
    clerk_user_id = models.CharField(max_length=64, db_index=True, blank=True)
    # PROTECT, not SET_NULL: a NULL here would break the one-recipient constraint and erase who was
    # alerted. Staff accounts are deactivated, not deleted (deleting one with alerts is refused).
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="notifications",
        null=True,
        blank=True,
        help_text="A staff operator alerted about a platform-level failure (instead of a merchant's Clerk user).",
    )
    kind = models.CharField(max_length=40, choices=NotificationKind.choices)
    dedupe_key = models.CharField(
        max_length=200,
        blank=True,
        help_text="The same alert (recipient, kind, key) is sent once per window.",
    )
    context = models.JSONField(default=dict, blank=True, help_text="Template values; never secrets.")
    subject = models.CharField(max_length=255)
    body_text = models.TextField()
    body_html = models.TextField()
    status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    to_email = models.EmailField(
        blank=True, help_text="The address used at the last delivery attempt (from Clerk, or the staff user's email)."
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When the next attempt is due; the sweeper re-enqueues pending rows well past it (a lost task).
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a worker claimed it; a `sending` row claimed long ago belongs to a dead worker.
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Transient failures are retried until then, after which the row is marked failed with the reason.
    give_up_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["merchant", "clerk_user_id", "kind", "dedupe_key"], name="notification_dedupe_idx"),
            models.Index(fields=["staff_user", "kind", "dedupe_key"], name="notification_staff_dedupe_idx"),
            models.Index(fields=["status", "next_attempt_at"], name="notification_sweep_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(merchant__isnull=False, staff_user__isnull=True) & ~Q(clerk_user_id="")
                    | Q(merchant__isnull=True, staff_user__isnull=False, clerk_user_id="")
                ),
                name="notification_one_recipient",
                violation_error_message="A notification needs exactly one recipient: a Clerk user or a staff user.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} → {self.recipient_label} ({self.status})"

    @property
    def is_staff_alert(self) -> bool:
        return self.staff_user_id is not None

    @property
    def recipient_label(self) -> str:
        if self.staff_user_id is not None:
            return f"staff user {self.staff_user_id}"
        return self.clerk_user_id


class NotificationOptOut(models.Model):
    """A member's choice not to receive one non-critical kind of email about one merchant."""

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="notification_opt_outs")
    clerk_user_id = models.CharField(max_length=64)
    kind = models.CharField(max_length=40, choices=NotificationKind.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["merchant", "clerk_user_id", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "clerk_user_id", "kind"], name="notification_opt_out_unique")
        ]

    def __str__(self) -> str:
        return f"{self.clerk_user_id} muted {self.kind} for {self.merchant}"
