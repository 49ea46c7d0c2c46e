"""What we know of Airbyte's side: the deployment's destination, each credential's pipeline, each job.

Airbyte is the source of truth for a job's progress, we are for what should exist (a source and a
connection per usable credential); these rows are how the two are reconciled after any crash — the
sweeper acts on them, never on memory.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from ingestion.choices import TERMINAL_JOB_STATUSES, JobStatus, JobType, PipelineKind, PipelineStatus


class Workspace(models.Model):
    """The deployment's Airbyte workspace: its one PostgreSQL destination (created lazily) and API health."""

    workspace_id = models.CharField(max_length=64, unique=True)
    destination_id = models.CharField(max_length=64, blank=True)
    # Per configuration leaf, an HMAC of the value last sent (ingestion.configs): what changed is PATCHed,
    # and the password itself is never stored here.
    destination_digests = models.JSONField(default=dict, blank=True)
    # An HMAC of the webhook URL last set as the workspace's failure and success notification (ingestion.views):
    # set again when it changes (a new SECRET_KEY, a new base URL), and the URL's token is never stored here.
    notifications_digest = models.CharField(max_length=64, blank=True)
    api_down_since = models.DateTimeField(null=True, blank=True, help_text="First failed call of an outage.")
    api_alerted_at = models.DateTimeField(null=True, blank=True, help_text="The outage's one alert.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Airbyte workspace {self.workspace_id}"


class Pipeline(models.Model):
    """One Airbyte source and connection into a store's raw schema — a credential's, or the store's own
    (exchange rates: our key, not the merchant's) — and when it syncs next."""

    kind = models.CharField(max_length=20, choices=PipelineKind.choices, default=PipelineKind.CREDENTIAL)
    # Deleting the merchant (or a credential row) keeps the pipeline, orphaned (no merchant, or a credential's
    # without its credential): its Airbyte connection and source outlive our rows until the sweeper deletes
    # them in Airbyte and then the row (pipeline_orphan_teardown). A cascade would forget them there for good.
    credential = models.OneToOneField(
        "connectors.ConnectorCredential", null=True, blank=True, on_delete=models.SET_NULL, related_name="pipeline"
    )
    merchant = models.ForeignKey(
        "accounts.Merchant", null=True, blank=True, on_delete=models.SET_NULL, related_name="pipelines"
    )
    source_type = models.CharField(max_length=40, help_text="Airbyte's sourceType.")
    source_id = models.CharField(max_length=64, blank=True)
    connection_id = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(
        max_length=16, choices=PipelineStatus.choices, default=PipelineStatus.PENDING, db_index=True
    )
    source_digests = models.JSONField(default=dict, blank=True, help_text="HMACs of the configuration sent.")
    start_date = models.DateField(help_text="The history the source reads; fixed when it is first created.")
    sync_interval_seconds = models.PositiveIntegerField(default=3600)
    next_sync_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_job = models.ForeignKey("SyncJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    last_synced_at = models.DateTimeField(null=True, blank=True, help_text="End of the last successful sync.")
    consecutive_failures = models.PositiveIntegerField(default=0)
    failure_alerted_at = models.DateTimeField(null=True, blank=True, help_text="The failing run's one alert.")
    last_error_code = models.CharField(max_length=64, blank=True)
    last_error_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["merchant_id", "source_type"]
        constraints = [
            # A store's own pipeline has no credential (a credential's without one is an orphan, see above) —
            # and one of each kind per store.
            models.CheckConstraint(
                condition=Q(kind="credential") | Q(credential__isnull=True),
                name="pipeline_store_kind_has_no_credential",
            ),
            models.UniqueConstraint(
                fields=["merchant", "kind"], condition=~Q(kind="credential"), name="pipeline_one_store_source_per_kind"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_type} for merchant {self.merchant_id} ({self.status})"


class SyncJob(models.Model):
    """One Airbyte job of a pipeline, followed until Airbyte calls it terminal."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="jobs")
    # Airbyte's job ids are unique per Airbyte server, not across a restored or replaced one (nor the sandbox's
    # restarts), so a job is the pair: a reused id on a new connection is another job.
    connection_id = models.CharField(max_length=64)
    airbyte_job_id = models.BigIntegerField(db_index=True)
    job_type = models.CharField(max_length=10, choices=JobType.choices, default=JobType.SYNC)
    status = models.CharField(max_length=12, choices=JobStatus.choices, default=JobStatus.PENDING)
    rows_synced = models.BigIntegerField(null=True, blank=True)
    bytes_synced = models.BigIntegerField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_type = models.CharField(max_length=64, blank=True)
    error_message = models.CharField(max_length=500, blank=True)
    # Airbyte's errorOrigin (source, destination, platform ...): known only from its failure notification.
    error_origin = models.CharField(max_length=32, blank=True)
    attached = models.BooleanField(default=False, help_text="Found running (409) rather than started by us.")
    polls = models.PositiveIntegerField(default=0)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["connection_id", "airbyte_job_id"], name="syncjob_one_per_airbyte_job")
        ]
        indexes = [
            models.Index(
                fields=["next_poll_at"],
                name="syncjob_to_poll",
                condition=~Q(status__in=TERMINAL_JOB_STATUSES),
            )
        ]

    def __str__(self) -> str:
        return f"Airbyte job {self.airbyte_job_id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_JOB_STATUSES
