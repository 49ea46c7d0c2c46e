from django.db import models

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
    node_counts = models.JSONField(default=dict, help_text="Nodes by result status, e.g. {'success': 40, 'pass': 90}.")
    failures = models.JSONField(default=list, help_text="[{unique_id, status, message}] for every node that failed.")
    freshness = models.JSONField(default=list, help_text="[{source, max_loaded_at, status}] from source freshness.")
    error = models.TextField(blank=True, help_text="Why dbt could not run at all, when it could not.")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"dbt {self.command} ({self.get_status_display()}, {self.started_at:%Y-%m-%d %H:%M})"
