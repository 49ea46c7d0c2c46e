"""Agencies' fixtures: an agency created the way the app creates one (a Clerk organization in the sandbox)."""

from __future__ import annotations

import pytest
from clerk_backend_api import Clerk

from agencies.services import agency_create

BOSS = "user_boss"


@pytest.fixture
def clerk_api(settings, clerk) -> Clerk:
    """The official SDK on the sandbox, to look at what our code did in Clerk (or to act as Clerk's dashboard)."""
    return Clerk(bearer_auth=settings.CLERK_SECRET_KEY, server_url=settings.CLERK_API_URL)


@pytest.fixture
def agency(clerk, db):
    clerk.user(BOSS, email="boss@northwind.example")
    return agency_create(name="Northwind Growth", reporting_currency="EUR", created_by=BOSS)
