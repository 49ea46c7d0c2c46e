from django.db import models


class NotificationKind(models.TextChoices):
    # Critical: the merchant's data stops flowing until someone acts. These cannot be muted.
    CREDENTIAL_NEEDS_REAUTH = "credential_needs_reauth", "Credential needs reconnecting"
    CREDENTIAL_EXPIRING = "credential_expiring", "Credential expiring soon"
    STORE_UNINSTALLED = "store_uninstalled", "Store uninstalled the app"
    # Shopify's customers/data_request: the store must pass the file on within 30 days; not mutable.
    PRIVACY_DATA_READY = "privacy_data_ready", "Customer data request ready"
    # Informational: a member may opt out of these.
    DBT_RUN_FAILED = "dbt_run_failed", "Data model run failed"
    DATA_STALE = "data_stale", "Data is stale"
    EXPORT_READY = "export_ready", "Export ready"
    AGENCY_INVITATION = "agency_invitation", "Agency invitation"
    # Staff only: a Shopify privacy request is overdue or due within days.
    PRIVACY_REQUEST_DUE = "privacy_request_due", "Privacy request due"


CRITICAL_KINDS: frozenset[str] = frozenset(
    {
        NotificationKind.CREDENTIAL_NEEDS_REAUTH,
        NotificationKind.CREDENTIAL_EXPIRING,
        NotificationKind.STORE_UNINSTALLED,
        NotificationKind.PRIVACY_DATA_READY,
    }
)

# Kinds whose templates are written for a staff operator too (no merchant; a link to the admin).
# Kinds only staff receive: no member has a preference for them.
STAFF_ONLY_KINDS: frozenset[str] = frozenset({NotificationKind.PRIVACY_REQUEST_DUE})

STAFF_KINDS: frozenset[str] = frozenset(
    {NotificationKind.DBT_RUN_FAILED, NotificationKind.DATA_STALE, NotificationKind.PRIVACY_REQUEST_DUE}
)


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # waiting for a delivery attempt (first one, or a retry)
    SENDING = "sending", "Sending"  # claimed by one worker; the sweeper frees it if the worker dies
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"  # gave up: retries exhausted or a configuration error; see last_error
    UNDELIVERABLE = "undeliverable", "Undeliverable"  # the recipient is gone or has no usable address
    SUPPRESSED = "suppressed", "Suppressed"  # the recipient opted out of this kind; recorded, not sent
    CANCELLED = "cancelled", "Cancelled"  # stopped by staff before it was sent


# Statuses a notification never leaves by itself (only a staff "resend" moves it again).
FINAL_STATUSES = frozenset(
    {
        NotificationStatus.SENT,
        NotificationStatus.FAILED,
        NotificationStatus.UNDELIVERABLE,
        NotificationStatus.SUPPRESSED,
        NotificationStatus.CANCELLED,
    }
)
# A notification in one of these, created within the dedupe window, stands for "this alert was sent".
DEDUPE_BLOCKING_STATUSES = frozenset(
    {NotificationStatus.PENDING, NotificationStatus.SENDING, NotificationStatus.SENT, NotificationStatus.SUPPRESSED}
)
