from django.db import models


class AgencyRole(models.TextChoices):
    """Our normalised reading of a Clerk organization role (`org:admin`, `org:member`, or a bare `admin`)."""

    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"


def role_normalise(clerk_role: str | None) -> AgencyRole:
    """Our role for a Clerk role key: `org:admin` and a bare `admin` (v2 session tokens drop the prefix, as does
    the Python SDK) are admins; `org:member`, `basic_member` (Clerk's old name), custom roles and anything else
    are members. Deciding least privilege for the unknown is the point: a new custom role never grants admin."""
    value = (clerk_role or "").strip().casefold()
    return AgencyRole.ADMIN if value.removeprefix("org:") == "admin" else AgencyRole.MEMBER


class AgencyStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    SUSPENDED = "suspended", "Suspended (its Clerk organization was deleted)"


class InvitationStatus(models.TextChoices):
    QUEUED = "queued", "Queued (not yet sent to Clerk)"
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REVOKED = "revoked", "Revoked"
    EXPIRED = "expired", "Expired"
    FAILED = "failed", "Failed"


class GrantLevel(models.TextChoices):
    """What an agency may do in a store it was granted. Each level includes the ones before it."""

    VIEWER = "viewer", "Viewer: reads dashboards and the metrics API"
    ANALYST = "analyst", "Analyst: also exports and saves dashboard templates"
    MANAGER = "manager", "Manager: also connects and reconnects the store's ad and email accounts"


GRANT_LEVEL_ORDER = {GrantLevel.VIEWER: 0, GrantLevel.ANALYST: 1, GrantLevel.MANAGER: 2}


class GrantStatus(models.TextChoices):
    PENDING = "pending", "Pending (the agency asked; the store has not answered)"
    ACTIVE = "active", "Active"
    DECLINED = "declined", "Declined by the store"
    ENDED = "ended", "Ended"
    EXPIRED = "expired", "Expired"


# A store and an agency have at most one grant in these states at a time.
OPEN_GRANT_STATUSES = (GrantStatus.PENDING, GrantStatus.ACTIVE)


class TokenScope(models.TextChoices):
    METRICS_READ = "metrics:read", "Read metrics"
    REPORTS_READ = "reports:read", "Read dashboard templates and reports"
    ORDERS_READ = "orders:read", "Read orders and customers (also needs the grant's PII permission)"
    EXPORTS_WRITE = "exports:write", "Run exports"
