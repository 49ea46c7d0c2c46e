from django.db import models


class PipelineStatus(models.TextChoices):
    """Where a credential's Airbyte source and connection stand, as we last left them."""

    PENDING = "pending", "Pending"  # not created in Airbyte yet (or the last attempt failed before it was)
    ACTIVE = "active", "Active"  # connection active: the sweeper triggers it when due
    PAUSED = "paused", "Paused"  # connection inactive: the credential needs reconnecting
    DELETED = "deleted", "Deleted"  # disconnected: connection and source deleted in Airbyte


class PipelineKind(models.TextChoices):
    """What a pipeline follows: a merchant's connector credential, or the store itself (a source of ours)."""

    CREDENTIAL = "credential", "Connector credential"
    EXCHANGE_RATES = "exchange_rates", "Exchange rates"  # the FX table the marts convert ad spend with


class JobStatus(models.TextChoices):
    """Airbyte's JobStatusEnum; anything but the last three is still in progress."""

    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    INCOMPLETE = "incomplete", "Incomplete"  # an attempt failed and Airbyte retries: not terminal
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


TERMINAL_JOB_STATUSES = ("succeeded", "failed", "cancelled")  # plain strings: they go into a migration


class JobType(models.TextChoices):
    SYNC = "sync", "Sync"
    RESET = "reset", "Reset"
