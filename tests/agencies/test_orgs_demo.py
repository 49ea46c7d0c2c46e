"""The demo: Northwind Growth, a Clerk organization in the sandbox, whose admin sees two demo stores."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from accounts.demo import DEMO_AGENCY
from agencies.choices import GrantLevel, GrantStatus
from agencies.models import AccessGrant, Agency, AgencyMember
from tests.connectors.conftest import _no_notification_delivery, encryption_key, providers  # noqa: F401 — reused

pytestmark = pytest.mark.django_db


def test_seed_demo_makes_the_agency_with_two_active_grants_idempotently(tmp_path) -> None:
    call_command("seed_demo", password_file=str(tmp_path / "pw"))
    call_command("seed_demo", password_file=str(tmp_path / "pw"))

    agency = Agency.objects.get()
    assert (agency.clerk_org_id, agency.name) == ("org_demo_northwind", "Northwind Growth")
    [admin] = AgencyMember.objects.filter(agency=agency)
    assert (admin.clerk_user_id, admin.role) == ("user_demo_agency", "admin")
    grants = AccessGrant.objects.filter(agency=agency).order_by("merchant__key")
    assert [(g.merchant.key, g.level, g.status) for g in grants] == [
        ("demo_second", GrantLevel.ANALYST, GrantStatus.ACTIVE),
        ("demo_store", GrantLevel.ANALYST, GrantStatus.ACTIVE),
    ]


def test_connect_demo_puts_the_agency_organization_in_the_sandbox(providers, clerk, sandbox, tmp_path) -> None:  # noqa: F811
    from clerk_backend_api import Clerk
    from django.conf import settings

    call_command("seed_demo", password_file=str(tmp_path / "pw"))
    out = StringIO()
    call_command("connect_demo", sandbox_url=providers.url, app_url="http://127.0.0.1:8000", stdout=out)
    call_command("connect_demo", sandbox_url=providers.url, app_url="http://127.0.0.1:8000", stdout=StringIO())

    sdk = Clerk(bearer_auth=settings.CLERK_SECRET_KEY, server_url=settings.CLERK_API_URL)
    org = sdk.organizations.get(organization_id=DEMO_AGENCY["clerk_org_id"])
    assert (org.name, org.slug, org.public_metadata) == ("Northwind Growth", "northwind-growth", {"kind": "agency"})
    assert org.private_metadata == {"agency_id": Agency.objects.get().pk}
    members = sdk.organization_memberships.list(organization_id=org.id).data
    assert [(m.public_user_data.user_id, m.role) for m in members] == [("user_demo_agency", "org:admin")]
    assert "demo agency: Clerk organization org_demo_northwind ready" in out.getvalue()
    # The agency user signs in with the organization active.
    assert sandbox.mint_session_token("user_demo_agency", azp="http://testserver", organization_id=org.id)
