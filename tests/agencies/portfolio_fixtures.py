"""Fixtures of the portfolio tests: the dashboards' built marts (two demo stores, USD and EUR), an agency, its
members and grants, made directly (the access engineer's flows create them in the product)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from agencies.choices import AgencyRole, GrantLevel, GrantStatus
from agencies.models import AccessGrant, Agency, AgencyMember, ClientAssignment
from tests.dashboards.conftest import mart_merchant, marts  # noqa: F401 — the session fixture, used by name


@pytest.fixture
def alpine(marts):  # noqa: F811 — `marts` is the imported fixture
    return mart_merchant(0)


@pytest.fixture
def beach(marts):  # noqa: F811
    return mart_merchant(1)


def agency_make(name="North Star Agency", currency="USD", slug=None) -> Agency:
    slug = slug or name.lower().replace(" ", "-")
    return Agency.objects.create(
        clerk_org_id=f"org_{slug}", name=name, slug=slug, reporting_currency=currency, created_by="user_ada"
    )


def member_make(agency: Agency, clerk_user_id: str, role=AgencyRole.ADMIN) -> AgencyMember:
    return AgencyMember.objects.create(agency=agency, clerk_user_id=clerk_user_id, clerk_role=f"org:{role}", role=role)


def grant_make(
    agency: Agency, merchant, *, can_see_costs=True, status=GrantStatus.ACTIVE, level=GrantLevel.VIEWER
) -> AccessGrant:
    return AccessGrant.objects.create(
        agency=agency, merchant=merchant, level=level, can_see_costs=can_see_costs, status=status,
        approved_by="user_owner", approved_at=timezone.now(),
    )  # fmt: skip


def assign(member: AgencyMember, merchant) -> ClientAssignment:
    return ClientAssignment.objects.create(member=member, merchant=merchant)


@pytest.fixture
def agency(db):
    return agency_make()


@pytest.fixture
def ada(clerk, agency):
    """An admin of the agency, signed in with Clerk."""
    return member_make(agency, clerk.user("user_ada", first_name="Ada", last_name="Admin"))


@pytest.fixture
def granted(agency, alpine, beach):
    """Both demo stores granted to the agency, costs visible."""
    return [grant_make(agency, alpine), grant_make(agency, beach)]
