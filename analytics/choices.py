from django.db import models


class DbtRunStatus(models.TextChoices):
    RUNNING = "running", "Running"
    SUCCESS = "success", "Succeeded"
    FAILED = "failed", "Failed"  # dbt ran and some node failed (or a freshness check errored)
    ERROR = "error", "Error"  # dbt could not run at all (bad arguments, no database, crash)
    # The process running it died (killed, OOM, deploy) before it recorded an end; found by the next run.
    INTERRUPTED = "interrupted", "Interrupted"


class DbtTrigger(models.TextChoices):
    COMMAND = "command", "Management command"
    SCHEDULE = "schedule", "Celery beat"
    ADMIN = "admin", "Admin action"
    DATA_CHANGED = "data_changed", "Raw data changed"  # the coalesced build after syncs (RawDataChange)
