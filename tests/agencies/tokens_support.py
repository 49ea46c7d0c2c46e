"""Rows the token tests build on: an agency with an admin, active grants on stores, and issued tokens."""

from __future__ import annotations

import itertools

from django.utils import timezone

from accounts.models import Merchant
from agencies.choices import AgencyRole, GrantLevel, GrantStatus, TokenScope
from agencies.models import AccessGrant, Agency, AgencyMember
from agencies.tokens import IssuedToken, agency_token_create
from tests.accounts.factories import MerchantFactory

_seq = itertools.count(1)


def agency_make(name: str = "Acme Agency", admin: str = "user_ada") -> Agency:
    n = next(_seq)
    agency = Agency.objects.create(clerk_org_id=f"org_tok{n}", name=name, slug=f"agency-tok-{n}", created_by=admin)
    member_make(agency, admin, role=AgencyRole.ADMIN)
    return agency


def member_make(agency: Agency, clerk_user_id: str, role: str = AgencyRole.MEMBER) -> AgencyMember:
    return AgencyMember.objects.create(agency=agency, clerk_user_id=clerk_user_id, clerk_role=f"org:{role}", role=role)


def grant_make(agency: Agency, merchant: Merchant | None = None, **fields) -> AccessGrant:
    return AccessGrant.objects.create(
        agency=agency,
        merchant=merchant or MerchantFactory(),
        level=fields.pop("level", GrantLevel.VIEWER),
        status=fields.pop("status", GrantStatus.ACTIVE),
        approved_at=timezone.now(),
        **fields,
    )


def token_make(
    agency: Agency,
    merchants: list[Merchant],
    scopes: tuple[str, ...] = (TokenScope.METRICS_READ, TokenScope.REPORTS_READ),
    created_by: str = "user_ada",
    **kwargs,
) -> IssuedToken:
    return agency_token_create(
        agency=agency,
        created_by=created_by,
        name=kwargs.pop("name", "Looker pull"),
        scopes=list(scopes),
        merchant_ids=[m.pk for m in merchants],
        **kwargs,
    )


def bearer(plaintext: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {plaintext}"}
