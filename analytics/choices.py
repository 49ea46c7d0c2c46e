from django.db import models


class DbtRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Succeeded"
    FAILED = "failed", "Failed"  # dbt ran and some node failed (or a freshness check errored)
    ERROR = "error", "Error"  # dbt could not run at all (bad arguments, no database, crash)
    # The process running it died (killed, OOM, deploy) before it recorded an end; found by the next run.
    INTERRUPTED = "interrupted", "Interrupted"
    # A scheduled run that found the lock held and asks again until its schedule's expiry (the run holding the
    # lock, and until when, are in the row). Once it gets the lock this row gives way to the run's own row.
    WAITING = "waiting", "Waiting for the lock"
    # A scheduled run that found the lock held until its schedule's expiry: dbt never started (the reason, and
    # the run that held the lock, are in the row). Never "running", so neither the reaper nor a build sees it.
    SKIPPED = "skipped", "Skipped (lock held)"


# Rows that record a run dbt never started: they built nothing, consumed no change and change no mart.
NOT_STARTED_STATUSES = (DbtRunStatus.WAITING, DbtRunStatus.SKIPPED)


class DbtTrigger(models.TextChoices):
    COMMAND = "command", "Management command"
    SCHEDULE = "schedule", "Celery beat"
    ADMIN = "admin", "Admin action"
    DATA_CHANGED = "data_changed", "Raw data changed"  # the coalesced build after syncs (RawDataChange)


class FreshnessStatus(models.TextChoices):
    """A connected source's freshness, as dbt's `source freshness` named them (pass / warn / error)."""

    FRESH = "fresh", "Fresh"
    WARN = "warn", "Late"  # older than DATA_FRESHNESS_WARN_HOURS: shown in the check, nobody told
    STALE = "stale", "Stale"  # older than DATA_FRESHNESS_ERROR_HOURS: staff and the store's admins told
    # Connected, first data not landed yet, and not overdue by the error threshold: nothing to say yet.
    AWAITING_FIRST_SYNC = "awaiting_first_sync", "Awaiting first sync"
