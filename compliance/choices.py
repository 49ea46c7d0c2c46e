from django.db import models


class ActorType(models.TextChoices):
    CLERK_USER = "clerk_user", "Merchant user (Clerk)"
    STAFF = "staff", "Staff user"
    SYSTEM = "system", "System"
    AGENCY_TOKEN = "agency_token", "Agency token"
    ANONYMOUS = "anonymous", "Anonymous"


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


class PrivacyTopic(models.TextChoices):
    """Shopify's mandatory compliance topics (shared/PROVIDERS.md §7.3)."""

    CUSTOMERS_DATA_REQUEST = "customers/data_request", "Customer data request"
    CUSTOMERS_REDACT = "customers/redact", "Customer redaction"
    SHOP_REDACT = "shop/redact", "Shop redaction"


class PrivacyState(models.TextChoices):
    RECEIVED = "received", "Received"  # stored; its task is queued
    SCHEDULED = "scheduled", "Scheduled"  # shop/redact waiting for its not_before (48 h after uninstall)
    DONE = "done", "Done"
    PARTIALLY_EXEMPT = "partially_exempt", "Done, partially exempt (legal hold)"
    FAILED = "failed", "Failed"  # see `error`; retried by staff (admin action) or the next redelivery
    IGNORED = "ignored", "Ignored"  # no store of ours matches the shop


PRIVACY_OPEN_STATES = (PrivacyState.RECEIVED, PrivacyState.SCHEDULED, PrivacyState.FAILED)


class DataCategory(models.TextChoices):
    """What a legal hold can cover and what retention purges, one retention period each (docs/retention.md)."""

    RAW = "raw", "Raw provider data"
    EVENTS = "events", "Web events"
    MESSAGES = "messages", "Messages and notifications"
    EXPORTS = "exports", "Exports"
    AUDIT_LOG = "audit_log", "Audit log"
