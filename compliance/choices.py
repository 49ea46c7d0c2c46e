from django.db import models


class ActorType(models.TextChoices):
    CLERK_USER = "clerk_user", "Merchant user (Clerk)"
    STAFF = "staff", "Staff user"
    SYSTEM = "system", "System"
    AGENCY_TOKEN = "agency_token", "Agency token"
    ANONYMOUS = "anonymous", "Anonymous"


class DataCategory(models.TextChoices):
    """What a legal hold can cover and what retention purges, one retention period each (docs/retention.md)."""

    RAW = "raw", "Raw provider data"
    EVENTS = "events", "Web events"
    MESSAGES = "messages", "Messages and notifications"
    EXPORTS = "exports", "Exports"
    AUDIT_LOG = "audit_log", "Audit log"


class PurgeStatus(models.TextChoices):
    RUNNING = "running", "Running"  # or interrupted: the next run resumes it
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class ExportFormat(models.TextChoices):
    NDJSON = "ndjson", "NDJSON (one JSON event per line)"
    CSV = "csv", "CSV"


class ExportState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
