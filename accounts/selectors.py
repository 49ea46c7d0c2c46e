"""Reads for merchants and memberships. Every read of merchant data names the merchant explicitly."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Membership, Merchant

MERCHANT_NOT_FOUND = "No such merchant."


def membership_list(*, clerk_user_id: str) -> QuerySet[Membership]:
    return Membership.objects.filter(clerk_user_id=clerk_user_id, merchant__is_active=True).select_related("merchant")


def merchant_list_for_user(*, clerk_user_id: str) -> QuerySet[Merchant]:
    return Merchant.objects.filter(memberships__clerk_user_id=clerk_user_id, is_active=True).order_by("name")


def membership_get(*, clerk_user_id: str, merchant_id: int) -> Membership:
    """The user's membership of that merchant, or 404 — the same answer whether it exists or not."""
    try:
        return Membership.objects.select_related("merchant").get(
            clerk_user_id=clerk_user_id, merchant_id=merchant_id, merchant__is_active=True
        )
    except (Membership.DoesNotExist, ValueError, TypeError):
        raise Http404(MERCHANT_NOT_FOUND) from None


def member_list(*, merchant: Merchant) -> QuerySet[Membership]:
    return Membership.objects.filter(merchant=merchant).order_by("role", "clerk_user_id")
