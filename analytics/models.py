from django.db import models
from django.db.models import Q
from django.utils import timezone

from analytics.choices import DbtRunStatus, DbtTrigger


class DbtRun(models.Model):
    """One invocation of dbt through `run_dbt`: what ran, how it ended, and what failed."""

    command = models.CharField(max_length=500, help_text="The dbt arguments, e.g. `build --select marts`.")
    args = models.JSONField(default=list)
    triggered_by = models.CharField(max_length=16, choices=DbtTrigger.choices, default=DbtTrigger.COMMAND)
    status = models.CharField(max_length=16, choices=DbtRunStatus.choices, default=DbtRunStatus.RUNNING, db_index=True)
    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True)
    merchant_ids = models.JSONField(default=list, help_text="The active merchants passed to dbt.")
    merchants_digest = models.CharField(
        max_length=64,
        blank=True,
        help_text="A digest of the `merchants` var it ran with (ids, keys, zones, currencies).",
    )
    node_counts = models.JSONField(default=dict, help_text="Nodes by result status, e.g. {'success': 40, 'pass': 90}.")
    failures = models.JSONField(default=list, help_text="[{unique_id, status, message}] for every node that failed.")
    freshness = models.JSONField(default=list, help_text="[{source, max_loaded_at, status}] from source freshness.")
    error = models.TextField(blank=True, help_text="Why dbt could not run at all, when it could not.")
    requested_at = models.DateTimeField(
        null=True, blank=True, help_text="When its schedule asked for it, if it had to wait for the lock."
    )
    blocked_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The run that held the dbt lock when this one asked for it (skipped, or started late).",
    )
    wait_until = models.DateTimeField(
        null=True, blank=True, help_text="Waiting for the lock: its schedule's expiry, when it is recorded skipped."
    )
    lock_overdue_alerted_at = models.DateTimeField(
        null=True, blank=True, help_text="When staff were told it held the lock longer than DBT_RUN_OVERDUE_MINUTES."
    )

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"dbt {self.command} ({self.get_status_display()}, {self.started_at:%Y-%m-%d %H:%M})"


class RawDataChange(models.Model):
    """A store's raw data changed (a sync of one source succeeded); the next coalesced dbt build takes it in.

    `consumed_by_run` is set, under the dbt lock, in the transaction that creates the build's DbtRun: a change
    without one (or whose run died: `running` under the lock, or `interrupted`) is still to be built.
    """

    merchant = models.ForeignKey("accounts.Merchant", on_delete=models.CASCADE, related_name="raw_data_changes")
    source = models.CharField(max_length=64, help_text="The source whose sync changed it, e.g. `shopify`.")
    at = models.DateTimeField(help_text="When the sync that changed it succeeded.")
    recorded_at = models.DateTimeField(default=timezone.now)
    consumed_by_run = models.ForeignKey(
        DbtRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,  # a deleted run's changes are built again, never forgotten
        related_name="raw_data_changes",
        help_text="The dbt build that took this change in.",
    )

    class Meta:
        ordering = ["-recorded_at", "-id"]
        indexes = [
            models.Index(fields=["merchant", "source", "at"], name="analytics_rdc_merchant_source"),
            # The scheduler asks "anything unbuilt?" after every build: a tiny index of the unbuilt ones.
            models.Index(fields=["id"], condition=Q(consumed_by_run__isnull=True), name="analytics_rdc_unbuilt"),
        ]

    def __str__(self) -> str:
        return f"{self.source} changed for merchant {self.merchant_id} at {self.at:%Y-%m-%d %H:%M}"


class DataFreshnessCheck(models.Model):
    """One run of the hourly freshness check: how many stores and sources it read, which were stale, how long."""

    checked_at = models.DateTimeField(db_index=True)
    duration_seconds = models.FloatField()
    stores_checked = models.PositiveIntegerField(help_text="Active stores with at least one connected source.")
    sources_checked = models.PositiveIntegerField(help_text="(store, source) pairs read: connected sources only.")
    warn_hours = models.PositiveIntegerField()
    error_hours = models.PositiveIntegerField()
    stale = models.JSONField(
        default=list,
        help_text="[{merchant_id, merchant_key, source, landed_at, connected_at, age_hours}] past the error threshold.",
    )
    late = models.JSONField(default=list, help_text="The same, past the warn threshold only (nobody is told).")
    staff_notified = models.BooleanField(default=False, help_text="Staff were told of a pair stale anew today.")
    merchants_notified = models.JSONField(default=list, help_text="The stores whose owners and admins were told.")

    class Meta:
        ordering = ["-checked_at", "-id"]

    def __str__(self) -> str:
        return f"freshness check {self.checked_at:%Y-%m-%d %H:%M}: {len(self.stale)} stale of {self.sources_checked}"
