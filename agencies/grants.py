"""Grants: an agency asks a store for access (or redeems the store's one-time code); the store answers.

The store's owners approve a request with a level and whether the agency may see customer PII and costs,
decline it, or end a grant; they may instead hand an agency a one-time code that, redeemed, becomes an
active grant at the code's terms. Either side may end a grant. Every step is audited with the store, and
ending one sends `agencies.signals.grant_ended` inside the same transaction (its tokens are revoked with it).

Asking never tells the agency whether a shop exists: the answer is the same for a store we do not know.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import Merchant
from agencies.choices import OPEN_GRANT_STATUSES, GrantLevel, GrantStatus
from agencies.models import AccessCode, AccessGrant, Agency
from agencies.signals import grant_ended
from compliance.choices import ActorType
from compliance.services import Actor, audit_event_record

CODE_TTL = dt.timedelta(days=7)
CODE_PREFIX = "agc_"

REQUEST_SENT = "If {shop} uses this app, its owners now see your request."
CODE_INVALID = "This code is not valid."
CODE_USED = "This code has already been used."
CODE_EXPIRED = "This code has expired; ask the store for a new one."
ALREADY_GRANTED = "Your agency already has access to this store."
NOT_PENDING = "This request has already been answered."
NOT_ACTIVE = "This grant is not active."
LEVEL_UNKNOWN = "Choose viewer, analyst or manager."


class GrantError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _actor(clerk_user_id: str) -> Actor:
    return Actor(type=ActorType.CLERK_USER, id=clerk_user_id, label=clerk_user_id)


def _audit(action: str, grant: AccessGrant, by: str, request_ctx: dict | None, **metadata) -> None:
    audit_event_record(
        action=action,
        actor=_actor(by),
        target_type="agencies.accessgrant",
        target_id=grant.pk,
        merchant=grant.merchant,
        metadata={"agency_id": grant.agency_id, **metadata},
        **(request_ctx or {}),
    )


def code_digest(code: str) -> str:
    """Keyed digest of a one-time code: a leaked table of digests cannot be tried offline without the key."""
    return hmac.new(settings.SECRET_KEY.encode(), code.strip().encode(), hashlib.sha256).hexdigest()


def _check_level(level: str) -> None:
    if level not in GrantLevel.values:
        raise GrantError(LEVEL_UNKNOWN)


def grant_request(
    *, agency: Agency, shop_domain: str, requested_by: str, note: str = "", request_ctx: dict | None = None
) -> AccessGrant | None:
    """A pending request to the store at `shop_domain`; None if there is no such active store (the caller says
    the same either way). An open request or grant already there is returned as it is."""
    shop = shop_domain.strip().lower().removeprefix("https://").removeprefix("http://").rstrip("/")
    merchant = Merchant.objects.filter(shop_domain=shop, is_active=True).first()
    if merchant is None:
        return None
    with transaction.atomic():
        existing = AccessGrant.objects.filter(agency=agency, merchant=merchant, status__in=OPEN_GRANT_STATUSES).first()
        if existing is not None:
            return existing
        grant = AccessGrant.objects.create(
            agency=agency, merchant=merchant, status=GrantStatus.PENDING, requested_by=requested_by, request_note=note
        )
        _audit("agency_grant.requested", grant, requested_by, request_ctx)
    return grant


def grant_approve(
    *,
    grant: AccessGrant,
    level: str,
    can_see_pii: bool,
    can_see_costs: bool,
    approved_by: str,
    request_ctx: dict | None = None,
) -> AccessGrant:
    _check_level(level)
    with transaction.atomic():
        grant = AccessGrant.objects.select_for_update().get(pk=grant.pk)
        if grant.status != GrantStatus.PENDING:
            raise GrantError(NOT_PENDING)
        grant.status, grant.level = GrantStatus.ACTIVE, level
        grant.can_see_pii, grant.can_see_costs = can_see_pii, can_see_costs
        grant.approved_by, grant.approved_at = approved_by, timezone.now()
        grant.save()
        _audit(
            "agency_grant.approved", grant, approved_by, request_ctx,
            level=level, can_see_pii=can_see_pii, can_see_costs=can_see_costs,
        )  # fmt: skip
    return grant


def grant_decline(*, grant: AccessGrant, declined_by: str, request_ctx: dict | None = None) -> AccessGrant:
    with transaction.atomic():
        grant = AccessGrant.objects.select_for_update().get(pk=grant.pk)
        if grant.status != GrantStatus.PENDING:
            raise GrantError(NOT_PENDING)
        grant.status, grant.ended_at, grant.ended_by = GrantStatus.DECLINED, timezone.now(), declined_by
        grant.save()
        _audit("agency_grant.declined", grant, declined_by, request_ctx)
    return grant


def grant_end(
    *, grant: AccessGrant, ended_by: str, side: str, reason: str = "", request_ctx: dict | None = None
) -> AccessGrant:
    """End an active grant (`side`: "store" or "agency"). Receivers of `grant_ended` run in this transaction."""
    with transaction.atomic():
        grant = AccessGrant.objects.select_for_update().select_related("agency", "merchant").get(pk=grant.pk)
        if grant.status != GrantStatus.ACTIVE:
            raise GrantError(NOT_ACTIVE)
        grant.status, grant.ended_at, grant.ended_by = GrantStatus.ENDED, timezone.now(), ended_by
        grant.end_reason = reason[:500]
        grant.save()
        _audit("agency_grant.ended", grant, ended_by, request_ctx, side=side)
        grant_ended.send(sender=AccessGrant, grant=grant)
    return grant


def access_code_create(
    *,
    merchant: Merchant,
    level: str,
    can_see_pii: bool,
    can_see_costs: bool,
    created_by: str,
    request_ctx: dict | None = None,
) -> tuple[AccessCode, str]:
    """A one-time code for an agency, valid CODE_TTL. Returns the code itself once; only its digest is kept."""
    _check_level(level)
    code = CODE_PREFIX + secrets.token_urlsafe(24)
    with transaction.atomic():
        row = AccessCode.objects.create(
            merchant=merchant, digest=code_digest(code), level=level, can_see_pii=can_see_pii,
            can_see_costs=can_see_costs, created_by=created_by, expires_at=timezone.now() + CODE_TTL,
        )  # fmt: skip
        audit_event_record(
            action="agency_code.created",
            actor=_actor(created_by),
            target_type="agencies.accesscode",
            target_id=row.pk,
            merchant=merchant,
            metadata={"level": level, "can_see_pii": can_see_pii, "can_see_costs": can_see_costs},
            **(request_ctx or {}),
        )
    return row, code


def access_code_redeem(*, agency: Agency, code: str, redeemed_by: str, request_ctx: dict | None = None) -> AccessGrant:
    """An active grant at the code's terms. A used, expired or unknown code is refused and changes nothing."""
    with transaction.atomic():
        row = AccessCode.objects.select_for_update().filter(digest=code_digest(code)).first()
        if row is None or not row.merchant.is_active:
            raise GrantError(CODE_INVALID)
        if row.redeemed_at is not None:
            raise GrantError(CODE_USED)
        if row.expires_at <= timezone.now():
            raise GrantError(CODE_EXPIRED)
        grant = (
            AccessGrant.objects.select_for_update()
            .filter(agency=agency, merchant=row.merchant, status__in=OPEN_GRANT_STATUSES)
            .first()
        )
        if grant is not None and grant.status == GrantStatus.ACTIVE:
            raise GrantError(ALREADY_GRANTED)
        grant = grant or AccessGrant(agency=agency, merchant=row.merchant, requested_by=redeemed_by)
        grant.status, grant.level = GrantStatus.ACTIVE, row.level
        grant.can_see_pii, grant.can_see_costs = row.can_see_pii, row.can_see_costs
        grant.approved_by, grant.approved_at = row.created_by, timezone.now()
        grant.save()
        row.redeemed_at, row.redeemed_by_agency = timezone.now(), agency
        row.save(update_fields=["redeemed_at", "redeemed_by_agency"])
        _audit("agency_grant.code_redeemed", grant, redeemed_by, request_ctx, code_id=row.pk, level=row.level)
    return grant


def grant_list_for_store(*, merchant: Merchant):
    return AccessGrant.objects.filter(merchant=merchant).select_related("agency").order_by("status", "-created_at")


def grant_list_for_agency(*, agency: Agency):
    return AccessGrant.objects.filter(agency=agency).select_related("merchant").order_by("status", "-created_at")
