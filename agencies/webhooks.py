"""Clerk's organization webhooks, applied to our mirror (called by notifications.views.clerk_webhook after the
Svix signature was verified).

Deliveries are at least once and in no promised order (shared/AGENCIES.md A1.6): each Svix message id is
applied once (`ClerkWebhookDelivery`, written in the same transaction as its effect), memberships carry
Clerk's `updated_at` so an older event never overwrites a newer one, and the nightly reconcile repairs
whatever was never delivered. Organizations that are not agencies (a merchant's own) are ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from django.db import IntegrityError, transaction

from agencies import services
from agencies.models import Agency, ClerkWebhookDelivery

logger = logging.getLogger(__name__)

EVENT_PREFIXES = ("organization.", "organizationMembership.", "organizationInvitation.")

APPLIED = "applied"
DUPLICATE = "duplicate"
IGNORED = "ignored"


def is_organization_event(event_type: str) -> bool:
    return isinstance(event_type, str) and event_type.startswith(EVENT_PREFIXES)


class MalformedEvent(ValueError):
    """A signed event without the keys its type must have: a 400, so the sender sees it."""


def clerk_organization_event_apply(*, svix_id: str, event: Mapping[str, Any]) -> str:
    """Apply one organization event once; returns applied, duplicate or ignored."""
    event_type, data = event.get("type"), event.get("data")
    if not svix_id or not isinstance(data, Mapping):
        raise MalformedEvent("an organization event needs an svix-id and a data object")
    try:
        with transaction.atomic():
            try:
                with transaction.atomic():
                    ClerkWebhookDelivery.objects.create(svix_id=svix_id[:64], event_type=str(event_type)[:64])
            except IntegrityError:
                return DUPLICATE
            outcome = _apply(event_type, data)
    except (KeyError, TypeError) as exc:
        raise MalformedEvent(f"{event_type} without {exc}") from exc
    logger.info("clerk webhook %s (%s): %s", event_type, svix_id, outcome)
    return outcome


def _agency(clerk_org_id: Any) -> Agency | None:
    if not isinstance(clerk_org_id, str):
        raise TypeError("organization id")
    return Agency.objects.filter(clerk_org_id=clerk_org_id).first()


def _apply(event_type: str, data: Mapping[str, Any]) -> str:
    if event_type.startswith("organizationMembership."):
        agency = _agency(data["organization"]["id"])
        if agency is None:
            return IGNORED
        user = data["public_user_data"]
        updated_at = services._ms(data.get("updated_at"))
        if event_type == "organizationMembership.deleted":
            services.member_remove(agency=agency, clerk_user_id=user["user_id"], clerk_updated_at=updated_at)
        else:
            identifier = user.get("identifier") or ""
            services.member_upsert(
                agency=agency,
                clerk_user_id=user["user_id"],
                clerk_role=data["role"],
                clerk_updated_at=updated_at,
                clerk_membership_id=data.get("id") or "",
                email=identifier if "@" in identifier else "",
            )
        return APPLIED
    if event_type in ("organizationInvitation.accepted", "organizationInvitation.revoked"):
        status = event_type.removeprefix("organizationInvitation.")
        found = services.invitation_status_from_clerk(clerk_invitation_id=data["id"], status=status)
        return APPLIED if found is not None else IGNORED
    if event_type == "organization.deleted":
        agency = _agency(data["id"])
        if agency is None:
            return IGNORED
        services.agency_suspend(agency=agency, reason="Clerk organization deleted")
        return APPLIED
    if event_type == "organization.updated":
        agency = _agency(data["id"])
        if agency is None:
            return IGNORED
        services.agency_rename(agency=agency, name=data.get("name") or "")
        return APPLIED
    # organization.created and organizationInvitation.created: we made them, and know already.
    return IGNORED
