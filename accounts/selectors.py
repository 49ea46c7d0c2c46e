"""Reads for merchants and memberships. Every read of merchant data names the merchant explicitly."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.core.cache import cache
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Membership, Merchant

MERCHANT_NOT_FOUND = "No such merchant."

logger = logging.getLogger(__name__)

# The top bar's name for the signed-in person. Clerk answers within DISPLAY_NAME_TIMEOUT_SECONDS or the page
# shows the user id; either answer is cached, the fallback briefly, so an outage costs one wait per minute
# per user rather than one per page.
DISPLAY_NAME_TIMEOUT_SECONDS = 2.0
DISPLAY_NAME_CACHE_SECONDS = 300
DISPLAY_NAME_FALLBACK_CACHE_SECONDS = 60


def membership_list(*, clerk_user_id: str) -> list[Membership]:
    """The user's memberships of active merchants, with the merchant, ordered by merchant name."""
    return list(
        Membership.objects.filter(clerk_user_id=clerk_user_id, merchant__is_active=True)
        .select_related("merchant")
        .order_by("merchant__name", "merchant_id")
    )


def merchant_list_for_user(*, clerk_user_id: str) -> QuerySet[Merchant]:
    return Merchant.objects.filter(memberships__clerk_user_id=clerk_user_id, is_active=True).order_by("name")


def membership_get(*, clerk_user_id: str, merchant_id: int) -> Membership:
    """The user's membership of that merchant, or 404 — the same answer whether it exists or not."""
    try:
        merchant_id = int(merchant_id)
    except (ValueError, TypeError):
        raise Http404(MERCHANT_NOT_FOUND) from None
    try:
        return Membership.objects.select_related("merchant").get(
            clerk_user_id=clerk_user_id, merchant_id=merchant_id, merchant__is_active=True
        )
    except Membership.DoesNotExist:
        raise Http404(MERCHANT_NOT_FOUND) from None


def member_list(*, merchant: Merchant) -> QuerySet[Membership]:
    return Membership.objects.filter(merchant=merchant).order_by("role", "clerk_user_id")


def display_name_cache_key(clerk_user_id: str) -> str:
    return f"accounts:clerk-display-name:v1:{clerk_user_id}"


def _name_from_claims(claims: Mapping[str, Any]) -> str:
    """A name or address the instance put in its session token (Clerk's custom session claims), if any."""
    full = " ".join(str(claims.get(k) or "").strip() for k in ("first_name", "last_name")).strip()
    for value in (claims.get("name"), full, claims.get("email"), claims.get("primary_email")):
        if isinstance(value, str) and value.strip():
            return value.strip()[:100]
    return ""


def clerk_display_name_get(*, clerk_user_id: str, claims: Mapping[str, Any] | None = None) -> str:
    """The person's name, else username, else primary email address, as Clerk knows them; else the user id.

    Never raises for Clerk's sake: an outage, a missing secret key or a deleted user shows the id.
    """
    from notifications.clients.clerk import ClerkError, clerk_client

    name = _name_from_claims(claims or {})
    if name:
        return name
    key = display_name_cache_key(clerk_user_id)
    cached = cache.get(key)
    if cached:
        return cached
    try:
        user = clerk_client(timeout=DISPLAY_NAME_TIMEOUT_SECONDS).user_get(clerk_user_id)
    except ClerkError as exc:
        logger.warning("clerk user name unavailable, showing the id: %s", type(exc).__name__)
        cache.set(key, clerk_user_id, DISPLAY_NAME_FALLBACK_CACHE_SECONDS)
        return clerk_user_id
    full = " ".join(part.strip() for part in (user.first_name or "", user.last_name or "") if part.strip())
    primary = next((e.email_address for e in user.email_addresses if e.id == user.primary_email_address_id), "")
    name = (full or user.username or primary or clerk_user_id)[:100]
    cache.set(key, name, DISPLAY_NAME_CACHE_SECONDS)
    return name
