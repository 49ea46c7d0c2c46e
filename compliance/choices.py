from django.db import models


class ActorType(models.TextChoices):
    CLERK_USER = "clerk_user", "Merchant user (Clerk)"
    STAFF = "staff", "Staff user"
    SYSTEM = "system", "System"
    AGENCY_TOKEN = "agency_token", "Agency token"
    ANONYMOUS = "anonymous", "Anonymous"


class ExportFormat(models.TextChoices):
    NDJSON = "ndjson", "NDJSON (one JSON event per line)"
    CSV = "csv", "CSV"


class ExportState(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
