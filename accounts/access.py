"""Effective access to a store: a store membership, or an agency's grant — the one check every route makes.

A person reaches a store in one of two ways:

- a `Membership` (the store's own people): full sight of the store, what they may change set by their role;
- an agency's `AccessGrant`, through their `AgencyMember`ship: the grant is effective only while
  the member is active (not removed) ∧ the agency is active ∧ (the member is an agency admin, or has a
  `ClientAssignment` for the store) ∧ the grant is active and not past its `expires_at` ∧ the store is active.
  What they may do is the grant's level; what they may see, its PII and costs flags.

Someone who is both a store member and an agency member of the same store gets the member access: it is the
stronger one, and the store itself chose it. Anything not reachable answers 404 — the same answer whether the
store exists or not — so an id says nothing about stores one cannot see.

What each kind of access allows (`StoreAccess.allows`):

==================  =====  =====  ======  ||  ======  =======  =======
action              owner  admin  viewer  ||  agency  agency   agency
                                          ||  viewer  analyst  manager
==================  =====  =====  ======  ||  ======  =======  =======
view                yes    yes    yes     ||  yes     yes      yes
export              yes    yes    yes     ||  no      yes      yes
edit_templates      yes    yes    yes     ||  no      yes      yes
manage_connectors   yes    yes    no      ||  no      no       yes
manage_members      yes    no     no      ||  no      no       no
manage_agencies     yes    no     no      ||  no      no       no
==================  =====  =====  ======  ||  ======  =======  =======

`manage_agencies` is the store side of agency grants (approve, decline, end, one-time codes). An agency never
manages the store's members or grants, whatever its level: the store stays in control of who sees it.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Exists, OuterRef, Q
from django.http import Http404
from django.utils import timezone

from accounts.choices import Role
from accounts.models import Membership, Merchant
from accounts.selectors import MERCHANT_NOT_FOUND
from agencies.choices import AgencyRole, AgencyStatus, GrantLevel, GrantStatus
from agencies.models import AccessGrant, Agency, AgencyMember

VIEW = "view"
EXPORT = "export"
EDIT_TEMPLATES = "edit_templates"
MANAGE_CONNECTORS = "manage_connectors"
MANAGE_MEMBERS = "manage_members"
MANAGE_AGENCIES = "manage_agencies"
ACTIONS = (VIEW, EXPORT, EDIT_TEMPLATES, MANAGE_CONNECTORS, MANAGE_MEMBERS, MANAGE_AGENCIES)

# The table of the module docstring. Keys are Role values for members and GrantLevel values for agencies;
# the two sets of values overlap ("viewer"), so they are kept apart.
MEMBER_ACTIONS: dict[str, frozenset[str]] = {
    Role.OWNER: frozenset(ACTIONS),
    Role.ADMIN: frozenset({VIEW, EXPORT, EDIT_TEMPLATES, MANAGE_CONNECTORS}),
    Role.VIEWER: frozenset({VIEW, EXPORT, EDIT_TEMPLATES}),
}
AGENCY_ACTIONS: dict[str, frozenset[str]] = {
    GrantLevel.VIEWER: frozenset({VIEW}),
    GrantLevel.ANALYST: frozenset({VIEW, EXPORT, EDIT_TEMPLATES}),
    GrantLevel.MANAGER: frozenset({VIEW, EXPORT, EDIT_TEMPLATES, MANAGE_CONNECTORS}),
}
# The member Role an agency level acts as, for code that still reads a role (e.g. the API's `role` field).
AGENCY_LEVEL_ROLE = {GrantLevel.VIEWER: Role.VIEWER, GrantLevel.ANALYST: Role.VIEWER, GrantLevel.MANAGER: Role.ADMIN}


@dataclass(frozen=True)
class StoreAccess:
    """What one person may see and do in one store, and why (their membership, or which agency's grant)."""

    merchant: Merchant
    role: str  # accounts.choices.Role for members; for agency access the Role its level acts as
    agency: Agency | None  # None for a store member
    grant: AccessGrant | None
    level: str  # Role value for members, GrantLevel value for agencies
    can_see_pii: bool  # members: True; agencies: grant.can_see_pii
    can_see_costs: bool  # members: True; agencies: grant.can_see_costs
    membership: Membership | None = None  # the row behind a member's access, for code that reads it

    @property
    def merchant_id(self) -> int:
        return self.merchant.pk

    @property
    def is_agency(self) -> bool:
        return self.agency is not None

    @property
    def label(self) -> str:
        """How the page names this access: "Owner", or "Viewer via Acme Agency"."""
        if self.agency is None:
            return Role(self.role).label
        return f"{GrantLevel(self.level).name.title()} via {self.agency.name}"

    def allows(self, action: str) -> bool:
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}")  # a typo must not quietly deny (or allow) everything
        table = AGENCY_ACTIONS if self.agency is not None else MEMBER_ACTIONS
        return action in table.get(self.level, frozenset())


def store_access_from_membership(membership: Membership) -> StoreAccess:
    return StoreAccess(
        merchant=membership.merchant,
        role=membership.role,
        agency=None,
        grant=None,
        level=membership.role,
        can_see_pii=True,
        can_see_costs=True,
        membership=membership,
    )


def store_access_from_grant(grant: AccessGrant) -> StoreAccess:
    """The access a grant gives (the caller has checked the grant is effective for this person)."""
    return StoreAccess(
        merchant=grant.merchant,
        role=AGENCY_LEVEL_ROLE.get(grant.level, Role.VIEWER),
        agency=grant.agency,
        grant=grant,
        level=grant.level,
        can_see_pii=grant.can_see_pii,
        can_see_costs=grant.can_see_costs,
    )


def _effective_grants(*, clerk_user_id: str, agency: Agency | None = None):
    """Active grants this person reaches through an agency membership: one query, the member test an EXISTS.

    Agency admins see every store their agency was granted; other members only their assigned clients.
    """
    member = AgencyMember.objects.filter(
        Q(role=AgencyRole.ADMIN) | Q(assignments__merchant=OuterRef("merchant")),
        agency=OuterRef("agency"),
        clerk_user_id=clerk_user_id,
        removed_at__isnull=True,
    )
    grants = AccessGrant.objects.filter(
        Exists(member),
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()),
        status=GrantStatus.ACTIVE,
        agency__status=AgencyStatus.ACTIVE,
        merchant__is_active=True,
    )
    if agency is not None:
        grants = grants.filter(agency=agency)
    # Oldest grant first: if two agencies of this person were granted the same store, the answer is stable.
    return grants.select_related("merchant", "agency").order_by("merchant__name", "merchant_id", "created_at", "pk")


def store_access_list(*, clerk_user_id: str) -> list[StoreAccess]:
    """Every store this person may open, each once, ordered by store name: two queries whatever the count.

    The store switcher shows this list, and `merchant_member_required` picks the page's store from it, so
    one pair of queries answers both.
    """
    memberships = (
        Membership.objects.filter(clerk_user_id=clerk_user_id, merchant__is_active=True)
        .select_related("merchant")
        .order_by("merchant__name", "merchant_id")
    )
    by_store: dict[int, StoreAccess] = {m.merchant_id: store_access_from_membership(m) for m in memberships}
    for grant in _effective_grants(clerk_user_id=clerk_user_id):
        by_store.setdefault(grant.merchant_id, store_access_from_grant(grant))  # a membership wins
    return sorted(by_store.values(), key=lambda a: (a.merchant.name, a.merchant_id))


def store_access_get(*, clerk_user_id: str, merchant_id) -> StoreAccess:
    """This person's access to that store, or 404 — the same answer whether the store exists or not."""
    try:
        merchant_id = int(merchant_id)
    except (ValueError, TypeError):
        raise Http404(MERCHANT_NOT_FOUND) from None
    membership = (
        Membership.objects.filter(clerk_user_id=clerk_user_id, merchant_id=merchant_id, merchant__is_active=True)
        .select_related("merchant")
        .first()
    )
    if membership is not None:
        return store_access_from_membership(membership)
    grant = _effective_grants(clerk_user_id=clerk_user_id).filter(merchant_id=merchant_id).first()
    if grant is None:
        raise Http404(MERCHANT_NOT_FOUND)
    return store_access_from_grant(grant)


def store_access_pick(accesses: list[StoreAccess], merchant_id) -> StoreAccess:
    """The access to `merchant_id` out of `store_access_list`'s answer, or 404 (no further query)."""
    try:
        merchant_id = int(merchant_id)
    except (ValueError, TypeError):
        raise Http404(MERCHANT_NOT_FOUND) from None
    access = next((a for a in accesses if a.merchant_id == merchant_id), None)
    if access is None:
        raise Http404(MERCHANT_NOT_FOUND)
    return access


def agency_store_access_list(*, clerk_user_id: str, agency: Agency) -> list[StoreAccess]:
    """The stores this person sees as a member of `agency` (the portfolio), with the agency's grant terms.

    Deliberately not merged with their own store memberships: the portfolio is the agency's view, and shows
    what the agency was granted — masking included — even to someone who also belongs to one of the stores.
    """
    return [store_access_from_grant(g) for g in _effective_grants(clerk_user_id=clerk_user_id, agency=agency)]
