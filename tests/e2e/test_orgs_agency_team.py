"""An agency founder creates the agency, invites a colleague who accepts in Clerk, and revokes another invite."""

from __future__ import annotations

import base64

import pytest
from playwright.sync_api import expect

from agencies.models import Agency, AgencyInvitation
from config.celery import app

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])

SECRET = "whsec_" + base64.b64encode(b"e2e-agency-webhook-secret").decode()


@pytest.fixture
def eager():
    """The invitation task runs in the request that queued it (after its commit), as a worker would soon after."""
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def test_create_agency_invite_accept_and_revoke(page, app_url, clerk, sandbox, settings, eager, screenshot):
    settings.CLERK_WEBHOOK_SECRET = SECRET
    clerk.user("user_nora", first_name="Nora", last_name="Northwind", email="nora@northwind.example")

    page.goto(app_url + "/agencies/new/")
    page.get_by_role("button", name="Sign in as Nora Northwind").click()
    expect(page).to_have_url(app_url + "/agencies/new/")
    page.get_by_label("Name").fill("Northwind Growth")
    page.get_by_label("Reporting currency").fill("EUR")
    page.get_by_role("button", name="Create agency").click()

    agency = Agency.objects.get()
    expect(page).to_have_url(f"{app_url}/agencies/{agency.pk}/members/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Northwind Growth — team")
    expect(page.locator("tr[data-member='user_nora']")).to_contain_text("Admin")

    page.get_by_label("Email").fill("ann@example.com")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator(".messages")).to_contain_text("Invitation to ann@example.com queued")
    expect(page.locator("tr[data-invitation='ann@example.com']")).to_contain_text("Pending")
    screenshot("agency-invited")

    # Ann follows Clerk's email and joins; Clerk tells the app by webhook.
    invitation = AgencyInvitation.objects.get(email="ann@example.com")
    sandbox.clerk_invitation_accept(agency.clerk_org_id, invitation.clerk_invitation_id, "user_ann")
    deliveries = sandbox.clerk_events_deliver(f"{app_url}/webhooks/clerk/", secret=SECRET)
    assert {d["status"] for d in deliveries} == {200}
    page.reload()
    expect(page.locator("tr[data-invitation='ann@example.com']")).to_contain_text("Accepted")
    expect(page.locator("tr[data-member='user_ann']")).to_contain_text("ann@example.com")
    expect(page.locator("tr[data-member='user_ann']")).to_contain_text("Member")

    page.get_by_label("Email").fill("bo@example.com")
    page.get_by_role("button", name="Send invitation").click()
    page.locator("tr[data-invitation='bo@example.com']").get_by_role("button", name="Revoke").click()
    expect(page.locator("tr[data-invitation='bo@example.com']")).to_contain_text("Revoked")
    assert sandbox.calls("clerk.organization_invitations.revoke")[0]["status"] == 200
    screenshot("agency-team")
