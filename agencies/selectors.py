"""Reads about agencies for the agency's own pages. Every read is scoped to an agency the person belongs to:
anything else is Agency.DoesNotExist, which the views answer with 404."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from accounts.models import Merchant
from agencies.choices import AgencyRole, AgencyStatus, GrantStatus
from agencies.models import AccessGrant, Agency, AgencyInvitation, AgencyMember, ClientAssignment

AGENCY_NOT_FOUND = "No such agency."


def agency_list_for_user(*, clerk_user_id: str) -> QuerySet[Agency]:
    """The active agencies the user is an active member of."""
    return Agency.objects.filter(
        status=AgencyStatus.ACTIVE, members__clerk_user_id=clerk_user_id, members__removed_at__isnull=True
    ).order_by("name")


def agency_member_get(*, agency_id: int, clerk_user_id: str) -> AgencyMember:
    """The user's active membership of an active agency, with the agency; raises AgencyMember.DoesNotExist."""
    return AgencyMember.objects.select_related("agency").get(
        agency_id=agency_id,
        agency__status=AgencyStatus.ACTIVE,
        clerk_user_id=clerk_user_id,
        removed_at__isnull=True,
    )


def agency_for_session_get(*, org_id: str | None, clerk_user_id: str) -> Agency | None:
    """The agency of the session's active Clerk organization, if the user is (by our mirror) a member of it.

    The claim only picks which agency; membership is checked against the database, never taken from the token.
    """
    if not org_id:
        return None
    return agency_list_for_user(clerk_user_id=clerk_user_id).filter(clerk_org_id=org_id).first()


def agency_member_list(*, agency: Agency) -> QuerySet[AgencyMember]:
    """Active members, admins first, each with the clients they are limited to."""
    assignments = Prefetch(
        "assignments", queryset=ClientAssignment.objects.select_related("merchant").order_by("merchant__name")
    )
    return (
        AgencyMember.objects.filter(agency=agency, removed_at__isnull=True)
        .prefetch_related(assignments)
        .order_by("role", "email", "clerk_user_id")
    )


def agency_invitation_list(*, agency: Agency, limit: int = 100) -> QuerySet[AgencyInvitation]:
    return AgencyInvitation.objects.filter(agency=agency).order_by("-created_at")[:limit]


def agency_client_list(*, agency: Agency) -> QuerySet[Merchant]:
    """The stores this agency may see now: those with an active grant."""
    granted = AccessGrant.objects.filter(agency=agency, status=GrantStatus.ACTIVE).values("merchant_id")
    return Merchant.objects.filter(pk__in=granted).order_by("name")


def member_is_admin(member: AgencyMember) -> bool:
    return member.is_active and member.role == AgencyRole.ADMIN
