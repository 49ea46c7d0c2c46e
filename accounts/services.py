"""Writes for merchants and memberships."""

from __future__ import annotations

from django.db import transaction

from accounts.choices import Role
from accounts.models import Membership, Merchant
from compliance.services import Actor, audit_event_record


@transaction.atomic
def merchant_create(*, name: str, shop_domain: str, timezone: str, currency: str, key: str, actor: Actor) -> Merchant:
    merchant = Merchant(name=name, shop_domain=shop_domain.lower(), timezone=timezone, currency=currency, key=key)
    merchant.full_clean()
    merchant.save()
    audit_event_record(
        action="merchant.created",
        actor=actor,
        target_type="accounts.merchant",
        target_id=merchant.pk,
        merchant=merchant,
    )
    return merchant


@transaction.atomic
def membership_grant(*, merchant: Merchant, clerk_user_id: str, role: str, actor: Actor) -> Membership:
    """Give a Clerk user a role on a merchant; granting again changes the role."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}")
    membership, created = Membership.objects.update_or_create(
        merchant=merchant, clerk_user_id=clerk_user_id, defaults={"role": role}
    )
    audit_event_record(
        action="membership.granted" if created else "membership.role_changed",
        actor=actor,
        target_type="accounts.membership",
        target_id=membership.pk,
        merchant=merchant,
        metadata={"clerk_user_id": clerk_user_id, "role": role},
    )
    return membership
