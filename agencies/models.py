"""Agencies: Clerk organizations whose staff see the stores their clients granted them.

Clerk owns who belongs to an organization; `AgencyMember` mirrors it (webhooks and a nightly reconcile).
Access to a store is decided here, never from a token's claims: an active membership, a client assignment
(for members who are not admins), an active `AccessGrant`, its level, and its masking.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from accounts.models import Merchant
from agencies.choices import (
    OPEN_GRANT_STATUSES,
    AgencyRole,
    AgencyStatus,
    GrantLevel,
    GrantStatus,
    InvitationStatus,
)


class Agency(models.Model):
    """A marketing agency: one Clerk organization."""

    clerk_org_id = models.CharField(max_length=64, unique=True, help_text="Clerk organization id (org_…).")
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    reporting_currency = models.CharField(
        max_length=3, default="USD", help_text="ISO 4217: the portfolio's blended totals are converted into it."
    )
    status = models.CharField(max_length=16, choices=AgencyStatus.choices, default=AgencyStatus.ACTIVE)
    created_by = models.CharField(max_length=64, help_text="Clerk user id of the person who created it.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "agencies"

    def __str__(self) -> str:
        return self.name


class AgencyMember(models.Model):
    """A person in an agency, mirrored from Clerk's organization memberships. Removal keeps the row."""

    agency = models.ForeignKey(Agency, on_delete=models.CASCADE, related_name="members")
    clerk_user_id = models.CharField(max_length=64, db_index=True)
    clerk_membership_id = models.CharField(max_length=64, blank=True, help_text="Clerk orgmem_… id.")
    clerk_role = models.CharField(max_length=64, help_text="The role as Clerk names it, e.g. org:admin.")
    role = models.CharField(max_length=16, choices=AgencyRole.choices, default=AgencyRole.MEMBER)
    email = models.EmailField(blank=True)
    clerk_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="Clerk's updated_at of the last event applied: older events are ignored."
    )
    removed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agency__name", "clerk_user_id"]
        constraints = [
            models.UniqueConstraint(fields=["agency", "clerk_user_id"], name="agency_member_unique_user"),
        ]

    def __str__(self) -> str:
        return f"{self.clerk_user_id} in {self.agency} ({self.role})"

    @property
    def is_active(self) -> bool:
        return self.removed_at is None


class AgencyInvitation(models.Model):
    """An invitation to join an agency, sent through Clerk's organization invitations by a queued task."""

    agency = models.ForeignKey(Agency, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=16, choices=AgencyRole.choices, default=AgencyRole.MEMBER)
    status = models.CharField(max_length=16, choices=InvitationStatus.choices, default=InvitationStatus.QUEUED)
    clerk_invitation_id = models.CharField(max_length=64, blank=True)
    invited_by = models.CharField(max_length=64, help_text="Clerk user id.")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When Clerk accepted it: counts against the hourly invitation budget."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["sent_at"], name="agency_invitation_sent_at")]
        constraints = [
            # One live invitation per address per agency; an accepted, revoked or expired one may be redone.
            models.UniqueConstraint(
                "agency",
                models.functions.Lower("email"),
                condition=Q(status__in=[InvitationStatus.QUEUED, InvitationStatus.PENDING]),
                name="agency_invitation_one_open_per_email",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.agency} ({self.status})"


class AccessGrant(models.Model):
    """A store's permission for an agency: asked for by the agency (pending) or given with a one-time code."""

    agency = models.ForeignKey(Agency, on_delete=models.CASCADE, related_name="grants")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="agency_grants")
    level = models.CharField(max_length=16, choices=GrantLevel.choices, default=GrantLevel.VIEWER)
    can_see_pii = models.BooleanField(default=False, help_text="Customer names, emails and phone numbers.")
    can_see_costs = models.BooleanField(default=False, help_text="Ad spend, product costs and margins.")
    status = models.CharField(max_length=16, choices=GrantStatus.choices, default=GrantStatus.PENDING)
    requested_by = models.CharField(max_length=64, blank=True, help_text="Clerk user id (agency side).")
    request_note = models.CharField(max_length=500, blank=True)
    approved_by = models.CharField(max_length=64, blank=True, help_text="Clerk user id (store side).")
    approved_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until either side ends it.")
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.CharField(max_length=64, blank=True)
    end_reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["agency__name", "merchant__name"]
        constraints = [
            models.UniqueConstraint(
                fields=["agency", "merchant"],
                condition=Q(status__in=OPEN_GRANT_STATUSES),
                name="access_grant_one_open_per_agency_and_store",
            ),
        ]
        indexes = [models.Index(fields=["merchant", "status"], name="access_grant_merchant_status")]

    def __str__(self) -> str:
        return f"{self.agency} on {self.merchant} ({self.level}, {self.status})"


class AccessCode(models.Model):
    """A one-time code a store's owner gives an agency: redeeming it creates an active grant at these terms.

    Only a digest of the code is kept; the code itself is shown once.
    """

    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="agency_access_codes")
    digest = models.CharField(max_length=64, unique=True)
    level = models.CharField(max_length=16, choices=GrantLevel.choices, default=GrantLevel.VIEWER)
    can_see_pii = models.BooleanField(default=False)
    can_see_costs = models.BooleanField(default=False)
    created_by = models.CharField(max_length=64, help_text="Clerk user id (store side).")
    expires_at = models.DateTimeField()
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_by_agency = models.ForeignKey(Agency, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"code for {self.merchant} ({self.level})"


class ClientAssignment(models.Model):
    """Limits an agency member who is not an admin to some clients. A member with none sees no store."""

    member = models.ForeignKey(AgencyMember, on_delete=models.CASCADE, related_name="assignments")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["member", "merchant"], name="client_assignment_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.member.clerk_user_id} → {self.merchant}"


class MerchantGroup(models.Model):
    """A saved set of client stores for the portfolio, e.g. "EU fashion"."""

    agency = models.ForeignKey(Agency, on_delete=models.CASCADE, related_name="groups")
    name = models.CharField(max_length=100)
    merchants = models.ManyToManyField(Merchant, related_name="+", blank=True)
    created_by = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agency_id", models.functions.Lower("name")]
        constraints = [
            models.UniqueConstraint("agency", models.functions.Lower("name"), name="merchant_group_unique_name"),
        ]

    def __str__(self) -> str:
        return self.name


class AgencyToken(models.Model):
    """An agency's API token. The token is shown once; only a keyed digest (HMAC-SHA256) is stored."""

    agency = models.ForeignKey(Agency, on_delete=models.CASCADE, related_name="tokens")
    created_by = models.CharField(max_length=64, help_text="Clerk user id; leaving the agency revokes it.")
    name = models.CharField(max_length=100)
    display_hint = models.CharField(max_length=8, help_text="The token's last characters, to tell tokens apart.")
    digest = models.CharField(max_length=64, unique=True)
    pepper_version = models.PositiveSmallIntegerField(default=1)
    scopes = ArrayField(models.CharField(max_length=32), default=list)
    merchants = models.ManyToManyField(Merchant, related_name="+", help_text="Each still needs an active grant.")
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_by = models.CharField(max_length=64, blank=True)
    revoke_reason = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["agency__name", "-created_at"]

    def __str__(self) -> str:
        return f"{self.name} (…{self.display_hint})"


class ClerkWebhookDelivery(models.Model):
    """An organization webhook already applied, by its Svix message id: a retry or a replay is applied once."""

    svix_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=64)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.event_type} ({self.svix_id})"
