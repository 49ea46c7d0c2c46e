"""Reads: a Clerk user's email address (cached), and the outbox rows the sweeper and admin look at."""

from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from notifications.choices import CRITICAL_KINDS, STAFF_ONLY_KINDS, NotificationStatus
from notifications.clients.clerk import ClerkError, ClerkUser, clerk_client
from notifications.models import Notification, NotificationOptOut

NO_VERIFIED_EMAIL = "Clerk user {user_id} has no verified email address"


class ClerkUserHasNoEmail(ClerkError):
    """The user exists but has no verified address we may write to."""


def email_cache_key(clerk_user_id: str) -> str:
    return f"notifications:clerk-email:v1:{clerk_user_id}"


def preferred_email(user: ClerkUser) -> str:
    """The verified primary address; else the first verified one; never an unverified address.

    Clerk normally only lets a verified address become primary, but imported users and dashboard
    edits can break that; writing to an address nobody proved they own would leak merchant alerts.
    """
    verified = [e for e in user.email_addresses if e.verified]
    for entry in verified:
        if entry.id == user.primary_email_address_id:
            return entry.email_address
    if verified:
        return verified[0].email_address
    raise ClerkUserHasNoEmail(NO_VERIFIED_EMAIL.format(user_id=user.id))


def email_dropped_key(clerk_user_id: str) -> str:
    return f"notifications:clerk-email-dropped:v1:{clerk_user_id}"


def user_email_get(clerk_user_id: str) -> str:
    """The address to write to, from the cache or Clerk. Raises the typed errors of clients/clerk.py."""
    key = email_cache_key(clerk_user_id)
    email = cache.get(key)
    if email:
        return email
    asked_at = time.time()
    email = preferred_email(clerk_client().user_get(clerk_user_id))
    # A webhook that dropped the address while we were asking Clerk may mean our answer is already old:
    # use it for this message, but do not cache it for an hour.
    dropped_at = cache.get(email_dropped_key(clerk_user_id))
    if dropped_at is None or dropped_at < asked_at:
        cache.set(key, email, settings.CLERK_EMAIL_CACHE_TTL)
    return email


def notification_is_muted(*, merchant_id: int, clerk_user_id: str, kind: str) -> bool:
    if kind in CRITICAL_KINDS:
        return False
    return NotificationOptOut.objects.filter(merchant_id=merchant_id, clerk_user_id=clerk_user_id, kind=kind).exists()


def notification_preference_list(*, merchant_id: int, clerk_user_id: str) -> list[dict]:
    """Every kind with whether this member receives it; critical kinds are always on."""
    from notifications.choices import NotificationKind

    muted = set(
        NotificationOptOut.objects.filter(merchant_id=merchant_id, clerk_user_id=clerk_user_id).values_list(
            "kind", flat=True
        )
    )
    return [
        {
            "kind": kind.value,
            "label": kind.label,
            "critical": kind in CRITICAL_KINDS,
            "enabled": kind in CRITICAL_KINDS or kind.value not in muted,
        }
        for kind in NotificationKind
        if kind not in STAFF_ONLY_KINDS
    ]


def notification_stuck_list(*, sending_lease: timedelta, pending_grace: timedelta) -> QuerySet[Notification]:
    """Rows no task will pick up: `sending` past the lease (a dead worker), `pending` long past due (a lost task)."""
    now = timezone.now()
    sending_stuck = Notification.objects.filter(status=NotificationStatus.SENDING, claimed_at__lt=now - sending_lease)
    pending_lost = Notification.objects.filter(
        status=NotificationStatus.PENDING, next_attempt_at__lt=now - pending_grace
    )
    return (sending_stuck | pending_lost).order_by("next_attempt_at")
