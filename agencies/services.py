"""Agencies and their people: creating an agency (a Clerk organization), inviting staff through Clerk's
organization invitations, and keeping our mirror of the memberships true.

Clerk owns who belongs to an organization. We write to Clerk (create the organization, send and revoke
invitations) and mirror what Clerk tells us (webhooks, agencies/webhooks.py, and a nightly reconcile). Access
to stores is decided from the mirror and the grants, never from a session token's claims.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.validators import validate_currency
from agencies import signals
from agencies.choices import AgencyRole, AgencyStatus, GrantStatus, InvitationStatus, role_normalise
from agencies.models import (
    AccessGrant,
    Agency,
    AgencyInvitation,
    AgencyMember,
    ClerkWebhookDelivery,
    ClientAssignment,
)
from compliance.choices import ActorType
from compliance.services import Actor, audit_event_record
from config.retry import backoff
from notifications.clients.clerk import (  # ClerkError is re-exported for the views
    ClerkError,
    ClerkMembership,
    ClerkNotFound,
    ClerkPermanentError,
    ClerkRateLimited,
    clerk_client,
)

logger = logging.getLogger(__name__)

NAME_REQUIRED = "Give the agency a name."
NAME_TOO_LONG = "An agency's name is at most 200 characters."
CLERK_UNAVAILABLE = "Clerk could not create the organization just now; nothing was saved. Try again in a minute."
CLERK_REFUSED = "Clerk refused the organization: {why}"
EMAIL_INVALID = "Enter a valid email address."
ROLE_INVALID = "Choose admin or member."
DUPLICATE_INVITATION = "{email} already has an open invitation to this agency; revoke it first to send a new one."
ALREADY_A_MEMBER = "{email} is already a member of this agency."
NOT_AN_ADMIN = "Only the agency's admins can do this."
INVITATION_NOT_OPEN = "Only a queued or pending invitation can be revoked; this one is {status}."
MERCHANT_NOT_GRANTED = "Only stores that granted this agency access can be assigned."

# Clerk's role keys for ours (shared/AGENCIES.md A1.4).
CLERK_ROLE = {AgencyRole.ADMIN: "org:admin", AgencyRole.MEMBER: "org:member"}
# Transient failures back off from a minute to an hour; after this many tries the row is failed and shown so.
INVITATION_MAX_ATTEMPTS = 8
INVITATION_BACKOFF_BASE_SECONDS = 60.0
INVITATION_BACKOFF_CEILING_SECONDS = 3600.0
BUDGET_WINDOW = dt.timedelta(hours=1)
# One instance-wide lock for taking from the hourly budget (pg_advisory_xact_lock key).
_BUDGET_LOCK_KEY = 0x4147_494E_5649  # "AGINVI"


class AgencyError(Exception):
    """A request about an agency that cannot be carried out; the message is meant for the person."""


def _user_actor(clerk_user_id: str) -> Actor:
    return Actor(type=ActorType.CLERK_USER, id=clerk_user_id, label=clerk_user_id)


def _ms(value: int | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


def _is_older(event_at: dt.datetime | None, stored_at: dt.datetime | None) -> bool:
    return event_at is not None and stored_at is not None and event_at < stored_at


def _require_admin(agency: Agency, clerk_user_id: str) -> AgencyMember:
    member = AgencyMember.objects.filter(agency=agency, clerk_user_id=clerk_user_id, removed_at__isnull=True).first()
    if member is None or member.role != AgencyRole.ADMIN:
        raise PermissionError(NOT_AN_ADMIN)
    return member


# --- agencies ----------------------------------------------------------------------------------------


def agency_create(
    *, name: str, reporting_currency: str, created_by: str, ip: str | None = None, user_agent: str = ""
) -> Agency:
    """Create the agency and its Clerk organization; the creator is its first admin.

    The row is written first (its id goes into the organization's private metadata, so a Clerk org can always
    be traced back to us), then Clerk is called inside the same transaction: if Clerk fails, nothing is kept.
    The reverse gap (Clerk created the org, our commit failed) leaves an organization without an agency; its
    `private_metadata.agency_id` names a row that does not exist, which is how an operator recognises one.
    """
    name = (name or "").strip()
    errors: dict[str, list[str]] = {}
    if not name:
        errors["name"] = [NAME_REQUIRED]
    elif len(name) > 200:
        errors["name"] = [NAME_TOO_LONG]
    try:
        validate_currency(reporting_currency)
    except ValidationError as exc:
        errors["reporting_currency"] = exc.messages
    if errors:
        raise ValidationError(errors)

    with transaction.atomic():
        placeholder = f"pending_{uuid.uuid4().hex}"
        agency = Agency.objects.create(
            clerk_org_id=placeholder,
            slug=placeholder[:80],
            name=name,
            reporting_currency=reporting_currency,
            created_by=created_by,
        )
        try:
            org = clerk_client().organization_create(
                name=name,
                created_by=created_by,
                public_metadata={"kind": "agency"},
                private_metadata={"agency_id": agency.pk},
                max_allowed_memberships=settings.AGENCY_MAX_MEMBERS,
            )
        except ClerkPermanentError as exc:
            transaction.set_rollback(True)
            raise ValidationError({"name": [CLERK_REFUSED.format(why=exc.code or "invalid request")]}) from exc
        except ClerkError as exc:
            transaction.set_rollback(True)
            raise AgencyError(CLERK_UNAVAILABLE) from exc
        agency.clerk_org_id, agency.slug = org.id, org.slug[:80]
        agency.save(update_fields=["clerk_org_id", "slug", "updated_at"])
        # Clerk made the creator an admin; mirrored now so the creator can use the agency before the webhook.
        AgencyMember.objects.create(
            agency=agency, clerk_user_id=created_by, clerk_role="org:admin", role=AgencyRole.ADMIN
        )
        audit_event_record(
            action="agency.created",
            actor=_user_actor(created_by),
            target_type="agencies.agency",
            target_id=agency.pk,
            ip=ip,
            user_agent=user_agent,
            metadata={"clerk_org_id": org.id, "name": name, "reporting_currency": reporting_currency},
        )
    return agency


def agency_suspend(*, agency: Agency, reason: str) -> Agency:
    """Its Clerk organization is gone: nobody can act for it any more. Sends `agency_suspended` (tokens)."""
    with transaction.atomic():
        agency = Agency.objects.select_for_update().get(pk=agency.pk)
        if agency.status == AgencyStatus.SUSPENDED:
            return agency
        agency.status = AgencyStatus.SUSPENDED
        agency.save(update_fields=["status", "updated_at"])
        audit_event_record(
            action="agency.suspended",
            actor=Actor.system("clerk"),
            target_type="agencies.agency",
            target_id=agency.pk,
            metadata={"reason": reason, "clerk_org_id": agency.clerk_org_id},
        )
        signals.agency_suspended.send(sender=Agency, agency=agency)
    return agency


def agency_rename(*, agency: Agency, name: str) -> None:
    name = (name or "").strip()[:200]
    if name and name != agency.name:
        Agency.objects.filter(pk=agency.pk).update(name=name, updated_at=timezone.now())


# --- the membership mirror ---------------------------------------------------------------------------


def member_upsert(
    *,
    agency: Agency,
    clerk_user_id: str,
    clerk_role: str,
    clerk_updated_at: dt.datetime | None,
    clerk_membership_id: str = "",
    email: str = "",
) -> tuple[AgencyMember, bool]:
    """Mirror one Clerk membership. An event older than the row's last applied one changes nothing (Svix does not
    promise order); a removed member Clerk lists again is back. Returns (member, changed)."""
    with transaction.atomic():
        member = AgencyMember.objects.select_for_update().filter(agency=agency, clerk_user_id=clerk_user_id).first()
        if member is not None and _is_older(clerk_updated_at, member.clerk_updated_at):
            return member, False
        role = role_normalise(clerk_role)
        if member is None:
            try:
                with transaction.atomic():
                    member = AgencyMember.objects.create(
                        agency=agency,
                        clerk_user_id=clerk_user_id,
                        clerk_membership_id=clerk_membership_id,
                        clerk_role=clerk_role,
                        role=role,
                        email=email,
                        clerk_updated_at=clerk_updated_at,
                    )
            except IntegrityError:  # a concurrent event created it; apply this one over it
                member = AgencyMember.objects.select_for_update().get(agency=agency, clerk_user_id=clerk_user_id)
            else:
                return member, True
        member.clerk_role, member.role = clerk_role, role
        member.clerk_membership_id = clerk_membership_id or member.clerk_membership_id
        member.email = email or member.email
        member.clerk_updated_at = clerk_updated_at or member.clerk_updated_at
        member.removed_at = None
        member.save()
        return member, True


def member_remove(*, agency: Agency, clerk_user_id: str, clerk_updated_at: dt.datetime | None) -> bool:
    """Mark the member gone (the row stays, for the audit trail) and send `member_removed`. True if it changed."""
    with transaction.atomic():
        member = AgencyMember.objects.select_for_update().filter(agency=agency, clerk_user_id=clerk_user_id).first()
        if member is None or member.removed_at is not None:
            return False
        if _is_older(clerk_updated_at, member.clerk_updated_at):
            return False
        member.removed_at = timezone.now()
        member.clerk_updated_at = clerk_updated_at or member.clerk_updated_at
        member.save(update_fields=["removed_at", "clerk_updated_at"])
        audit_event_record(
            action="agency.member_removed",
            actor=Actor.system("clerk"),
            target_type="agencies.agencymember",
            target_id=member.pk,
            metadata={"agency_id": agency.pk, "clerk_user_id": clerk_user_id},
        )
        signals.member_removed.send(sender=Agency, agency=agency, clerk_user_id=clerk_user_id)
        return True


@dataclass(frozen=True)
class ReconcileResult:
    seen: int
    changed: int
    removed: int
    suspended: bool = False


def agency_members_reconcile(*, agency_id: int) -> ReconcileResult:
    """Page through the organization's memberships in Clerk and make the mirror match: webhooks are not
    guaranteed (shared/AGENCIES.md A1.6). Members Clerk no longer lists are removed; an organization Clerk
    no longer has suspends the agency."""
    agency = Agency.objects.get(pk=agency_id)
    if agency.status != AgencyStatus.ACTIVE:
        return ReconcileResult(seen=0, changed=0, removed=0)
    client = clerk_client()
    try:
        memberships: list[ClerkMembership] = list(
            client.organization_membership_list(organization_id=agency.clerk_org_id)
        )
    except ClerkNotFound:
        agency_suspend(agency=agency, reason="the reconcile found no Clerk organization")
        return ReconcileResult(seen=0, changed=0, removed=0, suspended=True)
    changed = 0
    for m in memberships:
        _, did = member_upsert(
            agency=agency,
            clerk_user_id=m.user_id,
            clerk_role=m.role,
            clerk_updated_at=_ms(m.updated_at_ms),
            clerk_membership_id=m.id,
            email=m.identifier if "@" in m.identifier else "",
        )
        changed += did
    present = {m.user_id for m in memberships}
    removed = 0
    gone = AgencyMember.objects.filter(agency=agency, removed_at__isnull=True).exclude(clerk_user_id__in=present)
    for member in gone:
        # No Clerk timestamp for an absence: the listing is newer than anything stored.
        removed += member_remove(agency=agency, clerk_user_id=member.clerk_user_id, clerk_updated_at=None)
    return ReconcileResult(seen=len(memberships), changed=changed, removed=removed)


def agency_ids_to_reconcile() -> list[int]:
    return list(Agency.objects.filter(status=AgencyStatus.ACTIVE).values_list("pk", flat=True))


# --- invitations -------------------------------------------------------------------------------------


def agency_invitation_create(
    *, agency: Agency, email: str, role: str, invited_by: str, ip: str | None = None, user_agent: str = ""
) -> AgencyInvitation:
    """Queue an invitation (an agency admin's act); a task sends it to Clerk within the hourly budget."""
    _require_admin(agency, invited_by)
    email = (email or "").strip()
    errors: dict[str, list[str]] = {}
    try:
        validate_email(email)
    except ValidationError:
        errors["email"] = [EMAIL_INVALID]
    if role not in AgencyRole.values:
        errors["role"] = [ROLE_INVALID]
    if errors:
        raise ValidationError(errors)
    if AgencyMember.objects.filter(agency=agency, email__iexact=email, removed_at__isnull=True).exists():
        raise ValidationError({"email": [ALREADY_A_MEMBER.format(email=email)]})
    open_statuses = [InvitationStatus.QUEUED, InvitationStatus.PENDING]
    duplicate = ValidationError({"email": [DUPLICATE_INVITATION.format(email=email)]})
    if AgencyInvitation.objects.filter(agency=agency, email__iexact=email, status__in=open_statuses).exists():
        raise duplicate
    try:
        with transaction.atomic():
            invitation = AgencyInvitation.objects.create(
                agency=agency, email=email, role=role, invited_by=invited_by, next_attempt_at=timezone.now()
            )
            audit_event_record(
                action="agency.invitation_queued",
                actor=_user_actor(invited_by),
                target_type="agencies.agencyinvitation",
                target_id=invitation.pk,
                ip=ip,
                user_agent=user_agent,
                metadata={"agency_id": agency.pk, "email": email, "role": role},
            )
    except IntegrityError as exc:  # the same address queued concurrently: the partial unique index decided
        raise duplicate from exc
    from agencies.tasks import agency_invitation_send_task

    transaction.on_commit(lambda: agency_invitation_send_task.delay(invitation.pk))
    return invitation


class InvitationRetryLater(Exception):
    def __init__(self, countdown: float) -> None:
        super().__init__(f"retry in {countdown:.0f}s")
        self.countdown = countdown


def _budget_take(now: dt.datetime) -> dt.datetime | None:
    """Take one send from the instance-wide hourly budget; None if taken, else when the next one frees up.

    Counted from the invitations Clerk accepted in the last hour, under one advisory lock so two workers
    cannot both take the last one. Call inside the transaction that then records `sent_at`: the lock is held
    until that commit, across the Clerk call, which serialises sends instance-wide. At a few hundred an hour
    that costs nothing, and it is what keeps the count exact.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_BUDGET_LOCK_KEY])
    window = AgencyInvitation.objects.filter(sent_at__gt=now - BUDGET_WINDOW).order_by("sent_at")
    if window.count() < settings.AGENCY_INVITATIONS_PER_HOUR:
        return None
    oldest = window.values_list("sent_at", flat=True)[0]
    return oldest + BUDGET_WINDOW


def agency_invitation_send(*, invitation_id: int) -> AgencyInvitation:
    """Send one queued invitation to Clerk. Raises InvitationRetryLater when it must wait (budget, 429,
    transient failure); a permanent refusal or too many failures leave it `failed`, with the reason on the row.

    The row is locked for the call, so a duplicate task waits and then finds it sent: Clerk is asked once.
    """
    with transaction.atomic():
        invitation = AgencyInvitation.objects.select_for_update().select_related("agency").get(pk=invitation_id)
        if invitation.status != InvitationStatus.QUEUED:
            return invitation
        now = timezone.now()
        if invitation.next_attempt_at and invitation.next_attempt_at > now + dt.timedelta(seconds=1):
            raise InvitationRetryLater((invitation.next_attempt_at - now).total_seconds())
        free_at = _budget_take(now)
        if free_at is not None:
            invitation.next_attempt_at = free_at
            invitation.save(update_fields=["next_attempt_at", "updated_at"])
            logger.info("agency invitation %s waits for the hourly budget until %s", invitation.pk, free_at)
            countdown = (free_at - now).total_seconds()
        else:
            countdown = _invitation_send_now(invitation, now)
    if countdown is not None:
        raise InvitationRetryLater(countdown)
    return invitation


def _invitation_send_now(invitation: AgencyInvitation, now: dt.datetime) -> float | None:
    agency = invitation.agency
    invitation.attempts += 1
    try:
        sent = clerk_client().organization_invitation_create(
            organization_id=agency.clerk_org_id,
            email_address=invitation.email,
            role=CLERK_ROLE[AgencyRole(invitation.role)],
            inviter_user_id=invitation.invited_by,
            redirect_url=f"{settings.APP_BASE_URL.rstrip('/')}/agencies/{agency.pk}/members/",
            expires_in_days=settings.AGENCY_INVITATION_EXPIRY_DAYS,
            public_metadata={"agency_id": agency.pk},
        )
    except ClerkRateLimited as exc:
        return _invitation_wait(invitation, now, exc.retry_after, f"Clerk rate limit: {exc}")
    except ClerkPermanentError as exc:
        invitation.status = InvitationStatus.FAILED
        invitation.last_error = f"Clerk refused the invitation ({exc.code or exc.status})"[:500]
        invitation.next_attempt_at = None
        invitation.save()
        _invitation_audit(invitation, "agency.invitation_failed", {"code": exc.code})
        return None
    except ClerkError as exc:
        if invitation.attempts >= INVITATION_MAX_ATTEMPTS:
            invitation.status = InvitationStatus.FAILED
            invitation.last_error = f"gave up after {invitation.attempts} attempts: {exc}"[:500]
            invitation.next_attempt_at = None
            invitation.save()
            _invitation_audit(invitation, "agency.invitation_failed", {"attempts": invitation.attempts})
            return None
        wait = backoff(
            invitation.attempts, base=INVITATION_BACKOFF_BASE_SECONDS, ceiling=INVITATION_BACKOFF_CEILING_SECONDS
        )
        return _invitation_wait(invitation, now, wait, str(exc))
    invitation.status = InvitationStatus.PENDING
    invitation.clerk_invitation_id = sent.id
    invitation.expires_at = _ms(sent.expires_at_ms)
    invitation.sent_at = now
    invitation.next_attempt_at = None
    invitation.last_error = ""
    invitation.save()
    _invitation_audit(invitation, "agency.invitation_sent", {"clerk_invitation_id": sent.id})
    return None


def _invitation_wait(invitation: AgencyInvitation, now: dt.datetime, seconds: float, error: str) -> float:
    invitation.next_attempt_at = now + dt.timedelta(seconds=seconds)
    invitation.last_error = error[:500]
    invitation.save()
    return seconds


def _invitation_audit(invitation: AgencyInvitation, action: str, metadata: dict, actor: Actor | None = None) -> None:
    audit_event_record(
        action=action,
        actor=actor or Actor.system("agency_invitations"),
        target_type="agencies.agencyinvitation",
        target_id=invitation.pk,
        metadata={"agency_id": invitation.agency_id, "email": invitation.email, **metadata},
    )


def agency_invitations_due() -> list[int]:
    """Queued invitations whose time has come: the sweeper's rescue of rows a lost task left behind."""
    return list(
        AgencyInvitation.objects.filter(status=InvitationStatus.QUEUED, next_attempt_at__lte=timezone.now())
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:500]
    )


def agency_invitation_revoke(*, invitation: AgencyInvitation, revoked_by: str) -> AgencyInvitation:
    """Revoke an open invitation (an agency admin's act). A queued one never reached Clerk; a pending one is
    revoked there first. If Clerk says it is no longer pending, our row takes Clerk's status instead (and the
    person is told), rather than claiming a revocation that did not happen."""
    _require_admin(invitation.agency, revoked_by)
    clerk_status = None
    with transaction.atomic():
        invitation = AgencyInvitation.objects.select_for_update().select_related("agency").get(pk=invitation.pk)
        if invitation.status not in (InvitationStatus.QUEUED, InvitationStatus.PENDING):
            raise ValidationError(INVITATION_NOT_OPEN.format(status=invitation.get_status_display().lower()))
        if invitation.status == InvitationStatus.PENDING:
            clerk_status = _clerk_revoke(invitation, revoked_by)
        if clerk_status is None:
            invitation.status = InvitationStatus.REVOKED
            invitation.next_attempt_at = None
            invitation.save(update_fields=["status", "next_attempt_at", "updated_at"])
            _invitation_audit(invitation, "agency.invitation_revoked", {}, actor=_user_actor(revoked_by))
        else:
            invitation.status = clerk_status
            invitation.save(update_fields=["status", "updated_at"])
    if clerk_status is not None:
        raise ValidationError(INVITATION_NOT_OPEN.format(status=clerk_status))
    return invitation


def _clerk_revoke(invitation: AgencyInvitation, revoked_by: str) -> str | None:
    """Revoke in Clerk; None when done, else the status Clerk has instead of pending."""
    client = clerk_client()
    organization_id, invitation_id = invitation.agency.clerk_org_id, invitation.clerk_invitation_id
    try:
        client.organization_invitation_revoke(
            organization_id=organization_id, invitation_id=invitation_id, requesting_user_id=revoked_by
        )
    except ClerkNotFound:
        return None  # Clerk forgot it (its organization was deleted): nothing left to revoke there
    except ClerkPermanentError:
        current = client.organization_invitation_get(organization_id=organization_id, invitation_id=invitation_id)
        if current.status in InvitationStatus.values and current.status != InvitationStatus.PENDING:
            return current.status
        raise
    return None


def invitation_status_from_clerk(*, clerk_invitation_id: str, status: str) -> AgencyInvitation | None:
    """Apply Clerk's word on an invitation (accepted, revoked) to our row; unknown ids are someone else's."""
    if status not in (InvitationStatus.ACCEPTED, InvitationStatus.REVOKED, InvitationStatus.EXPIRED):
        return None
    with transaction.atomic():
        invitation = (
            AgencyInvitation.objects.select_for_update().filter(clerk_invitation_id=clerk_invitation_id).first()
        )
        if invitation is None or invitation.status == status:
            return invitation
        if invitation.status == InvitationStatus.ACCEPTED:
            return invitation  # accepted is final: a late revoked event cannot undo a membership
        invitation.status = status
        invitation.next_attempt_at = None
        invitation.save(update_fields=["status", "next_attempt_at", "updated_at"])
        _invitation_audit(invitation, f"agency.invitation_{status}", {}, actor=Actor.system("clerk"))
    return invitation


def agency_invitations_expire(*, now: dt.datetime | None = None) -> int:
    """Pending invitations past their expiry are expired: Clerk sends no webhook when one lapses."""
    now = now or timezone.now()
    return AgencyInvitation.objects.filter(status=InvitationStatus.PENDING, expires_at__lte=now).update(
        status=InvitationStatus.EXPIRED, updated_at=now
    )


# Svix retries a failed delivery for about three days; a message id older than this will not come again.
WEBHOOK_DEDUPE_RETENTION = dt.timedelta(days=30)


def clerk_webhook_deliveries_purge(*, now: dt.datetime | None = None) -> int:
    """Forget applied message ids past any redelivery (a dashboard replay that late is applied again, which
    the `clerk_updated_at` check makes harmless for memberships)."""
    cutoff = (now or timezone.now()) - WEBHOOK_DEDUPE_RETENTION
    deleted, _ = ClerkWebhookDelivery.objects.filter(received_at__lt=cutoff).delete()
    return deleted


# --- client assignments ------------------------------------------------------------------------------


def client_assignments_set(
    *, agency: Agency, member: AgencyMember, merchant_ids: set[int], assigned_by: str
) -> list[ClientAssignment]:
    """Limit a member to these clients (an admin's act). Only stores with an active grant can be assigned."""
    _require_admin(agency, assigned_by)
    granted = set(
        AccessGrant.objects.filter(agency=agency, status=GrantStatus.ACTIVE, merchant_id__in=merchant_ids).values_list(
            "merchant_id", flat=True
        )
    )
    if granted != set(merchant_ids):
        raise ValidationError({"merchants": [MERCHANT_NOT_GRANTED]})
    with transaction.atomic():
        current = set(ClientAssignment.objects.filter(member=member).values_list("merchant_id", flat=True))
        ClientAssignment.objects.filter(member=member).exclude(merchant_id__in=merchant_ids).delete()
        ClientAssignment.objects.bulk_create(
            [ClientAssignment(member=member, merchant_id=m) for m in merchant_ids - current], ignore_conflicts=True
        )
        if current != set(merchant_ids):
            audit_event_record(
                action="agency.client_assignments_set",
                actor=_user_actor(assigned_by),
                target_type="agencies.agencymember",
                target_id=member.pk,
                metadata={"agency_id": agency.pk, "merchant_ids": sorted(merchant_ids)},
            )
    return list(ClientAssignment.objects.filter(member=member))
